/**
 * The per-thread cache: 64 LIFO lists of recently freed chunks, one per size class (chunk sizes 32
 * to 1040), at most tcache_count (7; 16 from 2.43) chunks each. It is consulted before any arena
 * lock: a cached chunk still looks in use to its arena, so it never coalesces. From 2.42, 12 more
 * bins hold large chunks, each list sorted by size, when glibc.malloc.tcache_max asks for them.
 *
 * The cache's own struct lives in a chunk (576 bytes up to 2.29, 640 to 2.41, 760 from 2.42)
 * allocated from the thread's arena by the thread's first malloc/calloc/realloc or free of a heap
 * chunk (tcache_init); for the main thread of a fresh process that is the first chunk of the heap,
 * at the initial break. From 2.43 (profile.lazyTcache) it is allocated by the thread's first free
 * of a chunk it would cache (tcache_free_init), or when _int_malloc would stash a chunk in it.
 *
 * glibc: tcache_put, tcache_get, tcache_put_large, tcache_get_large, tcache_get_align,
 * tcache_init, tcache_free_init, tcache_thread_shutdown (malloc/malloc.c).
 */

import { NIL, St } from './chunks.js';
import { request2size } from './constants.js';
import { arenaForChunk, arenaGet, arenaGetRetry } from './arena.js';
import { intMalloc } from './malloc.js';
import { intFreeChunk } from './free.js';
import { libcFree, libcMalloc2 } from './api.js';
import { writeUser } from './mem.js';
import { tcacheStructSize } from './profile.js';
import { newTcache, type Arena, type Process, type Tcache } from './state.js';

/** tcache_put: caches chunk p in bin idx (writes the entry's key at mem+8 and next at mem+0). */
export function tcachePut(s: Process, tc: Tcache, p: number, idx: number): void {
  const ck = s.ck;
  // Both words are in one 16-byte-aligned pair, so on one page: touched once.
  s.kernel.touch(ck.addr[p]! + 16);
  ck.fd[p] = tc.entries[idx]!;
  tc.entries[idx] = p;
  tc.counts[idx]!++;
  ck.state[p] = St.TCACHE;
  ck.bin[p] = idx;
}

/** tcache_get: takes the most recently cached chunk of bin idx and clears its key word. */
export function tcacheGet(s: Process, tc: Tcache, idx: number): number {
  const ck = s.ck;
  const p = tc.entries[idx]!;
  tc.entries[idx] = ck.fd[p]!;
  tc.counts[idx]!--;
  s.kernel.touch(ck.addr[p]! + 24);
  ck.state[p] = St.INUSE;
  ck.fd[p] = NIL;
  return p;
}

/**
 * The first chunk of bin idx whose user pointer is aligned to `alignment`, taken from where it sits
 * in the list (tcache_get_n, as _mid_memalign calls it from 2.38); NIL when there is none.
 */
export function tcacheGetAligned(s: Process, tc: Tcache, idx: number, alignment: number): number {
  const ck = s.ck;
  let before = NIL;
  let p = tc.entries[idx]!;
  while (p !== NIL && (ck.addr[p]! + 16) % alignment !== 0) {
    before = p;
    p = ck.fd[p]!;
  }
  if (p === NIL) return NIL;
  return takeAfter(s, tc, idx, before, p);
}

/**
 * tcache_put_large (2.42 on): caches chunk p in large bin idx, before the first chunk of its size
 * or more, so that each list stays sorted by size.
 */
export function tcachePutLarge(s: Process, tc: Tcache, p: number, idx: number): void {
  const ck = s.ck;
  const size = ck.size[p]!;
  let before = NIL;
  let e = tc.entries[idx]!;
  while (e !== NIL && ck.size[e]! < size) {
    before = e;
    e = ck.fd[e]!;
  }
  const mem = ck.addr[p]! + 16;
  s.kernel.touch(mem + 8);
  ck.fd[p] = e;
  s.kernel.touch(mem);
  if (before === NIL) tc.entries[idx] = p;
  else {
    ck.fd[before] = p;
    s.kernel.touch(ck.addr[before]! + 16);
  }
  tc.counts[idx]!++;
  ck.state[p] = St.TCACHE;
  ck.bin[p] = idx;
}

/** tcache_get_large: the first chunk of exactly nb bytes in large bin idx, or NIL. */
export function tcacheGetLarge(s: Process, tc: Tcache, idx: number, nb: number): number {
  const ck = s.ck;
  let before = NIL;
  let e = tc.entries[idx]!;
  while (e !== NIL && ck.size[e]! < nb) {
    before = e;
    e = ck.fd[e]!;
  }
  if (e === NIL || ck.size[e] !== nb) return NIL;
  return takeAfter(s, tc, idx, before, e);
}

