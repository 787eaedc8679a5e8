/**
 * Settings that leave glibc in the same state once it has started (twins) share one replay, in
 * explain's remedies and in compare's and sweep's configurations.
 *
 *  - 'same': the states after start-up are the same, member by member: one replay stands for
 *    both, figures and all;
 *  - 'trim': the same but for the trim threshold: one replay of the first, watching the second's
 *    threshold (RunOptions.otherTrimThreshold), stands for both as long as the watch says that
 *    threshold never decided a trim differently (Process.trimThresholdMattered); when it did, the
 *    twin is replayed on its own after all.
 *
 * The state compared is glibc's and the kernel's after the trace's header and the settings are
 * applied and malloc is initialised (startState), so twins must agree on everything else a replay
 * reads: every setting but mallopt calls, tunables and the environment (the touch model, the
 * release modelled, ...), the trace and how it is read, and what the caller measures.
 */

import { createHash, type Hash } from 'node:crypto';
import { ptmallocInit } from '../core/api.js';
import type { Arena, Process } from '../core/state.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import type { TraceHeader } from '../trace/types.js';
import { sameState } from './checkpoint.js';

/** The trace a state starts from: its header is all startState reads of it. */
export interface StartTrace {
  path: string;
  displayName?: string;
  import?: ImportSettings;
  header: TraceHeader;
}

/**
 * The members left out of the comparison of `s` with a twin. The environment is read once, at
 * start-up: what it set is in the rest of the state. An arena's `rewrites` only ever counts on from
 * where it stands (mallopt consolidates once).
 */
function skipped(s: Process): (owner: object, key: PropertyKey) => boolean {
  return (owner, key) =>
    (key === 'env' && owner === s) ||
    (key === 'trimThreshold' && owner === s.mp) ||
    (key === 'rewrites' && s.arenas.includes(owner as Arena));
}

/**
 * How two settings leave glibc once it has started (startState): in the same state, in the same
 * state but for the trim threshold (then one replay of the first, watching the second's threshold,
 * stands for both as long as that threshold never matters), or otherwise (null).
 */
export function twins(
  x: Process,
  y: Process,
): { kind: 'same' } | { kind: 'trim'; otherTrimThreshold: number } | null {
  const sx = skipped(x);
  const sy = skipped(y);
  if (!sameState(x, y, (owner, key) => sx(owner, key) || sy(owner, key))) return null;
  return x.mp.trimThreshold === y.mp.trimThreshold
    ? { kind: 'same' }
    : { kind: 'trim', otherTrimThreshold: y.mp.trimThreshold };
}

/**
 * glibc's state under `settings` once it has started: the trace's header read, the settings
 * applied, malloc initialised (null: the replay would not start).
 */
export async function startState(t: StartTrace, settings: ReplaySettings): Promise<Process | null> {
  const run = await replayFile(t.path, {
    import: t.import,
    displayName: t.displayName,
    ...settings,
    source: (sink) => {
      sink.header(t.header);
      return Promise.resolve();
    },
  });
  const r = run.replayer;
  if (r === null || run.failure !== null) return null;
  ptmallocInit(r.process);
  return r.process;
}

/**
 * A digest of a state with twins' members left out: states that twins() finds alike have the same
 * digest (maps' and objects' members are taken in the order of their keys, as sameState compares
 * them in any order). Only a first sort: twins() has the last word.
 */
