/**
 * The replay sink: the edge between whatever delivers a trace (a file's reader, a copy held in
 * memory, a browser's parser) and the replay loop. It merges the trace's own header (its `# env`
 * lines, `# nprocs`, `# start_brk`) with the caller's settings, as a program started with them
 * would see them. No I/O here, so that the browser's visualizer runs the same code.
 */

import { resolveTunables } from '../core/tunables.js';
import {
  DEFAULT_PROFILE,
  isUnverified,
  profileFor,
  unverifiedNote,
  type GlibcProfile,
} from '../core/profile.js';
import type { BatchPlace, EventBatch } from '../trace/batch.js';
import type { StoredPlace, StoredTrace } from '../trace/event-store.js';
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
  /** CPUs glibc sees (default: the trace's `# nprocs`, else `fallbackCores`). */
  cores?: number;
  /** CPUs glibc sees when neither `cores` nor the trace says (the machine's; 1 when not given). */
  fallbackCores?: number;
  /** The same for a release that counts the CPUs it may run on (2.34, 2.35): the machine's
   *  affinity mask (fallbackCores when not given). */
  fallbackAllowedCores?: number;
  brkBase?: number;
  maxBrk?: number;
  /** Whether the kernel maps the zero page for reads (KernelOptions.zeroPage; default: the trace's `# zero_page`, else yes). */
  zeroPage?: boolean;
  /** What the program writes (default: `recorded` for a trace with touch records, else `full`). */
  touch?: TouchMode;
  /** The glibc release to model (default: the trace's `# glibc` line, else 2.36). */
  glibc?: string;
}

/**
 * The profile a replay models: the settings' version, else the trace's `# glibc` line, else the
 * default; a version without a profile of its own gets the one whose rules it follows, and a note
 * says so, as another says when the profile is unverified.
 */
export function chooseProfile(
  glibc: string | undefined,
  header: TraceHeader | null,
): { profile: GlibcProfile; notes: string[] } {
  // `# glibc VERSION` is one word; a comment that starts with the word (`# glibc 2.36 serves
  // requests of 128 KiB with mmap...`) is prose, not a version.
  const fact = header?.facts.get('glibc');
  const asked = glibc ?? (fact !== undefined && !/\s/.test(fact) ? fact : undefined);
  if (asked === undefined || asked === '') return { profile: DEFAULT_PROFILE, notes: [] };
  const p = profileFor(asked);
  if (p === undefined)
    return {
      profile: DEFAULT_PROFILE,
      notes: [
        `the trace's '# glibc ${asked}' is not a glibc version: replayed as glibc ${DEFAULT_PROFILE.version}`,
      ],
    };
  const notes = p.note !== undefined ? [p.note] : [];
  if (isUnverified(p.profile)) notes.push(unverifiedNote(p.profile));
  return { profile: p.profile, notes };
}

/**
 * The CPUs glibc counts for its arena limit, when the command line does not say: the trace's
 * `# nprocs` (the CPUs online, as get_nprocs counted them where it was recorded), or for a release
 * that counts the CPUs it may run on (2.34, 2.35) its `# cpus_allowed`; else the fallbacks.
 */
function coresOf(profile: GlibcProfile, h: TraceHeader, notes: string[], opts: RunOptions): number {
  const fallback = opts.fallbackCores ?? 1;
  if (profile.arenaLimitFromAffinity) {
    const allowed = h.facts.get('cpus_allowed');
    if (allowed !== undefined) {
      if (/^[1-9][0-9]{0,6}$/.test(allowed)) return Number(allowed);
      notes.push(`'# cpus_allowed ${allowed}' is not a number of CPUs: ignored`);
    }
    return h.nprocs ?? opts.fallbackAllowedCores ?? fallback;
  }
  return h.nprocs ?? fallback;
}

export interface ImportSettings {
  from?: string;
  strict?: boolean;
  pid?: number;
}

