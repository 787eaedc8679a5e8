/**
 * Getting memory from the kernel and giving it back: sysmalloc (mmap a chunk of its own, or grow
 * the arena: the program break for the main arena, the heap for others), systrim (lower the
 * break when the top is large), and libc's sbrk beneath them, with its cached break.
 *
 * Main arena growth asks for nb + top_pad + MINSIZE bytes less what the top already has, rounded
 * up to a page. When the break cannot move, glibc falls back to an mmap'd region: because
 * sysmalloc_mmap_fallback's last two size arguments are passed the wrong way round in 2.35-2.37,
 * that region is rounded up to 1 MiB (with a 4 KiB minimum), and the arena is non-contiguous from
 * then on. Every region that cannot join the old top fences the old top off with two 16-byte
 * in-use chunks and frees what is left of it.
 *
 * glibc: sysmalloc, sysmalloc_mmap, sysmalloc_mmap_fallback, systrim (malloc/malloc.c),
 * __sbrk (misc/sbrk.c), __glibc_morecore (malloc/morecore.c).
 */

import { NIL, St } from './chunks.js';
import {
  CHUNK_HDR_SZ,
  IS_MMAPPED,
  MALLOC_ALIGNMENT,
  MINSIZE,
  MMAP_AS_MORECORE_SIZE,
  NON_MAIN_ARENA,
  PAGE_SIZE,
  PREV_INUSE,
  SIZE_SZ,
  alignDown,
  alignUp,
} from './constants.js';
import { GLIBC_ABORT, mallocPrinterr } from './errors.js';
import { intFreeInternal } from './free.js';
import { growHeapForTop } from './heap.js';
import { setHead, setPrevSize } from './mem.js';
import type { Arena, Process } from './state.js';

/** __sbrk: moves the break by `increment`; returns the old break, or -1. */
function sbrk(s: Process, increment: number): number {
  if (s.curbrk === null) s.curbrk = s.kernel.brk(0);
  if (increment === 0) return s.curbrk;
  const old = s.curbrk;
  const want = old + increment;
  if (want < 0) return -1;
  const got = s.kernel.brk(want);
  s.curbrk = got;
  if (got < want) return -1;
  return old;
}

/** MORECORE (__glibc_morecore): sbrk with 0 for failure. */
function morecore(s: Process, increment: number): number {
  if (s.alwaysFailMorecore) return 0;
  const r = sbrk(s, increment);
  return r === -1 ? 0 : r;
}

/** madvise_thp: with glibc.malloc.hugetlb=1, large regions are advised to use huge pages. */
function madviseThp(s: Process, size: number): void {
  if (s.mp.thpPagesize === 0 || size < s.mp.thpPagesize) return;
  s.kernel.madviseHugepage();
}

/**
 * sysmalloc_mmap: a chunk with a mapping of its own. Returns the chunk, or NIL. From 2.43
 * (profile.mmapChunkTailHeader) the mapping keeps CHUNK_HDR_SZ after the chunk (mmap_set_chunk).
 */
function sysmallocMmap(s: Process, nb: number, pagesize: number): number {
  const tail = s.profile.mmapChunkTailHeader ? CHUNK_HDR_SZ : SIZE_SZ;
  const size = alignUp(nb + tail, pagesize);
  if (size <= nb) return NIL;
  const mm = s.kernel.mmap(size);
  if (mm === -1) return NIL;
  madviseThp(s, size);
  const ck = s.ck;
  const p = ck.alloc(mm);
  setPrevSize(s, p, 0);
  setHead(s, p, s.profile.mmapChunkTailHeader ? size - CHUNK_HDR_SZ : size, IS_MMAPPED);
  const mp = s.mp;
  mp.nMmaps++;
  if (mp.nMmaps > mp.maxNMmaps) mp.maxNMmaps = mp.nMmaps;
  mp.mmappedMem += size;
  if (mp.mmappedMem > mp.maxMmappedMem) mp.maxMmappedMem = mp.mmappedMem;
  return p;
}

