/**
 * The public entry points, as glibc's __libc_* wrappers: initialisation on first use, the tcache
 * fast paths, arena choice, and the wrappers' own rules (calloc's clearing, realloc(p, 0), the
 * memalign family's alignment rounding, pvalloc's 2.30-2.42 rounding quirk, the dynamic mmap
 * threshold raised by free()).
 *
 * Blocks are chunk handles here; the user pointer is the chunk's address + 16. NIL stands for NULL.
 *
 * glibc: ptmalloc_init (arena.c); __libc_malloc, __libc_free, __libc_realloc, __libc_calloc,
 * _mid_memalign, __libc_memalign, __libc_valloc, __libc_pvalloc, __malloc_usable_size,
 * __libc_mallopt, __malloc_trim (malloc.c); what pthread_create's calloc of a thread's DTV does to
 * malloc (_dl_allocate_tls, elf/dl-tls.c). A trace writes posix_memalign and aligned_alloc calls as
 * memalign (docs/trace-format.md).
 */

import { arenaForChunk, arenaGet, arenaGetRetry } from './arena.js';
import { NIL, St } from './chunks.js';
import {
  CHUNK_HDR_SZ,
  DEFAULT_MXFAST,
  IS_MMAPPED,
  MALLOC_ALIGNMENT,
  MINSIZE,
  NON_MAIN_ARENA,
  PAGE_SIZE,
  PREV_INUSE,
  SIZE_MAX_PLUS_1,
  PTRDIFF_LIMIT,
  checkedRequest2size,
  csize2tidx,
  maxFastFor,
  powerof2,
} from './constants.js';
import {
  intFree,
  intFreeChunk,
  intFreeMergeChunk,
  munmapChunk,
  raiseDynamicThresholds,
} from './free.js';
import { FreeRoute, freeChecks, reallocPointerCheck, tcacheIndex } from './free-checks.js';
import { intMalloc } from './malloc.js';
import { intMemalign } from './memalign.js';
import { intRealloc, mremapChunk } from './realloc.js';
import {
  maybeInitTcache,
  tcacheGet,
  tcacheGetAlign,
  tcacheGetAligned,
  tcacheGetLarge,
  tcacheInitLazy,
  tcachePut,
  tcachePutLarge,
} from './tcache.js';
import { TCACHE_SMALL_BINS } from './profile.js';
import { applyTunables, doMallopt, resolveTunables } from './tunables.js';
import { mtrim } from './trim.js';
import { copyUser, writeUser } from './mem.js';
import { heapForPtr } from './heap.js';
import type { Arena, Process, ThreadState } from './state.js';

/** ptmalloc_init, run by `thread` (the calling thread unless said): it gets the main arena. */
export function ptmallocInit(s: Process, thread: ThreadState = s.thread): void {
  if (s.initialized) return;
  s.initialized = true;
  if (s.profile.randomTcacheKey) s.kernel.getrandom(); // tcache_key_initialize (2.34 on)
  thread.arena = s.main;
  // malloc_init_state(&main_arena) ran when the arena was built; this is its set_max_fast.
  // 2.43 on: no fastbins (profile.fastbins), so no chunk is ever fast.
  s.globalMaxFast = s.profile.fastbins ? maxFastFor(DEFAULT_MXFAST) : 0;
  applyTunables(s, resolveTunables(s.env, s.profile));
}

/**
 * A thread other than the main one starts; `creator` is the thread that creates it. From now on
 * the process is multi-threaded (SINGLE_THREAD_P is false). pthread_create has the creating thread
 * calloc the new thread's DTV (_dl_allocate_tls), so malloc is initialised by then, in the creator:
 * the main thread, for the first thread of a process. So the main thread owns the main arena even
 * when another thread makes the first call that initialises malloc. The DTV's calloc itself is not
 * replayed: a recorded trace holds it as an event of its own.
 */
export function threadStart(s: Process, creator: ThreadState): void {
  s.singleThread = false;
  if (!s.initialized) ptmallocInit(s, creator);
}

