/**
 * The heap view against the real glibc: at every event of the hand-written differential traces
 * (and of a few bundled ones, multi-threaded included), the live blocks the view lists, with their
 * arena, heap, offset and usable size, are exactly those the native replayer's fidelity log implies
 * at that event (each returned block bound to its token, each free or realloc unbinding it).
 * Then small traces worked by hand for the contents of the tcache, the fastbins and the bins.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { chunksOf, heapView, TokenBook, type HeapView } from '../../src/analysis/heap-view.js';
import { replayFile } from '../../src/replay/run-file.js';
import { readTraceText } from '../../src/trace/reader.js';
import { Op, type TraceEvent } from '../../src/trace/types.js';
import { runNative } from '../helpers/native.js';
import { traceEnv } from '../diff/harness.js';
import { pageTrace } from '../docs/examples.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CASES = join(HERE, '../diff/cases');
const TRACES = [
  ...readdirSync(CASES)
    .filter((f) => f.endsWith('.trace'))
    .sort()
    .map((f) => join(CASES, f)),
  join(HERE, '../native/threads.trace'),
  join(HERE, '../../traces/field-report.trace'),
  join(HERE, '../../traces/malloc-trim.trace'),
  join(HERE, '../../traces/thread-arenas.trace'),
];

interface Ev {
  op: number;
  n1: number;
  in: string;
  out: string;
}

function eventsOf(text: string): Ev[] {
  const out: Ev[] = [];
  readTraceText(text, 'trace', {
    header: () => {},
    event: (ev: TraceEvent) => out.push({ op: ev.op, n1: ev.n1, in: ev.in, out: ev.out }),
  });
  return out;
}

const key = (token: string | null, r: Record<string, unknown>): string =>
  `${token ?? '(none)'} arena=${String(r['arena'])} heap=${String(r['heap'])} off=${String(r['off'])} usable=${String(r['usable'])}`;

/** The live blocks after each event, as the native log implies them (sorted keys). */
function nativeLive(evs: Ev[], log: Array<Record<string, unknown>>): string[][] {
  const live = new Map<string, string>();
  const unnamed: string[] = [];
  const out: string[][] = [];
  for (let i = 0; i < log.length; i++) {
    const ev = evs[i]!;
    const rec = log[i]!;
    if (ev.op === Op.free) {
      if (ev.in !== '') live.delete(ev.in);
    } else if (ev.op === Op.realloc) {
      const failed = rec['ptr'] === null && ev.n1 !== 0 && ev.in !== '';
      if (!failed && ev.in !== '') live.delete(ev.in);
      if (rec['arena'] !== undefined) {
        if (ev.out !== '') live.set(ev.out, key(ev.out, rec));
        else unnamed.push(key(null, rec));
      }
    } else if (rec['arena'] !== undefined) {
      if (ev.out !== '') live.set(ev.out, key(ev.out, rec));
      else unnamed.push(key(null, rec));
    }
    out.push([...live.values(), ...unnamed].sort());
  }
  return out;
}

describe('show --json lists the live blocks real glibc has, at every event', () => {
  for (const path of TRACES) {
    it(path.slice(path.lastIndexOf('/') + 1), async () => {
      const text = readFileSync(path, 'utf8');
      const nat = runNative(path, { env: traceEnv(text), peak: false });
      const expected = nativeLive(eventsOf(text), nat.events);
      const got: string[][] = [];
      const book = new TokenBook();
      const run = await replayFile(path, {
        observe: (ev, r) => {
          if (r.aborted) return;
          book.see(ev);
          got.push(
            chunksOf(r.process, book)
              .filter((c) => c.state === 'live')
              .map((c) => key(c.token ?? null, c as unknown as Record<string, unknown>))
              .sort(),
          );
        },
      });
      // A replay that stops where glibc carries on (a double free it does not detect) is
      // compared as far as it went.
      if (run.failure !== null) expect(run.failure.name).toBe('ReplayError');
      const n = Math.min(got.length, expected.length);
      expect(n).toBeGreaterThan(0);
      for (let i = 0; i < n; i++) {
        if (JSON.stringify(got[i]) !== JSON.stringify(expected[i]))
          expect({ event: i, live: got[i] }).toEqual({ event: i, live: expected[i] });
      }
    });
  }
});

