/**
 * `ptsim stats` on a small trace whose answers were worked out by hand, the same answers from
 * events without token keys or numbers, the text and JSON outputs, and the command's errors.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/errors.js';
import { STATS_HELP, statsCommand } from '../../src/cli/stats-command.js';
import { ReplayError, Replayer } from '../../src/replay/replay.js';
import { LogHistogram } from '../../src/stats/log-histogram.js';
import { TraceStats } from '../../src/stats/trace-stats.js';
import { readTraceText } from '../../src/trace/reader.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-stats-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/*
 * index  live bytes after   what happens
 *   0    100               a: 100 bytes (thread 1)
 *   1    200               b: calloc 2 x 50 = 100 bytes (thread 2)
 *   2    400               a grows to 300 and becomes c (the allocation lives on)
 *   3    300               b ends: 3 - 1 = 2 events, 30 - 10 = 20 ns
 *   4    300               malloc(0) returned NULL: failed
 *   5    1300              d: memalign 1000 bytes; the peak: 1300 B in 2 blocks (c, d), line 6, at 50 ns
 *   6    1000              c ends: 6 - 0 = 6 events, 60 ns (from a's allocation)
 *   7    1000              free of zz: never allocated
 *   8    0                 d ends by realloc to 0: 3 events, 30 ns
 *   9    7                 e: 7 bytes
 *  10    7                 realloc of e to 9 failed: e stays, 7 bytes, never freed
 */
const TRACE = `# pid 7
@0 1 malloc 100 a
@10 2 calloc 2 50 b
@20 1 realloc a 300 c
@30 1 free b
@40 2 malloc 0 0
@50 2 memalign 64 1000 d
@60 1 free c
@70 2 free zz
@80 1 realloc d 0 0
@90 1 malloc 7 e
@95 2 realloc e 9 0
`;

const EXPECTED = {
  events: 11,
  operations: { malloc: 3, calloc: 1, realloc: 3, memalign: 1, free: 3 },
  failed: 2,
  threads: [
    { tid: 1, events: 6 },
    { tid: 2, events: 5 },
  ],
  time: { first: 0, last: 95 },
  sizes: [
    { min: 0, max: 0, count: 1 },
    { min: 4, max: 7, count: 1 },
    { min: 8, max: 15, count: 1 },
    { min: 64, max: 127, count: 2 },
    { min: 256, max: 511, count: 1 },
    { min: 512, max: 1023, count: 1 },
  ],
  requestedBytes: 100 + 100 + 300 + 0 + 1000 + 7 + 9,
  requestedBytesExact: String(100 + 100 + 300 + 0 + 1000 + 7 + 9),
  peak: { bytes: 1300, blocks: 2, event: 5, line: 7, time: 50 },
  lifetimes: {
    count: 3,
    events: { count: 3, mean: 11 / 3, min: 2, median: 3, p90: 6, p99: 6, max: 6 },
    ns: { count: 3, mean: 110 / 3, min: 20, median: 30, p90: 60, p99: 60, max: 60 },
  },
  neverFreed: { blocks: 1, bytes: 7 },
  anomalies: { unknownFrees: 1, reusedLive: 0, doubleFrees: 0 },
  // The free of zz, which a replay stops at.
  mistake: {
    line: 9,
    detail: 'free of zz, which is not a live block (never allocated, or freed long ago)',
  },
};

function statsOf(text: string, strip = false): ReturnType<TraceStats['report']> {
  const s = new TraceStats();
  readTraceText(text, 't', {
    header: (h) => s.header(h),
    // Without keys and numbers, tokens are found by their text: the answers must not change.
    event: (ev) =>
      s.event(
        strip
          ? { ...ev, inKey: undefined, outKey: undefined, inId: undefined, outId: undefined }
          : ev,
      ),
  });
  return s.report();
}

async function stats(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await statsCommand.run(
    args,
    (s) => void (out += s),
    (s) => void (err += s),
  );
  return { code, out, err };
}

