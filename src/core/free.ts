/**
 * Freeing a chunk into its arena, and the fastbin consolidation that undoes fastbins' refusal to
 * coalesce.
 *
 * _int_free's order: the calling thread's tcache (if the bin has room); a fastbin (chunks up to
 * global_max_fast, no coalescing, the next chunk keeps its P bit); otherwise coalescing with free
 * neighbours on both sides, then either the head of the unsorted bin or the top. A free that
 * leaves a chunk of at least FASTBIN_CONSOLIDATION_THRESHOLD (64 KiB, counting the top it merged
 * into) consolidates the fastbins and may give memory back to the system: systrim for the main
 * arena when the top reaches trim_threshold, heap_trim (always tried) for other arenas. glibc's
 * checks on the chunk, which choose among these ways, are freeChecks (free-checks.ts).
 *
 * From 2.43 there are no fastbins (profile.fastbins): __libc_free hands a chunk the tcache does not
 * take to _int_free_chunk, which unmaps an mmapped chunk or merges and bins a heap chunk; the
 * allocator's own frees call it too (intFreeInternal).
 *
 * glibc: _int_free, _int_free_chunk, malloc_consolidate, munmap_chunk (malloc/malloc.c).
 */

import { insertSmallbinHead, insertUnsortedHead, unlinkChunk } from './bins.js';
import { NIL, St } from './chunks.js';
import {
  DEFAULT_MMAP_THRESHOLD_MAX,
  FASTBIN_CONSOLIDATION_THRESHOLD,
  IS_MMAPPED,
  NFASTBINS,
  PAGE_SIZE,
  PREV_INUSE,
  csize2tidx,
  fastbinIndex,
  inSmallbinRange,
  powerof2,
} from './constants.js';
import { GLIBC_ABORT, mallocPrinterr } from './errors.js';
import { FreeRoute, arenaFreeChecks, freeChecks } from './free-checks.js';
import {
  clearPrevInuse,
  freePerturb,
  setFoot,
  setHead,
  writeBk,
  writeFd,
  writeFdBk,
  writeNextsize,
} from './mem.js';
import { heapTrim } from './heap.js';
import { systrim, systrimExtra } from './sysmalloc.js';
import { tcachePut } from './tcache.js';
import type { Arena, Process } from './state.js';

/** _int_free(av, p, have_lock) */
export function intFree(s: Process, av: Arena, p: number): void {
  const ck = s.ck;
  const route = freeChecks(s, av, p);
  const size = ck.size[p]!;

  if (route === FreeRoute.TCACHE) {
    tcachePut(s, s.thread.tcache!, p, csize2tidx(size));
    return;
  }

  if (route === FreeRoute.FASTBIN) {
    freePerturb(s, p, size - 16);
    av.haveFastchunks = true;
    const idx = fastbinIndex(size);
    writeFd(s, p, av.fastbins[idx]!);
    av.fastbins[idx] = p;
    ck.state[p] = St.FAST;
    return;
  }

  if (route === FreeRoute.MMAP) {
    munmapChunk(s, p);
    return;
  }

  intFreeMergeChunk(s, av, p, size);
}

/**
 * _int_free_chunk (2.43 on): an mmapped chunk is unmapped (raising the dynamic thresholds, as
 * __libc_free did before); a heap chunk is checked and merged into its arena
 * (_int_free_merge_chunk).
 */
export function intFreeChunk(s: Process, av: Arena, p: number): void {
  if ((s.ck.flags[p]! & IS_MMAPPED) !== 0) {
    raiseDynamicThresholds(s, p);
    munmapChunk(s, p);
    return;
  }
  arenaFreeChecks(s, av, p);
  intFreeMergeChunk(s, av, p, s.ck.size[p]!);
}

/**
 * A free by the allocator itself (realloc's old chunk and remainder, sysmalloc's fenced-off old
 * top): _int_free up to 2.42, which may cache the chunk; _int_free_chunk from 2.43, which never
 * does.
 */
export function intFreeInternal(s: Process, av: Arena, p: number): void {
  if (s.profile.fastbins) intFree(s, av, p);
  else intFreeChunk(s, av, p);
}

/**
 * The dynamic mmap threshold, when an mmapped chunk is freed (__libc_free; _int_free_chunk from
 * 2.43): chunksize_nomask includes the M bit, so a chunk exactly at the threshold raises it, and
 * one of exactly 32 MiB does not.
 */
