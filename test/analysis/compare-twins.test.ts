/**
 * compare and sweep share one replay between configurations that leave glibc in the same state once
 * started (twins.ts): each row's figures are still those of its configuration replayed on its own
 * (runFigures, one configuration at a time), through the built command with its worker threads,
 * on a trace where a trim threshold of 0 makes a difference (the twin is then replayed after all)
 * and on traces where it makes none; and the twins are not replayed, which the count of replays
 * handed out shows.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inProcess as ptsim } from '../helpers/cli.js';
import { runFigures, runMany, type Figures } from '../../src/analysis/figures.js';
import { parseConfig } from '../../src/cli/config.js';
import { replayFile, type ReplaySettings } from '../../src/replay/run-file.js';
import { generateTrace } from '../gen/generate.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-compare-twins-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A configuration's settings as compare gives them, on top of --cores 2. */
function settingsOf(config: string | null): ReplaySettings {
  return { cores: 2, ...(config === null ? {} : parseConfig(config).settings) };
}

/** The figures of one configuration replayed on its own, in this thread. */
function alone(path: string, config: string | null): Promise<Figures> {
  return runFigures({ path, settings: settingsOf(config) });
}

/**
 * A trace at whose free glibc, with a trim threshold of 0, calls systrim on a top of 32 bytes and
 * grows the break (see twins.test.ts, where real glibc is checked to do the same); with a threshold
 * of 128 KiB it does not.
 */
async function smallTop(): Promise<string> {
  const head = ['1 malloc 70000 a', '1 malloc 100 g'];
  const first = join(dir, 'small-top-head.trace');
  writeFileSync(first, head.join('\n') + '\n');
  const s = (await replayFile(first, settingsOf('M_TRIM_THRESHOLD=0'))).replayer!.process;
  const top = s.ck.size[s.main.top]!;
  const path = join(dir, 'small-top.trace');
  writeFileSync(
    path,
    [...head, `1 malloc ${top - 32 - 8} f`, '1 free a', '1 malloc 50 x'].join('\n') + '\n',
  );
  return path;
}

function generated(): string {
  const path = join(dir, 'generated.trace');
  writeFileSync(path, generateTrace({ seed: 'compare-twins', events: 3000 }));
  return path;
}

const CONFIGS = [
  'M_MMAP_THRESHOLD=131072',
  'M_TRIM_THRESHOLD=0',
  // The same state as M_MMAP_THRESHOLD=131072: both fix the thresholds at 128 KiB.
  'M_TRIM_THRESHOLD=131072',
  'M_TOP_PAD=0',
  'M_MMAP_THRESHOLD=131072 M_TRIM_THRESHOLD=4096',
];

