/**
 * Replaying one configuration for its figures (resident memory, system calls, page faults), in
 * this thread or in worker threads, so that compare and sweep can run many configurations
 * side by side on the machine's cores. A configuration's figures are exactly those of a separate
 * `ptsim replay` with the same settings; configurations that leave glibc in the same state once
 * started share one replay (twins.ts).
 */

import { JobPool } from './pool.js';
import type { SyscallCounts } from '../kernel/kernel.js';
import {
  readHeader,
  replayFile,
  type ImportSettings,
  type ReplaySettings,
} from '../replay/run-file.js';
import type { TraceEvent, TraceHeader } from '../trace/types.js';
import type { Replayer } from '../replay/replay.js';
import { pairTwins, type Twin } from './twins.js';

export interface FiguresJob {
  path: string;
  displayName?: string;
  import?: ImportSettings;
  settings: ReplaySettings;
  /** Stop after this event (the point of an explanation); the whole trace when absent. */
  stopAfter?: number;
  /** Sample RSS every this many events into `timeline` (0: none). */
  sampleEvery?: number;
  /**
   * The trim thresholds of twin configurations to watch (twins.ts): the figures then say whether
   * each would ever have decided a trim differently (Watched.otherTrimMattered).
   */
  otherTrimThresholds?: number[];
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

/** The figures of a job that watches another trim threshold. */
interface Watched extends Figures {
  /** Whether each watched threshold would have changed anything (false: the figures are its too). */
  otherTrimMattered?: boolean[];
}

/** Replays one job in this thread. */
export async function runFigures(job: FiguresJob): Promise<Watched> {
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
    if (ev.index % every === 0) timeline.push([ev.index, lastRss]);
  };
  const run = await replayFile(job.path, {
    ...job.settings,
    import: job.import,
    displayName: job.displayName,
    stopAfter: job.stopAfter,
    ...(job.otherTrimThresholds !== undefined
      ? { otherTrimThresholds: job.otherTrimThresholds }
      : {}),
    // Without a timeline the replay keeps RSS over time itself, and needs no observer: its
    // common events are replayed without event objects (Replayer.runStored, runBatch).
    ...(every > 0 ? { observe } : { rssOverTime: true }),
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${job.path}: nothing to replay`);
  const s = r.finish();
  if (every === 0) {
    const o = r.rssOverTime;
    area = o.area;
    firstT = o.first;
    lastT = o.last;
    lastRss = o.lastRss;
  }
  const span = lastT - firstT;
  const f: Watched = {
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
  if (job.otherTrimThresholds !== undefined)
    f.otherTrimMattered = r.process.trimThresholdsMattered.map((e) => e >= 0);
  return f;
}

interface ManyOptions {
  /** Worker threads (1: every replay in this thread; default: the number of CPUs). */
  parallel?: number;
  /** Called as each job's figures are in (a twin's included), with the number of jobs. */
  progress?: (done: number, total: number) => void;
  /** Told of each replay as it is handed out, by its job's index (a twin's only when replayed). */
  replaying?: (k: number) => void;
}

/**
 * The figures of every job, in the jobs' order, the replays run on up to `parallel` worker threads.
 * Jobs whose settings leave glibc in the same state once started (twins.ts) share one replay: a
 * twin gets its runner's figures, or its own replay after all when the runner's watch says its trim
 * threshold would have mattered.
 */
export async function runMany(jobs: FiguresJob[], opts: ManyOptions = {}): Promise<Figures[]> {
  // The jobs as run: a runner gets the threshold it watches.
  const run = jobs.map((j) => ({ ...j }));
  const twinned =
    run.length > 1 ? await pairTwins(run, await starts(run), agree) : new Map<number, Twin>();
  const replays = run.length - twinned.size;
  const pool = new JobPool<FiguresJob, Watched>(
    new URL('./figures-worker.js', import.meta.url),
    runFigures,
    replays > 1 ? opts.parallel : 1,
  );
  let done = 0;
  const counted = (f: Watched): Figures => {
    opts.progress?.(++done, jobs.length);
    const { otherTrimMattered: _, ...figures } = f;
    return figures;
  };
  const replay = (k: number): Promise<Watched> => {
    opts.replaying?.(k);
    return pool.run(run[k]!);
  };
  try {
    const results = new Array<Promise<Watched>>(run.length);
    for (let k = 0; k < run.length; k++) if (!twinned.has(k)) results[k] = replay(k);
    for (const [k, twin] of twinned)
      results[k] = results[twin.runner]!.then((f) =>
        twin.kind === 'trim' && f.otherTrimMattered?.[twin.watch] !== false
          ? replay(k)
          : structuredClone(f),
      );
    return await Promise.all(results.map((p) => p.then(counted)));
  } finally {
    await pool.close();
  }
}

/** The trace each job starts from, its header read once per file (null: none to read). */
async function starts(
  jobs: FiguresJob[],
): Promise<(j: FiguresJob) => { path: string; header: TraceHeader } | null> {
  const headers = new Map<string, Promise<TraceHeader | null>>();
  const source = (j: FiguresJob): string => JSON.stringify([j.path, j.displayName, j.import]);
  for (const j of jobs)
    if (!headers.has(source(j)))
      headers.set(source(j), readHeader(j.path, { import: j.import, displayName: j.displayName }));
  const read = new Map<string, TraceHeader | null>();
  for (const [k, h] of headers) read.set(k, await h);
  return (j) => {
    const header = read.get(source(j)) ?? null;
    return header === null
      ? null
      : { path: j.path, displayName: j.displayName, import: j.import, header };
  };
}

/** What twins must agree on besides their settings: what is measured. */
function agree(j: FiguresJob): string {
  return JSON.stringify([j.stopAfter, j.sampleEvery ?? 0]);
}
