/**
 * Seeded random multi-thread traces for the differential tests: 2 to 40 threads, so that the
 * arena limit (8 x CPUs) is reached and passed; threads that start after others exited, thread
 * numbers used again after an exit; blocks freed and reallocated by threads other than the one
 * that allocated them; large heap blocks that fill a thread's 64 MiB heap so that it grows, gets a
 * second heap, shrinks and deletes heaps; malloc_trim, mallopt and environment settings.
 */

import seedrandom from 'seedrandom';
import { TOUCH_MIN_BYTES, maxTouchPage } from '../../src/trace/types.js';

export interface ThreadGenOptions {
  seed: string;
  events: number;
  /** Most threads alive at once (2..40). */
  maxThreads?: number;
  maxLiveBytes?: number;
  /**
   * Few threads moving big blocks through their heaps (mmap threshold raised), so that thread heaps
   * fill their 64 MiB, get a second and third heap, shrink, and are deleted again.
   */
  heapStress?: boolean;
  /**
   * Write `# touches recorded` and `#:touch` records of random pages of the blocks of
   * TOUCH_MIN_BYTES or more, after random events and before most frees and reallocs, as
   * generateTrace does; the events are those of the same seed without records.
   */
  touches?: boolean;
}

type Rng = () => number;

function intBetween(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

function logSize(rng: Rng, lo: number, hi: number): number {
  const a = Math.log(lo + 1);
  const b = Math.log(hi + 1);
  return Math.max(lo, Math.min(hi, Math.floor(Math.exp(a + rng() * (b - a))) - 1));
}

export function generateThreadedTrace(opts: ThreadGenOptions): string {
  if (opts.heapStress) return heapStressTrace(opts);
  const rng: Rng = seedrandom(opts.seed);
  const maxThreads = opts.maxThreads ?? intBetween(rng, 2, 40);
  const maxLive = opts.maxLiveBytes ?? 320 << 20;
  const out: string[] = [`# generated: seed ${opts.seed}, up to ${maxThreads} threads`];
  const trng: Rng | null = opts.touches === true ? seedrandom(`${opts.seed}/touches`) : null;
  if (trng !== null) out.push('# touches recorded');
  const touch = (b: { tok: string; size: number }): void => {
    if (trng === null || b.size < TOUCH_MIN_BYTES) return;
    const most = maxTouchPage(b.size);
    const ranges: string[] = [];
    for (let k = intBetween(trng, 0, 3); k > 0; k--) {
      const from = intBetween(trng, 0, most);
      ranges.push(`${from}-${Math.min(most, from + Math.floor(logSize(trng, 0, 300)))}`);
    }
    out.push(`#:touch ${b.tok} ${ranges.length === 0 ? '-' : ranges.join(',')}`);
  };

  // Personality: how big blocks get and whether they stay in the heaps.
  const bigHeap = rng() < 0.4; // big blocks from the heaps: thread heaps fill, grow, shrink, go
  if (bigHeap) out.push(`# env MALLOC_MMAP_THRESHOLD_=${pick(rng, [1 << 20, 4 << 20, 16 << 20])}`);
  if (rng() < 0.25)
    out.push(`# env GLIBC_TUNABLES=glibc.malloc.tcache_count=${pick(rng, [0, 1, 3])}`);
  if (rng() < 0.15) out.push(`# env MALLOC_ARENA_MAX=${intBetween(rng, 1, 4)}`);
  if (rng() < 0.15) out.push(`# env MALLOC_TRIM_THRESHOLD_=${pick(rng, [0, 65536, 1 << 20])}`);
  const bigWeight = bigHeap ? 0.15 + rng() * 0.2 : rng() * 0.05;
  const crossFree = rng() * 0.6;
  const exitRate = 0.002 + rng() * 0.02;
  const trimRate = rng() < 0.4 ? rng() * 0.01 : 0;

  const size = (): number => {
    const r = rng();
    if (r < bigWeight) return logSize(rng, 65536, bigHeap ? 3 << 20 : 1 << 20);
    if (r < 0.55) return logSize(rng, 0, 128);
    if (r < 0.85) return logSize(rng, 129, 2048);
    return logSize(rng, 2049, 65536);
  };

  const live: Array<{ tok: string; size: number; tid: number }> = [];
  let liveBytes = 0;
  let serial = 0;
  const alive: number[] = [1];
  const exited: number[] = [];
  let nextTid = 2;

  const addLive = (tid: number, bytes: number): string => {
    const tok = `b${serial++}`;
    live.push({ tok, size: bytes, tid });
    liveBytes += bytes;
    return tok;
  };
  const takeLive = (tid: number): { tok: string; size: number } | null => {
    if (live.length === 0) return null;
    // Mostly the thread's own blocks (the most recent), sometimes anyone's.
    let i = -1;
    if (rng() >= crossFree) {
      for (let k = live.length - 1, seen = 0; k >= 0 && seen < 64; k--, seen++) {
        if (live[k]!.tid === tid) {
          i = k;
          break;
        }
      }
    }
    if (i < 0) i = Math.floor(rng() * live.length);
    const b = live[i]!;
    live[i] = live[live.length - 1]!;
    live.pop();
    liveBytes -= b.size;
    return b;
  };

  for (let n = 0; n < opts.events; n++) {
    if (trng !== null && live.length > 0 && trng() < 0.2)
      touch(live[Math.floor(trng() * live.length)]!);
    // Thread life cycle.
    if (alive.length < maxThreads && rng() < 0.02) {
      // A new thread: sometimes it takes the number of one that exited.
      const tid =
        exited.length > 0 && rng() < 0.5
          ? exited.splice(Math.floor(rng() * exited.length), 1)[0]!
          : nextTid++;
      alive.push(tid);
    }
    if (alive.length > 1 && rng() < exitRate) {
      const k = 1 + Math.floor(rng() * (alive.length - 1));
      const tid = alive[k]!;
      alive.splice(k, 1);
      exited.push(tid);
      out.push(`${tid} exit`);
      continue;
    }
    // Busy threads: a skewed choice.
    const tid = alive[Math.floor(Math.pow(rng(), 1.5) * alive.length)]!;
    const phaseFree = Math.floor(n / 300) % 2 === 1 ? 0.7 : 0.35;
    const r = rng();
    if ((r < phaseFree || liveBytes > maxLive) && live.length > 0) {
      const b = takeLive(tid)!;
      if (trng !== null && trng() < 0.7) touch(b);
      out.push(rng() < 0.03 ? `${tid} realloc ${b.tok} 0 0` : `${tid} free ${b.tok}`);
    } else if (r < phaseFree + 0.08 && live.length > 0) {
      const b = takeLive(tid)!;
      if (trng !== null && trng() < 0.7) touch(b);
      const s = rng() < 0.4 ? Math.max(1, Math.floor(b.size / 2)) : b.size + logSize(rng, 1, 4096);
      out.push(`${tid} realloc ${b.tok} ${s} ${addLive(tid, s)}`);
    } else if (trimRate > 0 && rng() < trimRate) {
      out.push(`${tid} malloc_trim ${rng() < 0.7 ? 0 : 131072}`);
    } else {
      const s = size();
      const q = rng();
      if (q < 0.08) {
        const nm = intBetween(rng, 1, 4);
        const each = Math.max(0, Math.floor(s / nm));
        out.push(`${tid} calloc ${nm} ${each} ${addLive(tid, nm * each)}`);
      } else if (q < 0.12) {
        out.push(`${tid} memalign ${pick(rng, [32, 64, 256, 4096])} ${s} ${addLive(tid, s)}`);
      } else {
        out.push(`${tid} malloc ${s} ${addLive(tid, s)}`);
      }
    }
  }
  return out.join('\n') + '\n';
}

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[Math.floor(rng() * xs.length)]!;
}

