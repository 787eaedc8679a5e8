/**
 * Seeded random traces for the differential tests and the benchmark.
 *
 * Each trace draws its own "personality" from the seed: a mix of size classes (tiny to tens of
 * MiB, with a band around the mmap threshold so that blocks cross it both ways once the dynamic
 * threshold moves), weights for every operation, phases that grow and then shrink the heap, and
 * occasional malloc_trim and mallopt calls. The same seed always gives the same trace.
 *
 * Alignments above 4096 are left out on purpose: where such a block lands depends on the absolute
 * address of the break or of a kernel mapping, which differ from run to run on a real system.
 */

import seedrandom from 'seedrandom';
import { TOUCH_MIN_BYTES, maxTouchPage } from '../../src/trace/types.js';

export interface GenOptions {
  seed: string;
  /** Number of event lines. */
  events: number;
  /** Upper bound on the bytes the program holds at once (keeps native runs quick). */
  maxLiveBytes?: number;
  /** Include mallopt lines (default true). */
  mallopts?: boolean;
  /**
   * Write `# touches recorded` and `#:touch` records as a recorder would (docs/trace-format.md):
   * random pages of blocks of TOUCH_MIN_BYTES or more, after random events, before most frees
   * and reallocs of such blocks, and at the end for the blocks still live; and a few `#:rss`
   * samples. The events are those of the same seed without records.
   */
  touches?: boolean;
}

type Rng = () => number;

interface Personality {
  sizeClasses: Array<[weight: number, lo: number, hi: number]>;
  ops: Array<[weight: number, op: string]>;
  /** Probability that a free picks the most recent block (LIFO) rather than a random one. */
  lifo: number;
  /** Events per grow/shrink phase. */
  phase: number;
}

function pickWeighted<T>(rng: Rng, items: Array<[number, ...unknown[]]>): T {
  let total = 0;
  for (const it of items) total += it[0];
  let r = rng() * total;
  for (const it of items) {
    r -= it[0];
    if (r < 0) return it as unknown as T;
  }
  return items[items.length - 1] as unknown as T;
}

