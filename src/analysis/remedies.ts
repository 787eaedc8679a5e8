/**
 * Which remedies are worth replaying, from the causes a moment's explanation found: each setting
 * that addresses a cause big enough to matter, periodic malloc_trim(0) for free memory inside the
 * heaps, and two settings together when two causes have settings (explain.ts picks them once each
 * alone is measured: neither may save anything alone, when each cause keeps the other's memory).
 *
 *   fastbins        M_MXFAST=0: no fastbins, small freed blocks are merged at once
 *   tcache          glibc.malloc.tcache_count=0 or 1: no per-thread cache, or a smaller one
 *   arenas          M_ARENA_MAX=1 or 2: fewer arenas, when several hold free memory
 *   thresholds      a fixed M_MMAP_THRESHOLD or M_TRIM_THRESHOLD, when the dynamic threshold moved
 *   top             M_TRIM_THRESHOLD=0, M_TOP_PAD=0: a heap's top given back sooner
 *   free in heaps   malloc_trim(0) every N events
 */

import {
  DEFAULT_MMAP_THRESHOLD,
  DEFAULT_TRIM_THRESHOLD,
  MALLOPT_PARAMS,
} from '../core/constants.js';
import type { ReplaySettings } from '../replay/run-file.js';
import type { Cause } from './breakdown.js';
import type { MomentAnalysis } from './what-if.js';

/** The causes a setting can address, as the explanation names them. */
export type Family = 'fastbins' | 'tcache' | 'arenas' | 'thresholds' | 'top';

export interface SettingCandidate {
  /** What was changed, as a user would type it (compare's --config syntax). */
  setting: string;
  why: string;
  family: Family;
  settings: ReplaySettings;
  /**
   * A milder variant of this other setting: tried only once that one has been found to save
   * memory at a price (in kernel work; for arenas, in contention for their locks).
   */
  after?: string;
}

/** A cause matters from this share of the resident memory, and at least this many bytes. */
const SHARE = 0.01;
const MIN_BYTES = 16 << 10;

function mallopt(name: string, value: number): ReplaySettings {
  return { mallopts: [[MALLOPT_PARAMS[name]!, value]] };
}

function matters(m: MomentAnalysis, bytes: number): boolean {
  return bytes >= MIN_BYTES && bytes >= SHARE * m.b.residentBytes;
}

function bytesOf(m: MomentAnalysis, ...causes: Cause[]): number {
  let n = 0;
  for (const c of causes) n += m.b.causes[c].bytes;
  return n;
}

/** Resident bytes of the free memory below the pins that are freed chunks held in a cache. */
function pinnedBy(m: MomentAnalysis, kind: 'fastbin' | 'tcache'): number {
  let n = 0;
  for (const p of m.pins) if (p.kind === kind) n += p.freeBelowBytes;
  return n;
}

/** Resident bytes of the free memory in other arenas than the main one. */
function arenaFree(m: MomentAnalysis): number {
  let n = 0;
  for (const a of m.b.arenas)
    if (a.arena > 0)
      for (const c of [
        'free-bins',
        'fragmentation',
        'free-top',
        'free-fastbins',
        'free-tcache',
      ] as const)
        n += a.causes[c].bytes;
  return n;
}

/** The resident bytes of the causes a family of settings addresses. */
export function familyBytes(m: MomentAnalysis, f: Family): number {
  switch (f) {
    case 'fastbins':
      return bytesOf(m, 'free-fastbins') + pinnedBy(m, 'fastbin');
    case 'tcache':
      return bytesOf(m, 'free-tcache') + pinnedBy(m, 'tcache');
    case 'arenas':
      return arenaFree(m);
    case 'thresholds':
      return bytesOf(m, 'free-bins', 'free-top');
    case 'top':
      return bytesOf(m, 'free-top');
  }
}

