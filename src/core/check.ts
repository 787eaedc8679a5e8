/**
 * The invariant checker: what must hold after every call, checked by walking the whole model, in
 * the spirit of glibc's do_check_malloc_state (which glibc compiles only with MALLOC_DEBUG).
 *
 * Level 1 checks the cheap counters; level 2 walks every heap chunk by chunk and every bin:
 *  - chunks tile each region exactly (each starts where the previous ends; no gaps);
 *  - a chunk's P bit is clear exactly when the chunk before it is free in a regular bin, and then
 *    its prev_size equals that chunk's size; no two neighbours are both free in a regular bin;
 *  - every regular-bin chunk is in exactly one bin, the one its size maps to (or unsorted); large
 *    bins are sorted largest first and their nextsize ring links each size group's first chunk;
 *    the binmap bit of every non-empty bin is set;
 *  - fastbin and tcache chunks have the right size class, still look in use, and the tcache
 *    counts match the lists;
 *  - the arena's system_mem equals the bytes its chunks cover, and the resident page count equals
 *    a recount of the kernel's page sets and never exceeds what is mapped.
 * A violation throws: it is a bug in ptsim, never a user mistake.
 */

import { NIL, St } from './chunks.js';
import {
  IS_MMAPPED,
  MINSIZE,
  NBINS,
  NON_MAIN_ARENA,
  NFASTBINS,
  PREV_INUSE,
  binIndex,
  csize2tidx,
  fastbinIndex,
} from './constants.js';
import { heapKey } from './heap.js';
import type { Arena, Process } from './state.js';

function fail(what: string): never {
  throw new Error(`ptsim internal error: heap invariant broken: ${what}`);
}

function hex(n: number): string {
  return '0x' + n.toString(16);
}

export function checkProcess(s: Process, level: 1 | 2): void {
  const k = s.kernel;
  if (k.residentPages < 0) fail('negative resident page count');
  if (k.residentPages * 4096 > k.mappedBytes()) fail('more resident bytes than mapped bytes');
  if (level < 2) return;
  if (k.recountResident() !== k.residentPages)
    fail(`resident page count ${k.residentPages} != recount ${k.recountResident()}`);
  checkArenaList(s);
  const heads = regionHeads(s);
  for (const av of s.arenas) checkArena(s, av, heads[av.index]!);
  checkTcaches(s);
}

/**
 * The first chunk of each region (the brk heap and brk-fallback regions of the main arena, each
 * heap of the others), by the index of the arena whose memory it is: one pass over the chunk
 * store for all arenas.
 */
function regionHeads(s: Process): number[][] {
  const ck = s.ck;
  const heads: number[][] = s.arenas.map(() => []);
  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    if (st === St.DEAD || st === St.BINHDR || (ck.flags[h]! & IS_MMAPPED) !== 0) continue;
    if (ck.prev[h] !== NIL) continue;
    const owner = ownerOf(s, ck.addr[h]!);
    if (s.arenas[owner.index] !== owner)
      fail(`region at ${hex(ck.addr[h]!)}: arena not in the list`);
    heads[owner.index]!.push(h);
  }
  return heads;
}

/**
 * The arena list: the main arena first and indexes in creation order; `next` a ring through every
 * arena once (each new arena is linked in right after the main one, as _int_new_arena does);
 * narenas equal to their number; the free list made of arenas no thread is attached to, each once
 * (the main arena may be one: __malloc_arena_thread_freeres puts there any arena whose last thread
 * exits); every thread's arena one of the list, not on the free list, and counted in its
 * attached_threads.
 */
function checkArenaList(s: Process): void {
  if (s.arenas[0] !== s.main) fail('the main arena is not the first');
  if (s.narenas !== s.arenas.length) fail(`narenas ${s.narenas} but ${s.arenas.length} arenas`);
  s.arenas.forEach((a, i) => {
    if (a.index !== i) fail(`arena ${i} has index ${a.index}`);
    if (!s.arenas.includes(a.next)) fail(`arena ${i}: next is not an arena of the list`);
  });
  // The ring visits every arena once.
  const seen = new Set<Arena>();
  let a = s.main;
  do {
    if (seen.has(a)) fail('the arena ring loops before returning to the main arena');
    seen.add(a);
    a = a.next;
  } while (a !== s.main);
  if (seen.size !== s.arenas.length)
    fail(`the arena ring holds ${seen.size} of ${s.arenas.length} arenas`);
  const free = new Set<Arena>();
  for (let f = s.freeList; f !== null; f = f.nextFree) {
    if (free.has(f)) fail(`arena ${f.index} twice on the free list`);
    if (f.attachedThreads !== 0)
      fail(`arena ${f.index} on the free list with ${f.attachedThreads} threads attached`);
    free.add(f);
  }
  // attached_threads counts at least the threads of the table that use the arena (a main thread
  // whose number was used again after its exit has left the table but still holds its arena).
  const users = new Map<Arena, number>();
  for (const t of s.threads.values()) {
    if (t.arena === null) continue;
    if (!s.arenas.includes(t.arena)) fail(`thread ${t.tid}: its arena is not in the list`);
    if (free.has(t.arena)) fail(`thread ${t.tid} uses arena ${t.arena.index}, on the free list`);
    users.set(t.arena, (users.get(t.arena) ?? 0) + 1);
  }
  for (const [a, n] of users)
    if (a.attachedThreads < n)
      fail(`arena ${a.index} used by ${n} threads but attached_threads is ${a.attachedThreads}`);
}

