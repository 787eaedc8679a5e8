/**
 * glibc's checks on a chunk the program hands back: those _int_free makes before it changes
 * anything, and those at the start of __libc_realloc and _int_realloc. intFree and intRealloc run
 * them on every call; the replay runs them on a block the program frees (or reallocates) a second
 * time, to learn what glibc would say: its abort message, 'undetected' (glibc would go on, and its
 * lists would be corrupt), or 'unknown' (the answer depends on memory the model does not keep).
 *
 * A freed block is judged by what glibc reads at its address, which is not always a chunk of the
 * model: a chunk that merged into a free neighbour leaves its old header in memory, and glibc reads
 * that header again (Arena.merged keeps the last ones). That header is also why a chunk of a
 * thread's arena may be judged against the main arena: glibc writes a free chunk's header without
 * the A bit (in a bin, or as the top), and arena_for_chunk trusts that bit.
 *
 * Left out, because they cannot fail on a heap the model holds: "invalid fastbin entry (free)" (a
 * fastbin holds only chunks of its size), "free(): too many chunks detected in tcache" (no bin
 * holds more than tcache_count chunks), and the list checks of unlink_chunk and of the unsorted
 * bin, which glibc reaches only once every check here has passed, that is for a chunk that looks
 * in use, next to lists the model keeps intact.
 *
 * glibc: __libc_free, _int_free, __libc_realloc, _int_realloc (malloc/malloc.c).
 */

import { arenaForChunk } from './arena.js';
import { libcRealloc } from './api.js';
import { NIL, St } from './chunks.js';
import {
  CHUNK_HDR_SZ,
  IS_MMAPPED,
  MINSIZE,
  PREV_INUSE,
  checkedRequest2size,
  csize2tidx,
  fastbinIndex,
  largeCsize2tidx,
} from './constants.js';
import { TCACHE_SMALL_BINS } from './profile.js';
import { GLIBC_ABORT, GlibcAbort, mallocPrinterr, type GlibcAbortMessage } from './errors.js';
import { maybeInitTcache } from './tcache.js';
import type { Arena, Process } from './state.js';

/** Where _int_free (from 2.43, __libc_free) puts a chunk once its checks have passed. */
export const FreeRoute = {
  /** The calling thread's tcache (from 2.42 a large bin for a chunk above 1040 bytes). */
  TCACHE: 0,
  FASTBIN: 1,
  /** An mmapped chunk reaching _int_free: munmap_chunk. */
  MMAP: 2,
  /** Coalescing with its free neighbours, then the unsorted bin or the top. */
  COALESCE: 3,
  /**
   * 2.43 on: the thread's tcache is still the dummy: tcache_free_init allocates it, then frees
   * the chunk again.
   */
  TCACHE_INIT: 4,
  /**
   * 2.43 on: the key word says the chunk is cached, but not in this thread's tcache
   * (tcache_double_free_verify): glibc clears the key and frees it again.
   */
  FREE_AGAIN: 5,
} as const;
export type FreeRoute = (typeof FreeRoute)[keyof typeof FreeRoute];

/**
 * _int_free's checks, in its order, up to the first change it makes: returns where the chunk goes,
 * or raises glibc's abort. The calling thread's tcache is s.thread's.
 */
export function freeChecks(s: Process, av: Arena, p: number): FreeRoute {
  if (s.profile.lazyTcache) return libcFreeChecks(s, av, p);
  const ck = s.ck;
  const size = ck.size[p]!;
  // "p > -size || misaligned": chunk addresses are 16-aligned and no size wraps the address
  // space, but -0 is 0, so a zero size fails here.
  if (size < MINSIZE)
    mallocPrinterr(size === 0 ? GLIBC_ABORT.FREE_INVALID_POINTER : GLIBC_ABORT.FREE_INVALID_SIZE);

  const tc = s.thread.tcache;
  if (tc !== null) {
    const idx = csize2tidx(size);
    if (idx < s.mp.tcacheBins) {
      // The key word matches only in a cached chunk (the model's TCACHE state); the walk of this
      // thread's bin then tells a double free from a chunk in another thread's cache.
      // (2.29 on: before, nothing looks, and the chunk is cached a second time.)
      if (ck.state[p] === St.TCACHE && s.profile.tcacheDoubleFreeCheck) {
        for (let e = tc.entries[idx]!; e !== NIL; e = ck.fd[e]!)
          if (e === p) mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_TCACHE);
      }
      if (tc.counts[idx]! < s.mp.tcacheCount) return FreeRoute.TCACHE;
    }
  }

  if (size <= s.globalMaxFast) {
    const next = ck.next[p]!;
    const nextsize = ck.size[next]!;
    if (nextsize + ck.flags[next]! <= CHUNK_HDR_SZ || nextsize >= av.systemMem)
      mallocPrinterr(GLIBC_ABORT.INVALID_NEXT_SIZE_FAST);
    if (av.fastbins[fastbinIndex(size)] === p) mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_FASTTOP);
    return FreeRoute.FASTBIN;
  }
  if ((ck.flags[p]! & IS_MMAPPED) !== 0) return FreeRoute.MMAP;
  arenaFreeChecks(s, av, p);
  return FreeRoute.COALESCE;
}