/** Records a block handed to the program. */
function handOut(s: Process, p: number, bytes: number): number {
  if (p !== NIL) {
    s.ck.handOut(p, bytes, s.eventIndex);
  }
  return p;
}

/**
 * The tcache's chunk of exactly nb bytes, taken, or NIL (__libc_malloc's and __libc_calloc's
 * look-up from 2.43: any chunk size below tcache_max_bytes, a large bin above 1040).
 */
function tcacheTake(s: Process, nb: number): number {
  const tc = s.thread.tcache;
  if (tc === null || nb >= s.mp.tcacheMaxBytes) return NIL;
  const idx = csize2tidx(nb);
  if (idx < TCACHE_SMALL_BINS) return tc.counts[idx]! > 0 ? tcacheGet(s, tc, idx) : NIL;
  return tcacheGetLarge(s, tc, tcacheIndex(nb), nb);
}

/** __libc_malloc */
export function libcMalloc(s: Process, bytes: number): number {
  if (!s.initialized) ptmallocInit(s);
  s.mallocHookIni = false; // malloc_hook_ini, up to 2.33: it clears itself, then mallocs
  const tbytes = checkedRequest2size(bytes);
  if (tbytes === 0) return NIL;
  if (s.profile.lazyTcache) {
    // 2.43 on: the tcache if it has the chunk, else __libc_malloc2.
    const p = tcacheTake(s, tbytes);
    return handOut(s, p !== NIL ? p : libcMalloc2(s, bytes), bytes);
  }
  const tcIdx = csize2tidx(tbytes);
  maybeInitTcache(s);
  const tc = s.thread.tcache;
  if (tcIdx < s.mp.tcacheBins && tc !== null && tc.counts[tcIdx]! > 0) {
    return handOut(s, tcacheGet(s, tc, tcIdx), bytes);
  }
  return handOut(s, libcMalloc2(s, bytes), bytes);
}

/** __libc_malloc2 (so named from 2.42; before, the rest of __libc_malloc): the arena's way. */
export function libcMalloc2(s: Process, bytes: number): number {
  if (s.singleThread) return intMalloc(s, s.main, bytes);
  let ar = arenaGet(s, bytes);
  let victim = intMalloc(s, ar, bytes);
  if (victim === NIL && ar !== null) {
    ar = arenaGetRetry(s, ar, bytes);
    victim = intMalloc(s, ar, bytes);
  }
  return victim;
}

/** __libc_free */
export function libcFree(s: Process, p: number): void {
  if (p === NIL) return;
  const ck = s.ck;
  if (s.profile.lazyTcache) {
    libcFreeLazy(s, p);
    return;
  }
  if ((ck.flags[p]! & IS_MMAPPED) !== 0) {
    raiseDynamicThresholds(s, p);
    munmapChunk(s, p);
    return;
  }
  maybeInitTcache(s);
  // The common case, _int_free's first way out, without its other checks: a chunk of a size the
  // tcache holds, not cached already, and room in its bin (freeChecks makes the same choice).
  const tc = s.thread.tcache;
  if (tc !== null) {
    const size = ck.size[p]!;
    if (size >= MINSIZE) {
      const idx = csize2tidx(size);
      if (
        idx < s.mp.tcacheBins &&
        ck.state[p] !== St.TCACHE &&
        tc.counts[idx]! < s.mp.tcacheCount
      ) {
        tcachePut(s, tc, p, idx);
        return;
      }
    }
  }
  intFree(s, arenaForChunk(s, p), p);
}

/**
 * __libc_free of 2.43 on: the tcache takes any chunk below tcache_max_bytes it has room for (an
 * mmapped one too); a thread's first such free allocates its tcache (tcache_free_init) and frees
 * again; the rest goes to _int_free_chunk.
 */
