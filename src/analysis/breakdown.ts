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
 * Fragmentation is the one cause decided per page rather than per chunk: a resident page that
 * holds bytes of a live block and bytes of a free chunk in the regular bins, and none of glibc's
 * own metadata, is a page that only the live blocks on it keep resident (the kernel takes pages
 * back whole, so neither malloc_trim nor anything else can return it while they are there). The
 * free-in-bins bytes of such a page count as fragmentation instead of free in bins; the live
 * blocks on it are the blocks responsible, reported per heap.
 *
 * Pages are attributed whole, to the cause holding most of their resident bytes, so that page
 * counts add up too. Memory is read from the model's state; nothing here changes it.
 */

import { mmapSize } from '../core/free.js';
import { NIL, St } from '../core/chunks.js';
import { IS_MMAPPED } from '../core/constants.js';
import type { Arena, Process } from '../core/state.js';

export const CAUSES = [
  'live-requested',
  'live-overhead',
  'free-tcache',
  'free-fastbins',
  'free-bins',
  'fragmentation',
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
    'freed blocks in the regular bins, on pages no live block is on: merged, reusable, but inside the heap, so only malloc_trim can return their pages',
  fragmentation:
    'free memory in the bins on pages a live block shares: these pages stay resident as long as the live blocks on them do, whatever glibc does',
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
  fragmentation: 'fragmentation',
  'free-top': 'free top',
  metadata: 'glibc metadata',
};

interface CauseTotals {
  bytes: number;
  pages: number;
  /** Bytes of address space this cause covers, resident or not. */
  mappedBytes: number;
  /** Chunks of this cause (fragmentation: the free chunks with bytes on its pages, also counted in free-bins). */
  chunks: number;
}

/** A live block that shares resident pages with free memory in the bins. */
export interface FragmentingBlock {
  chunk: number;
  addr: number;
  size: number;
  /** Bytes the program asked for. */
  requested: number;
  /** Index of the event that handed it out. */
  bornEvent: number;
  /** The pages it shares with free memory in the bins, and that free memory's resident bytes. */
  pages: number;
  freeBytes: number;
}

/** The fragmentation of one heap: what its live blocks keep resident of the free memory around them. */
export interface HeapFragmentation {
  /** 0 main, k the k-th arena. */
  arena: number;
  /** The heap in that arena's chain (0 for the main arena's brk heap). */
  heap: number;
  /** Resident pages that hold both live blocks and free memory in the bins (and no glibc metadata). */
  pages: number;
  /** The free-in-bins bytes on those pages: this heap's share of the fragmentation cause. */
  bytes: number;
  /** Live blocks on those pages. */
  blocks: number;
  /** The blocks on most such pages, most free bytes first, then by address (at most EXAMPLES). */
  examples: FragmentingBlock[];
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
  /** Each heap with fragmented pages, most fragmented bytes first. */
  fragmentation: HeapFragmentation[];
}

/** Examples of blocks responsible kept per heap. */
const EXAMPLES = 5;

function emptyTotals(): Record<Cause, CauseTotals> {
  const r = {} as Record<Cause, CauseTotals>;
  for (const c of CAUSES) r[c] = { bytes: 0, pages: 0, mappedBytes: 0, chunks: 0 };
  return r;
}

const PAGE = 4096;

const CAUSE_INDEX = Object.fromEntries(CAUSES.map((c, i) => [c, i])) as Record<Cause, number>;
const LIVE_REQ = CAUSE_INDEX['live-requested'];
const LIVE_OVH = CAUSE_INDEX['live-overhead'];
const BINS = CAUSE_INDEX['free-bins'];
const FRAG = CAUSE_INDEX['fragmentation'];
const META = CAUSE_INDEX['metadata'];

/** The fragmentation found so far in one heap: per live block responsible, its pages and bytes. */
class HeapFrag {
  pages = 0;
  bytes = 0;
  readonly blocks = new Map<number, { pages: number; freeBytes: number }>();
  constructor(
    readonly arena: number,
    readonly heap: number,
  ) {}
}

/**
 * Accumulates byte ranges per cause, and settles partly shared pages by majority.
 *
 * The ranges of one page always arrive one after the other: a chunk chain is walked in address
 * order, and chains, heaps and mmapped chunks never share a page. So only the page being filled is
 * kept, and it is settled as soon as a range of another page arrives: no map, nothing allocated per
 * chunk. A shared page is also where fragmentation is found: the page being filled remembers the
 * live blocks and the free chunks in the bins that put bytes on it.
 */
