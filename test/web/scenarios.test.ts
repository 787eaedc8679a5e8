/**
 * The teaching scenarios (traces/scenarios): each story's claims, checked on the fidelity log of
 * ptsim's replay and on the native replayer's log of the same trace on the real glibc (the same
 * shape: docs/fidelity-log.md), plus the state `ptsim show --json` gives where a story names a
 * bin or a resident size.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { HeapView } from '../../src/analysis/heap-view.js';
import { inProcess } from '../helpers/cli.js';
import { runNative } from '../helpers/native.js';
import { traceEnv } from '../diff/harness.js';

const DIR = 'traces/scenarios';

type Log = Array<Record<string, number | string>>;

async function ptsimLog(trace: string): Promise<Log> {
  const r = await inProcess(['replay', trace, '--events', '-']);
  expect(r.code).toBe(0);
  return r.out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Log[number]);
}

function nativeLog(trace: string): Log {
  const run = runNative(trace, { env: traceEnv(readFileSync(trace, 'utf8')) });
  expect(run.exitCode).toBe(0);
  return run.events as Log;
}

async function show(trace: string, at: number): Promise<HeapView> {
  const r = await inProcess(['show', trace, '--at', String(at), '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as HeapView;
}

/** Each scenario's claims about the fidelity log, true of glibc and of ptsim alike. */
const CLAIMS: Record<string, (log: Log) => void> = {
  '1-tcache': (log) => {
    // The last freed (c) comes back first, then b: the tcache is a stack.
    expect(log[6]!['off']).toBe(log[2]!['off']);
    expect(log[7]!['off']).toBe(log[1]!['off']);
  },
  '2-fastbins': (log) => {
    // x takes the merged 144-byte chunk whole, at a's place: usable 136.
    expect(log[8]!['off']).toBe(log[0]!['off']);
    expect(log[8]!['usable']).toBe(136);
  },
  '3-pinned-top': (log) => {
    // The frees move nothing; malloc_trim lowers the break by 32 KiB only.
    for (const i of [4, 5, 6, 7]) expect(log[i]!['brk']).toBe(log[3]!['brk']);
    expect(Number(log[3]!['brk']) - Number(log[8]!['brk'])).toBe(32 * 1024);
  },
  '4-dynamic-threshold': (log) => {
    // The first block is mmapped, the same request after its free comes from the heap.
    expect(log[0]!['arena']).toBe(-1);
    expect(log[2]!['arena']).toBe(0);
    expect(Number(log[4]!['brk'])).toBeGreaterThan(2_000_000);
  },
  '5-trim-threshold': (log) => {
    expect(log[3]!['brk']).toBe(log[2]!['brk']);
    expect(log[4]!['brk']).toBe(log[2]!['brk']);
    expect(Number(log[5]!['brk'])).toBeLessThan(Number(log[2]!['brk']) - 300_000);
  },
  '6-arenas': (log) => {
    expect(log[0]!['arena']).toBe(0);
    expect(log[1]!['arena']).toBe(1);
    // The exited thread's arena goes to the next new thread, its free chunk with it.
    expect(log[4]!['arena']).toBe(1);
    expect(log[4]!['off']).toBe(log[1]!['off']);
  },
};

describe('the teaching scenarios', () => {
  const ids = readdirSync(DIR)
    .filter((f) => f.endsWith('.trace'))
    .map((f) => f.slice(0, -6))
    .sort();

  it('has a claim checked for each scenario', () => {
    expect(ids).toEqual(Object.keys(CLAIMS).sort());
  });

  for (const id of ids)
    it(`${id}: the story holds in ptsim and on the real glibc`, async () => {
      const trace = `${DIR}/${id}.trace`;
      const mine = await ptsimLog(trace);
      const real = nativeLog(trace);
      CLAIMS[id]!(mine);
      CLAIMS[id]!(real);
      // And the two logs agree event by event.
      expect(mine).toEqual(real.map(({ rss: _rss, ...e }) => e));
    });

  it('shows what the stories name: the tcache, the fastbin, the resident pages', async () => {
    const tc = await show(`${DIR}/1-tcache.trace`, 5);
    expect(tc.tcache[0]!.bins).toEqual([
      expect.objectContaining({ size: 32, chunks: expect.any(Array) as unknown }),
    ]);
    expect(tc.tcache[0]!.bins[0]!.chunks).toHaveLength(3);
    const fb = await show(`${DIR}/2-fastbins.trace`, 6);
    expect(fb.arenas[0]!.fastbins.map((b) => [b.size, b.chunks.length])).toEqual([[48, 3]]);
    const merged = await show(`${DIR}/2-fastbins.trace`, 7);
    expect(merged.arenas[0]!.fastbins).toEqual([]);
    expect(merged.chunks.filter((c) => c.state === 'small').map((c) => c.size)).toEqual([144]);
    expect((await show(`${DIR}/3-pinned-top.trace`, 7)).rss).toBe(296 * 1024);
    expect((await show(`${DIR}/3-pinned-top.trace`, 8)).rss).toBe(8 * 1024);
  });
});