function checkArena(s: Process, av: Arena, heads: readonly number[]): void {
  const ck = s.ck;
  if (av.topIsInitial) return;
  // Walk each region of this arena from its first chunk.
  const inBins = new Set<number>();
  for (let i = 1; i < NBINS; i++) {
    const b = av.bin(i);
    let prev = b;
    let count = 0;
    for (let p = ck.fd[b]!; p !== b; p = ck.fd[p]!) {
      if (ck.bk[p] !== prev) fail(`bin ${i}: broken bk link at ${hex(ck.addr[p]!)}`);
      if (ck.state[p] !== St.BINNED || ck.bin[p] !== i)
        fail(`bin ${i}: chunk ${hex(ck.addr[p]!)} has state ${ck.state[p]} bin ${ck.bin[p]}`);
      if (inBins.has(p)) fail(`chunk ${hex(ck.addr[p]!)} is in two bins`);
      inBins.add(p);
      const size = ck.size[p]!;
      if (i !== 1 && binIndex(size) !== i) fail(`chunk of size ${size} in bin ${i}`);
      if (i >= 64 && prev !== b && ck.size[prev]! < size) fail(`large bin ${i} not sorted`);
      if ((ck.flags[p]! & PREV_INUSE) === 0) fail(`free chunk ${hex(ck.addr[p]!)} without P bit`);
      prev = p;
      if (++count > 10_000_000) fail(`bin ${i} loops`);
    }
    if (i >= 2 && count > 0 && (av.binmap[i >>> 5]! & (1 << (i & 31))) === 0)
      fail(`binmap bit of non-empty bin ${i} is clear`);
    if (i >= 64 && count > 0) checkNextsizeRing(s, av, i);
  }
  for (let i = 0; i < NFASTBINS; i++) {
    for (let p = av.fastbins[i]!; p !== NIL; p = ck.fd[p]!) {
      if (ck.state[p] !== St.FAST) fail(`fastbin ${i} holds a chunk in state ${ck.state[p]}`);
      if (fastbinIndex(ck.size[p]!) !== i) fail(`fastbin ${i} holds size ${ck.size[p]}`);
    }
  }
  if (ck.state[av.top] !== St.TOP) fail('top chunk state');
  if ((ck.flags[av.top]! & PREV_INUSE) === 0) fail('top chunk without P bit');

  // Physical walk of every region of this arena: the brk heap (and brk-fallback regions) for the
  // main arena, each heap of the chain for the others.
  let covered = 0;
  let binnedSeen = 0;
  for (const h of heads) {
    let prevFree = false;
    let prevSize = 0;
    for (let p = h; p !== NIL; p = ck.next[p]!) {
      const size = ck.size[p]!;
      const free = ck.state[p] === St.BINNED;
      const pbit = (ck.flags[p]! & PREV_INUSE) !== 0;
      if (p !== h) {
        if (pbit === prevFree)
          fail(
            `P bit of ${hex(ck.addr[p]!)} is ${pbit} but the previous chunk is ${prevFree ? 'free' : 'in use'}`,
          );
        if (prevFree && ck.prevSize[p] !== prevSize)
          fail(`prev_size of ${hex(ck.addr[p]!)} is ${ck.prevSize[p]}, not ${prevSize}`);
        if (prevFree && free) fail(`two free neighbours at ${hex(ck.addr[p]!)}`);
      }
      const n = ck.next[p]!;
      if (n !== NIL && ck.addr[n] !== ck.addr[p]! + size)
        fail(`chunk at ${hex(ck.addr[p]!)} size ${size} is followed by ${hex(ck.addr[n]!)}`);
      if (ck.addr[p]! % 16 !== 0) fail(`misaligned chunk ${hex(ck.addr[p]!)}`);
      if (n !== NIL && ck.prev[n] !== p) fail('prev link mismatch');
      if (n === NIL && p !== av.top && size !== 16 && size !== 0)
        fail(`region ends with ${hex(ck.addr[p]!)}, neither top nor a fencepost`);
      if (free) binnedSeen++;
      // A chunk handed out (or cached in a tcache or fastbin, which keeps its in-use header) carries
      // NON_MAIN_ARENA exactly when its arena is not the main one. Free and top chunks do not keep
      // the bit, nor do the small fenceposts sysmalloc leaves when a heap is full (32 bytes at most).
      const st = ck.state[p]!;
      if (st === St.TCACHE || st === St.FAST || (st === St.INUSE && size > 32)) {
        const aBit = (ck.flags[p]! & NON_MAIN_ARENA) !== 0;
        if (aBit !== (av !== s.main))
          fail(
            `chunk at ${hex(ck.addr[p]!)} of arena ${av.index} has NON_MAIN_ARENA ${aBit ? 'set' : 'clear'}`,
          );
      }
      if ((ck.state[p] === St.FAST || ck.state[p] === St.TCACHE) && size < MINSIZE)
        fail('cached chunk below MINSIZE');
      // A size-0 fencepost still occupies its 16-byte header.
      covered += size === 0 ? 16 : size;
      prevFree = free;
      prevSize = size;
    }
  }
  if (binnedSeen !== inBins.size)
    fail(`${binnedSeen} free chunks in arena ${av.index} but ${inBins.size} in its bins`);
  if (av === s.main) {
    if (av.contiguous && covered !== av.systemMem)
      fail(`chunks cover ${covered} bytes, system_mem is ${av.systemMem}`);
  } else {
    let heapBytes = 0;
    let expectCovered = 0;
    for (let hp = av.heap; hp !== null; hp = hp.prev) {
      if (hp.arena !== av) fail('heap of another arena in the chain');
      heapBytes += hp.size;
      expectCovered += hp.size - (hp.prev === null ? s.firstTopOffset : s.profile.heapInfoSize);
    }
    if (heapBytes !== av.systemMem)
      fail(`arena ${av.index}: heaps hold ${heapBytes} bytes, system_mem is ${av.systemMem}`);
    if (covered !== expectCovered)
      fail(`arena ${av.index}: chunks cover ${covered} bytes, its heaps ${expectCovered}`);
  }
}