/** sysmalloc: serves nb when the arena's top is too small. Returns the chunk, or NIL (ENOMEM). */
export function sysmalloc(s: Process, nb: number, av: Arena | null): number {
  const ck = s.ck;
  const mp = s.mp;
  let triedMmap = false;

  if (av === null || (nb >= mp.mmapThreshold && mp.nMmaps < mp.nMmapsMax)) {
    const mm = sysmallocMmap(s, nb, PAGE_SIZE);
    if (mm !== NIL) return mm;
    triedMmap = true;
  }
  if (av === null) return NIL;

  const oldTop = av.top;
  let oldSize = ck.size[oldTop]!;
  const oldEnd = ck.addr[oldTop]! + oldSize;

  if (av !== s.main) {
    if (!growHeapForTop(s, av, nb, oldTop, oldSize) && !triedMmap) {
      const mm = sysmallocMmap(s, nb, PAGE_SIZE);
      if (mm !== NIL) return mm;
    }
  } else {
    let brk = 0;
    let sndBrk = 0;
    let size = nb + mp.topPad + MINSIZE;
    if (av.contiguous) size -= oldSize;
    if (mp.thpPagesize !== 0) {
      const cur = s.curbrk ?? 0;
      size = alignUp(cur + size, mp.thpPagesize) - cur;
    } else {
      size = alignUp(size, PAGE_SIZE);
    }
    if (size > 0) {
      brk = morecore(s, size);
      if (brk !== 0) madviseThp(s, size);
    }
    if (brk === 0) {
      // sysmalloc_mmap_fallback: pages, at least MMAP_AS_MORECORE_SIZE; 2.35 to 2.37 swap the
      // two sizes (1 MiB units, 4 KiB minimum).
      const swapped = s.profile.mmapFallbackSwapped;
      const unit = swapped ? MMAP_AS_MORECORE_SIZE : PAGE_SIZE;
      const least = swapped ? PAGE_SIZE : MMAP_AS_MORECORE_SIZE;
      let fsize = size;
      // 2.43 on: the request's own size, nb + top_pad + MINSIZE, in pages.
      if (s.profile.mmapFallbackFromRequest) fsize = alignUp(nb + mp.topPad + MINSIZE, PAGE_SIZE);
      else if (av.contiguous) fsize = alignUp(fsize + oldSize, unit);
      if (fsize < least) fsize = least;
      if (fsize > nb || s.profile.mmapFallbackFromRequest) {
        const mbrk = s.kernel.mmap(fsize);
        if (mbrk !== -1) {
          madviseThp(s, fsize);
          av.contiguous = false;
          size = fsize;
          brk = mbrk;
          sndBrk = brk + size;
        }
      }
    }

    if (brk !== 0) {
      if (mp.sbrkBase === 0) mp.sbrkBase = brk;
      av.systemMem += size;

      if (brk === oldEnd && sndBrk === 0) {
        setHead(s, oldTop, size + oldSize, PREV_INUSE);
      } else if (av.contiguous && oldSize !== 0 && brk < oldEnd) {
        mallocPrinterr(GLIBC_ABORT.BREAK_ADJUSTED);
      } else {
        let correction = 0;
        let alignedBrk = brk;
        if (av.contiguous) {
          // First time, or someone else moved the break: the old top cannot be extended.
          if (oldSize !== 0) av.systemMem += brk - oldEnd;
          const frontMisalign = (brk + CHUNK_HDR_SZ) % MALLOC_ALIGNMENT;
          if (frontMisalign > 0) {
            correction = MALLOC_ALIGNMENT - frontMisalign;
            alignedBrk += correction;
          }
          correction += oldSize;
          const endMisalign = brk + size + correction;
          correction += alignUp(endMisalign, PAGE_SIZE) - endMisalign;
          sndBrk = morecore(s, correction);
          if (sndBrk === 0) {
            correction = 0;
            sndBrk = morecore(s, 0);
          } else {
            madviseThp(s, correction);
          }
        } else if (sndBrk === 0) {
          sndBrk = morecore(s, 0);
        }

        if (sndBrk !== 0) {
          const top = ck.alloc(alignedBrk);
          setHead(s, top, sndBrk - alignedBrk + correction, PREV_INUSE);
          ck.state[top] = St.TOP;
          av.top = top;
          av.systemMem += correction;

          if (oldSize !== 0) {
            // Fence the old top off with two 16-byte in-use chunks and free what is left of it.
            oldSize = alignDown(oldSize - 2 * CHUNK_HDR_SZ, MALLOC_ALIGNMENT);
            ck.state[oldTop] = St.INUSE;
            setHead(s, oldTop, oldSize, PREV_INUSE);
            const f1 = oldSize === 0 ? oldTop : ck.splitAt(oldTop, oldSize);
            setHead(s, f1, CHUNK_HDR_SZ, PREV_INUSE);
            const f2 = ck.splitAt(f1, CHUNK_HDR_SZ);
            setHead(s, f2, CHUNK_HDR_SZ, PREV_INUSE);
            if (oldSize >= MINSIZE) intFreeInternal(s, av, oldTop);
          }
        }
      }
    }
  }

  if (av.systemMem > av.maxSystemMem) av.maxSystemMem = av.systemMem;

  const p = av.top;
  const size = ck.size[p]!;
  if (size >= nb + MINSIZE) {
    const remainder = ck.splitAt(p, nb);
    av.top = remainder;
    ck.state[remainder] = St.TOP;
    setHead(s, p, nb, PREV_INUSE | (av !== s.main ? NON_MAIN_ARENA : 0));
    setHead(s, remainder, size - nb, PREV_INUSE);
    ck.state[p] = St.INUSE;
    return p;
  }
  return NIL; // ENOMEM
}

/**
 * What systrim would give back of a top of `topSize` bytes keeping `pad` (0: it returns at once,
 * having done nothing).
 */
export function systrimExtra(s: Process, topSize: number, pad: number): number {
  // top_area is a long compared with the unsigned pad: a negative area never counts as small.
  const topArea = topSize - MINSIZE - 1;
  if ((topArea < 0 ? topArea + 2 ** 64 : topArea) <= pad) return 0;
  const unit = s.mp.thpPagesize !== 0 ? s.mp.thpPagesize : PAGE_SIZE;
  // ALIGN_DOWN in two's complement: a floor, also for the negative case above.
  return alignDown(topArea - pad, unit);
}

/** systrim: lowers the break to give back top memory above `pad`. Returns 1 if anything was released. */
export function systrim(s: Process, pad: number, av: Arena): number {
  const ck = s.ck;
  const topSize = ck.size[av.top]!;
  const extra = systrimExtra(s, topSize, pad);
  if (extra === 0) return 0;
  const currentBrk = morecore(s, 0);
  if (currentBrk === ck.addr[av.top]! + topSize) {
    morecore(s, -extra);
    const newBrk = morecore(s, 0);
    if (newBrk !== 0) {
      const released = currentBrk - newBrk;
      if (released !== 0) {
        av.systemMem -= released;
        setHead(s, av.top, topSize - released, PREV_INUSE);
        return 1;
      }
    }
  }
  return 0;
}