/**
 * __libc_free's checks of 2.43 on, up to the first change it makes: the tcache first (for every
 * chunk below tcache_max_bytes, mmapped ones included), then the size, then _int_free_chunk's.
 */
function libcFreeChecks(s: Process, av: Arena, p: number): FreeRoute {
  const ck = s.ck;
  const size = ck.size[p]!;
  const mp = s.mp;
  if (size < mp.tcacheMaxBytes) {
    const tc = s.thread.tcache;
    // The key word matches only in a cached chunk: tcache_double_free_verify walks every bin of
    // this thread's tcache.
    if (ck.state[p] === St.TCACHE) {
      if (tc !== null)
        for (let i = 0; i < tc.entries.length; i++)
          for (let e = tc.entries[i]!; e !== NIL; e = ck.fd[e]!)
            if (e === p) mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_TCACHE);
      return FreeRoute.FREE_AGAIN;
    }
    if (size >= MINSIZE) {
      const idx = tcacheIndex(size);
      if (tc !== null && tc.counts[idx]! < mp.tcacheCount) return FreeRoute.TCACHE;
    }
    if (s.thread.tcache === null && !s.thread.tcacheShuttingDown) return FreeRoute.TCACHE_INIT;
  }
  // INT_ADD_OVERFLOW (p, size - MINSIZE): a size below MINSIZE wraps.
  if (size < MINSIZE) mallocPrinterr(GLIBC_ABORT.FREE_INVALID_SIZE);
  if ((ck.flags[p]! & IS_MMAPPED) !== 0) return FreeRoute.MMAP;
  arenaFreeChecks(s, av, p);
  return FreeRoute.COALESCE;
}

/** csize2tidx, or large_csize2tidx above the small bins (2.42 on). */
export function tcacheIndex(size: number): number {
  const idx = csize2tidx(size);
  return idx < TCACHE_SMALL_BINS ? idx : largeCsize2tidx(size);
}

/**
 * The checks before a heap chunk is merged into its arena (_int_free; from 2.43
 * _int_free_merge_chunk): not the top, not past it, marked in use, a sane next size, and a
 * previous chunk as big as prev_size says.
 */
export function arenaFreeChecks(s: Process, av: Arena, p: number): void {
  const ck = s.ck;
  const size = ck.size[p]!;
  const next = ck.next[p]!;
  const nextsize = ck.size[next]!;
  const top = av.top;
  if (p === top) mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_TOP);
  // The next chunk's address is p + size (not the model's neighbour: p may be a header glibc
  // reads from the middle of another chunk, or a top, which has none).
  if (av.contiguous && ck.addr[p]! + size >= ck.addr[top]! + ck.size[top]!)
    mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_OUT);
  if ((ck.flags[next]! & PREV_INUSE) === 0) mallocPrinterr(GLIBC_ABORT.DOUBLE_FREE_PREV);
  if (nextsize + ck.flags[next]! <= CHUNK_HDR_SZ || nextsize >= av.systemMem)
    mallocPrinterr(GLIBC_ABORT.INVALID_NEXT_SIZE_NORMAL);
  // Backward consolidation: the chunk prev_size bytes before must be that big.
  if ((ck.flags[p]! & PREV_INUSE) === 0 && ck.size[ck.prev[p]!]! !== ck.prevSize[p]!) {
    mallocPrinterr(GLIBC_ABORT.CORRUPTED_PREV_SIZE_CONSOLIDATING);
  }
}