export function raiseDynamicThresholds(s: Process, p: number): void {
  const ck = s.ck;
  const raw = ck.size[p]! + ck.flags[p]!;
  const mp = s.mp;
  if (!mp.noDynThreshold && raw > mp.mmapThreshold && raw <= DEFAULT_MMAP_THRESHOLD_MAX) {
    mp.mmapThreshold = ck.size[p]!;
    mp.trimThreshold = 2 * mp.mmapThreshold;
    // The other settings' thresholds are raised the same (Process.otherTrimThresholds).
    s.otherTrimThresholds.fill(mp.trimThreshold);
  }
}

/**
 * A comparison of the top with the trim threshold (Process.otherTrimThresholds): whether each
 * other threshold would have changed what happens, when trimming this top would give something
 * back (`acts`).
 */
export function watchTrim(s: Process, top: number, acts: boolean): void {
  if (!acts) return;
  const trims = top >= s.mp.trimThreshold;
  const others = s.otherTrimThresholds;
  const mattered = s.trimThresholdsMattered;
  for (let i = 0; i < others.length; i++)
    if (mattered[i]! < 0 && top >= others[i]! !== trims) mattered[i] = s.eventIndex;
}

/**
 * The coalescing part of _int_free (_int_free_merge_chunk since 2.39, which _int_memalign also
 * calls for the chunk before an aligned block): merges p with a free chunk before it, then
 * intFreeCreateChunk, then intFreeMaybeConsolidate.
 */
export function intFreeMergeChunk(s: Process, av: Arena, p: number, size: number): void {
  const ck = s.ck;
  av.rewrites++;
  const merged = av.merged;
  merged.x = -1;
  merged.n = -1;
  const nextchunk = ck.next[p]!;
  const nextsize = ck.size[nextchunk]!;
  freePerturb(s, p, size - 16);

  if ((ck.flags[p]! & PREV_INUSE) === 0) {
    // p's header stays in memory, inside the chunk before it.
    merged.x = ck.addr[p]!;
    merged.xSize = size;
    merged.xFlags = ck.flags[p]!;
    merged.xPrevSize = ck.prevSize[p]!;
    const prev = ck.prev[p]!;
    size += ck.prevSize[p]!;
    unlinkChunk(s, prev);
    ck.absorb(p);
    p = prev;
  }

  size = intFreeCreateChunk(s, av, p, size, nextchunk, nextsize);
  merged.epoch = av.rewrites;
  intFreeMaybeConsolidate(s, av, size);
}

/**
 * _int_free_create_chunk: merges p (of `size` bytes) with the free chunk or top after it, and bins
 * the result: at the head of the unsorted bin, or, from 2.41 (profile.freeSmallToSmallbin), a
 * small chunk at the head of its small bin. Returns the merged size.
 */
export function intFreeCreateChunk(
  s: Process,
  av: Arena,
  p: number,
  size: number,
  nextchunk: number,
  nextsize: number,
): number {
  const ck = s.ck;
  const merged = av.merged;
  if (nextchunk !== av.top) {
    const nextinuse = (ck.flags[ck.next[nextchunk]!]! & PREV_INUSE) !== 0;
    if (!nextinuse) {
      merged.n = ck.addr[nextchunk]!;
      merged.nSize = nextsize;
      merged.nFlags = ck.flags[nextchunk]!;
      unlinkChunk(s, nextchunk);
      size += nextsize;
      ck.absorb(nextchunk);
    } else {
      clearPrevInuse(s, nextchunk);
    }
    ck.setSize(p, size);
    if (s.profile.freeSmallToSmallbin && inSmallbinRange(size)) insertSmallbinHead(s, av, p, size);
    else insertUnsortedHead(s, av, p, size);
    setHead(s, p, size, PREV_INUSE);
    setFoot(s, p, size);
    // A large chunk's NULL nextsize links (at +32 and +40) land on a header 32 bytes in.
    if (merged.x === ck.addr[p]! + 32 && !inSmallbinRange(size))
      merged.xSize = merged.xFlags = merged.xPrevSize = 0;
  } else {
    merged.n = ck.addr[nextchunk]!;
    merged.nSize = nextsize;
    merged.nFlags = ck.flags[nextchunk]!;
    size += nextsize;
    ck.absorb(nextchunk);
    setHead(s, p, size, PREV_INUSE);
    av.top = p;
    ck.state[p] = St.TOP;
  }
  return size;
}

