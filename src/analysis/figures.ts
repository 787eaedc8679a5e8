/**
 * Replaying one configuration for its figures (resident memory, system calls, page faults), in
 * this thread or in worker threads, so that compare and sweep can run many configurations
 * side by side on the machine's cores. A configuration's figures are exactly those of a separate
 * `ptsim replay` with the same settings.
 */

import { runPool } from './pool.js';
import type { SyscallCounts } from '../kernel/kernel.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import type { TraceEvent } from '../trace/types.js';
import type { Replayer } from '../replay/replay.js';

export interface FiguresJob {
  path: string;
  displayName?: string;
  import?: ImportSettings;
  settings: ReplaySettings;
  /** Stop after this event (the point of an explanation); the whole trace when absent. */
  stopAfter?: number;
  /** Sample RSS every this many events into `timeline` (0: none). */
  sampleEvery?: number;
}

export interface Figures {
  events: number;
  /** Resident bytes at the point. */
  rss: number;
  peakRss: number;
  peakEvent: number;
  /** Time-weighted mean RSS over the events replayed (each event weighs the same when the trace has no times). */
  meanRss: number;
  heapBytes: number;
  mmappedBytes: number;
  syscalls: SyscallCounts;
  pageFaults: number;
  /** [event index, rss] samples. */
  timeline?: Array<[number, number]>;
  /** Why the replay ended early, if it did. */
  failure?: string;
  /** The name of that failure's error (ReplayError, TraceSyntaxError, TraceReadError, ...). */
  failureName?: string;
  /** glibc's abort, when the replay ended in one. */
  abort?: { message: string; event: number; line: number };
}

/** Replays one job in this thread. */
export async function runFigures(job: FiguresJob): Promise<Figures> {
  let area = 0;
  let lastT = -1;
  let lastRss = 0;
  let firstT = -1;
  const timeline: Array<[number, number]> = [];
  const every = job.sampleEvery ?? 0;
  const observe = (ev: TraceEvent, r: Replayer): void => {
    const t = ev.time >= 0 ? ev.time : ev.index;
    if (lastT >= 0) area += lastRss * (t - lastT);
    else firstT = t;
    lastT = t;
    lastRss = r.kernel.residentPages * 4096;
    if (every > 0 && ev.index % every === 0) timeline.push([ev.index, lastRss]);
  };
  const run = await replayFile(job.path, {
    ...job.settings,
    import: job.import,
    displayName: job.displayName,
    stopAfter: job.stopAfter,
    observe,
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${job.path}: nothing to replay`);
  const s = r.finish();
  const span = lastT - firstT;
  const f: Figures = {
    events: s.events,
    rss: r.kernel.residentPages * 4096,
    peakRss: s.peakRss,
    peakEvent: s.peakEvent,
    meanRss: span > 0 ? area / span : lastRss,
    heapBytes: s.mallinfo2.arena,
    mmappedBytes: s.mmapped,
    syscalls: { ...r.kernel.syscalls },
    pageFaults: r.kernel.pageFaults,
  };
  if (every > 0) f.timeline = timeline;
  if (run.failure !== null) {
    f.failure = run.failure.message;
    f.failureName = run.failure.name;
  }
  if (s.abort !== undefined) f.abort = { ...s.abort };
  return f;
}

/**
 * Runs jobs on up to `parallel` worker threads (1: all in this thread), calling `progress` as each
 * finishes. Results come back in the jobs' order.
 */
export function runMany(
  jobs: FiguresJob[],
  parallel?: number,
  progress?: (done: number, total: number) => void,
): Promise<Figures[]> {
  return runPool(
    new URL('./figures-worker.js', import.meta.url),
    jobs,
    runFigures,
    parallel,
    progress,
  );
}