/** __libc_realloc's pointer check, on the old chunk's size ("p > -size || misaligned", as in free). */
export function reallocPointerCheck(oldsize: number): void {
  if (oldsize === 0) mallocPrinterr(GLIBC_ABORT.REALLOC_INVALID_POINTER);
}

/** _int_realloc's checks of the old chunk's size and of the chunk after it. */
export function reallocChecks(s: Process, av: Arena, oldp: number): void {
  const ck = s.ck;
  const oldsize = ck.size[oldp]!;
  if (oldsize + ck.flags[oldp]! <= CHUNK_HDR_SZ || oldsize >= av.systemMem)
    mallocPrinterr(GLIBC_ABORT.REALLOC_INVALID_OLD_SIZE);
  const next = ck.next[oldp]!;
  const nextsize = ck.size[next]!;
  if (nextsize + ck.flags[next]! <= CHUNK_HDR_SZ || nextsize >= av.systemMem)
    mallocPrinterr(GLIBC_ABORT.REALLOC_INVALID_NEXT_SIZE);
}

/** What glibc would do with a block the program already freed. */
export type AgainVerdict = GlibcAbortMessage | 'undetected' | 'unknown';

/** Memory a verdict read: the arena's top end, the next chunk's header, the previous chunk's. */
const READS_TOP = 1;
const READS_NEXT = 2;
const READS_PREV = 4;

/**
 * What glibc's free() would do with `mem` now, the program having freed it before. Changes
 * nothing but what glibc itself does before its checks (MAYBE_INIT_TCACHE).
 */
export function freeAgainVerdict(s: Process, mem: number): AgainVerdict {
  const addr = mem - CHUNK_HDR_SZ;
  // __libc_free reads the M bit first. A chunk the model holds there with that bit is a live
  // mmapped chunk (one that was freed is unmapped, and its header gone): a valid free.
  const first = ChunkView.at(s, addr);
  if (first === null) return 'unknown';
  const mmapped = (s.ck.flags[first.p]! & IS_MMAPPED) !== 0;
  first.dispose();
  if (mmapped) return 'undetected';
  const v = viewAfterTcacheInit(s, addr);
  if (v === null) return 'unknown';
  try {
    const av = arenaForChunk(s, v.p);
    let outcome: GlibcAbortMessage | FreeRoute;
    try {
      outcome = freeChecks(s, av, v.p);
      // 2.43 on, tcache_count 0: tcache_free_init only disables the tcache, and the free goes on
      // to _int_free_chunk's checks.
      if (outcome === FreeRoute.TCACHE_INIT && s.mp.tcacheCount === 0) {
        s.thread.tcacheShuttingDown = true;
        outcome = freeChecks(s, av, v.p);
      }
    } catch (e) {
      if (!(e instanceof GlibcAbort)) throw e;
      outcome = e.glibcMessage;
    }
    const prevRead = (s.ck.flags[v.p]! & PREV_INUSE) === 0 ? READS_PREV : 0;
    if (v.unknownRead(av, freeReads(outcome, prevRead))) return 'unknown';
    return typeof outcome === 'string' ? outcome : 'undetected';
  } finally {
    v.dispose();
  }
}

/** The memory freeChecks read to reach `outcome` (prevRead: READS_PREV if p's P bit is clear). */
function freeReads(outcome: GlibcAbortMessage | FreeRoute, prevRead: number): number {
  switch (outcome) {
    case GLIBC_ABORT.FREE_INVALID_POINTER:
    case GLIBC_ABORT.FREE_INVALID_SIZE:
    case GLIBC_ABORT.DOUBLE_FREE_TCACHE:
    case GLIBC_ABORT.DOUBLE_FREE_TOP:
    case FreeRoute.TCACHE:
    case FreeRoute.TCACHE_INIT:
    case FreeRoute.FREE_AGAIN:
    case FreeRoute.MMAP:
      return 0;
    case GLIBC_ABORT.INVALID_NEXT_SIZE_FAST:
    case GLIBC_ABORT.DOUBLE_FREE_FASTTOP:
    case FreeRoute.FASTBIN:
      return READS_NEXT;
    case GLIBC_ABORT.DOUBLE_FREE_OUT:
      return READS_TOP;
    case GLIBC_ABORT.DOUBLE_FREE_PREV:
    case GLIBC_ABORT.INVALID_NEXT_SIZE_NORMAL:
      return READS_TOP | READS_NEXT;
    case GLIBC_ABORT.CORRUPTED_PREV_SIZE_CONSOLIDATING:
      return READS_TOP | READS_NEXT | READS_PREV;
    default:
      return READS_TOP | READS_NEXT | prevRead;
  }
}

