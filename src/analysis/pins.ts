/**
 * The pin: a heap can only give memory back from its top (systrim lowers the break; heap_trim
 * shrinks a thread heap), so the highest chunk that is not free in a regular bin holds everything
 * free below it in place. This finds that chunk for every heap and what it holds.
 */

import { NIL, St } from '../core/chunks.js';
import type { Arena, Process } from '../core/state.js';

export interface Pin {
  /** 0 main, k the k-th arena. */
  arena: number;
  /** The heap in that arena's chain (0 for the main arena's brk heap). */
  heap: number;
  /** Whether this heap holds the arena's top (only such a heap can be trimmed from its end). */
  holdsTop: boolean;
  /** The pinning chunk's handle, address and size. */
  chunk: number;
  addr: number;
  size: number;
  /** What it is: a live block, a freed block held in the tcache or a fastbin, or glibc's own. */
  kind: 'live' | 'tcache' | 'fastbin' | 'glibc';
  /** Bytes the program asked for (live blocks). */
  requested: number;
  /** Index of the event that handed it out (-1 for glibc's own chunks). */
  bornEvent: number;
  /** Resident bytes of free chunks directly below it, up to the next live block: what freeing it would let glibc trim. */
  heldBytes: number;
  /** Resident bytes of all free chunks below it in this heap. */
  freeBelowBytes: number;
}

/** Resident bytes of [a, b): whole resident pages, and the resident parts of the pages at its ends. */
function residentBytes(s: Process, a: number, b: number): number {
  if (b <= a) return 0;
  const P = 4096;
  const k = s.kernel;
  const firstPage = Math.floor(a / P) * P;
  const lastPage = Math.floor((b - 1) / P) * P;
  if (firstPage === lastPage) return k.isResident(a) ? b - a : 0;
  let n = 0;
  if (k.isResident(a)) n += firstPage + P - a;
  if (k.isResident(lastPage)) n += b - lastPage;
  if (lastPage > firstPage + P) n += k.residentIn(firstPage + P, lastPage);
  return n;
}

function isFree(st: number): boolean {
  return st === St.BINNED || st === St.FAST || st === St.TCACHE;
}

/** The chunk that ends a heap's chain: its top, or the fencepost a later heap left. */
function chainEnd(s: Process, av: Arena, start: number, end: number): number {
  const ck = s.ck;
  const top = av.top;
  if (!av.topIsInitial && ck.addr[top]! >= start && ck.addr[top]! < end) return top;
  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    if (st === St.DEAD || st === St.BINHDR || ck.next[h] !== NIL) continue;
    const a = ck.addr[h]!;
    if (a >= start && a < end && a >= 0) return h;
  }
  return NIL;
}

/** The pin of one heap [start, end) of arena av, or null when nothing below the end is held. */
function pinOf(
  s: Process,
  av: Arena,
  heapNumber: number,
  start: number,
  end: number,
  tcacheStructs: Set<number>,
): Pin | null {
  const ck = s.ck;
  const last = chainEnd(s, av, start, end);
  if (last === NIL) return null;
  const holdsTop = last === av.top;
  // Skip the end itself (top or fencepost) and any fenceposts and regular-bin chunks before it.
  let p = ck.prev[last]!;
  while (p !== NIL && (ck.state[p] === St.BINNED || ck.size[p]! <= 16)) p = ck.prev[p]!;
  if (p === NIL) return null;
  const st = ck.state[p]!;
  const kind: Pin['kind'] =
    st === St.TCACHE
      ? 'tcache'
      : st === St.FAST
        ? 'fastbin'
        : ck.born[p]! < 0 || tcacheStructs.has(p)
          ? 'glibc'
          : 'live';
  let held = 0;
  let q = ck.prev[p]!;
  while (q !== NIL && isFree(ck.state[q]!)) {
    held += residentBytes(s, ck.addr[q]!, ck.addr[q]! + ck.size[q]!);
    q = ck.prev[q]!;
  }
  let freeBelow = held;
  for (; q !== NIL; q = ck.prev[q]!)
    if (isFree(ck.state[q]!)) freeBelow += residentBytes(s, ck.addr[q]!, ck.addr[q]! + ck.size[q]!);
  return {
    arena: av.index,
    heap: heapNumber,
    holdsTop,
    chunk: p,
    addr: ck.addr[p]!,
    size: ck.size[p]!,
    kind,
    requested: kind === 'live' ? ck.req[p]! : 0,
    bornEvent: kind === 'glibc' ? -1 : ck.born[p]!,
    heldBytes: held,
    freeBelowBytes: freeBelow,
  };
}

/** The pin of every heap of every arena, main first. */
export function findPins(s: Process): Pin[] {
  const tcacheStructs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) tcacheStructs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) tcacheStructs.add(s.thread.tcache.chunk);
  const pins: Pin[] = [];
  let ar = s.main;
  do {
    if (ar === s.main) {
      if (!ar.topIsInitial) {
        const pin = pinOf(s, ar, 0, s.kernel.brkBase, s.kernel.brkEnd, tcacheStructs);
        if (pin !== null) pins.push(pin);
      }
    } else {
      for (let h = ar.heap; h !== null; h = h.prev) {
        const pin = pinOf(s, ar, h.number, h.start, h.start + h.size, tcacheStructs);
        if (pin !== null) pins.push(pin);
      }
    }
    ar = ar.next;
  } while (ar !== s.main);
  return pins;
}