/** The view after event `at` of a trace given as text. */
async function viewOf(text: string, at: number): Promise<HeapView> {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'ptsim-view-'));
  try {
    const p = join(dir, 't.trace');
    writeFileSync(p, text);
    const book = new TokenBook();
    let view: HeapView | null = null;
    await replayFile(p, {
      stopAfter: at,
      observe: (ev, r) => {
        book.see(ev);
        if (ev.index === at) view = heapView(r, book, ev.index, ev.line);
      },
    });
    return view!;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const offs = (es: Array<{ off: number }>): number[] => es.map((e) => e.off);

describe('the lists, worked by hand', () => {
  // The first block of a fresh heap is at offset 672 (0x2a0): the tcache struct's 656-byte chunk
  // (0x290) comes first, and a user pointer is 16 bytes into its chunk. malloc(24) takes a 32-byte
  // chunk, so blocks of 24 bytes follow one another every 32 bytes.
  it('the tcache: LIFO per size, seven at most, the eighth to its fastbin', async () => {
    const lines = ['1 malloc 24 g0'];
    for (let i = 0; i < 8; i++) lines.push(`1 malloc 24 t${i}`);
    lines.push('1 malloc 24 guard');
    for (let i = 0; i < 8; i++) lines.push(`1 free t${i}`);
    const v = await viewOf(lines.join('\n') + '\n', 17);
    // t_i's pointer is at 672 + 32 * (i + 1).
    const at = (i: number): number => 672 + 32 * (i + 1);
    expect(v.tcache).toHaveLength(1);
    expect(v.tcache[0]!.bins.map((b) => [b.index, b.size])).toEqual([[0, 32]]);
    expect(offs(v.tcache[0]!.bins[0]!.chunks)).toEqual([6, 5, 4, 3, 2, 1, 0].map(at));
    expect(v.arenas[0]!.fastbins.map((b) => [b.size, offs(b.chunks)])).toEqual([[32, [at(7)]]]);
    const states = v.chunks.filter((c) => c.off >= at(0) && c.off <= at(7)).map((c) => c.state);
    expect(states).toEqual([...Array<string>(7).fill('tcache'), 'fastbin']);
  });

  // The trace of docs/learn/bins.md, whose page works each step by hand: tcache off, blocks a
  // (100 bytes: a 112-byte chunk at 672), g1 (784), b (816), g2 (928), c (500: 512 at 960), g3
  // (1472), d (3000: 3008 at 1504), g4 (4512).
  const BINS = pageTrace('learn/bins.md', 'bins.trace');

  it('fastbins: b on top of a, LIFO', async () => {
    const v = await viewOf(BINS, 9);
    expect(v.arenas[0]!.fastbins.map((b) => [b.size, offs(b.chunks)])).toEqual([[112, [816, 672]]]);
    expect(v.tcache[0]!.bins).toEqual([]);
  });

  it('the unsorted bin: freed chunks first go there, newest at the head', async () => {
    const v = await viewOf(BINS, 12);
    const a = v.arenas[0]!;
    expect(a.unsorted.map((e) => [e.off, e.size])).toEqual([
      [1504, 3008],
      [960, 512],
    ]);
    expect(a.smallbins).toEqual([]);
    expect(a.largebins).toEqual([]);
    expect(a.fastbins.map((b) => offs(b.chunks))).toEqual([[672]]);
  });

  it('a malloc sorts the unsorted bin: d to large bin 95, c split, its rest the last remainder', async () => {
    const v = await viewOf(BINS, 14);
    const a = v.arenas[0]!;
    expect(a.largebins.map((b) => [b.index, offs(b.chunks)])).toEqual([[95, [1504]]]);
    expect(a.smallbins).toEqual([]);
    // y took 208 bytes of c (960), z 48 more: the remainder starts at 960 + 208 + 48.
    expect(a.unsorted.map((e) => [e.off, e.size])).toEqual([[1216, 256]]);
    expect(a.lastRemainder?.off).toBe(1216);
    const y = v.chunks.find((c) => c.token === 'y')!;
    expect([y.state, y.off, y.size, y.usable]).toEqual(['live', 960, 208, 200]);
    const top = v.chunks.find((c) => c.state === 'top')!;
    // The heap is 132 KiB (0x21000): the top starts after g4's chunk at 4512 - 16 + 32.
    expect([top.off, top.size]).toEqual([4528 + 16, 0x21000 - 4528]);
  });
});
