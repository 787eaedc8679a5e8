/**
 * _int_malloc: serving one request from an arena, in glibc 2.36's order of decisions.
 *
 *  1. fastbin of the exact size (LIFO), stashing the rest of that fastbin into the tcache;
 *  2. small bin of the exact size (take the tail, the oldest), stashing the rest into the tcache;
 *     a large request instead consolidates the fastbins first;
 *  3. the unsorted bin, oldest first: the last-remainder rule for small requests, exact fits
 *     (cached in the tcache while it has room), every other chunk sorted into its bin;
 *  4. large requests: best fit in their own large bin;
 *  5. the binmap scan for the smallest non-empty larger bin;
 *  6. the top chunk; if too small, consolidate the fastbins and retry once, else sysmalloc.
 *
 * Returns the chunk handle, or NIL when the system gives no more memory. The caller marks the
 * chunk handed out (state, requested size).
 */

import { unlinkChunk, insertUnsortedHead, placeInBin } from './bins.js';
import { NIL, St } from './chunks.js';
import {
  BINMAPSIZE,
  MAX_ITERS,
  MINSIZE,
  NON_MAIN_ARENA,
  PREV_INUSE,
  checkedRequest2size,
  csize2tidx,
  fastbinIndex,
  inSmallbinRange,
  largebinIndex,
  smallbinIndex,
} from './constants.js';
import { mallocPrinterr, GLIBC_ABORT } from './errors.js';
import { mallocConsolidate } from './free.js';
import {
  allocPerturb,
  setHead,
  setFoot,
  setInuseBitAfter,
  writeBk,
  writeFd,
  writeFdBk,
  writeNextsize,
} from './mem.js';
import { sysmalloc } from './sysmalloc.js';
import { tcacheGet, tcacheInactive, tcacheInitLazy, tcachePut } from './tcache.js';
import type { Arena, Process } from './state.js';