/**
 * Heap stress: 2 to 5 threads, each growing its arena far past one 64 MiB heap with blocks of
 * 256 KiB to 4 MiB kept out of mmap, then giving most of it back (mostly newest first, so that the
 * tops shrink and emptied heaps can go), with exits along the way.
 */
function heapStressTrace(opts: ThreadGenOptions): string {
  const rng: Rng = seedrandom(opts.seed);
  const threads = intBetween(rng, 2, 5);
  const out: string[] = [`# generated (heap stress): seed ${opts.seed}, ${threads} threads`];
  out.push('# env MALLOC_MMAP_THRESHOLD_=33554432');
  if (rng() < 0.5) out.push(`# env GLIBC_TUNABLES=glibc.malloc.tcache_count=0`);
  if (rng() < 0.3) out.push(`# env MALLOC_TRIM_THRESHOLD_=${pick(rng, [0, 262144, 4 << 20])}`);
  if (rng() < 0.3) out.push(`# env MALLOC_TOP_PAD_=${pick(rng, [0, 65536, 1 << 20])}`);
  const live = new Map<number, Array<{ tok: string; size: number }>>();
  let serial = 0;
  let nextTid = 2;
  const alive = [1];
  live.set(1, []);
  // Per thread: grow to a target, then shrink to another, alternating.
  const target = new Map<number, number>();
  const held = new Map<number, number>();
  const newTarget = (): number =>
    (rng() < 0.5 ? intBetween(rng, 70, 200) : intBetween(rng, 0, 30)) << 20;
  for (let n = 0; n < opts.events; n++) {
    if (alive.length < threads && rng() < 0.05) {
      const tid = nextTid++;
      alive.push(tid);
      live.set(tid, []);
    }
    const tid = alive[Math.floor(rng() * alive.length)]!;
    const mine = live.get(tid)!;
    if (!target.has(tid)) target.set(tid, newTarget());
    const h = held.get(tid) ?? 0;
    const t = target.get(tid)!;
    if (tid !== 1 && mine.length === 0 && h === 0 && rng() < 0.05) {
      out.push(`${tid} exit`);
      alive.splice(alive.indexOf(tid), 1);
      continue;
    }
    if (Math.abs(h - t) < 2 << 20) target.set(tid, newTarget());
    if (h < t) {
      const sz = rng() < 0.8 ? logSize(rng, 256 << 10, 4 << 20) : logSize(rng, 16, 4096);
      const tok = `h${serial++}`;
      mine.push({ tok, size: sz });
      held.set(tid, h + sz);
      out.push(`${tid} malloc ${sz} ${tok}`);
    } else if (mine.length > 0) {
      // Mostly the newest block; now and then one from the middle, or another thread's.
      let from = mine;
      if (rng() < 0.1 && alive.length > 1) {
        const other = alive[Math.floor(rng() * alive.length)]!;
        if (live.get(other)!.length > 0) from = live.get(other)!;
      }
      const k = rng() < 0.8 ? from.length - 1 : Math.floor(rng() * from.length);
      const b = from.splice(k, 1)[0]!;
      const owner = [...live].find(([, v]) => v === from)![0];
      held.set(owner, (held.get(owner) ?? 0) - b.size);
      out.push(rng() < 0.05 ? `${tid} malloc_trim 0` : `${tid} free ${b.tok}`);
      if (out[out.length - 1]!.endsWith('malloc_trim 0')) out.push(`${tid} free ${b.tok}`);
    } else {
      target.set(tid, newTarget());
    }
  }
  return out.join('\n') + '\n';
}
