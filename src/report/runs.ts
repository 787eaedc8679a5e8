/**
 * The replays behind a report: one per configuration, each sampled into a timeline, with its
 * threshold history placed on the trace's time axis and, for the configuration being explained,
 * the heap map at the chosen moment. Configurations run on worker threads when the compiled
 * worker is there (pool.ts), else one after the other; what a replay gathers can also ride on
 * another replay of the same configuration (configWatcher: the explanation's first replay).
 */

import { glibcLabel } from '../core/profile.js';
import { runPool } from '../analysis/pool.js';
import { ThresholdHistory, type ThresholdChange } from '../analysis/thresholds.js';
import {
  TimelineSampler,
  type TimelineOptions,
  type TimelineSample,
} from '../analysis/timeline.js';
import type { SyscallCounts } from '../kernel/kernel.js';
import type { MeasuredSample, MeasuredSamples } from '../replay/measured.js';
import type { Replayer } from '../replay/replay.js';
import {
  replayFile,
  type ImportSettings,
  type ReplaySettings,
  type RunResult,
} from '../replay/run-file.js';
import type { TraceEvent } from '../trace/types.js';
import { heapMap, type HeapMap } from './heap-map.js';

export interface ConfigRunJob {
  path: string;
  displayName?: string;
  import?: ImportSettings;
  settings: ReplaySettings;
  timeline: TimelineOptions;
  /** Map the heap after this event, or after the last one ('end'; also when the trace ends before the event). */
  mapAt?: number | 'end';
}

/** A threshold change with the trace time of its event (the first event's time for start-up settings). */
export type TimedThresholdChange = ThresholdChange & { time: number };

export interface ConfigRun {
  samples: TimelineSample[];
  /** Whether the trace carries @TIME stamps (else times are event indexes). */
  timed: boolean;
  thresholds: TimedThresholdChange[];
  summary: {
    events: number;
    rss: number;
    peakRss: number;
    peakEvent: number;
    heap: number;
    mmapped: number;
    liveBytes: number;
    syscalls: SyscallCounts;
    pageFaults: number;
    /** glibc's abort message, when the replay ended in one. */
    abort?: string;
    /** The glibc release modelled, as outputs name it ("2.36", "2.35 (unverified)"). */
    glibc: string;
  };
  /** The trace's header: `# KEY VALUE` facts and `# env` lines. */
  facts: Array<[string, string]>;
  /** The header's comment lines as written. */
  comments: string[];
  env: Array<[string, string]>;
  /** The trace's `#:rss` samples, when it has any (measuredSeries). */
  measured?: MeasuredSeries;
  map?: HeapMap;
  /** The trace time of the mapped event. */
  mapTime?: number;
  /** Why the replay stopped early (a mistake in the trace, a state the model cannot follow). */
  failure?: string;
  failureName?: string;
}

/**
 * The process's own measurement as a line beside the replay's RSS: at each `#:rss` sample (at
 * the time of the event it follows), RssAnon less the recorder's own memory (`rec=`), less the
 * baseline, so that the two lines start together and part where they grew differently. Samples
 * without RssAnon are left out of it; when no sample has RssAnon (heaptrack's imports), the line
 * is the process's whole RSS (`total=`) less the baseline, then the rest of the process at the
 * first sample (code, libraries, stacks, the recorder's own memory).
 */
export interface MeasuredSeries {
  /** What the line is made of: RssAnon (less rec=), or the whole RSS. */
  of: 'anon' | 'total';
  time: number[];
  bytes: number[];
  /**
   * What the process held beyond the replay's RSS at the first sample of the line: its RssAnon
   * less the recorder's (or its whole RSS), less the replay's RSS there.
   */
  baseline: number;
}

/** The samples of a replay finished, at the times given to each (see runConfig). */
function measuredSeries(m: MeasuredSamples, times: number[]): MeasuredSeries | undefined {
  if (m.count === 0 || times.length === 0) return undefined;
  const of = m.firstWithAnon() >= 0 ? 'anon' : 'total';
  const own = (x: MeasuredSample): number | null =>
    of === 'total' ? (x.total ?? null) : x.anon === null ? null : x.anon - (x.recorder ?? 0);
  let baseline: number | undefined;
  const out: MeasuredSeries = { of, time: [], bytes: [], baseline: 0 };
  for (let i = 0; i < times.length; i++) {
    const x = m.get(i);
    const bytes = own(x);
    if (bytes === null) continue;
    baseline ??= bytes - x.modelled;
    out.time.push(times[i]!);
    out.bytes.push(bytes - baseline);
  }
  if (baseline === undefined) return undefined;
  out.baseline = baseline;
  return out;
}

