/**
 * Property tests: random call sequences, with the heap's invariants checked after every event
 * (check.ts at level 2: chunks tile the heap, P bits and footers agree with neighbours, no two free
 * neighbours, every free chunk in exactly one fitting bin, large bins sorted, binmap bits present,
 * tcache counts right, resident pages recounted) and the program-visible guarantees checked here:
 * blocks aligned and large enough, live blocks never overlapping, mallinfo2 consistent with a walk.
 *
 * The seed is fixed (test/helpers/fc.ts: FC_SEED overrides it), so a failure reproduces; the
 * shrunk counterexample is printed as a trace.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Replayer } from '../../src/replay/replay.js';
import { St } from '../../src/core/chunks.js';
import { IS_MMAPPED } from '../../src/core/constants.js';
import { mallinfo2 } from '../../src/core/stats.js';
import { readTraceText } from '../../src/trace/reader.js';
import type { TraceEvent, TraceHeader } from '../../src/trace/types.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { traceEnv } from '../diff/harness.js';
import { fcParams } from '../helpers/fc.js';

type Cmd =
  | { op: 'malloc'; size: number }
  | { op: 'calloc'; n: number; size: number }
  | { op: 'realloc'; which: number; size: number }
  | { op: 'memalign'; align: number; size: number }
  | { op: 'valloc' | 'pvalloc'; size: number }
  | { op: 'free'; which: number }
  | { op: 'trim'; pad: number }
  | { op: 'mallopt'; param: string; value: number };

const size = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 128 }) },
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 1100 }) },
  { weight: 3, arbitrary: fc.integer({ min: 1000, max: 70000 }) },
  { weight: 2, arbitrary: fc.integer({ min: 100000, max: 300000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 300000, max: 4 << 20 }) },
);

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: size.map((s) => ({ op: 'malloc' as const, size: s })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ n: fc.integer({ min: 0, max: 8 }), size })
      .map((r) => ({ op: 'calloc' as const, n: r.n, size: Math.floor(r.size / 4) })),
  },
  {
    weight: 2,
    arbitrary: fc.record({ which: fc.nat(), size }).map((r) => ({ op: 'realloc' as const, ...r })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ align: fc.constantFrom(8, 16, 32, 48, 64, 256, 4096), size })
      .map((r) => ({ op: 'memalign' as const, ...r })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constantFrom('valloc' as const, 'pvalloc' as const), size }),
  },
  { weight: 6, arbitrary: fc.nat().map((w) => ({ op: 'free' as const, which: w })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(0, 4096, 131072).map((p) => ({ op: 'trim' as const, pad: p })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.record({ param: fc.constant('M_MXFAST'), value: fc.constantFrom(0, 64, 128, 160) }),
        fc.record({
          param: fc.constant('M_MMAP_THRESHOLD'),
          value: fc.constantFrom(65536, 131072, 1 << 20),
        }),
        fc.record({
          param: fc.constant('M_TRIM_THRESHOLD'),
          value: fc.constantFrom(0, 65536, 1 << 20),
        }),
        fc.record({ param: fc.constant('M_TOP_PAD'), value: fc.constantFrom(0, 4096, 131072) }),
        fc.record({ param: fc.constant('M_MMAP_MAX'), value: fc.constantFrom(0, 65536) }),
      )
      .map((r) => ({ op: 'mallopt' as const, ...r })),
  },
);

/** A command and the thread that makes it (1 is the main thread); `exit` ends a thread. */
type ThreadCmd = { tid: number; cmd: Cmd | { op: 'exit' } };

const threadCmd: fc.Arbitrary<ThreadCmd> = fc.record({
  tid: fc.oneof(
    { weight: 3, arbitrary: fc.constant(1) },
    { weight: 4, arbitrary: fc.integer({ min: 2, max: 24 }) },
  ),
  cmd: fc.oneof(
    { weight: 30, arbitrary: cmd },
    { weight: 1, arbitrary: fc.constant({ op: 'exit' as const }) },
  ),
});

