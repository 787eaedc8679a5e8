/**
 * Settings that leave glibc in the same state share one replay in explain: twins(), from the state
 * after start-up, tells when two settings do (or do but for the trim threshold), and a replay that
 * watches other trim thresholds (Process.otherTrimThresholds) says whether each would ever have
 * made a difference. The property checked here: whenever the watch says it never did, the replay
 * with the other threshold is the same, event by event (the fidelity log) and in its summary. The
 * replays themselves are checked against real glibc by the differential suite.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { explain } from '../../src/analysis/explain.js';
import { startState, twins } from '../../src/analysis/twins.js';
import type { TraceRef } from '../../src/analysis/what-if.js';
import { storedHeader, TraceStore, type StoredTrace } from '../../src/trace/event-store.js';
import { MALLOPT_PARAMS } from '../../src/core/constants.js';
import { replayFile, type ReplaySettings } from '../../src/replay/run-file.js';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { differential } from '../diff/harness.js';
import { fcParams } from '../helpers/fc.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-twins-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
async function stored(text: string): Promise<TraceRef & { store: StoredTrace }> {
  const path = join(dir, `t${files++}.trace`);
  writeFileSync(path, text);
  const store = new TraceStore(1e7);
  await replayFile(path, { cores: 2, tee: store });
  return { path, store: store.finish()! };
}

const opt = (name: string, value: number): [number, number] => [MALLOPT_PARAMS[name]!, value];

async function kindOf(t: TraceRef & { store: StoredTrace }, a: ReplaySettings, b: ReplaySettings) {
  const start = { ...t, header: storedHeader(t.store) };
  const [x, y] = await Promise.all([startState(start, a), startState(start, b)]);
  return twins(x!, y!);
}

describe('twins', () => {
  it('are told apart by the state glibc starts in', async () => {
    const t = await stored(generateTrace({ seed: 'twins', events: 200 }));
    const mmap = { cores: 2, mallopts: [opt('M_MMAP_THRESHOLD', 131072)] };
    // Either setting stops the dynamic threshold, and the thresholds are then those of the other.
    expect(
      await kindOf(t, mmap, { cores: 2, mallopts: [opt('M_TRIM_THRESHOLD', 131072)] }),
    ).toEqual({ kind: 'same' });
    expect(await kindOf(t, mmap, { cores: 2, mallopts: [opt('M_TRIM_THRESHOLD', 0)] })).toEqual({
      kind: 'trim',
      otherTrimThreshold: 0,
    });
    // As a tunable, the same.
    expect(
      await kindOf(t, mmap, { cores: 2, extraTunables: 'glibc.malloc.trim_threshold=4096' }),
    ).toEqual({ kind: 'trim', otherTrimThreshold: 4096 });
    for (const other of [
      { cores: 2, mallopts: [opt('M_TOP_PAD', 0)] },
      { cores: 2, extraTunables: 'glibc.malloc.tcache_count=0' },
      { cores: 2, mallopts: [opt('M_MMAP_THRESHOLD', 131072), opt('M_ARENA_MAX', 1)] },
      // Unchanged thresholds still move: not the same as fixing them.
      { cores: 2 },
      { cores: 4, mallopts: [opt('M_MMAP_THRESHOLD', 131072)] },
    ])
      expect(await kindOf(t, mmap, other)).toBeNull();
  });
});

/** A replay's fidelity log and summary, and where each watched threshold first mattered. */
async function replay(path: string, settings: ReplaySettings, otherTrimThresholds?: number[]) {
  const log: string[] = [];
  const run = await replayFile(path, {
    ...settings,
    ...(otherTrimThresholds !== undefined ? { otherTrimThresholds } : {}),
    onEvent: (rec) => log.push(JSON.stringify(rec)),
  });
  const r = run.replayer!;
  const { mallinfo2: _, ...summary } = r.finish();
  return {
    log,
    summary: JSON.stringify({ ...summary, failure: run.failure?.message }),
    mattered: r.process.trimThresholdsMattered,
  };
}

