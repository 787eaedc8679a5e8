/**
 * The differential harness: replays one trace with ptsim and with the native replayer on this
 * machine's glibc, with the same touch model, and compares the two fidelity logs event by event,
 * the resident memory after every event, and the summaries (events, mallinfo2, rss, peakRss, brk),
 * plus malloc_stats and malloc_info when asked. A mismatch is described by the first differing
 * event, both records (or both RSS figures), and the trace lines before it.
 */

import { appendFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { readTraceText } from '../../src/trace/reader.js';
import {
  ReplayError,
  Replayer,
  type EventRecord,
  type ReplaySummary,
  type TouchMode,
} from '../../src/replay/replay.js';
import { PAGE_SIZE } from '../../src/kernel/kernel.js';
import type { TraceEvent, TraceHeader } from '../../src/trace/types.js';
import { kernelZeroPage, runNativeText, type NativeRun } from '../helpers/native.js';
import { profileFor } from '../../src/core/profile.js';

/** The model's profile of a glibc version that has one of its own (test code: no nearest). */
function exactProfile(version: string): NonNullable<ReturnType<typeof profileFor>>['profile'] {
  const p = profileFor(version);
  if (p === undefined || p.note !== undefined) throw new Error(`no profile of glibc ${version}`);
  return p.profile;
}

export interface SimRun {
  /** The fidelity log (records as docs/fidelity-log.md defines them, without RSS). */
  events: EventRecord[];
  /** The resident bytes of the allocator's memory after each event (as the summary's `rss`). */
  rss: number[];
  summary: ReplaySummary;
  stats: string;
  info: string;
  /** The line numbers of each event, for reports. */
  lines: number[];
  error?: string;
}

/** The environment a trace asks for in its `# env` header lines. */
export function traceEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  readTraceText(text, 'env', {
    header: (h: TraceHeader) => {
      for (const [k, v] of h.env) env[k] = v;
    },
    event: () => {},
  });
  return env;
}

/** The touch model a replay of the trace takes by default: recorded when its header says so. */
export function traceTouch(text: string): TouchMode {
  let touch: TouchMode = 'full';
  readTraceText(text, 'touch', {
    header: (h: TraceHeader) => {
      if (h.touchesRecorded === true) touch = 'recorded';
    },
    event: () => {},
  });
  return touch;
}

export function runSim(
  text: string,
  env: Record<string, string>,
  name = 'trace',
  touch?: TouchMode,
  glibc?: string,
): SimRun {
  const events: EventRecord[] = [];
  const rss: number[] = [];
  const lines: number[] = [];
  // Debian's glibc 2.36 fixes its arena limit from the online CPUs of the machine it runs on.
  const r: Replayer = new Replayer(name, {
    env: Object.entries(env),
    cores: cpus().length,
    // The kernel's, as the native replay meets it.
    kernel: { zeroPage: kernelZeroPage() },
    ...(touch === undefined ? {} : { touch }),
    ...(glibc === undefined ? {} : { profile: exactProfile(glibc) }),
    // Called once the event is complete, touch model included: the figure the summary's rss is.
    onEvent: (e) => {
      events.push(e);
      rss.push(r.kernel.residentPages * PAGE_SIZE);
    },
  });
  let error: string | undefined;
  try {
    readTraceText(text, name, {
      header: (h) => r.header(h),
      event: (ev: TraceEvent) => {
        lines.push(ev.line);
        r.event(ev);
      },
      touch: (rec) => r.touch(rec),
      rss: (sample) => r.rss(sample),
      touchesIncomplete: (line, detail) => r.touchesIncomplete(line, detail),
      recordsEnd: () => r.recordsEnd(),
    });
  } catch (e) {
    if (!(e instanceof ReplayError)) throw e;
    error = e.message;
  }
  const run: SimRun = {
    events,
    rss,
    summary: r.finish(),
    stats: r.stats(),
    info: r.info(),
    lines,
  };
  if (error !== undefined) run.error = error;
  return run;
}

const SUMMARY_KEYS = ['events', 'rss', 'peakRss', 'brk'] as const;

function show(o: unknown): string {
  return JSON.stringify(o);
}

/** The native log split in two: the records without `rss`, and each event's `rss` (if written). */
function splitNativeLog(nat: NativeRun): {
  records: Array<Record<string, unknown>>;
  rss: Array<number | undefined>;
} {
  const records: Array<Record<string, unknown>> = [];
  const rss: Array<number | undefined> = [];
  for (const e of nat.events) {
    const { rss: r, ...rec } = e;
    records.push(rec);
    rss.push(typeof r === 'number' ? r : undefined);
  }
  return { records, rss };
}

function bytesAndPages(bytes: number | undefined): string {
  if (bytes === undefined) return 'none';
  return `${bytes} bytes (${bytes / PAGE_SIZE} pages)`;
}

export interface CompareOptions {
  stats?: boolean;
  info?: boolean;
  /**
   * The native replayer was asked for each event's RSS (NativeOptions.rss): a record without it
   * is a failure. Otherwise RSS is compared for the records that carry it.
   */
  rss?: boolean;
  /** Compare only the first `upTo` events (records and RSS), not the lengths of the logs. */
  upTo?: number;
}

/**
 * With PTSIM_DIFF_COUNT set to a file, each comparison of a ptsim and a glibc replay appends a
 * line to it (the events compared), so that a run of the suite can say how many traces and
 * events it compared (docs/fidelity.md, "What the suite costs").
 */