export function intMalloc(s: Process, av: Arena | null, bytes: number): number {
  const ck = s.ck;
  const nb = checkedRequest2size(bytes);
  if (nb === 0) return NIL; // ENOMEM

  // No usable arena: straight to mmap.
  if (av === null) {
    const p = sysmalloc(s, nb, null);
    if (p !== NIL) allocPerturb(s, p, bytes);
    return p;
  }

  av.rewrites++;
  const aFlag = av.index !== 0 ? NON_MAIN_ARENA : 0;
  // Reassigned where 2.43's lazy tcache is allocated in the middle of this call.
  let tc = s.thread.tcache;
  const lazy = s.profile.lazyTcache;
  const mp = s.mp;
  let idx: number;

  // ---- fastbins
  if (nb <= s.globalMaxFast) {
    idx = fastbinIndex(nb);
    const victim = av.fastbins[idx]!;
    if (victim !== NIL) {
      av.fastbins[idx] = ck.fd[victim]!;
      const tcIdx = csize2tidx(nb);
      if (tc !== null && tcIdx < mp.tcacheBins) {
        let tcVictim: number;
        while (tc.counts[tcIdx]! < mp.tcacheCount && (tcVictim = av.fastbins[idx]!) !== NIL) {
          av.fastbins[idx] = ck.fd[tcVictim]!;
          tcachePut(s, tc, tcVictim, tcIdx);
        }
      }
      ck.state[victim] = St.INUSE;
      allocPerturb(s, victim, bytes);
      return victim;
    }
  }

  // ---- small bins, or consolidation before a large request
  if (inSmallbinRange(nb)) {
    idx = smallbinIndex(nb);
    const bin = av.bin(idx);
    const victim = ck.bk[bin]!;
    if (victim !== bin) {
      const bck = ck.bk[victim]!;
      setInuseBitAfter(s, victim);
      writeBk(s, bin, bck);
      writeFd(s, bck, bin);
      if (aFlag !== 0) setArenaBit(s, victim);
      ck.state[victim] = St.INUSE;
      const tcIdx = csize2tidx(nb);
      // 2.43 on: a tcache still the dummy is allocated here (tcache_init (av)), from this arena.
      if (lazy && tcIdx < mp.tcacheBins && tcacheInactive(s)) {
        tcacheInitLazy(s, av);
        tc = s.thread.tcache;
      }
      if (tc !== null && tcIdx < mp.tcacheBins) {
        let tcVictim: number;
        while (tc.counts[tcIdx]! < mp.tcacheCount && (tcVictim = ck.bk[bin]!) !== bin) {
          const b = ck.bk[tcVictim]!;
          setInuseBitAfter(s, tcVictim);
          if (aFlag !== 0) setArenaBit(s, tcVictim);
          writeBk(s, bin, b);
          writeFd(s, b, bin);
          tcachePut(s, tc, tcVictim, tcIdx);
        }
      }
      allocPerturb(s, victim, bytes);
      return victim;
    }
  } else {
    idx = largebinIndex(nb);
    if (av.haveFastchunks) mallocConsolidate(s, av);
  }

  const tcIdx = csize2tidx(nb);
  const tcacheNb = (tc !== null || lazy) && tcIdx < mp.tcacheBins ? nb : 0;
  // 2.44 returns an exact fit at once (profile.unsortedStash).
  const stash = s.profile.unsortedStash;
  let returnCached = false;
  let tcacheUnsortedCount = 0;
  const unsorted = av.bin(1);

  for (;;) {
    // ---- the unsorted bin, oldest first
    let iters = 0;
    let victim: number;
    while ((victim = ck.bk[unsorted]!) !== unsorted) {
      const bck = ck.bk[victim]!;
      const size = ck.size[victim]!;

      // The last remainder keeps serving runs of small requests.
      if (
        inSmallbinRange(nb) &&
        bck === unsorted &&
        ck.addr[victim] === av.lastRemainder &&
        size > nb + MINSIZE
      ) {
        const remainderSize = size - nb;
        const remainder = ck.splitAt(victim, nb);
        writeBk(s, unsorted, remainder);
        writeFd(s, unsorted, remainder);
        av.lastRemainder = ck.addr[remainder]!;
        writeFdBk(s, remainder, unsorted, unsorted);
        if (!inSmallbinRange(remainderSize)) writeNextsize(s, remainder, NIL, NIL);
        setHead(s, victim, nb, PREV_INUSE | aFlag);
        setHead(s, remainder, remainderSize, PREV_INUSE);
        setFoot(s, remainder, remainderSize);
        ck.state[remainder] = St.BINNED;
        ck.bin[remainder] = 1;
        ck.state[victim] = St.INUSE;
        allocPerturb(s, victim, bytes);
        return victim;
      }

      // Take it off the unsorted list.
      writeBk(s, unsorted, bck);
      writeFd(s, bck, unsorted);

      if (size === nb) {
        setInuseBitAfter(s, victim);
        if (aFlag !== 0) setArenaBit(s, victim);
        ck.state[victim] = St.INUSE;
        if (lazy && stash && tcacheInactive(s)) {
          tcacheInitLazy(s, av);
          tc = s.thread.tcache;
        }
        if (stash && tcacheNb !== 0 && tc !== null && tc.counts[tcIdx]! < mp.tcacheCount) {
          // Fill the cache first; one of these is returned once the loop ends.
          tcachePut(s, tc, victim, tcIdx);
          returnCached = true;
          continue;
        }
        allocPerturb(s, victim, bytes);
        return victim;
      }

      placeInBin(s, av, victim, size);

      ++tcacheUnsortedCount;
      if (
        returnCached &&
        mp.tcacheUnsortedLimit > 0 &&
        tcacheUnsortedCount > mp.tcacheUnsortedLimit
      ) {
        return tcacheGet(s, tc!, tcIdx);
      }
      if (++iters >= MAX_ITERS) break;
    }

    if (returnCached) return tcacheGet(s, tc!, tcIdx);

    // ---- the bins above the unsorted one: best fit, then the binmap scan
    const found = searchBins(s, av, nb, idx, bytes, aFlag);
    if (found !== NIL) return found;

    // ---- the top chunk
    const top = av.top;
    const size = ck.size[top]!;
    if (size > av.systemMem) mallocPrinterr(GLIBC_ABORT.CORRUPTED_TOP_SIZE);
    if (size >= nb + MINSIZE) {
      const remainder = ck.splitAt(top, nb);
      av.top = remainder;
      ck.state[remainder] = St.TOP;
      setHead(s, top, nb, PREV_INUSE | aFlag);
      setHead(s, remainder, size - nb, PREV_INUSE);
      ck.state[top] = St.INUSE;
      allocPerturb(s, top, bytes);
      return top;
    } else if (av.haveFastchunks) {
      mallocConsolidate(s, av);
      idx = inSmallbinRange(nb) ? smallbinIndex(nb) : largebinIndex(nb);
    } else {
      const p = sysmalloc(s, nb, av);
      if (p !== NIL) allocPerturb(s, p, bytes);
      return p;
    }
  }
}