describe('compare with twin configurations', () => {
  it('gives each configuration the figures of its own replay', async () => {
    const small = await smallTop();
    for (const path of [small, generated(), 'traces/thread-arenas.trace']) {
      const r = await ptsim([
        'compare',
        path,
        '--cores',
        '2',
        ...CONFIGS.flatMap((c) => ['--config', c]),
        '--json',
        '--jobs',
        '2',
      ]);
      expect(r.code, r.err).toBe(0);
      const rows = (JSON.parse(r.out) as { rows: Array<{ name: string; figures: Figures }> }).rows;
      expect(rows.map((x) => x.name)).toEqual(['default', ...CONFIGS]);
      for (const [i, config] of [null, ...CONFIGS].entries())
        expect(rows[i]!.figures, `${path}: ${config}`).toEqual(await alone(path, config));
    }
  });

  it('replays a twin only when its trim threshold would have mattered', async () => {
    const small = await smallTop();
    const jobs = (path: string): Array<{ path: string; settings: ReplaySettings }> =>
      [null, ...CONFIGS].map((c) => ({ path, settings: settingsOf(c) }));
    const replayed = async (path: string): Promise<number[]> => {
      const ks: number[] = [];
      const done: number[] = [];
      await runMany(jobs(path), {
        parallel: 1,
        replaying: (k) => ks.push(k),
        progress: (d, t) => done.push(d, t),
      });
      // Progress counts every configuration, twins included.
      expect(done.slice(-2)).toEqual([6, 6]);
      return ks.sort((a, b) => a - b);
    };
    // M_TRIM_THRESHOLD=0, M_TRIM_THRESHOLD=131072 and M_MMAP_THRESHOLD=131072
    // M_TRIM_THRESHOLD=4096 ride on M_MMAP_THRESHOLD=131072's replay, which watches both other
    // thresholds, quiet.
    expect(await replayed('traces/thread-arenas.trace')).toEqual([0, 1, 4]);
    // Here the threshold of 0 grows the break: M_TRIM_THRESHOLD=0 is replayed after all, and its
    // figures are not its runner's.
    // (M_TRIM_THRESHOLD=4096 still rides: a top of 32 bytes is below it as below 128 KiB.)
    expect(await replayed(small)).toEqual([0, 1, 2, 4]);
    const [mmap, zero] = await Promise.all([
      alone(small, 'M_MMAP_THRESHOLD=131072'),
      alone(small, 'M_TRIM_THRESHOLD=0'),
    ]);
    expect(zero.syscalls.brk).toBeGreaterThan(mmap.syscalls.brk);
  });

  it('shares replays of an imported trace too, with the figures of its own replays', async () => {
    // An mtrace log: a big block that raises the dynamic thresholds, then small blocks all freed.
    const block = (i: number): string => `0x${(0x555555559000 + i * 0x400).toString(16)}`;
    const lines = ['= Start', '+ 0x7f0000000010 0x493e0', '- 0x7f0000000010'];
    for (let i = 0; i < 300; i++) lines.push(`+ ${block(i)} 0x3e8`);
    for (let i = 0; i < 300; i++) lines.push(`- ${block(i)}`);
    const path = join(dir, 'imported.log');
    writeFileSync(path, [...lines, '= End'].join('\n') + '\n');
    const configs = ['M_MMAP_THRESHOLD=131072', 'M_TRIM_THRESHOLD=0'];
    const r = await ptsim([
      'compare',
      path,
      '--from',
      'mtrace',
      '--cores',
      '2',
      ...configs.flatMap((c) => ['--config', c]),
      '--json',
    ]);
    expect(r.code, r.err).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ figures: Figures }> }).rows;
    const own = (c: string | null): Promise<Figures> =>
      runFigures({ path, import: { from: 'mtrace' }, settings: settingsOf(c) });
    for (const [i, config] of [null, ...configs].entries())
      expect(rows[i]!.figures, `${config}`).toEqual(await own(config));
    expect(rows[0]!.figures.events).toBe(602);
    const ks: number[] = [];
    await runMany(
      [null, ...configs].map((c) => ({
        path,
        import: { from: 'mtrace' },
        settings: settingsOf(c),
      })),
      { parallel: 1, replaying: (k) => ks.push(k) },
    );
    expect(ks).toEqual([0, 1]);
  });

  it('pairs configurations only on the same glibc release', async () => {
    const ks: number[] = [];
    await runMany(
      ['glibc=2.31 M_MMAP_THRESHOLD=131072', 'glibc=2.36 M_MMAP_THRESHOLD=131072'].map((c) => ({
        path: 'traces/thread-arenas.trace',
        settings: settingsOf(c),
      })),
      { parallel: 1, replaying: (k) => ks.push(k) },
    );
    expect(ks).toEqual([0, 1]);
  });
});

describe('sweep with twin configurations', () => {
  it('gives each configuration of the grid the figures of its own replay', async () => {
    const small = await smallTop();
    for (const path of [small, generated()]) {
      const r = await ptsim([
        'sweep',
        path,
        '--cores',
        '2',
        '--param',
        'trim_threshold=0,4096,131072',
        '--param',
        'mmap_threshold=64K,128K',
        '--json',
      ]);
      expect(r.code, r.err).toBe(0);
      const doc = JSON.parse(r.out) as {
        default: { figures: Figures };
        rows: Array<{ params: Record<string, number>; figures: Figures }>;
      };
      expect(doc.rows).toHaveLength(6);
      expect(doc.default.figures).toEqual(await alone(path, null));
      for (const row of doc.rows) {
        const config = `M_TRIM_THRESHOLD=${row.params.trim_threshold} M_MMAP_THRESHOLD=${row.params.mmap_threshold}`;
        expect(row.figures, `${path}: ${config}`).toEqual(await alone(path, config));
      }
    }
  });
});