/** The settings worth replaying for one moment, from its causes. */
export function settingCandidates(m: MomentAnalysis): SettingCandidate[] {
  const out: SettingCandidate[] = [];
  // A freed chunk that pins a heap makes its cache a cause of all the memory it holds below it.
  if (matters(m, familyBytes(m, 'fastbins')))
    out.push({
      setting: 'M_MXFAST=0',
      why: 'no fastbins: small freed blocks are merged with their neighbours at once, and the top can shrink',
      family: 'fastbins',
      settings: mallopt('M_MXFAST', 0),
    });
  if (matters(m, familyBytes(m, 'tcache'))) {
    out.push({
      setting: 'glibc.malloc.tcache_count=0',
      why: 'no per-thread cache: freed blocks go straight back to their arena',
      family: 'tcache',
      settings: { extraTunables: 'glibc.malloc.tcache_count=0' },
    });
    out.push({
      setting: 'glibc.malloc.tcache_count=1',
      why: 'one cached block per size and thread instead of 7',
      family: 'tcache',
      settings: { extraTunables: 'glibc.malloc.tcache_count=1' },
      after: 'glibc.malloc.tcache_count=0',
    });
  }
  if (m.arenas > 1 && matters(m, familyBytes(m, 'arenas'))) {
    out.push({
      setting: 'M_ARENA_MAX=1',
      why: 'one arena for all threads: memory freed by one thread serves the others',
      family: 'arenas',
      settings: mallopt('M_ARENA_MAX', 1),
    });
    if (m.arenas > 2)
      out.push({
        setting: 'M_ARENA_MAX=2',
        why: 'at most two arenas: less waiting for a lock than with one',
        family: 'arenas',
        settings: mallopt('M_ARENA_MAX', 2),
        after: 'M_ARENA_MAX=1',
      });
  }
  const raised = m.thresholds.find(
    (c) => c.cause === 'dynamic threshold: free of an mmapped block' && c.event <= m.event,
  );
  if (raised !== undefined) {
    // The threshold before glibc first raised it: its default, since setting it in any way
    // would have stopped the raising. Fixing the trim threshold at its default instead leaves
    // glibc in the very same state (either setting stops the raising), so it is not replayed.
    const was = raised.oldMmapThreshold;
    out.push({
      setting: `M_MMAP_THRESHOLD=${was}`,
      why: `fixes the mmap threshold at ${was === DEFAULT_MMAP_THRESHOLD ? 'its default, ' : ''}${was} bytes: big blocks keep getting a mapping of their own, which free() gives back${was === DEFAULT_MMAP_THRESHOLD ? ` (M_TRIM_THRESHOLD=${DEFAULT_TRIM_THRESHOLD} does the same: setting either stops the raising)` : ''}`,
      family: 'thresholds',
      settings: mallopt('M_MMAP_THRESHOLD', was),
    });
  }
  if (matters(m, familyBytes(m, 'top'))) {
    out.push({
      setting: 'M_TRIM_THRESHOLD=0',
      why: 'free() lowers the heap top whenever it can',
      family: 'top',
      settings: mallopt('M_TRIM_THRESHOLD', 0),
    });
    out.push({
      setting: 'M_TOP_PAD=0',
      why: 'no padding kept when a heap grows or is trimmed',
      family: 'top',
      settings: mallopt('M_TOP_PAD', 0),
    });
  }
  return out;
}

/** Whether periodic malloc_trim(0) is worth replaying for this moment. */
export function trimsMatter(m: MomentAnalysis): boolean {
  return matters(m, bytesOf(m, 'free-bins', 'free-fastbins'));
}

/**
 * How often to trim: a round number of events (1, 2 or 5 times a power of ten) that gives about a
 * hundred trims over `events`, and at least every 10 events.
 */
export function trimInterval(events: number): number {
  const want = Math.max(10, events / 100);
  let p = 1;
  while (p * 10 <= want) p *= 10;
  return want >= 5 * p ? 5 * p : want >= 2 * p ? 2 * p : p;
}

/** Two settings applied together: the second's mallopts after the first's, tunables joined. */
export function combine(a: ReplaySettings, b: ReplaySettings): ReplaySettings {
  const s: ReplaySettings = { ...a };
  const mallopts = [...(a.mallopts ?? []), ...(b.mallopts ?? [])];
  if (mallopts.length > 0) s.mallopts = mallopts;
  const env = [...(a.env ?? []), ...(b.env ?? [])];
  if (env.length > 0) s.env = env;
  const extra = [a.extraTunables, b.extraTunables].filter(
    (x): x is string => x !== undefined && x !== '',
  );
  if (extra.length > 0) s.extraTunables = extra.join(':');
  return s;
}
