/**
 * Where the resident memory is, and why glibc keeps it: every resident byte of the allocator's
 * memory attributed to exactly one cause, so that the causes add up to the resident total.
 *
 * The walk goes chunk by chunk through every region the allocator owns (the main arena's brk heap,
 * each heap of the other arenas, each chunk mmapped on its own). A chunk's bytes go to its cause:
 * what the program asked for, the allocator's overhead around it, or the free list holding it
 * (tcache, fastbins, regular bins, top). Bytes of a region that no chunk covers (heap_info and the
 * arena's own state at the start of a heap, alignment gaps) are the allocator's metadata.
 *
 * Pages are attributed whole, to the cause holding most of their resident bytes, so that page
 * counts add up too. Memory is read from the model's state; nothing here changes it.
 */

import { NIL, St } from '../core/chunks.js';
import { IS_MMAPPED } from '../core/constants.js';
import type { Arena, Process } from '../core/state.js';

export const CAUSES = [
  'live-requested',
  'live-overhead',
  'free-tcache',
  'free-fastbins',
  'free-bins',
  'free-top',
  'metadata',
] as const;
export type Cause = (typeof CAUSES)[number];

/** One line of plain explanation per cause, for readers who have never read malloc.c. */
export const CAUSE_TEXT: Record<Cause, string> = {
  'live-requested': 'bytes the program asked for and still holds',
  'live-overhead':
    "allocator overhead of live blocks: chunk headers, rounding to 16 bytes, alignment waste, the unused end of an mmapped block's last page",
  'free-tcache':
    'freed blocks cached per thread (tcache, up to 7 per size): glibc still counts them as in use and never merges or returns them',
  'free-fastbins':
    'freed small blocks in fastbins: not merged with their neighbours until something consolidates them',
  'free-bins':
    'freed blocks in the regular bins: merged, reusable, but inside the heap, so only malloc_trim can return their pages',
  'free-top':
    'the free top of a heap, kept because it is below the trim threshold (or a pad glibc always keeps)',
  metadata:
    "glibc's own bookkeeping in the heap: the tcache structure, heap and arena headers, fenceposts",
};

/** Each cause's short name, as the explanation's tables print it. */
export const CAUSE_NAMES: Record<Cause, string> = {
  'live-requested': 'live data',
  'live-overhead': 'live overhead',
  'free-tcache': 'tcache',
  'free-fastbins': 'fastbins',
  'free-bins': 'free in bins',
  'free-top': 'free top',
  metadata: 'glibc metadata',
};

interface CauseTotals {
  bytes: number;
  pages: number;
  /** Bytes of address space this cause covers, resident or not. */
  mappedBytes: number;
  chunks: number;
}

interface ArenaBreakdown {
  /** 0 main, k the k-th arena created; -1 for chunks mmapped on their own. */
  arena: number;
  causes: Record<Cause, CauseTotals>;
  residentBytes: number;
}

export interface Breakdown {
  residentBytes: number;
  residentPages: number;
  mappedBytes: number;
  causes: Record<Cause, CauseTotals>;
  arenas: ArenaBreakdown[];
}

function emptyTotals(): Record<Cause, CauseTotals> {
  const r = {} as Record<Cause, CauseTotals>;
  for (const c of CAUSES) r[c] = { bytes: 0, pages: 0, mappedBytes: 0, chunks: 0 };
  return r;
}

const PAGE = 4096;

/**
 * Accumulates byte ranges per cause, and settles partly shared pages by majority.
 *
 * The ranges of one page always arrive one after the other: a chunk chain is walked in address
 * order, and chains, heaps and mmapped chunks never share a page. So only the page being filled is
 * kept, and it is settled as soon as a range of another page arrives: no map, nothing allocated per
 * chunk.
 */
class Attributor {
  readonly totals = emptyTotals();
  /** The shared page being filled (-1: none), and its bytes per cause index. */
  private page = -1;
  private readonly shares = new Float64Array(CAUSES.length);

  constructor(private readonly s: Process) {}

  /** Attributes [a, b) to `cause`; `count` says whether this range is one chunk. */
  add(cause: Cause, a: number, b: number, count: boolean): void {
    if (b <= a) return;
    const t = this.totals[cause];
    t.mappedBytes += b - a;
    if (count) t.chunks++;
    const k = this.s.kernel;
    const firstFull = Math.ceil(a / PAGE) * PAGE;
    const lastFull = Math.floor(b / PAGE) * PAGE;
    const ci = CAUSE_INDEX[cause];
    if (firstFull < lastFull) {
      if (a < firstFull) this.edge(ci, a, firstFull);
      const pages = k.residentIn(firstFull, lastFull) / PAGE;
      t.bytes += pages * PAGE;
      t.pages += pages;
      if (lastFull < b) this.edge(ci, lastFull, b);
    } else {
      // Within one page, or across one page boundary.
      if (firstFull > a && firstFull < b) {
        this.edge(ci, a, firstFull);
        this.edge(ci, firstFull, b);
      } else this.edge(ci, a, b);
    }
  }

  private edge(ci: number, a: number, b: number): void {
    if (!this.s.kernel.isResident(a)) return;
    this.totals[CAUSES[ci]!].bytes += b - a;
    const page = Math.floor(a / PAGE);
    if (page !== this.page) {
      this.settle();
      this.page = page;
    }
    this.shares[ci]! += b - a;
  }