function libcFreeLazy(s: Process, p: number): void {
  const av = arenaForChunk(s, p);
  switch (freeChecks(s, av, p)) {
    case FreeRoute.TCACHE: {
      const tc = s.thread.tcache!;
      const idx = tcacheIndex(s.ck.size[p]!);
      if (idx < TCACHE_SMALL_BINS) tcachePut(s, tc, p, idx);
      else tcachePutLarge(s, tc, p, idx);
      return;
    }
    case FreeRoute.TCACHE_INIT:
      tcacheInitLazy(s, null);
      libcFreeLazy(s, p);
      return;
    case FreeRoute.MMAP:
      raiseDynamicThresholds(s, p);
      munmapChunk(s, p);
      return;
    default:
      intFreeMergeChunk(s, av, p, s.ck.size[p]!);
  }
}

/** __libc_calloc */
export function libcCalloc(s: Process, n: number, elemSize: number): number {
  const bytes = n * elemSize;
  // The product must fit in a ptrdiff_t.
  if (bytes >= PTRDIFF_LIMIT) return NIL;
  if (s.mallocHookIni) {
    // Up to 2.33, before the process's first malloc or realloc: __libc_calloc calls the hook
    // (malloc_hook_ini, which mallocs as __libc_malloc does) and clears all of the block itself.
    const p = libcMalloc(s, bytes);
    if (p !== NIL) writeUser(s, p, bytes);
    return p;
  }
  if (!s.initialized) ptmallocInit(s);
  maybeInitTcache(s);
  const ck = s.ck;
  if (s.profile.lazyTcache) {
    // 2.43 on: a cached chunk of any size below tcache_max_bytes; a small one is cleared whole
    // but its last word (tidx2usize), a large one as far as its usable size.
    const p = tcacheTake(s, checkedRequest2size(bytes));
    if (p !== NIL) {
      handOut(s, p, bytes);
      writeUser(s, p, ck.size[p]! - 8);
      return p;
    }
  } else if (s.profile.callocFromTcache) {
    // 2.41 on (tcache_try_malloc): a cached chunk, cleared whole but its last word.
    const idx = csize2tidx(checkedRequest2size(bytes));
    const tc = s.thread.tcache;
    if (idx < s.mp.tcacheBins && tc !== null && tc.counts[idx]! > 0) {
      const p = handOut(s, tcacheGet(s, tc, idx), bytes);
      writeUser(s, p, ck.size[p]! - 8);
      return p;
    }
  }
  const av = s.singleThread ? s.main : arenaGet(s, bytes);
  let oldTopAddr = -1;
  let oldTopSize = 0;
  if (av !== null) {
    oldTopAddr = ck.addr[av.top]!;
    oldTopSize = ck.size[av.top]!;
    // A block carved from this top is cleared only as far as the top reaches: beyond, the kernel
    // has just given the memory, hence zero. In a non-main arena the top counts as reaching the
    // heap's high-water mark (mprotect_size), below which memory may have been used; the
    // difference is unsigned in glibc, negative means "huge". The source extends the main arena's
    // top likewise, up to the break's high-water mark (max_system_mem), but Debian's 2.36 binary
    // has no code for that: after a trim, a calloc from the top clears no more than the old top
    // (docs/glibc-facts.md#calloc-clearing).
    if (av !== s.main) {
      const h = av.heap!;
      let fresh = h.start + h.mprotectSize - oldTopAddr;
      if (fresh < 0) fresh += SIZE_MAX_PLUS_1;
      if (oldTopSize < fresh) oldTopSize = fresh;
    }
  }
  let p = intMalloc(s, av, bytes);
  if (!s.singleThread && p === NIL && av !== null)
    p = intMalloc(s, arenaGetRetry(s, av, bytes), bytes);
  if (p === NIL) return NIL;
  handOut(s, p, bytes);
  if ((ck.flags[p]! & IS_MMAPPED) !== 0) {
    if (s.perturbByte !== 0) writeUser(s, p, bytes);
    return p;
  }
  let csz = ck.size[p]!;
  if (s.perturbByte === 0 && ck.addr[p] === oldTopAddr && csz > oldTopSize) csz = oldTopSize;
  writeUser(s, p, csz - 8);
  return p;
}