/**
 * _int_free_maybe_consolidate: a free that left a chunk of FASTBIN_CONSOLIDATION_THRESHOLD or
 * more consolidates the fastbins and gives memory back (systrim, or heap_trim in a thread arena).
 */
export function intFreeMaybeConsolidate(s: Process, av: Arena, size: number): void {
  if (size >= FASTBIN_CONSOLIDATION_THRESHOLD) {
    // Consolidation and trimming rewrite free memory.
    av.rewrites++;
    if (av.haveFastchunks) mallocConsolidate(s, av);
    if (av === s.main) {
      const top = s.ck.size[av.top]!;
      if (s.otherTrimThresholds.length > 0)
        watchTrim(s, top, systrimExtra(s, top, s.mp.topPad) !== 0);
      if (top >= s.mp.trimThreshold) systrim(s, s.mp.topPad, av);
    } else {
      heapTrim(s, av, s.mp.topPad);
    }
  }
}

/** malloc_consolidate: empties every fastbin, coalescing each chunk and putting it in the unsorted bin. */
export function mallocConsolidate(s: Process, av: Arena): void {
  const ck = s.ck;
  av.rewrites++;
  av.haveFastchunks = false;
  for (let i = 0; i < NFASTBINS; i++) {
    let p = av.fastbins[i]!;
    av.fastbins[i] = NIL;
    while (p !== NIL) {
      const nextp = ck.fd[p]!;
      let size = ck.size[p]!;
      const nextchunk = ck.next[p]!;
      const nextsize = ck.size[nextchunk]!;
      ck.state[p] = St.INUSE;

      if ((ck.flags[p]! & PREV_INUSE) === 0) {
        const prev = ck.prev[p]!;
        size += ck.prevSize[p]!;
        unlinkChunk(s, prev);
        ck.absorb(p);
        p = prev;
      }

      if (nextchunk !== av.top) {
        const nextinuse = (ck.flags[ck.next[nextchunk]!]! & PREV_INUSE) !== 0;
        if (!nextinuse) {
          size += nextsize;
          unlinkChunk(s, nextchunk);
          ck.absorb(nextchunk);
        } else {
          clearPrevInuse(s, nextchunk);
        }
        const unsorted = av.bin(1);
        const first = ck.fd[unsorted]!;
        writeFd(s, unsorted, p);
        writeBk(s, first, p);
        if (!inSmallbinRange(size)) writeNextsize(s, p, NIL, NIL);
        setHead(s, p, size, PREV_INUSE);
        writeFdBk(s, p, first, unsorted);
        setFoot(s, p, size);
        ck.state[p] = St.BINNED;
        ck.bin[p] = 1;
      } else {
        size += nextsize;
        ck.absorb(nextchunk);
        setHead(s, p, size, PREV_INUSE);
        av.top = p;
        ck.state[p] = St.TOP;
      }
      p = nextp;
    }
  }
}

/**
 * mmap_size: the whole mapping of an mmapped chunk, from its start (prev_size bytes before the
 * chunk) to its end (from 2.43, CHUNK_HDR_SZ after the chunk: profile.mmapChunkTailHeader).
 */
export function mmapSize(s: Process, p: number): number {
  const ck = s.ck;
  return ck.prevSize[p]! + ck.size[p]! + (s.profile.mmapChunkTailHeader ? 16 : 0);
}

/** munmap_chunk: gives an mmapped chunk's whole mapping back. */
export function munmapChunk(s: Process, p: number): void {
  const ck = s.ck;
  const mem = ck.addr[p]! + 16;
  const block = ck.addr[p]! - ck.prevSize[p]!;
  const total = mmapSize(s, p);
  if (block % PAGE_SIZE !== 0 || total % PAGE_SIZE !== 0 || !powerof2(mem % PAGE_SIZE)) {
    mallocPrinterr(GLIBC_ABORT.MUNMAP_INVALID_POINTER);
  }
  s.mp.nMmaps--;
  s.mp.mmappedMem -= total;
  s.kernel.munmap(block, total);
  ck.release(p);
}
