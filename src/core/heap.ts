/**
 * Non-main heaps: 64 MiB-aligned reservations grown with mprotect, trimmed with madvise and
 * deleted with munmap (new_heap, grow_heap, shrink_heap, heap_trim in malloc/arena.c).
 *
 * Not modelled yet: only the main arena exists so far, and these entry points refuse to run.
 */

import { HEAP_MAX_SIZE } from './constants.js';
import { ModelLimit } from './errors.js';
import type { Arena, HeapInfo, Process } from './state.js';

/** heap_for_ptr: the heap whose 64 MiB-aligned reservation holds address a. */
export function heapForPtr(s: Process, a: number): HeapInfo {
  const h = s.heaps.get(Math.floor(a / HEAP_MAX_SIZE) * HEAP_MAX_SIZE);
  if (h === undefined) throw new Error(`ptsim internal error: no heap holds 0x${a.toString(16)}`);
  return h;
}

/** sysmalloc's non-main branch: grow the top's heap, or start a new heap. Returns false if neither worked. */
export function growHeapForTop(_s: Process, _av: Arena, _nb: number, _oldTop: number, _oldSize: number): boolean {
  throw new ModelLimit('growing a non-main heap is not modelled yet');
}

/** heap_trim */
export function heapTrim(_s: Process, _av: Arena, _pad: number): number {
  throw new ModelLimit('trimming a non-main heap is not modelled yet');
}