export interface RunOptions extends ReplaySettings {
  import?: ImportSettings;
  displayName?: string;
  /** Stop after the event with this index (the rest of the trace is not read). */
  stopAfter?: number;
  /** Other trim thresholds to watch (ReplayOptions.otherTrimThresholds). */
  otherTrimThresholds?: readonly number[];
  /** The events `observe` is called for (ReplayOptions.observeAt); every event when absent. */
  observeAt?: readonly number[];
  /** Keep RSS over time (ReplayOptions.rssOverTime, Replayer.rssOverTime). */
  rssOverTime?: boolean;
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
  /**
   * Delivers the trace's events instead of reading `path` (a copy of them held in memory, possibly
   * edited); it rejects as reading the file would, with the same errors.
   */
  source?: (sink: TraceSink) => Promise<unknown>;
  /** Sees everything the trace's reader delivers, before the replay does (to keep a copy of it). */
  tee?: TraceSink;
  /** Filled with the trace's call stacks and the stack of each event, when the trace has them. */
  sites?: SiteTable;
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

/**
 * ReplayOptions.observeAt for the replay sink's observer: the events the caller's observer looks
 * at (every one when it has an observer and says none), and the event to stop after.
 */
function observedEvents(
  callerObserves: boolean,
  at: readonly number[] | undefined,
  stopAfter: number,
): { observeAt?: readonly number[] } {
  if (callerObserves && at === undefined) return {};
  const events = [...(callerObserves ? at! : [])];
  if (stopAfter !== Number.POSITIVE_INFINITY) events.push(stopAfter);
  return { observeAt: [...new Set(events)].sort((a, b) => a - b) };
}

/** A sink that replays what it is given, as replayFile does: the Replayer is made at the header. */
export interface ReplaySink {
  sink: TraceSink;
  /** The replayer, once the header has been delivered. */
  readonly replayer: Replayer | null;
  readonly header: TraceHeader | null;
  /** The settings glibc ignores (out of range, unknown), one line each. */
  readonly notes: string[];
}

/**
 * The sink replayFile feeds a trace to, for a caller that delivers the trace itself (the stepper
 * replays events it holds in memory). It throws StopReplay (isStopReplay) after `stopAfter` and
 * at glibc's abort.
 */
export function replaySink(displayName: string, opts: RunOptions = {}): ReplaySink {
  let replayer: Replayer | null = null;
  let header: TraceHeader | null = null;
  const notes: string[] = [];
  const observe = opts.observe;
  // What the sink copies the trace to: nothing more once the reader keeps the copy itself.
  let tee = opts.tee;
  const stopAfter = opts.stopAfter ?? Number.POSITIVE_INFINITY;
  const sites = opts.sites;
  // Out of line: the compiler inlines the event path into the reader's loop within a budget of
  // code, which a rare path would spend.
  const stopAtAbort = (ev: TraceEvent, r: Replayer): never => {
    if (observe !== undefined) observe(ev, r);
    throw new StopReplay();
  };
  const sink: TraceSink = {
    header(h: TraceHeader): void {
      tee?.header(h);
      header = h;
      const env = mergeEnv(h, opts);
      const chosen = chooseProfile(opts.glibc, h);
      notes.push(...chosen.notes);
      for (const note of resolveTunables(env, chosen.profile).notes)
        notes.push(`${note.setting}: ${note.reason}`);
      const kernel: { brkBase?: number; maxBrk?: number; zeroPage?: boolean } = {};
      // Recorded on a kernel that gives a page read a frame of its own (recorder.c), unless told.
      if (opts.zeroPage !== undefined) kernel.zeroPage = opts.zeroPage;
      else if (h.facts.get('zero_page') === 'no') kernel.zeroPage = false;
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
        cores: opts.cores ?? coresOf(chosen.profile, h, notes, opts),
        kernel,
        env,
        profile: chosen.profile,
        checkLevel: opts.checkLevel ?? 0,
        touch: opts.touch,
        onEvent: opts.onEvent,
        onWarning: opts.onWarning,
        ...(opts.otherTrimThresholds !== undefined
          ? { otherTrimThresholds: opts.otherTrimThresholds }
          : {}),
        // Called once the event is complete, the records after it applied (only when there is
        // something to do then: a call per event costs; only at the events the caller looks
        // at and the one to stop after, when it says which, so that the others need no event
        // object).
        ...(observe !== undefined || stopAfter !== Number.POSITIVE_INFINITY
          ? {
              observe: (ev: TraceEvent, r: Replayer): void => {
                if (observe !== undefined) observe(ev, r);
                if (ev.index >= stopAfter) throw new StopReplay();
              },
              ...observedEvents(observe !== undefined, opts.observeAt, stopAfter),
            }
          : {}),
        ...(opts.rssOverTime === true ? { rssOverTime: true } : {}),
      });
      replayer = r;
      r.header(h);
    },
    event(ev: TraceEvent): void {
      tee?.event(ev);
      const r = replayer!;
      // Before the event runs: an observer of this event may look its block's stack up.
      if (sites !== undefined) sites.noteEvent(ev);
      r.event(ev);
      if (r.aborted) stopAtAbort(ev, r);
    },
    runStored(t: StoredTrace, at: StoredPlace, stop: number, shift?: number): void {
      // Only for a replay alone: a tee and the call stacks see every event.
      if (tee !== undefined || sites !== undefined) return;
      const r = replayer!;
      r.runStored(t, at, stop, shift);
      // stopAtAbort without an event: runStored runs only when nothing observes.
      if (r.aborted) throw new StopReplay();
    },
    runBatch(b: EventBatch, at: BatchPlace): void {
      if (tee !== undefined || sites !== undefined) return;
      const r = replayer!;
      r.runBatch(b, at);
      if (r.aborted) throw new StopReplay();
    },
    touch: (rec) => {
      tee?.touch?.(rec);
      replayer!.touch(rec);
    },
    rss: (sample) => {
      tee?.rss?.(sample);
      replayer!.rss(sample);
    },
    touchesIncomplete: (line, detail) => {
      tee?.touchesIncomplete?.(line, detail);
      replayer!.touchesIncomplete(line, detail);
    },
    recordsEnd: () => {
      tee?.recordsEnd?.();
      replayer!.recordsEnd();
    },
  };
  if (sites !== undefined || tee?.site !== undefined)
    sink.site = (rec) => {
      tee?.site?.(rec);
      sites?.add(rec);
    };
  if (opts.ready !== undefined) sink.ready = opts.ready;
  const copy = tee?.copy;
  if (copy !== undefined)
    sink.copy = {
      limit: copy.limit,
      keptElsewhere: () => {
        tee = undefined;
        copy.keptElsewhere();
      },
      adopt: (c) => copy.adopt(c),
    };
  return {
    sink,
    get replayer() {
      return replayer;
    },
    get header() {
      return header;
    },
    notes,
  };
}

/** Whether an exception is the replay sink's way of stopping the reading. */
export function isStopReplay(e: unknown): boolean {
  return e instanceof StopReplay;
}