/**
 * What glibc's realloc(mem, bytes) would do now, the program having freed mem before: its
 * checks, and one way on from them, a block that sits in the calling thread's tcache and must
 * move (its old chunk is then freed, which that tcache catches). Any other realloc that passes
 * the checks is reported 'undetected', although glibc may still abort further on.
 */
export function reallocAgainVerdict(s: Process, mem: number, bytes: number): AgainVerdict {
  if (bytes === 0) return freeAgainVerdict(s, mem); // realloc(p, 0) is free(p)
  const addr = mem - CHUNK_HDR_SZ;
  const first = ChunkView.at(s, addr);
  if (first === null) return 'unknown';
  const ck = s.ck;
  let v = first;
  const mmapped = (ck.flags[v.p]! & IS_MMAPPED) !== 0;
  if (!mmapped) {
    v.dispose();
    const w = viewAfterTcacheInit(s, addr);
    if (w === null) return 'unknown';
    v = w;
  }
  let moveFromOwnTcache = false;
  try {
    const oldsize = ck.size[v.p]!;
    const nb = checkedRequest2size(bytes);
    try {
      reallocPointerCheck(oldsize);
      // A request too big fails (ENOMEM); a live mmapped chunk at that address is resized.
      if (nb === 0 || mmapped) return 'undetected';
      const av = arenaForChunk(s, v.p);
      reallocChecks(s, av, v.p);
      if (v.unknownRead(av, READS_NEXT)) return 'unknown';
      // From 2.43 a shrink frees the tail it splits off with _int_free_chunk, into the arena the
      // old header names: its checks run on that tail, and one of the main arena's may fail for a
      // chunk of a thread's heap (the header of a binned chunk has no A bit).
      if (!s.profile.fastbins && nb <= oldsize && oldsize - nb >= MINSIZE) {
        const tailEnd = ck.addr[v.p]! + oldsize;
        if (av.contiguous && tailEnd >= ck.addr[av.top]! + ck.size[av.top]!)
          return v.unknownRead(av, READS_TOP) ? 'unknown' : GLIBC_ABORT.DOUBLE_FREE_OUT;
      }
      const next = ck.next[v.p]!;
      const nextState = ck.state[next];
      // _int_realloc cannot grow in place: the next chunk is in use. Whatever _int_malloc does,
      // it neither returns that chunk nor empties a tcache bin, so the old chunk is freed with
      // the calling thread's tcache still holding it.
      // (From 2.43 _int_realloc frees it with _int_free_chunk, which never looks at the tcache.)
      if (
        s.profile.fastbins &&
        ck.state[v.p] === St.TCACHE &&
        nb > oldsize &&
        (nextState === St.INUSE || nextState === St.TCACHE)
      ) {
        try {
          freeChecks(s, av, v.p);
        } catch (e) {
          if (!(e instanceof GlibcAbort)) throw e;
          moveFromOwnTcache = e.glibcMessage === GLIBC_ABORT.DOUBLE_FREE_TCACHE;
        }
      }
    } catch (e) {
      if (!(e instanceof GlibcAbort)) throw e;
      // The pointer check reads only the old header; the old-size and next-size checks read the
      // next chunk's header as well.
      const reads = e.glibcMessage === GLIBC_ABORT.REALLOC_INVALID_NEXT_SIZE ? READS_NEXT : 0;
      return v.unknownRead(null, reads) ? 'unknown' : e.glibcMessage;
    }
  } finally {
    v.dispose();
  }
  if (!moveFromOwnTcache) return 'undetected';
  // The model's heap is intact up to that free: let realloc run (it may also fail for want of
  // memory, and then return NULL as glibc would).
  try {
    libcRealloc(s, v.p, bytes);
  } catch (e) {
    if (e instanceof GlibcAbort) return e.glibcMessage;
    throw e;
  }
  return 'undetected';
}

/** MAYBE_INIT_TCACHE (which may allocate from the very arena), then the chunk glibc reads at addr. */
function viewAfterTcacheInit(s: Process, addr: number): ChunkView | null {
  maybeInitTcache(s);
  return ChunkView.at(s, addr);
}