/** __libc_realloc. Returns the block, or NIL (for realloc(p, 0), and on failure, when p stays live). */
export function libcRealloc(s: Process, oldp: number, bytes: number): number {
  if (!s.initialized) ptmallocInit(s);
  s.mallocHookIni = false; // realloc_hook_ini, up to 2.33, clears both hooks
  if (bytes === 0 && oldp !== NIL) {
    libcFree(s, oldp);
    return NIL;
  }
  if (oldp === NIL) return libcMalloc(s, bytes);
  const ck = s.ck;
  const oldsize = ck.size[oldp]!;
  const mmapped = (ck.flags[oldp]! & IS_MMAPPED) !== 0;
  if (s.profile.reallocWithinPadding) {
    // 2.38 on: a request within the usable size, with less than 16 bytes to spare (2.38 to 2.42:
    // or a page, for an mmapped chunk), keeps the block as it is (musable).
    const usable = mallocUsableSize(s, oldp);
    if (bytes <= usable) {
      const spare = usable - bytes;
      const withinPage = mmapped && s.profile.reallocMmappedWithinPage && spare <= PAGE_SIZE;
      if (spare < 2 * 8 || withinPage) return handOut(s, oldp, bytes);
    }
  }
  // Set for a heap chunk; an mmapped chunk has no arena (and returns before it is needed).
  let ar: Arena | null = null;
  if (!mmapped) {
    maybeInitTcache(s);
    ar = arenaForChunk(s, oldp);
  }
  reallocPointerCheck(oldsize);
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return NIL;
  if (mmapped) {
    const np = mremapChunk(s, oldp, nb);
    if (np !== NIL) return handOut(s, np, bytes);
    // A shrink stays where it is: up to 2.42 when the chunk holds nb, from 2.43 when its usable
    // size holds the request.
    if (s.profile.mmapChunkTailHeader ? bytes <= mallocUsableSize(s, oldp) : oldsize - 8 >= nb)
      return handOut(s, oldp, bytes);
    const newp = libcMalloc(s, bytes);
    if (newp === NIL) return NIL;
    copyUser(s, oldp, newp, oldsize - CHUNK_HDR_SZ);
    munmapChunk(s, oldp);
    return newp;
  }
  if (s.singleThread) return handOut(s, intRealloc(s, ar!, oldp, oldsize, nb), bytes);
  let newp = intRealloc(s, ar!, oldp, oldsize, nb);
  if (newp === NIL) {
    newp = libcMalloc(s, bytes);
    if (newp !== NIL) {
      copyUser(s, oldp, newp, oldsize - 8);
      if (s.profile.fastbins) intFree(s, ar!, oldp);
      else intFreeChunk(s, ar!, oldp);
    }
  }
  return handOut(s, newp, bytes);
}

/** _mid_memalign: memalign, aligned_alloc and posix_memalign once their arguments are checked. */
function midMemalign(s: Process, alignment: number, bytes: number): number {
  if (alignment <= MALLOC_ALIGNMENT) return libcMalloc(s, bytes);
  if (alignment < MINSIZE) alignment = MINSIZE;
  if (alignment > 2 ** 63) return NIL; // EINVAL
  if (!powerof2(alignment)) {
    let a = MALLOC_ALIGNMENT * 2;
    while (a < alignment) a *= 2;
    alignment = a;
  }
  if (s.profile.lazyTcache) {
    // 2.43 on: tcache_get_align, from any bin below tcache_max_bytes.
    const nb = checkedRequest2size(bytes);
    const tc = s.thread.tcache;
    if (nb !== 0 && tc !== null && nb < s.mp.tcacheMaxBytes) {
      const p = tcacheGetAlign(s, tc, tcacheIndex(nb), nb, alignment);
      if (p !== NIL) return handOut(s, p, bytes);
    }
  } else if (s.profile.memalignFromTcache) {
    // 2.38 on: an already aligned chunk of the request's size from the tcache.
    const nb = checkedRequest2size(bytes);
    if (nb === 0) return NIL;
    const idx = csize2tidx(nb);
    const tc = s.thread.tcache;
    if (idx < s.mp.tcacheBins && tc !== null && tc.counts[idx]! > 0) {
      const p = tcacheGetAligned(s, tc, idx, alignment);
      if (p !== NIL) return handOut(s, p, bytes);
    }
  }
  if (s.singleThread) return handOut(s, intMemalign(s, s.main, alignment, bytes), bytes);
  let ar = arenaGet(s, bytes + alignment + MINSIZE);
  let p = intMemalign(s, ar, alignment, bytes);
  if (p === NIL && ar !== null) {
    ar = arenaGetRetry(s, ar, bytes);
    p = intMemalign(s, ar, alignment, bytes);
  }
  return handOut(s, p, bytes);
}

