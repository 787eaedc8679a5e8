/**
 * Arenas: which arena serves a thread's call, and which arena a chunk belongs to.
 *
 * The thread that initialises malloc uses the main arena: in a program, the main thread, which does
 * so at the latest when it creates its first thread (api.ts, threadStart). Any other thread gets
 * one at its first call that needs it (usually tcache_init): first an arena of an exited thread
 * (free_list, most recently freed first), else a new arena while fewer than the limit exist, else
 * the arenas in turn (reused_arena: main, newest, ..., oldest; without contention trylock always
 * succeeds, so this is plain round-robin). The limit is fixed once, the first time it is needed
 * after more than arena_test arenas exist: arena_max if set, else 8 x the number of CPUs (2.44: once
 * arena_test arenas exist, the number of CPUs and at least arena_test). A thread
 * keeps its arena for life (apart from arena_get_retry after an allocation failure) and at exit
 * flushes its tcache and, if it was the arena's last thread, puts the arena on the free list: any
 * arena, the main one included (say the main thread moved to another arena in arena_get_retry, and
 * the thread that reused_arena then gave the main arena to exits).
 *
 * glibc: arena_get, arena_get2, _int_new_arena, get_free_list, reused_arena, arena_get_retry,
 * arena_for_chunk, __malloc_arena_thread_freeres (malloc/arena.c).
 */

import { St } from './chunks.js';
import { MALLOC_ALIGNMENT, NON_MAIN_ARENA, PREV_INUSE } from './constants.js';
import { heapForPtr, heapKey, newHeap } from './heap.js';
import { setHead } from './mem.js';
import { Arena, type Process } from './state.js';
import { tcacheThreadShutdown } from './tcache.js';

/** arena_get: the calling thread's arena, or one chosen for it (locking is not modelled). */
export function arenaGet(s: Process, size: number): Arena | null {
  const a = s.thread.arena;
  return a !== null ? a : arenaGet2(s, size, null);
}

/** detach_arena */
function detachArena(a: Arena | null): void {
  if (a !== null) a.attachedThreads--;
}

/** _int_new_arena: a heap of its own holding the arena's state, and the arena as the thread's. */
function intNewArena(s: Process, size: number): Arena | null {
  // heap_info and malloc_state: their sizes are the release's (profile.ts).
  const headers = s.profile.heapInfoSize + s.profile.mallocStateSize;
  const h =
    newHeap(s, size + (headers + MALLOC_ALIGNMENT), s.mp.topPad) ??
    newHeap(s, headers + MALLOC_ALIGNMENT, s.mp.topPad);
  if (h === null) return null;
  const a = new Arena(s.ck, s.arenas.length);
  s.arenas.push(a);
  h.arena = a;
  a.heap = h;
  s.heaps.set(heapKey(h.start), h);
  // malloc_init_state writes the arena's bins, on the heap's first page.
  s.kernel.touch(h.start + s.profile.heapInfoSize);
  a.attachedThreads = 1;
  a.systemMem = a.maxSystemMem = h.size;
  const firstTop = s.firstTopOffset;
  const top = s.ck.alloc(h.start + firstTop);
  setHead(s, top, h.size - firstTop, PREV_INUSE);
  s.ck.state[top] = St.TOP;
  a.top = top;
  const replaced = s.thread.arena;
  s.thread.arena = a;
  a.next = s.main.next;
  s.main.next = a;
  detachArena(replaced);
  return a;
}

/** get_free_list */
function getFreeList(s: Process): Arena | null {
  const result = s.freeList;
  if (result !== null) {
    s.freeList = result.nextFree;
    result.attachedThreads = 1;
    detachArena(s.thread.arena);
    s.thread.arena = result;
  }
  return result;
}

/** remove_from_free_list */
function removeFromFreeList(s: Process, arena: Arena): void {
  let prev: Arena | null = null;
  for (let p = s.freeList; p !== null; p = p.nextFree) {
    if (p === arena) {
      if (prev === null) s.freeList = p.nextFree;
      else prev.nextFree = p.nextFree;
      break;
    }
    prev = p;
  }
}

/** reused_arena: the next arena in turn (the first one trylock takes, i.e. next_to_use). */
function reusedArena(s: Process, _avoid: Arena | null): Arena {
  if (s.nextToUse === null) s.nextToUse = s.main;
  const result = s.nextToUse;
  detachArena(s.thread.arena);
  removeFromFreeList(s, result);
  result.attachedThreads++;
  s.thread.arena = result;
  s.nextToUse = result.next;
  return result;
}

/** arena_get2 */
function arenaGet2(s: Process, size: number, avoid: Arena | null): Arena | null {
  let a = getFreeList(s);
  if (a === null) {
    if (s.narenasLimit === 0) {
      if (s.mp.arenaMax !== 0) s.narenasLimit = s.mp.arenaMax;
      else if (s.profile.arenaLimitPerCpu) {
        if (s.narenas > s.mp.arenaTest) s.narenasLimit = 8 * (s.ncores >= 1 ? s.ncores : 2);
      } else if (s.narenas >= s.mp.arenaTest) {
        // 2.44: as many arenas as online CPUs, and at least arena_test.
        s.narenasLimit = Math.max(s.ncores, s.mp.arenaTest);
      }
    }
    // (size_t) 0 - 1 is huge: no limit yet.
    if (s.narenasLimit === 0 || s.narenas <= s.narenasLimit - 1) {
      s.narenas++;
      a = intNewArena(s, size);
      if (a === null) s.narenas--;
    } else {
      a = reusedArena(s, avoid);
    }
  }
  return a;
}

/** arena_get_retry: after _int_malloc failed in `ar`. */
export function arenaGetRetry(s: Process, ar: Arena, bytes: number): Arena | null {
  if (ar !== s.main) return s.main;
  return arenaGet2(s, bytes, ar);
}

/** arena_for_chunk */
export function arenaForChunk(s: Process, p: number): Arena {
  if ((s.ck.flags[p]! & NON_MAIN_ARENA) === 0) return s.main;
  return heapForPtr(s, s.ck.addr[p]!).arena;
}

/** __malloc_arena_thread_freeres: a thread created by pthread_create exits. */
export function arenaThreadFreeres(s: Process): void {
  tcacheThreadShutdown(s);
  const a = s.thread.arena;
  s.thread.arena = null;
  if (a !== null && --a.attachedThreads === 0) {
    a.nextFree = s.freeList;
    s.freeList = a;
  }
}