class Attributor {
  readonly totals = emptyTotals();
  /** The shared page being filled (-1: none), and its bytes per cause index. */
  private page = -1;
  private readonly shares = new Float64Array(CAUSES.length);
  /** Live blocks with bytes on the page being filled (a few at most: pages are small). */
  private liveOnPage: number[] = [];
  /** Free chunks in the bins with bytes on the page being filled. */
  private binnedOnPage: number[] = [];
  /** Free chunks in the bins already counted as fragmentation chunks (by handle). */
  private readonly fragChunks = new Set<number>();
  /** The heap being walked (null: fragmentation is not looked for, as in mmapped chunks). */
  heap: HeapFrag | null = null;
  readonly heaps: HeapFrag[] = [];

  constructor(
    private readonly s: Process,
    /** Whether the blocks responsible for fragmentation are kept (not only the totals). */
    private readonly blocks: boolean,
  ) {}

  /** Starts a heap: fragmentation found from now on is this heap's. */
  startHeap(arena: number, heap: number): void {
    this.settle();
    this.heap = new HeapFrag(arena, heap);
    this.heaps.push(this.heap);
  }

  /**
   * Attributes [a, b) to `cause`; `count` says whether this range is one chunk; `owner` is the
   * chunk the range belongs to (NIL for bytes of no chunk).
   */
  add(cause: Cause, a: number, b: number, count: boolean, owner = NIL): void {
    if (b <= a) return;
    const t = this.totals[cause];
    t.mappedBytes += b - a;
    if (count) t.chunks++;
    const k = this.s.kernel;
    const firstFull = Math.ceil(a / PAGE) * PAGE;
    const lastFull = Math.floor(b / PAGE) * PAGE;
    const ci = CAUSE_INDEX[cause];
    if (firstFull < lastFull) {
      if (a < firstFull) this.edge(ci, a, firstFull, owner);
      const pages = k.residentIn(firstFull, lastFull) / PAGE;
      t.bytes += pages * PAGE;
      t.pages += pages;
      if (lastFull < b) this.edge(ci, lastFull, b, owner);
    } else {
      // Within one page, or across one page boundary.
      if (firstFull > a && firstFull < b) {
        this.edge(ci, a, firstFull, owner);
        this.edge(ci, firstFull, b, owner);
      } else this.edge(ci, a, b, owner);
    }
  }

  private edge(ci: number, a: number, b: number, owner: number): void {
    if (!this.s.kernel.isResident(a)) return;
    this.totals[CAUSES[ci]!].bytes += b - a;
    const page = Math.floor(a / PAGE);
    if (page !== this.page) {
      this.settle();
      this.page = page;
    }
    this.shares[ci]! += b - a;
    if (owner === NIL || this.heap === null) return;
    if (ci === LIVE_REQ || ci === LIVE_OVH) {
      const l = this.liveOnPage;
      if (l.length === 0 || l[l.length - 1] !== owner) l.push(owner);
    } else if (ci === BINS) this.binnedOnPage.push(owner);
  }

  /**
   * Settles the page being filled: its free-in-bins bytes become fragmentation when live blocks
   * share it and glibc's metadata does not, and the whole page goes to the cause with most bytes
   * in it (the first in CAUSES on a tie).
   */
  settle(): void {
    if (this.page < 0) return;
    const v = this.shares;
    const hf = this.heap;
    if (hf !== null && v[BINS]! > 0 && this.liveOnPage.length > 0 && v[META] === 0) {
      const free = v[BINS]!;
      const bins = this.totals['free-bins'];
      const frag = this.totals.fragmentation;
      bins.bytes -= free;
      bins.mappedBytes -= free;
      frag.bytes += free;
      frag.mappedBytes += free;
      v[FRAG] = free;
      v[BINS] = 0;
      for (const h of this.binnedOnPage) {
        if (this.fragChunks.has(h)) continue;
        this.fragChunks.add(h);
        frag.chunks++;
      }
      hf.pages++;
      hf.bytes += free;
      if (this.blocks)
        for (const h of this.liveOnPage) {
          const b = hf.blocks.get(h);
          if (b === undefined) hf.blocks.set(h, { pages: 1, freeBytes: free });
          else {
            b.pages++;
            b.freeBytes += free;
          }
        }
    }
    let best = 0;
    for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
    this.totals[CAUSES[best]!].pages++;
    v.fill(0);
    this.page = -1;
    if (this.liveOnPage.length > 0) this.liveOnPage = [];
    if (this.binnedOnPage.length > 0) this.binnedOnPage = [];
  }
}

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
  at.add('live-overhead', start, mem, false, h);
  at.add('live-requested', mem, reqEnd, true, h);
  at.add('live-overhead', reqEnd, end, false, h);
}