/** Renders thread commands as a trace (the first command's thread is the main thread). */
function toThreadTrace(tcmds: ThreadCmd[]): string {
  const lines: string[] = [];
  const body = toTrace(
    tcmds.map((t) => (t.cmd.op === 'exit' ? { op: 'free' as const, which: -1 } : t.cmd)),
    true,
  );
  let k = 0;
  for (const t of tcmds) {
    const line = body[k++]!;
    if (t.cmd.op === 'exit') {
      if (t.tid !== tcmds[0]!.tid) lines.push(`${t.tid} exit`);
    } else lines.push(`${t.tid} ${line.slice(2)}`);
  }
  return lines.join('\n') + '\n';
}

/** Renders commands as a trace, choosing live tokens by index. */
function toTrace(cmds: Cmd[]): string;
function toTrace(cmds: Cmd[], asLines: true): string[];
function toTrace(cmds: Cmd[], asLines = false): string | string[] {
  const live: string[] = [];
  let serial = 0;
  const lines: string[] = [];
  const take = (w: number): string | null => {
    if (live.length === 0) return null;
    const i = w % live.length;
    const t = live[i]!;
    live.splice(i, 1);
    return t;
  };
  const add = (): string => {
    const t = `t${serial++}`;
    live.push(t);
    return t;
  };
  for (const c of cmds) {
    switch (c.op) {
      case 'malloc':
        lines.push(`1 malloc ${c.size} ${add()}`);
        break;
      case 'calloc':
        lines.push(`1 calloc ${c.n} ${c.size} ${add()}`);
        break;
      case 'realloc': {
        const t = take(c.which);
        lines.push(
          t === null
            ? `1 realloc 0 ${c.size} ${add()}`
            : c.size === 0
              ? `1 realloc ${t} 0 0`
              : `1 realloc ${t} ${c.size} ${add()}`,
        );
        break;
      }
      case 'memalign':
        lines.push(`1 memalign ${c.align} ${c.size} ${add()}`);
        break;
      case 'valloc':
      case 'pvalloc':
        lines.push(`1 ${c.op} ${c.size} ${add()}`);
        break;
      case 'free': {
        if (c.which < 0) {
          lines.push('1 exit');
          break;
        }
        const t = take(c.which);
        lines.push(t === null ? '1 free 0' : `1 free ${t}`);
        break;
      }
      case 'trim':
        lines.push(`1 malloc_trim ${c.pad}`);
        break;
      case 'mallopt':
        lines.push(`1 mallopt ${c.param} ${c.value}`);
        break;
    }
  }
  return asLines ? lines : lines.join('\n') + '\n';
}

/** The highest heap number seen (1: some arena got a second heap). */
let maxHeapNumber = 0;

/**
 * Replays a trace with full checks after every event, plus the program-visible guarantees. These
 * run for every block after every event, so each is a plain comparison, and expect is called only
 * when one fails (for its message): an expect call costs more than the checks themselves.
 */
