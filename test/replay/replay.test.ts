/**
 * Tests of the replay loop's token handling (src/replay/replay.ts): tokens with and without keys
 * name blocks alike, events from any producer (with or without keys) replay alike, the fidelity log
 * does not change the replay, and the trace mistakes about tokens are reported with their text.
 */

import { describe, expect, it } from 'vitest';
import {
  ReplayError,
  Replayer,
  type EventRecord,
  type ReplayOptions,
  type ReplaySummary,
} from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import type { TraceEvent } from '../../src/trace/types.js';

interface Run {
  summary: ReplaySummary;
  records: EventRecord[];
  error?: string;
}

/** A kernel whose break and mappings cannot grow past 1 MiB: larger requests fail in the model. */
const SMALL: ReplayOptions = { kernel: { maxBrk: 1 << 20, maxMapping: 1 << 20 } };

/** Replays `text`; `copy` turns each event into what the replayer is given. */
function replay(
  text: string,
  opts: { log?: boolean; copy?: (ev: TraceEvent) => TraceEvent; replay?: ReplayOptions } = {},
): Run {
  const records: EventRecord[] = [];
  const r = new Replayer('t.trace', {
    ...opts.replay,
    ...(opts.log === false ? {} : { onEvent: (rec: EventRecord) => records.push(rec) }),
  });
  let error: string | undefined;
  try {
    readTraceText(text, 't.trace', {
      header: (h) => r.header(h),
      event: (ev) => r.event(opts.copy ? opts.copy(ev) : ev),
    });
  } catch (e) {
    if (!(e instanceof ReplayError)) throw e;
    error = e.message;
  }
  const run: Run = { summary: r.finish(), records };
  if (error !== undefined) run.error = error;
  return run;
}

/** A trace of small and large blocks, reallocs and frees, with pointer-like tokens. */
function workload(): string {
  const lines: string[] = [];
  const live: number[] = [];
  let next = 0x55d0c2a4f2a0;
  for (let i = 0; i < 3000; i++) {
    const r = (i * 2654435761) % 1000;
    if (live.length > 0 && r < 420) {
      const k = live.splice(r % live.length, 1)[0]!;
      lines.push(`1 free 0x${k.toString(16)}`);
    } else if (live.length > 0 && r < 520) {
      const at = r % live.length;
      const k = next;
      next += 0x40;
      lines.push(`1 realloc 0x${live[at]!.toString(16)} ${(r * 37) % 5000} 0x${k.toString(16)}`);
      live[at] = k;
    } else {
      const k = next;
      next += 0x40;
      const size = r < 990 ? (r * 13) % 600 : 200_000;
      lines.push(
        r % 7 === 0
          ? `1 calloc 3 ${size} 0x${k.toString(16)}`
          : `1 malloc ${size} 0x${k.toString(16)}`,
      );
      live.push(k);
    }
  }
  lines.push('1 free 0', '1 realloc 0 100 0x1', '1 malloc_trim 0');
  return lines.join('\n') + '\n';
}

describe('tokens', () => {
  const text = workload();
  const keyed = replay(text);

  it('replays tokens without keys exactly like pointer tokens', () => {
    let n = 0;
    const names = new Map<string, string>();
    const renamed = text.replace(/0x[0-9a-f]+/g, (t) => {
      if (!names.has(t)) names.set(t, `blk${n++}`);
      return names.get(t)!;
    });
    expect(replay(renamed)).toEqual(keyed);
    expect(keyed.summary.liveBlocks).toBeGreaterThan(100);
  });

  it('replays events without keys or numbers (any producer) exactly like the reader’s', () => {
    const plain = (ev: TraceEvent): TraceEvent => {
      const { inKey: _ik, outKey: _ok, inId: _ii, outId: _oi, ...rest } = { ...ev };
      return rest;
    };
    expect(replay(text, { copy: plain })).toEqual(keyed);
    const keysOnly = (ev: TraceEvent): TraceEvent => {
      const { inId: _ii, outId: _oi, ...rest } = { ...ev };
      return rest;
    };
    expect(replay(text, { copy: keysOnly })).toEqual(keyed);
  });

  it('gives the same summary with and without a fidelity log listener', () => {
    const quiet = replay(text, { log: false });
    expect(quiet.records).toEqual([]);
    expect(quiet.summary).toEqual(keyed.summary);
    expect(keyed.records).toHaveLength(keyed.summary.events);
  });
});

