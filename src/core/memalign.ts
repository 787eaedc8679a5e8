/**
 * Aligned allocation: _int_malloc of nb + alignment + MINSIZE bytes, then the first aligned spot
 * inside that chunk that leaves room for a leading chunk of at least MINSIZE. The lead is freed
 * (through _int_free, so it may go to the tcache or a fastbin); a tail of more than MINSIZE beyond
 * the request is split off and freed too. An mmapped chunk only moves its start: the lead stays in
 * the mapping (counted in prev_size) and nothing is unmapped.
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
import { intFree } from './free.js';
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
      ck.addr[p] = brk;
      setPrevSize(s, p, prev + leadsize);
      setHead(s, p, newsize, IS_MMAPPED);
      return p;
    }

    const newp = ck.splitAt(p, leadsize);
    setHead(s, newp, newsize, PREV_INUSE | aFlag);
    setInuseBitAfter(s, newp);
    setHeadSize(s, p, leadsize, aFlag);
    intFree(s, av!, p);
    p = newp;
  }

  if ((ck.flags[p]! & IS_MMAPPED) === 0) {
    const size = ck.size[p]!;
    if (size > nb + MINSIZE) {
      const remainder = ck.splitAt(p, nb);
      setHead(s, remainder, size - nb, PREV_INUSE | aFlag);
      setHeadSize(s, p, nb, 0);
      intFree(s, av!, remainder);
    }
  }
  return p;
}