/** The breakdown of one arena's regions (or of the mmapped chunks, arena -1). */
function breakdownArena(
  s: Process,
  av: Arena | null,
  tcacheStructs: Set<number>,
  blocks: boolean,
): { arena: ArenaBreakdown; heaps: HeapFrag[] } {
  const ck = s.ck;
  const at = new Attributor(s, blocks);
  const regions: Array<[number, number, number]> = [];
  if (av === null) {
    for (let h = 0; h < ck.highWater; h++) {
      if (ck.state[h] === St.DEAD || ck.state[h] === St.BINHDR || (ck.flags[h]! & IS_MMAPPED) === 0)
        continue;
      // The whole mapping: the alignment lead before the chunk, the slack after the request (and
      // from glibc 2.43 the chunk header after the chunk).
      const start = ck.addr[h]! - ck.prevSize[h]!;
      addInUse(s, at, h, start, start + mmapSize(s, h), false);
    }
  } else {
    if (av === s.main) {
      if (!av.topIsInitial) regions.push([s.kernel.brkBase, s.kernel.brkEnd, 0]);
    } else {
      for (let hp = av.heap; hp !== null; hp = hp.prev)
        regions.push([hp.start, hp.start + hp.size, hp.number]);
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
      at.startHeap(av.index, region[2]);
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
        else at.add(cause, start, end, true, p);
        covered = end;
      }
      if (covered < region[1]) at.add('metadata', covered, region[1], false);
      region[0] = region[1]; // done
    }
    // Regions without chunks (cannot happen once initialised) are metadata.
    at.settle();
    at.heap = null;
    for (const [x, y] of regions) if (x < y) at.add('metadata', x, y, false);
  }
  at.settle();
  let resident = 0;
  for (const c of CAUSES) resident += at.totals[c].bytes;
  return {
    arena: { arena: av === null ? -1 : av.index, causes: at.totals, residentBytes: resident },
    heaps: at.heaps,
  };
}

/**
 * Every live block that keeps free memory in the bins resident (the fragmentation cause), in all
 * heaps, with the pages it shares with that memory and the free bytes on them: the full list of
 * which breakdown's examples are the first few of each heap.
 */
export function fragmentingBlocks(s: Process): FragmentingBlock[] {
  const tcacheStructs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) tcacheStructs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) tcacheStructs.add(s.thread.tcache.chunk);
  const ck = s.ck;
  const out: FragmentingBlock[] = [];
  let ar = s.main;
  do {
    for (const hf of breakdownArena(s, ar, tcacheStructs, true).heaps)
      for (const [chunk, b] of hf.blocks)
        out.push({
          chunk,
          addr: ck.addr[chunk]!,
          size: ck.size[chunk]!,
          requested: ck.req[chunk]!,
          bornEvent: ck.born[chunk]!,
          pages: b.pages,
          freeBytes: b.freeBytes,
        });
    ar = ar.next;
  } while (ar !== s.main);
  return out;
}

/** A heap's fragmentation as reported: its totals and its few worst blocks. */
function heapReport(s: Process, hf: HeapFrag): HeapFragmentation {
  const ck = s.ck;
  const all = [...hf.blocks].map(([chunk, b]) => ({ chunk, ...b }));
  all.sort((x, y) => y.freeBytes - x.freeBytes || ck.addr[x.chunk]! - ck.addr[y.chunk]!);
  return {
    arena: hf.arena,
    heap: hf.heap,
    pages: hf.pages,
    bytes: hf.bytes,
    blocks: hf.blocks.size,
    examples: all.slice(0, EXAMPLES).map((b) => ({
      chunk: b.chunk,
      addr: ck.addr[b.chunk]!,
      size: ck.size[b.chunk]!,
      requested: ck.req[b.chunk]!,
      bornEvent: ck.born[b.chunk]!,
      pages: b.pages,
      freeBytes: b.freeBytes,
    })),
  };
}

/**
 * The whole process's resident memory by cause, per arena and in total. `blocks` false leaves
 * the blocks responsible for fragmentation out (their count and examples), for callers that only
 * want the totals (the timeline's samples).
 */
export function breakdown(s: Process, blocks = true): Breakdown {
  const tcacheStructs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) tcacheStructs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) tcacheStructs.add(s.thread.tcache.chunk);
  const arenas: ArenaBreakdown[] = [];
  const heaps: HeapFrag[] = [];
  let ar = s.main;
  do {
    const r = breakdownArena(s, ar, tcacheStructs, blocks);
    arenas.push(r.arena);
    heaps.push(...r.heaps);
    ar = ar.next;
  } while (ar !== s.main);
  arenas.push(breakdownArena(s, null, tcacheStructs, blocks).arena);
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
  const fragmentation = heaps
    .filter((h) => h.pages > 0)
    .map((h) => heapReport(s, h))
    .sort((x, y) => y.bytes - x.bytes || x.arena - y.arena || x.heap - y.heap);
  return { residentBytes, residentPages, mappedBytes, causes, arenas, fragmentation };
}
