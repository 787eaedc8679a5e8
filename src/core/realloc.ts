/**
 * Resizing a block. A heap chunk stays where it is when it is already big enough or can grow into
 * the top or into a free chunk after it (tcache and fastbin chunks count as in use); otherwise a
 * new chunk is allocated (which may still turn out to be the very next chunk, for instance when
 * sysmalloc extended a small top in place), the contents copied and the old chunk freed. Whatever
 * is left over after the request, if at least MINSIZE, is split off and freed, which can land in
 * the tcache. An mmapped chunk is resized with mremap and never moves back into a heap.
 *
 * glibc: _int_realloc, mremap_chunk (malloc/malloc.c).
 */

import { unlinkChunk } from './bins.js';
import { NIL, St } from './chunks.js';
import {
  IS_MMAPPED,
  MALLOC_ALIGN_MASK,
  MINSIZE,
  NON_MAIN_ARENA,
  PAGE_SIZE,
  PREV_INUSE,
  SIZE_SZ,
  alignUp,
  powerof2,
} from './constants.js';
import { GLIBC_ABORT, mallocPrinterr } from './errors.js';
import { intFreeInternal, mmapSize } from './free.js';
import { reallocChecks } from './free-checks.js';
import { intMalloc } from './malloc.js';
import { copyUser, setHead, setHeadSize, setInuseBitAfter } from './mem.js';
import type { Arena, Process } from './state.js';

/** _int_realloc: returns the (possibly same) chunk, or NIL when no memory could be found. */
export function intRealloc(
  s: Process,
  av: Arena,
  oldp: number,
  oldsize: number,
  nb: number,
): number {
  const ck = s.ck;
  reallocChecks(s, av, oldp);
  av.rewrites++;
  const aFlag = av !== s.main ? NON_MAIN_ARENA : 0;
  const next = ck.next[oldp]!;
  const nextsize = ck.size[next]!;
  let newp: number;
  let newsize: number;

  if (oldsize >= nb) {
    newp = oldp;
    newsize = oldsize;
  } else if (next === av.top && oldsize + nextsize >= nb + MINSIZE) {
    // Grow into the top: the top simply starts further on.
    newsize = oldsize + nextsize;
    setHeadSize(s, oldp, nb, aFlag);
    ck.addr[next] = ck.addr[oldp]! + nb;
    setHead(s, next, newsize - nb, PREV_INUSE);
    return oldp;
  } else if (
    next !== av.top &&
    (ck.flags[ck.next[next]!]! & PREV_INUSE) === 0 &&
    oldsize + nextsize >= nb
  ) {
    // Grow into the free chunk that follows.
    newp = oldp;
    newsize = oldsize + nextsize;
    unlinkChunk(s, next);
    ck.absorb(next);
    ck.setSize(oldp, newsize);
  } else {
    const nw = intMalloc(s, av, nb - MALLOC_ALIGN_MASK);
    if (nw === NIL) return NIL;
    if (ck.addr[nw] === ck.addr[oldp]! + oldsize) {
      // The new chunk is the next one (a fastbin hit, or a top extended in place): merge, no copy.
      newsize = ck.size[nw]! + oldsize;
      ck.absorb(nw);
      ck.setSize(oldp, newsize);
      newp = oldp;
    } else {
      copyUser(s, oldp, nw, oldsize - SIZE_SZ);
      intFreeInternal(s, av, oldp);
      return nw;
    }
  }

  const remainderSize = newsize - nb;
  if (remainderSize < MINSIZE) {
    setHeadSize(s, newp, newsize, aFlag);
    setInuseBitAfter(s, newp);
  } else {
    const remainder = ck.splitAt(newp, nb);
    setHeadSize(s, newp, nb, aFlag);
    setHead(s, remainder, remainderSize, PREV_INUSE | aFlag);
    setInuseBitAfter(s, remainder);
    ck.state[remainder] = St.INUSE;
    intFreeInternal(s, av, remainder);
  }
  return newp;
}

/** mremap_chunk: resizes an mmapped chunk's mapping; no syscall when its page count stays the same. */
export function mremapChunk(s: Process, p: number, nb: number): number {
  const ck = s.ck;
  const offset = ck.prevSize[p]!;
  const size = ck.size[p]!;
  const block = ck.addr[p]! - offset;
  const mem = ck.addr[p]! + 16;
  const total = mmapSize(s, p);
  if (block % PAGE_SIZE !== 0 || total % PAGE_SIZE !== 0 || !powerof2(mem % PAGE_SIZE)) {
    mallocPrinterr(GLIBC_ABORT.MREMAP_INVALID_POINTER);
  }
  // The mapping's tail: SIZE_SZ, or from 2.43 CHUNK_HDR_SZ (profile.mmapChunkTailHeader).
  const tail = s.profile.mmapChunkTailHeader ? 16 : SIZE_SZ;
  const newSize = alignUp(nb + offset + tail, PAGE_SIZE);
  if (total === newSize) return p;
  const cp = s.kernel.mremap(block, total, newSize);
  if (cp === -1) return NIL;
  if (s.mp.thpPagesize !== 0 && newSize >= s.mp.thpPagesize) s.kernel.madviseHugepage();
  ck.addr[p] = cp + offset;
  setHead(s, p, newSize - offset - (s.profile.mmapChunkTailHeader ? 16 : 0), IS_MMAPPED);
  const mp = s.mp;
  // new_size - size - offset, with size the chunk's: from 2.43 that counts 16 bytes more than
  // the mapping grew (mmapped_mem drifts up by 16 at each mremap).
  mp.mmappedMem += newSize - size - offset;
  if (mp.mmappedMem > mp.maxMmappedMem) mp.maxMmappedMem = mp.mmappedMem;
  return p;
}