function stateDigest(s: Process): string {
  const skip = skipped(s);
  const h: Hash = createHash('sha1');
  const seen = new Map<object, number>();
  const value = (v: unknown): string =>
    typeof v === 'function'
      ? `f${v.name}`
      : typeof v === 'symbol'
        ? `y${String(v)}`
        : `${typeof v}${String(v)}`;
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) {
      h.update(value(v) + ';');
      return;
    }
    const at = seen.get(v);
    if (at !== undefined) {
      h.update(`@${at};`);
      return;
    }
    seen.set(v, seen.size);
    const proto = Object.getPrototypeOf(v) as { constructor?: { name?: string } } | null;
    h.update(`<${proto?.constructor?.name ?? ''}`);
    if (ArrayBuffer.isView(v)) {
      h.update(`#${v.byteLength}:`);
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (Array.isArray(v)) {
      h.update(`[${v.length}`);
      for (const e of v) walk(e);
    } else if (v instanceof Map) {
      const entries = [...(v as Map<unknown, unknown>)];
      entries.sort((a, b) => cmp(value(a[0]), value(b[0])));
      for (const [k, e] of entries) {
        h.update(value(k) + '=');
        walk(e);
      }
    } else if (v instanceof Set) {
      // Members of plain values; a set of objects is told by its size alone.
      const plain = [...(v as Set<unknown>)].filter((e) => typeof e !== 'object' || e === null);
      h.update(`{${v.size}:${plain.map(value).sort(cmp).join(',')}}`);
    } else {
      const o = v as Record<PropertyKey, unknown>;
      const keys = Reflect.ownKeys(o).filter((k) => !skip(o, k));
      keys.sort((a, b) => cmp(String(a), String(b)));
      for (const k of keys) {
        h.update(String(k) + '=');
        walk(o[k]);
      }
    }
    h.update('>');
  };
  walk(s);
  return h.digest('hex');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A job that may stand for others (its replay watching the other trim thresholds). */
interface Twinnable {
  settings: ReplaySettings;
  otherTrimThresholds?: number[];
}

/**
 * A job another stands for: the job whose replay gives its figures, and how ('trim': its threshold
 * is the runner's otherTrimThresholds[watch]).
 */
export type Twin =
  { runner: number; kind: 'same' } | { runner: number; kind: 'trim'; watch: number };

/**
 * The jobs another job can stand for: each twin's job with the earlier job that stands for it
 * (itself no twin); a job that stands for twins of kind 'trim' gets their thresholds to watch
 * (otherTrimThresholds). `agree` says what else two jobs must agree on, besides the
 * settings other than mallopt calls, tunables and the environment, and the trace each reads
 * (null: the job stands alone).
 *
 * States are made one at a time and kept only as digests, so that a grid of hundreds of
 * configurations does not hold hundreds of heaps; a pair found alike is made again for twins().
 */
export async function pairTwins<J extends Twinnable>(
  jobs: readonly J[],
  trace: (j: J) => StartTrace | null,
  agree: (j: J) => string | null,
): Promise<Map<number, Twin>> {
  const out = new Map<number, Twin>();
  // The state compared is glibc's and the kernel's: the settings must agree on everything else
  // the replay reads (the touch model, the release modelled, ...).
  const rest = (s: ReplaySettings): string => {
    const { mallopts: _m, extraTunables: _x, tunables: _t, env: _e, ...other } = s;
    return JSON.stringify(other);
  };
  const keys: Array<string | null> = [];
  for (const j of jobs) {
    const t = trace(j);
    const a = agree(j);
    const s = t === null || a === null ? null : await startState(t, j.settings);
    keys.push(
      s === null
        ? null
        : JSON.stringify([t!.path, t!.displayName, t!.import, a, rest(j.settings), stateDigest(s)]),
    );
  }
  const stateOf = async (k: number): Promise<Process> =>
    (await startState(trace(jobs[k]!)!, jobs[k]!.settings))!;
  for (let k = 0; k < jobs.length; k++) {
    const key = keys[k];
    if (key === null) continue;
    for (let r = 0; r < k; r++) {
      const runner = jobs[r]!;
      if (keys[r] !== key || out.has(r)) continue;
      const twin = twins(await stateOf(r), await stateOf(k));
      if (twin === null) continue;
      if (twin.kind === 'same') out.set(k, { runner: r, kind: 'same' });
      else {
        const watched = (runner.otherTrimThresholds ??= []);
        let watch = watched.indexOf(twin.otherTrimThreshold);
        if (watch < 0) watch = watched.push(twin.otherTrimThreshold) - 1;
        out.set(k, { runner: r, kind: 'trim', watch });
      }
      break;
    }
  }
  return out;
}
