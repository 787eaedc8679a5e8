/**
 * The per-thread cache: 64 LIFO lists of recently freed chunks, one per size class (chunk sizes 32
 * to 1040), at most tcache_count (7) chunks each. It is consulted before any arena lock: a cached
 * chunk still looks in use to its arena, so it never coalesces.
 *
 * The cache's own struct lives in a 640-byte chunk (576 bytes up to 2.29) allocated from the
 * thread's arena by the thread's first malloc/calloc/realloc or free of a heap chunk
 * (tcache_init); for the main thread of a fresh process that is the first chunk of the heap, at
 * the initial break.
 *
 * glibc: tcache_put, tcache_get, tcache_init, tcache_thread_shutdown (malloc/malloc.c).
 */

import { NIL, St } from './chunks.js';
import { TCACHE_MAX_BINS } from './constants.js';
import { tcacheStructSize } from './profile.js';
import { arenaGet, arenaGetRetry } from './arena.js';
import { intMalloc } from './malloc.js';
import { libcFree } from './api.js';
import { writeUser } from './mem.js';
import { newTcache, type Process, type Tcache } from './state.js';

/** tcache_put: caches chunk p in bin idx (writes the entry's key at mem+8 and next at mem+0). */
export function tcachePut(s: Process, tc: Tcache, p: number, idx: number): void {
  const ck = s.ck;
  const mem = ck.addr[p]! + 16;
  s.kernel.touch(mem + 8);
  ck.fd[p] = tc.entries[idx]!;
  s.kernel.touch(mem);
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
  if (before === NIL) {
    tc.entries[idx] = ck.fd[p]!;
  } else {
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
    s.ck.req[victim] = structSize;
    s.ck.born[victim] = s.eventIndex;
    th.tcache = newTcache(victim);
    writeUser(s, victim, structSize);
  }
}

/** MAYBE_INIT_TCACHE */
export function maybeInitTcache(s: Process): void {
  if (s.thread.tcache === null) tcacheInit(s);
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
  for (let i = 0; i < TCACHE_MAX_BINS; i++) {
    while (tc.entries[i] !== NIL) {
      const e = tc.entries[i]!;
      tc.entries[i] = ck.fd[e]!;
      tc.counts[i]!--;
      ck.state[e] = St.INUSE;
      libcFree(s, e);
    }
  }
  libcFree(s, tc.chunk);
}