  /** Gives the page being filled to the cause with most bytes in it (the first in CAUSES on a tie). */
  settle(): void {
    if (this.page < 0) return;
    const v = this.shares;
    let best = 0;
    for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
    this.totals[CAUSES[best]!].pages++;
    v.fill(0);
    this.page = -1;
  }
}

const CAUSE_INDEX = Object.fromEntries(CAUSES.map((c, i) => [c, i])) as Record<Cause, number>;

function causeOfChunk(s: Process, h: number): Cause {
  switch (s.ck.state[h]) {
    case St.TCACHE:
      return 'free-tcache';
    case St.FAST:
      return 'free-fastbins';
    case St.BINNED:
      return 'free-bins';
    case St.TOP:
      return 'free-top';
    default:
      return 'live-requested';
  }
}

/**
 * Attributes one in-use chunk over [start, end): the bytes the program asked for, the rest overhead;
 * glibc's own chunks are metadata.
 */
function addInUse(
  s: Process,
  at: Attributor,
  h: number,
  start: number,
  end: number,
  isTcacheStruct: boolean,
): void {
  const ck = s.ck;
  if (isTcacheStruct || ck.born[h]! < 0 || ck.size[h]! <= 16) {
    at.add('metadata', start, end, true);
    return;
  }
  const mem = ck.addr[h]! + 16;
  const reqEnd = Math.min(end, mem + ck.req[h]!);
  at.add('live-overhead', start, mem, false);
  at.add('live-requested', mem, reqEnd, true);
  at.add('live-overhead', reqEnd, end, false);
}

/** The breakdown of one arena's regions (or of the mmapped chunks, arena -1). */
function breakdownArena(s: Process, av: Arena | null, tcacheStructs: Set<number>): ArenaBreakdown {
  const ck = s.ck;
  const at = new Attributor(s);
  const regions: Array<[number, number]> = [];
  if (av === null) {
    for (let h = 0; h < ck.highWater; h++) {
      if (ck.state[h] === St.DEAD || ck.state[h] === St.BINHDR || (ck.flags[h]! & IS_MMAPPED) === 0)
        continue;
      // The whole mapping: the alignment lead before the chunk, the slack after the request.
      addInUse(s, at, h, ck.addr[h]! - ck.prevSize[h]!, ck.addr[h]! + ck.size[h]!, false);
    }
  } else {
    if (av === s.main) {
      if (!av.topIsInitial) regions.push([s.kernel.brkBase, s.kernel.brkEnd]);
    } else {
      for (let hp = av.heap; hp !== null; hp = hp.prev)
        regions.push([hp.start, hp.start + hp.size]);
    }
    // Chunk chains: each region's chain starts at a chunk with no physical predecessor.
    for (let h = 0; h < ck.highWater; h++) {
      const st = ck.state[h]!;
      if (
        st === St.DEAD ||
        st === St.BINHDR ||
        (ck.flags[h]! & IS_MMAPPED) !== 0 ||
        ck.prev[h] !== NIL
      )
        continue;
      const a = ck.addr[h]!;
      const region = regions.find(([x, y]) => a >= x && a < y);
      if (region === undefined) continue;
      // A chunk owns its size word, its body and the next chunk's prev_size word (its footer when
      // free, the last 8 usable bytes when in use): [addr + 8, addr + size + 8).
      let covered = region[0];
      for (let p = h; p !== NIL; p = ck.next[p]!) {
        const pa = ck.addr[p]!;
        const start = pa + 8;
        if (start > covered) at.add('metadata', covered, start, false);
        // A size-0 fencepost still occupies its 16-byte header.
        const end = Math.min(pa + Math.max(ck.size[p]!, 16) + 8, region[1]);
        const cause = causeOfChunk(s, p);
        if (cause === 'live-requested') addInUse(s, at, p, start, end, tcacheStructs.has(p));
        else at.add(cause, start, end, true);
        covered = end;
      }
      if (covered < region[1]) at.add('metadata', covered, region[1], false);
      region[0] = region[1]; // done
    }
    // Regions without chunks (cannot happen once initialised) are metadata.
    for (const [x, y] of regions) if (x < y) at.add('metadata', x, y, false);
  }
  at.settle();
  let resident = 0;
  for (const c of CAUSES) resident += at.totals[c].bytes;
  return { arena: av === null ? -1 : av.index, causes: at.totals, residentBytes: resident };
}

/** The whole process's resident memory by cause, per arena and in total. */
export function breakdown(s: Process): Breakdown {
  const tcacheStructs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) tcacheStructs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) tcacheStructs.add(s.thread.tcache.chunk);
  const arenas: ArenaBreakdown[] = [];
  let ar = s.main;
  do {
    arenas.push(breakdownArena(s, ar, tcacheStructs));
    ar = ar.next;
  } while (ar !== s.main);
  arenas.push(breakdownArena(s, null, tcacheStructs));
  const causes = emptyTotals();
  let residentBytes = 0;
  let residentPages = 0;
  let mappedBytes = 0;
  for (const a of arenas) {
    for (const c of CAUSES) {
      const t = a.causes[c];
      causes[c].bytes += t.bytes;
      causes[c].pages += t.pages;
      causes[c].mappedBytes += t.mappedBytes;
      causes[c].chunks += t.chunks;
      residentBytes += t.bytes;
      residentPages += t.pages;
      mappedBytes += t.mappedBytes;
    }
  }
  return { residentBytes, residentPages, mappedBytes, causes, arenas };
}