/**
 * tcache_get_align (2.43 on): the first chunk of bin idx that is at least nb bytes, skipping
 * those of nb bytes that are not aligned; it is taken if it is of nb bytes (and so aligned).
 */
export function tcacheGetAlign(
  s: Process,
  tc: Tcache,
  idx: number,
  nb: number,
  alignment: number,
): number {
  const ck = s.ck;
  let before = NIL;
  let e = tc.entries[idx]!;
  let csize = 0;
  while (
    e !== NIL &&
    ((csize = ck.size[e]!) < nb || (csize === nb && (ck.addr[e]! + 16) % alignment !== 0))
  ) {
    before = e;
    e = ck.fd[e]!;
  }
  if (e === NIL || csize !== nb) return NIL;
  return takeAfter(s, tc, idx, before, e);
}

/** tcache_get_n: takes chunk p, which follows `before` (NIL: the head) in bin idx. */
function takeAfter(s: Process, tc: Tcache, idx: number, before: number, p: number): number {
  const ck = s.ck;
  if (before === NIL) tc.entries[idx] = ck.fd[p]!;
  else {
    // The link to it is the next word of the chunk before it in the list.
    ck.fd[before] = ck.fd[p]!;
    s.kernel.touch(ck.addr[before]! + 16);
  }
  tc.counts[idx]!--;
  s.kernel.touch(ck.addr[p]! + 24);
  ck.state[p] = St.INUSE;
  ck.fd[p] = NIL;
  return p;
}

/**
 * tcache_init of 2.43 on: disables the tcache first (so that nothing re-enters it), then, unless
 * tcache_count is 0, allocates it: from `av` with _int_malloc when _int_malloc is stashing a
 * chunk, else as __libc_malloc would (tcache_free_init). A failure leaves it disabled.
 */
export function tcacheInitLazy(s: Process, av: Arena | null): void {
  const th = s.thread;
  th.tcacheShuttingDown = true;
  if (s.mp.tcacheCount === 0) return;
  const bytes = tcacheStructSize(s.profile);
  const victim =
    av !== null
      ? intMalloc(s, av, s.profile.tcacheInitPadsTwice ? request2size(bytes) : bytes)
      : libcMalloc2(s, bytes);
  if (victim === NIL) return;
  s.ck.state[victim] = St.INUSE;
  s.ck.handOut(victim, bytes, s.eventIndex);
  th.tcache = newTcache(victim, s.profile);
  writeUser(s, victim, bytes);
}

/** Whether the calling thread's tcache is still the dummy that asks for a real one (tcache_inactive). */
export function tcacheInactive(s: Process): boolean {
  return s.thread.tcache === null && !s.thread.tcacheShuttingDown;
}

/** tcache_init: allocates and clears this thread's cache. */
function tcacheInit(s: Process): void {
  const th = s.thread;
  if (th.tcacheShuttingDown) return;
  // 576 bytes up to 2.29 (char counts), 640 from 2.30.
  const structSize = tcacheStructSize(s.profile);
  let ar = arenaGet(s, structSize);
  let victim = intMalloc(s, ar, structSize);
  if (victim === NIL && ar !== null) {
    ar = arenaGetRetry(s, ar, structSize);
    victim = intMalloc(s, ar, structSize);
  }
  if (victim !== NIL) {
    s.ck.state[victim] = St.INUSE;
    s.ck.handOut(victim, structSize, s.eventIndex);
    th.tcache = newTcache(victim, s.profile);
    writeUser(s, victim, structSize);
  }
}

/** MAYBE_INIT_TCACHE (gone in 2.43: the tcache waits for the first free, profile.lazyTcache) */
export function maybeInitTcache(s: Process): void {
  if (s.thread.tcache === null && !s.profile.lazyTcache) tcacheInit(s);
}

/**
 * tcache_thread_shutdown: at thread exit, frees every cached chunk (bin by bin, each list from its
 * head) and then the struct itself, with the tcache already disabled so that nothing is cached again.
 */
export function tcacheThreadShutdown(s: Process): void {
  const th = s.thread;
  const tc = th.tcache;
  th.tcacheShuttingDown = true;
  if (tc === null) return;
  th.tcache = null;
  const ck = s.ck;
  // From 2.43 each chunk goes to _int_free_chunk of its arena, not through free().
  const direct = !s.profile.fastbins;
  for (let i = 0; i < tc.entries.length; i++) {
    while (tc.entries[i] !== NIL) {
      const e = tc.entries[i]!;
      tc.entries[i] = ck.fd[e]!;
      tc.counts[i]!--;
      ck.state[e] = St.INUSE;
      if (direct) intFreeChunk(s, arenaForChunk(s, e), e);
      else libcFree(s, e);
    }
  }
  if (direct) intFreeChunk(s, arenaForChunk(s, tc.chunk), tc.chunk);
  else libcFree(s, tc.chunk);
}