function replayChecked(trace: string): Replayer {
  const r = new Replayer('prop.trace', {
    checkLevel: 2,
    cores: 1,
    env: Object.entries(traceEnv(trace)),
  });
  const s = r.process;
  const ck = s.ck;
  const blocks: Array<[number, number]> = [];
  readTraceText(trace, 'prop.trace', {
    header: (h: TraceHeader) => r.header(h),
    event: (ev: TraceEvent) => {
      r.event(ev);
      // Live user blocks: aligned, large enough, never overlapping. Free chunks (bins, fastbins)
      // counted on the way, for mallinfo2 below.
      blocks.length = 0;
      let freeWalk = 0;
      for (let h = 0; h < ck.highWater; h++) {
        const state = ck.state[h];
        if (state === St.BINNED || state === St.FAST) {
          freeWalk += ck.size[h]!;
          continue;
        }
        if (state !== St.INUSE || ck.born[h]! < 0 || ck.addr[h]! < 0) continue;
        const mem = ck.addr[h]! + 16;
        const usable = (ck.flags[h]! & IS_MMAPPED) !== 0 ? ck.size[h]! - 16 : ck.size[h]! - 8;
        const req = ck.req[h]!;
        if (mem % 16 !== 0) expect(mem % 16, `block at ${mem}: alignment`).toBe(0);
        if (usable < req)
          expect(usable, `block at ${mem}: usable size`).toBeGreaterThanOrEqual(req);
        blocks.push([mem, mem + req]);
      }
      blocks.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < blocks.length; i++) {
        const [start] = blocks[i]!;
        const [prevStart, prevEnd] = blocks[i - 1]!;
        if (start < prevEnd) {
          expect(
            start,
            `block at ${start} overlaps the one at ${prevStart}`,
          ).toBeGreaterThanOrEqual(prevEnd);
        }
      }
      // mallinfo2 against a walk: free bytes in bins and top, plus in-use bytes, make system_mem.
      const m = mallinfo2(s);
      if (m.uordblks + m.fordblks !== m.arena) expect(m.uordblks + m.fordblks).toBe(m.arena);
      if (m.hblkhd !== s.mp.mmappedMem) expect(m.hblkhd).toBe(s.mp.mmappedMem);
      for (const a of s.arenas) if (!a.topIsInitial) freeWalk += ck.size[a.top]!;
      if (m.fordblks !== freeWalk) expect(m.fordblks).toBe(freeWalk);
      const resident = r.kernel.residentPages * 4096;
      const mapped = r.kernel.mappedBytes();
      if (resident > mapped) expect(resident).toBeLessThanOrEqual(mapped);
      for (const h of s.heaps.values()) maxHeapNumber = Math.max(maxHeapNumber, h.number);
    },
  });
  return r;
}

describe('heap invariants hold after every event', () => {
  it('for random call sequences', () => {
    fc.assert(
      fc.property(fc.array(cmd, { minLength: 1, maxLength: 400, size: 'max' }), (cmds) => {
        const trace = toTrace(cmds);
        try {
          replayChecked(trace);
        } catch (e) {
          // fast-check reports the shrunk case's error: carry the trace in it.
          throw new Error(
            `${e instanceof Error ? e.message : String(e)}\ncounterexample trace:\n${trace}`,
            { cause: e },
          );
        }
      }),
      fcParams({ numRuns: 100 }),
    );
  });
  it('for random multi-thread call sequences (every arena and heap)', () => {
    fc.assert(
      fc.property(fc.array(threadCmd, { minLength: 1, maxLength: 400, size: 'max' }), (tcmds) => {
        const trace = toThreadTrace(tcmds);
        try {
          replayChecked(trace);
        } catch (e) {
          throw new Error(
            `${e instanceof Error ? e.message : String(e)}\ncounterexample trace:\n${trace}`,
            { cause: e },
          );
        }
      }),
      fcParams({ numRuns: 60 }),
    );
  });
  it('for the hand-written differential cases (test/diff/cases/), which glibc replays identically', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '../diff/cases');
    const files = readdirSync(dir).filter((f) => f.endsWith('.trace'));
    expect(files).toContain('thread-main-arena-free-list.trace');
    for (const f of files) {
      try {
        replayChecked(readFileSync(join(dir, f), 'utf8'));
      } catch (e) {
        throw new Error(`${f}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    }
  });
  it('for traces that fill, multiply, shrink and delete thread heaps', () => {
    for (let n = 0; n < 4; n++) {
      const trace = generateThreadedTrace({ seed: `heaps-${n}`, events: 600, heapStress: true });
      maxHeapNumber = 0;
      replayChecked(trace);
      // The point of these traces: thread arenas went through more than one heap.
      expect(maxHeapNumber).toBeGreaterThanOrEqual(1);
    }
  });
});