/** The arena whose memory holds address a: a heap's arena, else the main arena. */
function ownerOf(s: Process, a: number): Arena {
  const h = s.heaps.get(heapKey(a));
  return h === undefined ? s.main : h.arena;
}

function checkNextsizeRing(s: Process, av: Arena, i: number): void {
  const ck = s.ck;
  const b = av.bin(i);
  // Each size group's first chunk carries the links; the ring visits the groups in order.
  const heads: number[] = [];
  let lastSize = -1;
  for (let p = ck.fd[b]!; p !== b; p = ck.fd[p]!) {
    const size = ck.size[p]!;
    if (size !== lastSize) {
      heads.push(p);
      if (ck.fdNext[p] === NIL)
        fail(`large bin ${i}: group head ${hex(ck.addr[p]!)} without nextsize links`);
    } else if (ck.fdNext[p] !== NIL) {
      fail(`large bin ${i}: chunk ${hex(ck.addr[p]!)} inside a size group carries nextsize links`);
    }
    lastSize = size;
  }
  for (let j = 0; j < heads.length; j++) {
    const h = heads[j]!;
    const nxt = heads[(j + 1) % heads.length]!;
    if (ck.fdNext[h] !== nxt || ck.bkNext[nxt] !== h) fail(`large bin ${i}: nextsize ring broken`);
  }
}

function checkTcaches(s: Process): void {
  const ck = s.ck;
  for (const th of s.threads.values()) {
    const tc = th.tcache;
    if (tc === null) continue;
    for (let i = 0; i < tc.entries.length; i++) {
      let n = 0;
      for (let p = tc.entries[i]!; p !== NIL; p = ck.fd[p]!) {
        n++;
        if (ck.state[p] !== St.TCACHE)
          fail(`tcache bin ${i} holds a chunk in state ${ck.state[p]}`);
        if (csize2tidx(ck.size[p]!) !== i) fail(`tcache bin ${i} holds size ${ck.size[p]}`);
        if (n > 65535) fail('tcache loop');
      }
      if (n !== tc.counts[i]) fail(`tcache bin ${i}: count ${tc.counts[i]} but ${n} entries`);
      if (n > s.mp.tcacheCount) fail(`tcache bin ${i} over its limit`);
    }
  }
}
