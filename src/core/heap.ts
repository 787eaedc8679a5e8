/**
 * Non-main heaps. A heap is a 64 MiB reservation aligned to 64 MiB (so that heap_for_ptr is a
 * mask of the address), mapped PROT_NONE and made accessible from its start as it grows, with
 * heap_info at its start. The first heap of an arena also holds the arena's malloc_state; a later
 * heap is started when the current one cannot grow, and the old top is fenced off with a 16-byte
 * in-use chunk and a size-0 header and freed.
 *
 * Reservation: mmap twice the size and unmap the misaligned lead and the tail; when the mapping
 * happened to be aligned, remember the address after it (aligned_heap_area) and try that first next
 * time. Growth: mprotect beyond what was ever made accessible. Shrinking: madvise(MADV_DONTNEED)
 * (or a fresh PROT_NONE mapping under vm.overcommit_memory=2), only once the top exceeds the trim
 * threshold. Deletion: a heap holding nothing but its top goes away (munmap of the whole 64 MiB)
 * when the heap before it has enough free room at its end.
 *
 * glibc: heap_for_ptr, new_heap, alloc_new_heap, grow_heap, shrink_heap, heap_trim (malloc/arena.c)
 * and the non-main branch of sysmalloc (malloc/malloc.c).
 */

import { NIL, St } from './chunks.js';
import {
  CHUNK_HDR_SZ,
  HEAP_MAX_SIZE,
  HEAP_MIN_SIZE,
  MALLOC_ALIGNMENT,
  MINSIZE,
  NON_MAIN_ARENA,
  PAGE_SIZE,
  PREV_INUSE,
  alignDown,
  alignUp,
} from './constants.js';
import { unlinkChunk } from './bins.js';
import { intFreeInternal, watchTrim } from './free.js';
import { setFoot, setHead } from './mem.js';
import type { Arena, HeapInfo, Process } from './state.js';

/** The key of Process.heaps for the heap whose reservation would hold address a. */
export function heapKey(a: number): number {
  return Math.floor(a / HEAP_MAX_SIZE);
}

/** heap_for_ptr: the heap whose 64 MiB-aligned reservation holds address a. */
export function heapForPtr(s: Process, a: number): HeapInfo {
  const hint = s.heapHint;
  if (hint !== null && a >= hint.start && a < hint.start + HEAP_MAX_SIZE) return hint;
  const h = s.heaps.get(heapKey(a));
  if (h === undefined) throw new Error(`ptsim internal error: no heap holds 0x${a.toString(16)}`);
  s.heapHint = h;
  return h;
}

/** alloc_new_heap / new_heap: reserves and opens a heap of at least `size` (+ top_pad) bytes. */
export function newHeap(s: Process, size: number, topPad: number): HeapInfo | null {
  const k = s.kernel;
  const max = HEAP_MAX_SIZE;
  if (size + topPad < HEAP_MIN_SIZE) size = HEAP_MIN_SIZE;
  else if (size + topPad <= max) size += topPad;
  else if (size > max) return null;
  else size = max;
  size = alignUp(size, PAGE_SIZE);

  let p2 = -1;
  if (s.alignedHeapArea !== 0) {
    p2 = k.mmap(max, s.alignedHeapArea);
    s.alignedHeapArea = 0;
    if (p2 !== -1 && p2 % max !== 0) {
      k.munmap(p2, max);
      p2 = -1;
    }
  }
  if (p2 === -1) {
    const p1 = k.mmap(max * 2);
    if (p1 !== -1) {
      p2 = alignUp(p1, max);
      const ul = p2 - p1;
      if (ul !== 0) k.munmap(p1, ul);
      else s.alignedHeapArea = p2 + max;
      k.munmap(p2 + max, max - ul);
    } else {
      p2 = k.mmap(max);
      if (p2 === -1) return null;
      if (p2 % max !== 0) {
        k.munmap(p2, max);
        return null;
      }
    }
  }
  k.mprotect(p2, size);
  if (s.mp.thpPagesize !== 0 && size >= s.mp.thpPagesize) k.madviseHugepage();
  k.touch(p2); // heap_info's fields
  return { start: p2, size, mprotectSize: size, number: 0, prev: null, arena: s.main, fence: NIL };
}

/** grow_heap: 0 on success, -1 when the heap would pass 64 MiB. */
function growHeap(s: Process, h: HeapInfo, diff: number): number {
  diff = alignUp(diff, PAGE_SIZE);
  const newSize = h.size + diff;
  if (newSize > HEAP_MAX_SIZE) return -1;
  if (newSize > h.mprotectSize) {
    s.kernel.mprotect(h.start + h.mprotectSize, newSize - h.mprotectSize);
    h.mprotectSize = newSize;
  }
  h.size = newSize;
  s.kernel.touch(h.start);
  return 0;
}

/** shrink_heap */
function shrinkHeap(s: Process, h: HeapInfo, diff: number): number {
  const newSize = h.size - diff;
  if (newSize < s.profile.heapInfoSize) return -1;
  if (s.mayShrinkHeap) {
    // A fresh PROT_NONE mapping over the tail: its pages are gone and it must be mprotected again.
    s.kernel.mmapFixed(h.start + newSize, diff);
    h.mprotectSize = newSize;
  } else {
    s.kernel.madviseDontneed(h.start + newSize, diff);
  }
  h.size = newSize;
  s.kernel.touch(h.start);
  return 0;
}