/**
 * What a configuration's replay gathers, as it goes (observe) and at its end (finish): for
 * runConfig's own replay, or for another that replays the same configuration (the report's
 * explanation replays the default one once for both).
 */
export function configWatcher(job: Omit<ConfigRunJob, 'settings'>): {
  observe: (ev: TraceEvent, r: Replayer) => void;
  finish: (run: RunResult) => ConfigRun;
} {
  const sampler = new TimelineSampler(job.timeline);
  const history = new ThresholdHistory();
  const times: number[] = [];
  let firstTime = -1;
  let map: HeapMap | undefined;
  let mapTime: number | undefined;
  let lastEvent = -1;
  let lastTime = -1;
  /** The time of each `#:rss` sample settled so far: that of the event it follows. */
  const sampleTimes: number[] = [];
  const observe = (ev: TraceEvent, r: Replayer): void => {
    sampler.observe(ev, r);
    const time = ev.time >= 0 ? ev.time : ev.index;
    while (sampleTimes.length <= r.eventSample) sampleTimes.push(time);
    if (firstTime < 0) firstTime = time;
    lastEvent = ev.index;
    lastTime = time;
    const before = history.changes.length;
    history.observe(ev, r);
    for (let i = before; i < history.changes.length; i++)
      times.push(history.changes[i]!.event < 0 ? firstTime : time);
    if (typeof job.mapAt === 'number' && ev.index === job.mapAt) {
      map = heapMap(r.process, ev.index);
      mapTime = time;
    }
  };
  const finish = (run: RunResult): ConfigRun => {
    const r = run.replayer;
    if (r === null)
      throw run.failure ?? new Error(`${job.displayName ?? job.path}: nothing to replay`);
    if (job.mapAt !== undefined && map === undefined) {
      map = heapMap(r.process, lastEvent);
      mapTime = lastTime;
    }
    const s = r.finish();
    const out: ConfigRun = {
      samples: sampler.finish(),
      timed: sampler.timed,
      thresholds: history.changes.map((c, i) => ({ ...c, time: times[i]! })),
      summary: {
        events: s.events,
        rss: s.rss,
        peakRss: s.peakRss,
        peakEvent: s.peakEvent,
        heap: r.process.arenas.reduce((n, a) => n + a.systemMem, 0),
        mmapped: s.mmapped,
        liveBytes: s.liveBytes,
        syscalls: s.syscalls,
        pageFaults: s.pageFaults,
        glibc: glibcLabel(r.process.profile),
      },
      facts: run.header === null ? [] : [...run.header.facts],
      env: run.header === null ? [] : [...run.header.env],
      comments: run.header?.comments ?? [],
    };
    const measured = measuredSeries(r.measured, sampleTimes);
    if (measured !== undefined) out.measured = measured;
    if (s.abort !== undefined)
      out.summary.abort = `${s.abort.message} (event ${s.abort.event}, line ${s.abort.line})`;
    if (map !== undefined) {
      out.map = map;
      out.mapTime = mapTime!;
    }
    if (run.failure !== null) {
      out.failure = run.failure.message;
      out.failureName = run.failure.name;
    }
    return out;
  };
  return { observe, finish };
}

/** Replays one configuration in this thread. */
export async function runConfig(job: ConfigRunJob): Promise<ConfigRun> {
  const w = configWatcher(job);
  const run = await replayFile(job.path, {
    ...job.settings,
    import: job.import,
    displayName: job.displayName,
    observe: w.observe,
  });
  return w.finish(run);
}

/** Runs the jobs on up to `parallel` worker threads; results in the jobs' order. */
export function runConfigs(
  jobs: ConfigRunJob[],
  parallel?: number,
  progress?: (done: number, total: number) => void,
): Promise<ConfigRun[]> {
  return runPool(new URL('./run-worker.js', import.meta.url), jobs, runConfig, parallel, progress);
}
