/**
 * Aligned allocation: _int_malloc of nb + alignment + MINSIZE bytes, then the first aligned spot
 * inside that chunk that leaves room for a leading chunk of at least MINSIZE. The lead is freed
 * (up to 2.38 through _int_free, so it may go to the tcache or a fastbin; from 2.39 merged and
 * binned); a tail of more than MINSIZE beyond the request is split off and freed too (from 2.39,
 * any tail that makes a chunk, merged with what follows). An mmapped chunk only moves its start: the lead stays in
 * the mapping (counted in prev_size) and nothing is unmapped.
 *
 * From 2.43 only a tail of at least MINSIZE goes back, and an mmapped chunk moves to the first
 * aligned spot, without a lead of MINSIZE.
 *
 * glibc: _int_memalign (malloc/malloc.c), with the Debian 2.36 fix for alignments above
 * PTRDIFF_MAX.
 */

import { NIL } from './chunks.js';
import {
  IS_MMAPPED,
  MINSIZE,
  NON_MAIN_ARENA,
  PREV_INUSE,
  PTRDIFF_LIMIT,
  alignUp,
  checkedRequest2size,
} from './constants.js';
import { intFree, intFreeCreateChunk, intFreeMaybeConsolidate, intFreeMergeChunk } from './free.js';
import { intMalloc } from './malloc.js';
import { setHead, setHeadSize, setInuseBitAfter, setPrevSize } from './mem.js';
import type { Arena, Process } from './state.js';

export function intMemalign(
  s: Process,
  av: Arena | null,
  alignment: number,
  bytes: number,
): number {
  const ck = s.ck;
  const nb = checkedRequest2size(bytes);
  if (nb === 0 || alignment >= PTRDIFF_LIMIT) return NIL; // ENOMEM
  const aFlag = av !== null && av !== s.main ? NON_MAIN_ARENA : 0;

  let p = intMalloc(s, av, nb + alignment + MINSIZE);
  if (p === NIL) return NIL;

  const mem = ck.addr[p]! + 16;
  if (mem % alignment !== 0) {
    let brk = alignUp(mem, alignment) - 16;
    if (brk - ck.addr[p]! < MINSIZE) brk += alignment;
    const leadsize = brk - ck.addr[p]!;
    const newsize = ck.size[p]! - leadsize;

    if ((ck.flags[p]! & IS_MMAPPED) !== 0) {
      const prev = ck.prevSize[p]!;
      if (s.profile.mmapChunkTailHeader) {
        // 2.43 on: the first aligned spot, however close (mmap_set_chunk).
        const at = alignUp(mem, alignment) - 16;
        const lead = at - ck.addr[p]!;
        ck.addr[p] = at;
        setPrevSize(s, p, prev + lead);
        setHead(s, p, ck.size[p]! - lead, IS_MMAPPED);
        return p;
      }
      ck.addr[p] = brk;
      setPrevSize(s, p, prev + leadsize);
      setHead(s, p, newsize, IS_MMAPPED);
      return p;
    }

    const newp = ck.splitAt(p, leadsize);
    setHead(s, newp, newsize, PREV_INUSE | aFlag);
    setInuseBitAfter(s, newp);
    setHeadSize(s, p, leadsize, aFlag);
    // From 2.39 the lead is merged and binned, never cached (_int_free_merge_chunk).
    if (s.profile.memalignMergesRemainders) intFreeMergeChunk(s, av!, p, leadsize);
    else intFree(s, av!, p);
    p = newp;
  }

  if ((ck.flags[p]! & IS_MMAPPED) === 0) {
    const size = ck.size[p]!;
    if (s.profile.memalignMergesRemainders) {
      // 2.39 on: any spare room at the end goes back, merged with what follows, when it makes a
      // chunk: at least MINSIZE, or next to a free chunk or the top (_int_free_create_chunk).
      const next = ck.next[p]!;
      const nextsize = ck.size[next]!;
      const spare = size - nb;
      // 2.43 on: only a tail of at least MINSIZE (profile.memalignTailNeedsMinsize).
      const nextFree =
        !s.profile.memalignTailNeedsMinsize &&
        (next === av!.top || (ck.flags[ck.next[next]!]! & PREV_INUSE) === 0);
      if (spare > 0 && (spare >= MINSIZE || nextFree)) {
        const remainder = ck.splitAt(p, nb);
        setHeadSize(s, p, nb, 0);
        av!.rewrites++;
        av!.merged.x = -1;
        av!.merged.n = -1;
        const merged = intFreeCreateChunk(s, av!, remainder, spare, next, nextsize);
        av!.merged.epoch = av!.rewrites;
        intFreeMaybeConsolidate(s, av!, merged);
      }
    } else if (size > nb + MINSIZE) {
      const remainder = ck.splitAt(p, nb);
      setHead(s, remainder, size - nb, PREV_INUSE | aFlag);
      setHeadSize(s, p, nb, 0);
      intFree(s, av!, remainder);
    }
  }
  return p;
}