describe('token mistakes', () => {
  for (const [kind, a, b] of [
    ['pointer tokens', '0x55d0c2a4f2a0', '0x55d0c2a4f2c0'],
    ['named tokens', 'a', 'b'],
  ] as const) {
    describe(kind, () => {
      it('reports a free of a token never seen', () => {
        expect(replay(`1 malloc 24 ${a}\n1 free ${b}\n`).error).toBe(
          `t.trace:2: free of ${b}, which is not a live block (never allocated, or freed long ago)`,
        );
        expect(replay(`1 realloc ${b} 10 ${a}\n`).error).toBe(
          `t.trace:1: realloc of ${b}, which is not a live block (never allocated, or freed long ago)`,
        );
      });

      it('reports a token reused while live', () => {
        expect(replay(`1 malloc 24 ${a}\n1 malloc 24 ${a}\n`).error).toBe(
          `t.trace:2: token ${a} is reused while still live (it was never freed)`,
        );
      });

      it('reports a double free glibc would not detect', () => {
        // Seven frees fill the tcache; a then b go to the fastbin, and freeing a again passes
        // glibc's only fastbin check (that a is not the bin's first chunk).
        const fill = [1, 2, 3, 4, 5, 6, 7];
        const text = [
          ...fill.map((i) => `1 malloc 24 f${i}`),
          `1 malloc 24 ${a}`,
          `1 malloc 24 ${b}`,
          ...fill.map((i) => `1 free f${i}`),
          `1 free ${a}`,
          `1 free ${b}`,
          `1 free ${a}`,
        ].join('\n');
        expect(replay(text + '\n').error).toBe(
          `t.trace:19: free of ${a}, which was already freed at line 17: glibc 2.36 does not detect this here and its heap would now be corrupt, so the replay stops`,
        );
      });

      it("reports a double free glibc would not detect in a thread arena: the block sits in another thread's tcache", () => {
        // Thread 3 finds the tcache key in the block but walks only its own bin.
        const text = `1 malloc 24 m\n2 malloc 24 ${a}\n2 free ${a}\n3 free ${a}\n3 malloc 24 ${b}\n`;
        const run = replay(text);
        expect(run.error).toBe(
          `t.trace:4: free of ${a}, which was already freed at line 3: glibc 2.36 does not detect this here and its heap would now be corrupt, so the replay stops`,
        );
        expect(run.summary.events).toBe(3);
        // Freed again by the thread whose tcache holds it: caught.
        expect(
          replay(`1 malloc 24 m\n2 malloc 24 ${a}\n2 free ${a}\n2 free ${a}\n`).summary.abort,
        ).toEqual({
          message: 'free(): double free detected in tcache 2',
          event: 3,
          line: 4,
        });
      });

      it("judges a double free in a thread arena by the chunk's own arena", () => {
        // The 32-byte bin of thread 2's tcache is full: x goes to arena 1's fastbin, at its head.
        const fill = [1, 2, 3, 4, 5, 6, 7];
        const text = [
          '1 malloc 24 m',
          ...fill.map((i) => `2 malloc 24 f${i}`),
          `2 malloc 24 ${a}`,
          ...fill.map((i) => `2 free f${i}`),
          `2 free ${a}`,
          `2 free ${a}`,
        ].join('\n');
        expect(replay(text + '\n').summary.abort).toEqual({
          message: 'double free or corruption (fasttop)',
          event: 17,
          line: 18,
        });
      });

      it('says so when the outcome depends on memory ptsim does not keep', () => {
        // An mmapped block is unmapped by its free: glibc would read its header from unmapped memory.
        expect(replay(`1 malloc 1000000 ${a}\n1 free ${a}\n1 free ${a}\n`).error).toBe(
          `t.trace:3: free of ${a}, which was already freed at line 2: what glibc 2.36 does here depends on heap memory ptsim does not keep, so the replay stops`,
        );
      });

      it('records the abort of a double free glibc detects', () => {
        const run = replay(`1 malloc 24 ${a}\n1 free ${a}\n1 free ${a}\n1 malloc 24 ${b}\n`);
        expect(run.error).toBeUndefined();
        expect(run.summary.abort).toEqual({
          message: 'free(): double free detected in tcache 2',
          event: 2,
          line: 3,
        });
        expect(run.summary.events).toBe(2);
      });

      it('keeps OLD live when realloc returns NULL in the model, and frees it later', () => {
        const warnings: string[] = [];
        const r = new Replayer('t.trace', { ...SMALL, onWarning: (w) => warnings.push(w) });
        const text = `1 malloc 24 ${a}\n1 realloc ${a} 4000000 ${b}\n1 realloc ${a} 100 ${a}\n1 free ${a}\n1 malloc 10 ${b}\n`;
        readTraceText(text, 't.trace', { header: (h) => r.header(h), event: (ev) => r.event(ev) });
        expect(warnings[0]).toBe(
          `t.trace:2: realloc of ${a} to 4000000 bytes returned NULL; ${a} stays live`,
        );
        expect(r.finish().liveBlocks).toBe(1);
        expect(replay(text + `1 free ${b}\n`, { replay: SMALL }).summary.liveBlocks).toBe(0);
        expect(replay(text + `1 free ${a}\n`, { replay: SMALL }).summary.abort).toEqual({
          message: 'free(): double free detected in tcache 2',
          event: 5,
          line: 6,
        });
        expect(
          replay(`1 malloc 24 ${a}\n1 realloc ${a} 4000000 ${b}\n1 malloc 24 ${a}\n`, {
            replay: SMALL,
          }).error,
        ).toBe(`t.trace:3: token ${a} is reused while still live (it was never freed)`);
        // A block the model could not allocate: its token is ignored by a free.
        const dead = replay(
          `1 malloc 4000000 ${a}\n1 malloc 24 ${b}\n1 free ${a}\n1 malloc 24 ${a}\n1 free ${a}\n`,
          { replay: SMALL },
        );
        expect(dead.error).toBeUndefined();
        expect(dead.summary.liveBlocks).toBe(1);
      });

      it('lets OLD name the new block when the recording says realloc failed', () => {
        const run = replay(
          `1 malloc 24 ${a}\n1 realloc ${a} 100 0\n1 realloc ${a} 200 0\n1 malloc 5 ${b}\n1 free ${a}\n`,
        );
        expect(run.error).toBeUndefined();
        expect(run.summary.liveBlocks).toBe(1);
        expect(run.summary.liveBytes).toBe(5);
        expect(run.summary.warnings).toBe(2);
      });

      it('lets a token be used again once freed', () => {
        const run = replay(
          `1 malloc 24 ${a}\n1 free ${a}\n1 malloc 40 ${a}\n1 realloc ${a} 100 ${b}\n1 free ${b}\n`,
        );
        expect(run.error).toBeUndefined();
        expect(run.summary.liveBlocks).toBe(0);
      });
    });
  }
});