describe('trace statistics', () => {
  it('gives the answers worked out by hand', () => {
    expect(statsOf(TRACE)).toEqual(EXPECTED);
    expect(statsOf(TRACE, true)).toEqual(EXPECTED);
  });

  it('follows a token that gave its number up in a failed realloc to its free', () => {
    const r = statsOf('1 malloc 7 e\n1 realloc e 9 0\n1 malloc 5 f\n1 free e\n1 free f\n');
    expect(r.neverFreed).toEqual({ blocks: 0, bytes: 0 });
    expect(r.lifetimes.events).toMatchObject({ count: 2, min: 2, max: 3 });
    expect(r.anomalies).toEqual({ unknownFrees: 0, reusedLive: 0, doubleFrees: 0 });
    expect(r.mistake).toBeUndefined();
  });

  it('counts tokens handed out while live, double frees and frees of tokens never allocated', () => {
    for (const strip of [false, true]) {
      const r = statsOf(
        '1 malloc 10 a\n1 malloc 20 a\n1 free a\n1 free a\n1 realloc q 5 r\n1 free r\n',
        strip,
      );
      // The second free of a is a double free (a was freed just before); q was never allocated.
      expect(r.anomalies).toEqual({ unknownFrees: 1, reusedLive: 1, doubleFrees: 1 });
      // The first mistake a replay stops at: a handed out again while live, on line 2.
      expect(r.mistake).toEqual({
        line: 2,
        detail: 'token a is reused while still live (it was never freed)',
      });
      expect(r.neverFreed).toEqual({ blocks: 0, bytes: 0 });
      expect(r.peak.bytes).toBe(20);
    }
  });

  it("finds the #:touch records a replay stops at, in the replay's words", () => {
    const replayError = (text: string): string | undefined => {
      try {
        readTraceText(text, 't', new Replayer('t', { cores: 2 }));
      } catch (e) {
        if (e instanceof ReplayError) return `${e.line}: ${e.detail}`;
        throw e;
      }
      return undefined;
    };
    const statsError = (text: string): string | undefined => {
      const s = new TraceStats();
      readTraceText(text, 't', s);
      const m = s.report().mistake;
      return m === undefined ? undefined : `${m.line}: ${m.detail}`;
    };
    // Each body follows a '# touches recorded' line: its lines count from 2.
    const cases: Array<[string, string | undefined]> = [
      ['1 malloc 9000 a\n#:touch a 0-3\n1 free a\n', undefined],
      ['1 malloc 9000 a\n1 free a\n#:touch a 0\n', '4: #:touch of a, which is not a live block'],
      ['1 malloc 9000 a\n#:touch b 0\n', '3: #:touch of b, which is not a live block'],
      // a's number goes to b: a record of a is still a mistake.
      [
        '1 malloc 9000 a\n1 free a\n1 malloc 9000 b\n#:touch a 0\n',
        '5: #:touch of a, which is not a live block',
      ],
      ['1 malloc 9000 a\n1 realloc a 20000 b\n#:touch a 0\n', '4: #:touch of a, which is not'],
      // A realloc the recording says failed: a lives on.
      ['1 malloc 9000 a\n1 realloc a 20000 0\n#:touch a 3\n', undefined],
      ['1 malloc 9000 a\n#:touch a 4\n', "3: #:touch of a: page 4 is past the block's last"],
      ['1 malloc 0 z\n#:touch z 0\n', "3: #:touch of z: page 0 is past the block's last"],
      ['1 malloc 0 z\n#:touch z -\n', undefined],
    ];
    for (const [body, expected] of cases) {
      const text = '# touches recorded\n' + body;
      const replayed = replayError(text);
      if (expected === undefined) expect(replayed, body).toBeUndefined();
      else expect(replayed?.startsWith(expected), `${body}: ${replayed}`).toBe(true);
      expect(statsError(text), body).toBe(replayed);
    }
  });

  it('keeps lifetimes in a histogram exact below 128 and within a bucket above', () => {
    const h = new LogHistogram();
    for (let v = 1; v <= 100; v++) h.add(v);
    expect(h.summary()).toMatchObject({
      count: 100,
      mean: 50.5,
      min: 1,
      median: 50,
      p90: 90,
      p99: 99,
      max: 100,
    });
    const big = new LogHistogram();
    for (let v = 1; v <= 1000; v++) big.add(v * 1000);
    const s = big.summary();
    expect(Math.abs(s.median / 500000 - 1)).toBeLessThan(0.05);
    expect(Math.abs(s.p90 / 900000 - 1)).toBeLessThan(0.05);
    expect(s.max).toBe(1000000);
  });

  it('prints text and JSON', async () => {
    const path = join(dir, 't.trace');
    writeFileSync(path, TRACE);
    const json = await stats([path, '--json']);
    // The whole trace is reported, then its first mistake (the free of zz), with status 2.
    expect(json.code).toBe(2);
    expect(json.err).toBe(
      `ptsim: ${path}:9: free of zz, which is not a live block (never allocated, or freed long ago)\n`,
    );
    expect(JSON.parse(json.out)).toEqual({
      file: path,
      format: 'native',
      lines: 12,
      skipped: {},
      ...EXPECTED,
    });
    const text = await stats([path]);
    expect(text.code).toBe(2);
    for (const line of [
      `${path} (native): 11 events, 2 threads, 95 ns of recording`,
      '    malloc                    3   27.3%',
      '    (2 calls returned NULL in the recording)',
      '          [64, 128)  2  ##############################',
      '         [256, 512)  1  ###############',
      '    total requested  1.48 KiB (1,516 B)',
      '  peak live requested bytes  1.27 KiB (1,300 B) in 2 blocks, after event 5 (line 7, 50 ns in)',
      '  never freed                1 block holding 7 B',
      '  allocation lifetimes (3 blocks freed)',
      '    in events  mean 3.7, median 3, p90 6, p99 6, max 6',
      '    in time    mean 37 ns, median 30 ns, p90 60 ns, p99 60 ns, max 60 ns',
      '  oddities: 1 free or realloc of tokens never allocated',
    ]) {
      expect(text.out).toContain(line);
    }
  });

  it('reads other formats, with what the import left out', async () => {
    const path = join(dir, 'l.log');
    writeFileSync(path, '1 1 malloc(10)=0x10\n1 1 jemalloc_stats()\n1 2 free(0x10)\n');
    const r = await stats([path, '--json']);
    expect(JSON.parse(r.out)).toMatchObject({
      format: 'logalloc',
      events: 2,
      skipped: { 'function jemalloc_stats': 1 },
      threads: [
        { tid: 1, events: 1 },
        { tid: 2, events: 1 },
      ],
    });
    const text = await stats([path, '--from', 'logalloc']);
    expect(text.out).toContain('left out by the import: 1 function jemalloc_stats');
  });

  it('explains itself and reports mistakes', async () => {
    expect((await stats(['--help'])).out).toBe(STATS_HELP + '\n');
    for (const opt of ['--json', '--from', '--strict', '--pid']) expect(STATS_HELP).toContain(opt);
    const bad = join(dir, 'bad.trace');
    writeFileSync(bad, '1 malloc 24 a\n1 mallok 3 b\n');
    const r = await stats([bad]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^ptsim: ${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2: `));
    await expect(stats([])).rejects.toThrow(
      new UsageError('stats needs a TRACE file (- for standard input)'),
    );
    await expect(stats([bad, '--from', 'x'])).rejects.toThrow(UsageError);
  });
});