/**
 * sysmalloc for a non-main arena: grow the top's heap, else start a new heap (fencing off and
 * freeing the old top). Returns false when neither worked.
 */
export function growHeapForTop(
  s: Process,
  av: Arena,
  nb: number,
  oldTop: number,
  oldSize: number,
): boolean {
  const ck = s.ck;
  const oldHeap = heapForPtr(s, ck.addr[oldTop]!);
  const oldHeapSize = oldHeap.size;
  const diff = MINSIZE + nb - oldSize;
  if (diff > 0 && growHeap(s, oldHeap, diff) === 0) {
    av.systemMem += oldHeap.size - oldHeapSize;
    setHead(s, oldTop, oldHeap.start + oldHeap.size - ck.addr[oldTop]!, PREV_INUSE);
    return true;
  }
  const heapInfo = s.profile.heapInfoSize;
  const heap = newHeap(s, nb + (MINSIZE + heapInfo), s.mp.topPad);
  if (heap === null) return false;
  heap.arena = av;
  heap.prev = oldHeap;
  heap.number = oldHeap.number + 1;
  s.heaps.set(heapKey(heap.start), heap);
  av.heap = heap;
  av.systemMem += heap.size;
  const top = ck.alloc(heap.start + heapInfo);
  setHead(s, top, heap.size - heapInfo, PREV_INUSE);
  ck.state[top] = St.TOP;
  av.top = top;

  // The fencepost: at least MINSIZE bytes, as it may become the top again one day.
  oldSize = alignDown(oldSize - MINSIZE, MALLOC_ALIGNMENT);
  ck.state[oldTop] = St.INUSE;
  if (oldSize >= MINSIZE) {
    const f16 = ck.splitAt(oldTop, oldSize);
    const f0 = ck.splitAt(f16, CHUNK_HDR_SZ);
    setHead(s, f0, 0, PREV_INUSE);
    setHead(s, f16, CHUNK_HDR_SZ, PREV_INUSE);
    setFoot(s, f16, CHUNK_HDR_SZ);
    setHead(s, oldTop, oldSize, PREV_INUSE | NON_MAIN_ARENA);
    oldHeap.fence = f0;
    intFreeInternal(s, av, oldTop);
  } else {
    const f0 = ck.splitAt(oldTop, oldSize + CHUNK_HDR_SZ);
    setHead(s, f0, 0, PREV_INUSE);
    setHead(s, oldTop, oldSize + CHUNK_HDR_SZ, PREV_INUSE);
    setFoot(s, oldTop, oldSize + CHUNK_HDR_SZ);
    oldHeap.fence = f0;
  }
  return true;
}

/** What heap_trim would give back of a top of `topSize` bytes keeping `pad` (0: nothing). */
function heapTrimExtra(topSize: number, pad: number): number {
  const topArea = topSize - MINSIZE - 1;
  if (topArea < 0 || topArea <= pad) return 0;
  return alignDown(topArea - pad, PAGE_SIZE);
}

/**
 * heap_trim: deletes heaps that hold nothing but the top while the heap before them has enough free
 * room at its end, then shrinks the top's heap down to `pad` once the top reaches trim_threshold.
 * Returns 1 if the heap was shrunk.
 */
export function heapTrim(s: Process, av: Arena, pad: number): number {
  const ck = s.ck;
  let heap = heapForPtr(s, ck.addr[av.top]!);
  let topChunk = av.top;

  const heapInfo = s.profile.heapInfoSize;
  while (ck.addr[topChunk] === heap.start + heapInfo) {
    const prevHeap = heap.prev;
    if (prevHeap === null) break;
    const fence = prevHeap.fence;
    let p = ck.prev[fence]!; // the 16-byte fencepost chunk (prev_chunk through the fence's prev_size)
    let newSize = ck.size[p]! + (MINSIZE - 2 * 8);
    const prevFree = (ck.flags[p]! & PREV_INUSE) === 0;
    if (prevFree) newSize += ck.prevSize[p]!;
    if (newSize + (HEAP_MAX_SIZE - prevHeap.size) < pad + MINSIZE + PAGE_SIZE) break;

    av.systemMem -= heap.size;
    if (heap.start + HEAP_MAX_SIZE === s.alignedHeapArea) s.alignedHeapArea = 0;
    s.kernel.munmap(heap.start, HEAP_MAX_SIZE);
    s.heaps.delete(heapKey(heap.start));
    if (s.heapHint === heap) s.heapHint = null;
    ck.release(topChunk);
    heap = prevHeap;
    av.heap = heap;
    heap.fence = NIL;
    if (prevFree) {
      p = ck.prev[p]!;
      unlinkChunk(s, p);
    }
    // p absorbs the fenceposts after it and becomes the top, ending at the heap's end.
    while (ck.next[p] !== NIL) ck.absorb(ck.next[p]!);
    topChunk = p;
    av.top = p;
    ck.state[p] = St.TOP;
    setHead(s, p, newSize, PREV_INUSE);
  }

  const topSize = ck.size[topChunk]!;
  const extra = heapTrimExtra(topSize, pad);
  if (s.otherTrimThresholds.length > 0) watchTrim(s, topSize, extra !== 0);
  if (topSize < s.mp.trimThreshold) return 0;
  if (extra === 0) return 0;
  if (shrinkHeap(s, heap, extra) !== 0) return 0;
  av.systemMem -= extra;
  setHead(s, topChunk, topSize - extra, PREV_INUSE);
  return 1;
}
