/**
 * Code-level what-ifs, checked on real glibc: the pin allocated earlier, freed right after its last
 * use, freed after an event given (`--free-at`) and freed at the moment. For each, the test edits
 * the trace's text itself (a line moved, a `free` line inserted), replays the edited trace with
 * the native replayer on this machine's glibc, and compares its RSS at the end with what explain
 * claims, and the saving with the difference against the trace as given: on the classic pinned
 * top (traces/pinned-top.trace, whose 72-byte pin only goes into the tcache when freed, so freeing
 * it saves nothing), and on a pin too big for the tcache, which freeing early does give back.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Explanation } from '../../src/analysis/explain.js';
import { inProcess as ptsim } from '../helpers/cli.js';
import { runNative } from '../helpers/native.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-what-if-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Remedy = Explanation['moments'][number]['remedies'][number];

/** The trace's lines, and the line (0-based) of each event. */
function events(text: string): { lines: string[]; at: number[] } {
  const lines = text.split('\n');
  const at: number[] = [];
  lines.forEach((l, i) => {
    if (l.trim() !== '' && !l.startsWith('#')) at.push(i);
  });
  return { lines, at };
}

/** The trace as the remedy changes it, edited as text: a line moved, or a free inserted. */
function edited(text: string, r: Remedy, momentEvent: number): string {
  const { lines, at } = events(text);
  const out = [...lines];
  const move = r.edits?.move;
  const free = r.edits?.free;
  if (move !== undefined) {
    const [line] = out.splice(at[move.from]!, 1);
    out.splice(at[move.to]!, 0, line!);
  } else if (free !== undefined) {
    out.splice(at[free.after]! + 1, 0, `${free.tid} free ${free.token}`);
  } else if (r.id === 'free_pin') {
    out.splice(at[momentEvent]! + 1, 0, r.call!);
  } else throw new Error(`not an edit of the program: ${r.id}`);
  return out.join('\n');
}

/** Real glibc's RSS at the end of a trace. */
function nativeRss(name: string, text: string): number {
  const path = join(dir, name);
  writeFileSync(path, text);
  const run = runNative(path, { events: false, peak: false });
  expect(run.summary, run.stderr).not.toBeNull();
  return run.summary!['rss'] as number;
}

async function explainEnd(path: string, extra: string[] = []): Promise<Explanation['moments'][0]> {
  const r = await ptsim(['explain', path, '--at', 'end', '--json', '--jobs', '1', ...extra]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return (JSON.parse(r.out) as Explanation).moments[0]!;
}

/** Every pin remedy of the moment (offered or tried), checked against real glibc. */
function checkOnGlibc(name: string, text: string, m: Explanation['moments'][0]): Remedy[] {
  const given = nativeRss(`${name}.trace`, text);
  expect(given).toBe(m.residentBytes);
  const pinned = [...m.remedies, ...m.tried].filter((r) =>
    ['free_pin', 'free_pin_early', 'move_pin'].includes(r.id),
  );
  pinned.forEach((r, k) => {
    expect(r.failure, r.setting).toBeUndefined();
    const rss = nativeRss(`${name}-${k}.trace`, edited(text, r, m.event));
    expect(r.rss, r.setting).toBe(rss);
    expect(r.saved, r.setting).toBe(given - rss);
  });
  return pinned;
}

describe('code-level what-ifs against real glibc', () => {
  it('the pinned top: allocated earlier saves 2.98 MiB; freed, at its last use or at the end, nothing (the tcache keeps it)', async () => {
    const path = 'traces/pinned-top.trace';
    const m = await explainEnd(path);
    const pinned = checkOnGlibc('pinned-top', readFileSync(path, 'utf8'), m);
    const byId = new Map(pinned.map((r) => [r.id, r]));
    expect([...byId.keys()].sort()).toEqual(['free_pin', 'free_pin_early', 'move_pin']);
    expect(byId.get('move_pin')!.saved).toBe(3387392 - 258048);
    const early = byId.get('free_pin_early')!;
    // The summary is named by nothing after its allocation (event 3119).
    expect(early.setting).toBe('free(summary) right after its last use (event 3119)');
    expect(early.saved).toBe(0);
    expect(early.note).toBe(
      'gives back nothing by this moment: the freed chunk went into the tcache, where glibc still counts it as in use',
    );
    expect(m.remedies.map((r) => r.id)).not.toContain('free_pin_early');
  }, 60_000);

  it('a trace with call stacks: each what-if on the pin names the code that allocated it', async () => {
    const path = 'traces/sites.trace';
    const m = await explainEnd(path);
    const pinned = checkOnGlibc('sites', readFileSync(path, 'utf8'), m);
    expect(pinned.map((r) => r.id).sort()).toEqual(['free_pin', 'free_pin_early', 'move_pin']);
    for (const r of pinned)
      expect(r.site, r.setting).toEqual({
        site: 'load_config (src/config.c:42)',
        chain: ['load_config (src/config.c:42)', 'main (src/main.c:14)'],
      });
    // Freed at the end it would go into a fastbin (the tcache's 48-byte list is full of
    // fill_cache's blocks); freed right after its allocation, into the tcache: nothing either way.
    const early = pinned.find((r) => r.id === 'free_pin_early')!;
    expect(early.saved).toBe(0);
    expect(early.note).toMatch(/went into the tcache/);
    expect(pinned.find((r) => r.id === 'free_pin')!.note).toMatch(/into a fastbin/);
    const text = await ptsim(['explain', path, '--at', 'end', '--jobs', '1']);
    expect(text.out).toContain(
      '    free(config) right after its last use (event 40): gives back nothing by this moment: the freed chunk went into the tcache, where glibc still counts it as in use\n      allocated in load_config (src/config.c:42) <- main (src/main.c:14)\n',
    );
  }, 60_000);

  it('a pin too big for the tcache: freed right after its last use or after an event given, it gives the heap back', async () => {
    // 100 blocks of 3000 bytes, then a 2000-byte record (too big for the tcache) cut from the top
    // above them, then the blocks freed: they merge below the record, which keeps them resident.
    const range = (n: number): number[] => [...Array(n).keys()];
    const lines = [
      ...range(100).map((i) => `1 malloc 3000 b${i}`),
      '1 malloc 2000 record',
      ...range(100).map((i) => `1 free b${i}`),
      '',
    ];
    const text = lines.join('\n');
    const path = join(dir, 'big-pin.trace');
    writeFileSync(path, text);
    const m = await explainEnd(path, ['--free-at', '101', '--free-at', '160']);
    const pinned = checkOnGlibc('big-pin', text, m);
    const early = pinned.filter((r) => r.id === 'free_pin_early');
    expect(early.map((r) => r.setting).sort()).toEqual([
      'free(record) after event 101',
      'free(record) after event 160',
      'free(record) right after its last use (event 100)',
    ]);
    // Freed before the blocks below it, it lets them merge into the top, which is trimmed.
    const last = early.find((r) => r.setting.includes('last use'))!;
    expect(last.saved).toBeGreaterThan(100 * 1024);
    expect(last.note).toMatch(
      /^gives back .* \(the freed chunk was merged with the free memory around it\)$/,
    );
    expect(m.remedies).toContainEqual(expect.objectContaining({ setting: last.setting }));
  }, 60_000);
});