/**
 * The regular bins for a request the unsorted pass did not serve: best fit in a large request's
 * own bin, then the smallest non-empty larger bin from the binmap. Returns the chunk, or NIL when
 * only the top (or the system) can serve it. Kept apart from intMalloc, whose hot paths stay small.
 */
function searchBins(
  s: Process,
  av: Arena,
  nb: number,
  idx: number,
  bytes: number,
  aFlag: number,
): number {
  const ck = s.ck;
  // ---- large request: best fit within its own bin
  if (!inSmallbinRange(nb)) {
    const bin = av.bin(idx);
    let v = ck.fd[bin]!;
    if (v !== bin && ck.size[v]! >= nb) {
      v = ck.bkNext[v]!;
      let size: number;
      while ((size = ck.size[v]!) < nb) v = ck.bkNext[v]!;
      // Avoid taking the chunk that carries the nextsize links when another of its size follows.
      if (v !== ck.bk[bin]! && ck.size[v] === ck.size[ck.fd[v]!]) v = ck.fd[v]!;
      const remainderSize = size - nb;
      unlinkChunk(s, v);
      if (remainderSize < MINSIZE) {
        setInuseBitAfter(s, v);
        if (aFlag !== 0) setArenaBit(s, v);
      } else {
        const remainder = ck.splitAt(v, nb);
        insertUnsortedHead(s, av, remainder, remainderSize);
        setHead(s, v, nb, PREV_INUSE | aFlag);
        setHead(s, remainder, remainderSize, PREV_INUSE);
        setFoot(s, remainder, remainderSize);
      }
      ck.state[v] = St.INUSE;
      allocPerturb(s, v, bytes);
      return v;
    }
  }

  // ---- binmap scan: the smallest non-empty bin above idx
  ++idx;
  let block = idx >>> 5;
  let map = av.binmap[block]!;
  let bit = (1 << (idx & 31)) >>> 0;
  let bin = av.bin(idx);
  let useTop = false;
  for (;;) {
    if (bit > map || bit === 0) {
      do {
        if (++block >= BINMAPSIZE) {
          useTop = true;
          break;
        }
      } while ((map = av.binmap[block]!) === 0);
      if (useTop) break;
      bin = av.bin(block << 5);
      bit = 1;
    }
    while ((bit & map) === 0) {
      bin++;
      bit = (bit << 1) >>> 0;
    }
    const v = ck.bk[bin]!;
    if (v === bin) {
      // A false alarm: the bin emptied since its bit was set.
      map = (map & ~bit) >>> 0;
      av.binmap[block] = map;
      bin++;
      bit = (bit << 1) >>> 0;
      continue;
    }
    const size = ck.size[v]!;
    const remainderSize = size - nb;
    unlinkChunk(s, v);
    if (remainderSize < MINSIZE) {
      setInuseBitAfter(s, v);
      if (aFlag !== 0) setArenaBit(s, v);
    } else {
      const remainder = ck.splitAt(v, nb);
      insertUnsortedHead(s, av, remainder, remainderSize);
      if (inSmallbinRange(nb)) av.lastRemainder = ck.addr[remainder]!;
      setHead(s, v, nb, PREV_INUSE | aFlag);
      setHead(s, remainder, remainderSize, PREV_INUSE);
      setFoot(s, remainder, remainderSize);
    }
    ck.state[v] = St.INUSE;
    allocPerturb(s, v, bytes);
    return v;
  }

  return NIL;
}

/** set_non_main_arena */
function setArenaBit(s: Process, p: number): void {
  s.ck.flags[p] = s.ck.flags[p]! | NON_MAIN_ARENA;
  s.kernel.touch(s.ck.addr[p]! + 8);
}