describe('a replay watching other trim thresholds', () => {
  it('stands for the replay with each whenever it says that threshold never mattered', async () => {
    let mattered = 0;
    let not = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 0, max: 1e6 }),
          threads: fc.boolean(),
          pad: fc.constantFrom(0, 4096, 131072),
          trim: fc.constantFrom(0, 1, 4096, 65536, 131072, 200000, 1 << 20),
          others: fc.uniqueArray(fc.constantFrom(0, 33, 4096, 131072, 262144), {
            minLength: 1,
            maxLength: 3,
          }),
          // Releases whose free paths differ (2.43 has no fastbins and frees through the tcache
          // first).
          glibc: fc.constantFrom('2.31', '2.36', '2.43'),
        }),
        async ({ seed, threads, pad, trim, others, glibc }) => {
          const text = threads
            ? generateThreadedTrace({ seed: `twin${seed}`, events: 2500, maxThreads: 4 })
            : generateTrace({ seed: `twin${seed}`, events: 2500 });
          const path = join(dir, `p${files++}.trace`);
          writeFileSync(path, text);
          const base = [opt('M_TOP_PAD', pad), opt('M_MMAP_THRESHOLD', 65536)];
          const a: ReplaySettings = {
            cores: 2,
            glibc,
            mallopts: [...base, opt('M_TRIM_THRESHOLD', trim)],
          };
          // One replay watches them all.
          const watched = await replay(path, a, others);
          expect(watched.mattered).toHaveLength(others.length);
          for (const [i, other] of others.entries()) {
            if (watched.mattered[i]! >= 0 && trim !== other) {
              mattered++;
              continue;
            }
            not++;
            const b: ReplaySettings = {
              cores: 2,
              glibc,
              mallopts: [...base, opt('M_TRIM_THRESHOLD', other)],
            };
            const own = await replay(path, b);
            expect(own.log).toEqual(watched.log);
            expect(own.summary).toBe(watched.summary);
          }
        },
      ),
      fcParams({ numRuns: 60 }),
    );
    // Both answers come up: the watch is not always quiet, nor always alarmed.
    expect(mattered).toBeGreaterThan(0);
    expect(not).toBeGreaterThan(0);
  });
});

describe('a threshold of 0 and one of 128 KiB', () => {
  it('differ when a top under 33 bytes is trimmed: glibc grows the break, and the watch sees it', async () => {
    // A free of 64 KiB or more that does not reach the top makes glibc look at the top; with a
    // threshold of 0 it calls systrim even on a top of 32 bytes, whose area (32 - 33, a long
    // compared with the unsigned pad) counts as larger than the pad: the break grows.
    const zero: ReplaySettings = { cores: 2, mallopts: [opt('M_TRIM_THRESHOLD', 0)] };
    const head = ['1 malloc 70000 a', '1 malloc 100 g'];
    const first = join(dir, 'small-top-head.trace');
    writeFileSync(first, head.join('\n') + '\n');
    const s = (await replayFile(first, zero)).replayer!.process;
    const top = s.ck.size[s.main.top]!;
    const text = [...head, `1 malloc ${top - 32 - 8} f`, '1 free a', '1 malloc 50 x'].join('\n');
    // Real glibc, the program setting the threshold itself first.
    expect(
      differential(`1 mallopt M_TRIM_THRESHOLD 0\n${text}\n`, { name: 'small-top.trace' }),
    ).toBeNull();
    const path = join(dir, 'small-top.trace');
    writeFileSync(path, text + '\n');
    const own = await replay(path, zero);
    const brk = own.log.map((l) => (JSON.parse(l) as { brk: number }).brk);
    expect(brk[3]).toBeGreaterThan(brk[2]!);
    // The replay with M_MMAP_THRESHOLD=131072 (trim threshold 128 KiB) watching 0: it mattered
    // at that free, and the two replays differ there.
    const watched = await replay(
      path,
      { cores: 2, mallopts: [opt('M_MMAP_THRESHOLD', 131072)] },
      [0],
    );
    expect(watched.mattered).toEqual([3]);
    expect(watched.log.slice(0, 3)).toEqual(own.log.slice(0, 3));
    expect(watched.log[3]).not.toEqual(own.log[3]);
  });
});

describe('explain', () => {
  it('gives twin settings, replayed once, the figures of their own replays', async () => {
    // A big block raises the dynamic thresholds; then a heap's worth of small blocks, all freed,
    // leaves a free top below the raised trim threshold: both M_MMAP_THRESHOLD=131072 and
    // M_TRIM_THRESHOLD=0 are offered.
    const lines = ['1 malloc 300000 big', '1 free big'];
    for (let i = 0; i < 400; i++) lines.push(`1 malloc 1000 s${i}`);
    for (let i = 0; i < 400; i++) lines.push(`1 free s${i}`);
    const path = join(dir, 'twins.trace');
    writeFileSync(path, lines.join('\n') + '\n');
    const ex = await explain(path, { settings: { cores: 2 }, at: ['end'], parallel: 1 });
    const m = ex.moments[0]!;
    const all = [...m.remedies, ...m.tried];
    const cases: Array<[string, ReplaySettings]> = [
      ['M_MMAP_THRESHOLD=131072', { mallopts: [opt('M_MMAP_THRESHOLD', 131072)] }],
      ['M_TRIM_THRESHOLD=0', { mallopts: [opt('M_TRIM_THRESHOLD', 0)] }],
    ];
    for (const [setting, settings] of cases) {
      const r = all.find((x) => x.setting === setting);
      expect(r, setting).toBeDefined();
      const run = await replayFile(path, { cores: 2, ...settings });
      const own = run.replayer!;
      expect(r!.rss).toBe(own.kernel.residentPages * 4096);
      expect(r!.peakRss).toBe(own.finish().peakRss);
      expect(r!.pageFaults).toBe(own.kernel.pageFaults);
    }
  });
});