function intBetween(rng: Rng, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** A size drawn log-uniformly inside [lo, hi]. */
function logSize(rng: Rng, lo: number, hi: number): number {
  const a = Math.log(lo + 1);
  const b = Math.log(hi + 1);
  return Math.max(lo, Math.min(hi, Math.floor(Math.exp(a + rng() * (b - a))) - 1));
}

function personality(rng: Rng): Personality {
  const w = (p: number): number => (rng() < p ? 0.2 + rng() * 3 : 0);
  const sizeClasses: Personality['sizeClasses'] = [
    [1 + rng() * 4, 0, 64],
    [w(0.9), 65, 1040],
    [w(0.8), 1041, 65536],
    [w(0.7), 98304, 180000],
    [w(0.6), 180000, 4 << 20],
    [rng() < 0.3 ? 0.05 + rng() * 0.2 : 0, 4 << 20, 40 << 20],
  ];
  const ops: Personality['ops'] = [
    [4, 'malloc'],
    [w(0.6), 'calloc'],
    [w(0.7), 'realloc'],
    [rng() < 0.5 ? 0.1 + rng() : 0, 'memalign'],
    [rng() < 0.2 ? 0.05 + rng() * 0.2 : 0, 'valloc'],
    [rng() < 0.2 ? 0.05 + rng() * 0.2 : 0, 'pvalloc'],
    [rng() < 0.3 ? 0.01 + rng() * 0.05 : 0, 'malloc_trim'],
    [rng() < 0.3 ? 0.01 + rng() * 0.03 : 0, 'mallopt'],
  ];
  return { sizeClasses, ops, lifo: rng() * 0.8, phase: intBetween(rng, 20, 400) };
}

const ALIGNMENTS = [8, 16, 24, 32, 48, 64, 100, 128, 256, 512, 1024, 2048, 4096];

const MALLOPTS: Array<(rng: Rng) => string> = [
  (r) =>
    `M_MMAP_THRESHOLD ${
      pickWeighted<[number, number]>(r, [
        [1, 0],
        [2, 65536],
        [3, 131072],
        [2, 1 << 20],
        [1, 4 << 20],
        [1, 33554432],
      ])[1]
    }`,
  (r) =>
    `M_TRIM_THRESHOLD ${
      pickWeighted<[number, number]>(r, [
        [1, 0],
        [2, 65536],
        [2, 131072],
        [2, 1 << 20],
        [1, -1],
      ])[1]
    }`,
  (r) =>
    `M_TOP_PAD ${
      pickWeighted<[number, number]>(r, [
        [2, 0],
        [1, 4096],
        [2, 131072],
        [1, 1 << 20],
      ])[1]
    }`,
  (r) =>
    `M_MXFAST ${
      pickWeighted<[number, number]>(r, [
        [1, 0],
        [1, 32],
        [1, 64],
        [2, 128],
        [1, 160],
        [1, 200],
      ])[1]
    }`,
  (r) =>
    `M_MMAP_MAX ${
      pickWeighted<[number, number]>(r, [
        [1, 0],
        [1, 2],
        [2, 65536],
      ])[1]
    }`,
  (r) =>
    `M_PERTURB ${
      pickWeighted<[number, number]>(r, [
        [2, 0],
        [1, 0xa5],
        [1, 256],
      ])[1]
    }`,
  (r) => `M_ARENA_MAX ${intBetween(r, 0, 4)}`,
  () => `M_CHECK_ACTION 3`,
];

/** Generates one trace as text. */
export function generateTrace(opts: GenOptions): string {
  const rng: Rng = seedrandom(opts.seed);
  const pers = personality(rng);
  const maxLive = opts.maxLiveBytes ?? 192 << 20;
  const live: Array<{ tok: string; size: number }> = [];
  let liveBytes = 0;
  let serial = 0;
  const out: string[] = [`# generated: seed ${opts.seed}`];
  // Records draw from a generator of their own, so that the events stay those of the seed.
  const trng: Rng | null = opts.touches === true ? seedrandom(`${opts.seed}/touches`) : null;
  if (trng !== null) out.push('# touches recorded');
  /** A record of random pages of block b (a few ranges, sometimes the empty set). */
  const touch = (b: { tok: string; size: number }): void => {
    if (trng === null || b.size < TOUCH_MIN_BYTES) return;
    const most = maxTouchPage(b.size);
    const ranges: string[] = [];
    for (let k = intBetween(trng, 0, 3); k > 0; k--) {
      const from = intBetween(trng, 0, most);
      const to = Math.min(most, from + Math.floor(logSize(trng, 0, 600)));
      ranges.push(from === to ? `${from}` : `${from}-${to}`);
    }
    out.push(`#:touch ${b.tok} ${ranges.length === 0 ? '-' : ranges.join(',')}`);
  };
  /** After an event: now and then a record of some live block, or a sample. */
  const records = (): void => {
    if (trng === null) return;
    if (live.length > 0 && trng() < 0.2) touch(live[Math.floor(trng() * live.length)]!);
    if (trng() < 0.01) out.push(`#:rss anon=${Math.floor(trng() * 1e9)}`);
  };
  /** Before a free or realloc of b: the record of its pages, as a recorder writes it. */
  const lastTouch = (b: { tok: string; size: number }): void => {
    if (trng !== null && trng() < 0.7) touch(b);
  };
  const size = (): number => {
    const [, lo, hi] = pickWeighted<[number, number, number]>(rng, pers.sizeClasses);
    return logSize(rng, lo, hi);
  };
  const takeLive = (): { tok: string; size: number } => {
    const i = rng() < pers.lifo ? live.length - 1 : Math.floor(rng() * live.length);
    const b = live[i]!;
    live[i] = live[live.length - 1]!;
    live.pop();
    liveBytes -= b.size;
    return b;
  };
  const addLive = (bytes: number): string => {
    const tok = `b${serial++}`;
    live.push({ tok, size: bytes });
    liveBytes += bytes;
    return tok;
  };

  for (let n = 0; n < opts.events; n++) {
    if (n > 0) records();
    const growing = Math.floor(n / pers.phase) % 2 === 0;
    const freeBias = growing ? 0.3 : 0.75;
    if (live.length > 0 && (rng() < freeBias || liveBytes > maxLive)) {
      const b = takeLive();
      lastTouch(b);
      if (rng() < 0.03) out.push(`1 realloc ${b.tok} 0 0`);
      else out.push(`1 free ${b.tok}`);
      continue;
    }
    const [, op] = pickWeighted<[number, string]>(rng, pers.ops);
    switch (op) {
      case 'malloc': {
        const s = size();
        out.push(`1 malloc ${s} ${addLive(s)}`);
        break;
      }
      case 'calloc': {
        const s = size();
        const nmemb = s > 16 && rng() < 0.5 ? intBetween(rng, 1, 16) : 1;
        const each = Math.floor(s / nmemb);
        out.push(`1 calloc ${nmemb} ${each} ${addLive(nmemb * each)}`);
        break;
      }
      case 'realloc': {
        if (live.length === 0 || rng() < 0.05) {
          const s = size();
          out.push(`1 realloc 0 ${s} ${addLive(s)}`);
          break;
        }
        const b = takeLive();
        lastTouch(b);
        const r = rng();
        const s =
          r < 0.3
            ? Math.max(1, Math.floor(b.size * (0.3 + rng() * 0.7)))
            : r < 0.8
              ? Math.floor(b.size * (1 + rng())) + intBetween(rng, 1, 64)
              : size();
        out.push(s === 0 ? `1 realloc ${b.tok} 0 0` : `1 realloc ${b.tok} ${s} ${addLive(s)}`);
        break;
      }
      case 'memalign': {
        const a = ALIGNMENTS[Math.floor(rng() * ALIGNMENTS.length)]!;
        const s = size();
        out.push(`1 memalign ${a} ${s} ${addLive(s)}`);
        break;
      }
      case 'valloc': {
        const s = size();
        out.push(`1 valloc ${s} ${addLive(s)}`);
        break;
      }
      case 'pvalloc': {
        const s = size();
        out.push(`1 pvalloc ${s} ${addLive(s)}`);
        break;
      }
      case 'malloc_trim':
        out.push(`1 malloc_trim ${rng() < 0.7 ? 0 : intBetween(rng, 1, 1 << 20)}`);
        break;
      case 'mallopt':
        if (opts.mallopts !== false)
          out.push(`1 mallopt ${MALLOPTS[Math.floor(rng() * MALLOPTS.length)]!(rng)}`);
        else out.push(`1 malloc 24 ${addLive(24)}`);
        break;
    }
  }
  for (const b of live) if (trng !== null && trng() < 0.8) touch(b);
  return out.join('\n') + '\n';
}