/**
 * The chunk glibc finds at an address, as a handle freeChecks can read: the model's chunk there,
 * or a temporary one holding a header a merge left in memory. Neighbours the model cannot tell
 * are a temporary stand-in that passes every check, and a verdict that read them is 'unknown'.
 * dispose() puts everything back.
 */
class ChunkView {
  private readonly temps: number[] = [];
  private patchedNext = NIL;
  private patchedPrev = NIL;
  private nextUnknown = false;
  private prevUnknown = false;
  p = NIL;

  private constructor(private readonly s: Process) {}

  static at(s: Process, addr: number): ChunkView | null {
    const v = new ChunkView(s);
    const ck = s.ck;
    const real = chunkAt(s, addr);
    if (real !== NIL) {
      v.p = real;
      if (ck.next[real] === NIL) {
        v.patchedNext = real;
        ck.next[real] = v.standIn();
        v.nextUnknown = true;
      }
      if (ck.prev[real] === NIL) {
        v.patchedPrev = real;
        ck.prev[real] = v.standIn();
        v.prevUnknown = true;
      }
      return v;
    }
    for (const a of s.arenas) {
      const m = a.merged;
      if (m.epoch !== a.rewrites) continue;
      if (m.x === addr) {
        v.p = v.temp(addr, m.xSize, m.xFlags, m.xPrevSize);
        const nextAddr = addr + m.xSize;
        const next = chunkAt(s, nextAddr);
        if (next !== NIL) ck.next[v.p] = next;
        else if (m.n === nextAddr && m.xSize > 0)
          ck.next[v.p] = v.temp(nextAddr, m.nSize, m.nFlags, 0);
        else ck.next[v.p] = v.unknown('next');
        const prev = chunkAt(s, addr - m.xPrevSize);
        ck.prev[v.p] = prev !== NIL && m.xPrevSize > 0 ? prev : v.unknown('prev');
        return v;
      }
      if (m.n === addr) {
        v.p = v.temp(addr, m.nSize, m.nFlags, 0);
        const next = chunkAt(s, addr + m.nSize);
        ck.next[v.p] = next !== NIL ? next : v.unknown('next');
        // Its prev_size word is the user data of the chunk before: never known.
        ck.prev[v.p] = v.unknown('prev');
        return v;
      }
    }
    return null;
  }

  /** Whether a verdict that read `reads` (READS_*) depended on memory the model does not know. */
  unknownRead(av: Arena | null, reads: number): boolean {
    // A main arena never used still has its initial top, inside libc's data: an address the
    // model does not know.
    if ((reads & READS_TOP) !== 0 && av !== null && av.contiguous && av.topIsInitial) return true;
    if ((reads & READS_NEXT) !== 0 && this.nextUnknown) return true;
    return (reads & READS_PREV) !== 0 && this.prevUnknown;
  }

  dispose(): void {
    const ck = this.s.ck;
    if (this.patchedNext !== NIL) ck.next[this.patchedNext] = NIL;
    if (this.patchedPrev !== NIL) ck.prev[this.patchedPrev] = NIL;
    this.patchedNext = this.patchedPrev = NIL;
    for (const h of this.temps) ck.release(h);
    this.temps.length = 0;
  }

  private unknown(which: 'next' | 'prev'): number {
    if (which === 'next') this.nextUnknown = true;
    else this.prevUnknown = true;
    return this.standIn();
  }

  /** A neighbour the model does not know: a header that passes every check (the verdict is then 'unknown'). */
  private standIn(): number {
    return this.temp(-1, MINSIZE, PREV_INUSE, MINSIZE);
  }

  private temp(addr: number, size: number, flags: number, prevSize: number): number {
    const ck = this.s.ck;
    const h = ck.alloc(addr);
    ck.setSize(h, size);
    ck.flags[h] = flags;
    ck.setPrevSize(h, prevSize);
    this.temps.push(h);
    return h;
  }
}

/** The model's chunk starting at addr, or NIL (a full scan: for diagnostics only). */
function chunkAt(s: Process, addr: number): number {
  const ck = s.ck;
  for (let h = 0; h < ck.highWater; h++) {
    if (ck.addr[h] === addr && ck.state[h] !== St.DEAD && ck.state[h] !== St.BINHDR) return h;
  }
  return NIL;
}
