/**
 * Replaying a trace file with a set of settings: the edge between the trace readers (any format)
 * and the replay loop, shared by every command that replays (replay, explain, compare, sweep,
 * report). It merges the trace's own header (its `# env` lines, `# nprocs`, `# start_brk`) with the
 * caller's settings, as a program started with them would see them.
 */

import { cpus } from 'node:os';
import { openTrace } from '../import/index.js';
import { resolveTunables } from '../core/tunables.js';
import type { SiteTable } from '../trace/site-table.js';
import type { TraceEvent, TraceHeader, TraceSink } from '../trace/types.js';
import { Replayer, type EventRecord, type TouchMode } from './replay.js';

/** What a replay runs with, besides the trace itself. */
export interface ReplaySettings {
  /** `MALLOC_*_` variables (NAME, VALUE) that override the trace's `# env` lines. */
  env?: Array<[string, string]>;
  /** A GLIBC_TUNABLES value that overrides the trace's. */
  tunables?: string;
  /** Tunables appended to whatever GLIBC_TUNABLES the program runs with (for what-if variants). */
  extraTunables?: string;
  /** mallopt(param, value) calls before the first event. */
  mallopts?: Array<[number, number]>;
  ignoreTraceEnv?: boolean;
  /** CPUs glibc sees (default: the trace's `# nprocs`, else this machine's). */
  cores?: number;
  brkBase?: number;
  maxBrk?: number;
  /** What the program writes (default: `recorded` for a trace with touch records, else `full`). */
  touch?: TouchMode;
}

export interface ImportSettings {
  from?: string;
  strict?: boolean;
  pid?: number;
}

interface RunOptions extends ReplaySettings {
  import?: ImportSettings;
  displayName?: string;
  /** Stop after the event with this index (the rest of the trace is not read). */
  stopAfter?: number;
  checkLevel?: 0 | 1 | 2;
  onEvent?: (rec: EventRecord) => void;
  /**
   * Called after each replayed event, once the records that follow it are applied, with the
   * replayer's state as it is then (and after an event at which glibc aborts).
   */
  observe?: (ev: TraceEvent, r: Replayer) => void;
  onWarning?: (msg: string) => void;
  /** Back-pressure of the caller's output (TraceSink.ready): the reading waits while it is full. */
  ready?: () => Promise<void> | undefined;
  /** Filled with the trace's call stacks and the stack of each event, when the trace has them. */
  sites?: SiteTable;
}

export interface RunResult {
  /** Null when the trace could not be opened or its header not read. */
  replayer: Replayer | null;
  header: TraceHeader | null;
  /** A mistake in the trace, or a state the model cannot follow, that ended the replay early. */
  failure: Error | null;
  /** The settings glibc ignores (out of range, unknown), one line each. */
  notes: string[];
}

/** The environment the replayed program sees: the trace's header, then the caller's overrides. */
function mergeEnv(header: TraceHeader | null, s: ReplaySettings): Array<[string, string]> {
  const env = new Map<string, string>();
  if (header !== null && !s.ignoreTraceEnv) for (const [k, v] of header.env) env.set(k, v);
  if (s.tunables !== undefined) env.set('GLIBC_TUNABLES', s.tunables);
  for (const [k, v] of s.env ?? []) env.set(k, v);
  if (s.extraTunables !== undefined) {
    const t = env.get('GLIBC_TUNABLES');
    env.set(
      'GLIBC_TUNABLES',
      t === undefined || t === '' ? s.extraTunables : `${t}:${s.extraTunables}`,
    );
  }
  return [...env];
}

class StopReplay extends Error {}

/** Replays a trace file (any format ptsim reads) with the given settings. */
export async function replayFile(path: string, opts: RunOptions = {}): Promise<RunResult> {
  const displayName = opts.displayName ?? (path === '-' ? '<stdin>' : path);
  let replayer: Replayer | null = null;
  let header: TraceHeader | null = null;
  const notes: string[] = [];
  const observe = opts.observe;
  const stopAfter = opts.stopAfter ?? Number.POSITIVE_INFINITY;
  const sites = opts.sites;
  const sink: TraceSink = {
    header(h: TraceHeader): void {
      header = h;
      const env = mergeEnv(h, opts);
      for (const note of resolveTunables(env).notes) notes.push(`${note.setting}: ${note.reason}`);
      const kernel: { brkBase?: number; maxBrk?: number } = {};
      const startBrk = h.facts.get('start_brk');
      if (opts.brkBase !== undefined) kernel.brkBase = opts.brkBase;
      else if (
        startBrk !== undefined &&
        /^0x[0-9a-f]+$/i.test(startBrk) &&
        parseInt(startBrk, 16) % 4096 === 0
      )
        kernel.brkBase = parseInt(startBrk, 16);
      if (opts.maxBrk !== undefined) kernel.maxBrk = opts.maxBrk;
      const r = new Replayer(displayName, {
        mallopts: opts.mallopts ?? [],
        cores: opts.cores ?? h.nprocs ?? cpus().length,
        kernel,
        env,
        checkLevel: opts.checkLevel ?? 0,
        touch: opts.touch,
        onEvent: opts.onEvent,
        onWarning: opts.onWarning,
        // Called once the event is complete, the records after it applied.
        observe: (ev, r) => {
          if (observe !== undefined) observe(ev, r);
          if (ev.index >= stopAfter) throw new StopReplay();
        },
      });
      replayer = r;
      r.header(h);
    },
    event(ev: TraceEvent): void {
      const r = replayer!;
      // Before the event runs: an observer of this event may look its block's stack up.
      if (sites !== undefined) sites.noteEvent(ev);
      r.event(ev);
      if (r.aborted) {
        if (observe !== undefined) observe(ev, r);
        throw new StopReplay();
      }
    },
    touch: (rec) => replayer!.touch(rec),
    rss: (sample) => replayer!.rss(sample),
    recordsEnd: () => replayer!.recordsEnd(),
  };
  if (sites !== undefined) sink.site = (rec) => sites.add(rec);
  if (opts.ready !== undefined) sink.ready = opts.ready;
  let failure: Error | null = null;
  try {
    await openTrace(path, sink, { ...opts.import, displayName, onWarning: opts.onWarning });
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    if (!(e instanceof StopReplay)) failure = e;
  }
  return { replayer, header, failure, notes };
}