function countCompared(events: number): void {
  const file = process.env['PTSIM_DIFF_COUNT'];
  if (file !== undefined && file !== '') appendFileSync(file, `${events}\n`);
}

/**
 * Compares the two logs event by event: the records (the native one without its `rss`), then
 * the RSS after the event. Returns null when they agree, else a report of the first difference.
 */
export function compareEvents(
  text: string,
  sim: SimRun,
  nat: NativeRun,
  opts: CompareOptions = {},
): string | null {
  const traceLines = text.split('\n');
  const context = (eventIndex: number): string => {
    const line = sim.lines[eventIndex] ?? traceLines.length;
    const from = Math.max(0, line - 12);
    return traceLines
      .slice(from, line)
      .map((l, k) => `${String(from + k + 1).padStart(6)}  ${l}`)
      .join('\n');
  };
  const native = splitNativeLog(nat);
  const n = opts.upTo ?? Math.max(sim.events.length, native.records.length);
  countCompared(n);
  for (let i = 0; i < n; i++) {
    const a = sim.events[i];
    const b = native.records[i];
    if (show(a) !== show(b)) {
      return `first difference at event ${i}:\n  ptsim: ${show(a)}\n  glibc: ${show(b)}\ntrace lines up to it:\n${context(i)}`;
    }
    const ra = sim.rss[i];
    const rb = native.rss[i];
    if (rb === undefined && !opts.rss) continue;
    if (ra !== rb) {
      const before =
        i === 0
          ? ''
          : `\n  after event ${i - 1}: ptsim ${bytesAndPages(sim.rss[i - 1])}, glibc ${bytesAndPages(native.rss[i - 1])}`;
      const delta =
        ra !== undefined && rb !== undefined
          ? ` (ptsim ${ra > rb ? '+' : ''}${(ra - rb) / PAGE_SIZE} pages)`
          : '';
      return (
        `first RSS difference after event ${i}${delta}:\n  ptsim: ${bytesAndPages(ra)}\n  glibc: ${bytesAndPages(rb)}` +
        `${before}\n  record: ${show(a)}\ntrace lines up to it:\n${context(i)}`
      );
    }
  }
  return null;
}

/** Returns null when both runs agree, else a report of the first difference. */
export function compareRuns(
  text: string,
  sim: SimRun,
  nat: NativeRun,
  opts: CompareOptions = {},
): string | null {
  if (sim.error !== undefined) return `ptsim stopped: ${sim.error}`;
  if (nat.summary === null && nat.abort === undefined)
    return `the native replayer failed (exit ${nat.exitCode}, signal ${nat.signal}):\n${nat.stderr}`;
  const events = compareEvents(text, sim, nat, opts);
  if (events !== null) return events;
  if (nat.abort !== undefined || sim.summary.abort !== undefined) {
    const sa = sim.summary.abort;
    const na = nat.abort;
    if (
      sa === undefined ||
      na === undefined ||
      sa.message !== na.message.trim() ||
      sa.event !== na.event
    ) {
      return `aborts differ:\n  ptsim: ${show(sa)}\n  glibc: ${show(na)}`;
    }
    return null;
  }
  const ns = nat.summary!;
  for (const k of SUMMARY_KEYS) {
    if (sim.summary[k] !== ns[k])
      return `summary ${k} differs: ptsim ${sim.summary[k]}, glibc ${show(ns[k])}`;
  }
  // A glibc without mallinfo2 (2.31) reports mallinfo: int fields filled from size_t sums, read
  // back as unsigned, so the model's figures modulo 2^32.
  const mallinfo =
    ns['mallinfoBy'] === 'mallinfo'
      ? Object.fromEntries(Object.entries(sim.summary.mallinfo2).map(([k, v]) => [k, v % 2 ** 32]))
      : sim.summary.mallinfo2;
  if (show(mallinfo) !== show(ns['mallinfo2'])) {
    return `summary mallinfo2 differs:\n  ptsim: ${show(sim.summary.mallinfo2)}\n  glibc: ${show(ns['mallinfo2'])}`;
  }
  if (opts.stats && sim.stats !== nat.stats)
    return `malloc_stats differs:\n--- ptsim\n${sim.stats}--- glibc\n${nat.stats}`;
  if (opts.info && sim.info !== nat.info)
    return `malloc_info differs:\n--- ptsim\n${sim.info}--- glibc\n${nat.info}`;
  return null;
}

/**
 * Replays `text` both ways, with the same touch model (the one given, else the trace's default),
 * and returns the difference report, or null.
 */
export function differential(
  text: string,
  opts: {
    name?: string;
    stats?: boolean;
    info?: boolean;
    env?: Record<string, string>;
    touch?: TouchMode;
    /** Replay on Debian's build of this glibc version, and with the model's profile of it. */
    glibc?: string;
  } = {},
): string | null {
  const env = { ...traceEnv(text), ...(opts.env ?? {}) };
  const touch = opts.touch ?? traceTouch(text);
  const sim = runSim(text, env, opts.name, touch, opts.glibc);
  const nat = runNativeText(text, {
    ...(opts.glibc === undefined ? {} : { glibc: opts.glibc }),
    env,
    stats: opts.stats ?? false,
    info: opts.info ?? false,
    rss: true,
    name: opts.name,
    touch,
  });
  return compareRuns(text, sim, nat, { ...opts, rss: true });
}
