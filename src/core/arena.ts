/**
 * Arena selection: which arena serves a thread's call (thread_arena, arena_get, arena_get2,
 * reused_arena, arena_get_retry), and which arena a chunk belongs to (arena_for_chunk).
 *
 * The main thread uses the main arena. Other threads get arenas of their own; that part of the
 * model (non-main arenas and their heaps) is not written yet, and a trace that needs it stops with
 * a clear message rather than a wrong answer.
 *
 * glibc: arena_get, arena_get2, arena_get_retry, arena_for_chunk (malloc/arena.c).
 */

import { NON_MAIN_ARENA } from './constants.js';
import { ModelLimit } from './errors.js';
import type { Arena, Process } from './state.js';

/** arena_get: the calling thread's arena (locking is not modelled: calls never overlap). */
export function arenaGet(s: Process, _size: number): Arena | null {
  const a = s.thread.arena;
  if (a !== null) return a;
  throw new ModelLimit(
    `thread ${s.thread.tid} would need an arena of its own; ptsim models the main thread's arena only so far`,
  );
}

/** arena_get_retry: after _int_malloc failed in `ar`. */
export function arenaGetRetry(s: Process, ar: Arena, _bytes: number): Arena | null {
  if (ar !== s.main) return s.main;
  throw new ModelLimit('the main arena is out of memory and glibc would now create another arena; not modelled yet');
}

export function unlockArena(_s: Process, _ar: Arena | null): void {}

/** arena_for_chunk */
export function arenaForChunk(s: Process, p: number): Arena {
  if ((s.ck.flags[p]! & NON_MAIN_ARENA) === 0) return s.main;
  throw new ModelLimit('a chunk of a non-main arena; not modelled yet');
}