/** __libc_memalign (also aligned_alloc, the same function in 2.36) */
export function libcMemalign(s: Process, alignment: number, bytes: number): number {
  if (!s.initialized) ptmallocInit(s);
  return midMemalign(s, alignment, bytes);
}

/** __libc_valloc */
export function libcValloc(s: Process, bytes: number): number {
  if (!s.initialized) ptmallocInit(s);
  return midMemalign(s, PAGE_SIZE, bytes);
}

/**
 * __libc_pvalloc: rounds the size up with `& -(pagesize - 1)`, a mask that keeps bit 0, so an odd
 * size rounds to one byte over a page multiple (a 2.30-2.42 quirk: profile.pvallocKeepsOddBit).
 */
export function libcPvalloc(s: Process, bytes: number): number {
  if (!s.initialized) ptmallocInit(s);
  const sum = bytes + PAGE_SIZE - 1;
  if (sum >= SIZE_MAX_PLUS_1) return NIL; // ENOMEM
  const rounded = sum - (sum % PAGE_SIZE) + (s.profile.pvallocKeepsOddBit ? sum % 2 : 0);
  // The program asked for `bytes`; the rounding is glibc's.
  return handOut(s, midMemalign(s, PAGE_SIZE, rounded), bytes);
}

/** musable / __malloc_usable_size */
export function mallocUsableSize(s: Process, p: number): number {
  if (p === NIL) return 0;
  const ck = s.ck;
  // memsize: an mmapped chunk has no next chunk's prev_size to lend, until 2.43 gave it one.
  if ((ck.flags[p]! & IS_MMAPPED) !== 0)
    return ck.size[p]! - (s.profile.mmapChunkTailHeader ? 8 : CHUNK_HDR_SZ);
  const n = ck.next[p]!;
  if (n !== NIL && (ck.flags[n]! & PREV_INUSE) !== 0) return ck.size[p]! - 8;
  return 0;
}

/** __libc_mallopt */
export function mallopt(s: Process, param: number, value: number): number {
  if (!s.initialized) ptmallocInit(s);
  return doMallopt(s, param, value);
}

/** __malloc_trim: mtrim on every arena, main first, then newest to oldest. */
export function mallocTrim(s: Process, pad: number): number {
  if (!s.initialized) ptmallocInit(s);
  let result = 0;
  let ar = s.main;
  do {
    result |= mtrim(s, ar, pad);
    ar = ar.next;
  } while (ar !== s.main);
  return result;
}

/** Where a block lives, as the fidelity log names it. */
export interface BlockLocation {
  /** 0 main arena, k the k-th arena created after it, -1 a chunk mmapped on its own. */
  arena: number;
  /** The heap of that arena holding the block (0 for the main arena and mmapped chunks). */
  heap: number;
  /** Bytes from the start of that heap (main arena: the initial break; mmapped: its mapping). */
  off: number;
}

/** Fills `out` with the location of block p (arena_for_chunk, heap_for_ptr). */
export function blockLocation(s: Process, p: number, out: BlockLocation): void {
  const ck = s.ck;
  const mem = ck.addr[p]! + 16;
  const flags = ck.flags[p]!;
  if ((flags & IS_MMAPPED) !== 0) {
    out.arena = -1;
    out.heap = 0;
    out.off = ck.prevSize[p]! + 16;
  } else if ((flags & NON_MAIN_ARENA) === 0) {
    out.arena = 0;
    out.heap = 0;
    out.off = mem - s.kernel.brkBase;
  } else {
    const h = heapForPtr(s, ck.addr[p]!);
    out.arena = h.arena.index;
    out.heap = h.number;
    out.off = mem - h.start;
  }
}
