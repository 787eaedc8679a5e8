/**
 * `ptsim report`: everything a report shows, gathered as one value (ReportData) that the page
 * embeds as JSON and draws from: the explanation at the chosen moment, a timeline per
 * configuration (the default first), the threshold history on the same time axis, and the heap map.
 * The default configuration is replayed once, by the explanation, whose first replay gathers its
 * timeline too; the replays after it (the heap map at the peak, the sites) read the copy of the
 * trace the explanation kept rather than the file.
 */

import {
  explain,
  type Explanation,
  type Moment,
  type MomentExplanation,
} from '../analysis/explain.js';
import { CAUSES, type Cause } from '../analysis/breakdown.js';
import { siteFlames, type FlameRequest, type SiteFlames } from '../analysis/site-flame.js';
import type { TimelineOptions, TimelineSample } from '../analysis/timeline.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import { heapMap, type HeapMap } from './heap-map.js';
import { deliverStored, type StoredTrace } from '../trace/event-store.js';
import type { TraceSink } from '../trace/types.js';
import {
  configWatcher,
  runConfigs,
  type ConfigRun,
  type ConfigRunJob,
  type TimedThresholdChange,
} from './runs.js';

export interface ReportConfig {
  name: string;
  /** Added to the base settings (withConfig) for this configuration's replay. */
  settings: ReplaySettings;
}

interface ReportOptions {
  displayName?: string;
  import?: ImportSettings;
  /** Settings every configuration runs with (the command line's --mallopt, --tunables, ...). */
  base: ReplaySettings;
  /** The configurations to compare with the default one (which is added first). */
  configs: ReportConfig[];
  /** The default configuration's name ("default"). */
  defaultName?: string;
  /** Combines the base settings with a configuration's. */
  combine: (base: ReplaySettings, config: ReplaySettings) => ReplaySettings;
  at: Moment;
  timeline: TimelineOptions;
  whatIfs?: boolean;
  /** Events right after which each pin is also tried freed (explain's freeAt). */
  freeAt?: number[];
  /** Allocator wrappers folded into their callers (default DEFAULT_WRAPPERS). */
  wrappers?: readonly string[];
  parallel?: number;
  progress?: (what: string, done: number, total: number) => void;
  /** What the command line's settings do not do in glibc (settingsNotes), shown on the page. */
  settingsNotes?: string[];
}

/** The `# KEY VALUE` facts ptsim record writes; other header comments are prose, shown as written. */
const RECORDING_FACTS = new Set(['pid', 'exe', 'cmdline', 'start_brk', 'zero_page']);

/** A timeline as columns, the shape the charts take. */
interface SeriesColumns {
  event: number[];
  time: number[];
  rss: number[];
  heap: number[];
  mmapped: number[];
  live: Array<number | null>;
  causes: Record<Cause, Array<number | null>>;
  mmapThreshold: number[];
  trimThreshold: number[];
  mark: string[];
}

interface ReportConfigData {
  name: string;
  series: SeriesColumns;
  thresholds: TimedThresholdChange[];
  summary: ConfigRun['summary'];
  /** The trace's `#:rss` samples as a line beside the RSS (runs.ts). */
  measured?: ConfigRun['measured'];
  failure?: string;
}

export interface ReportData {
  format: 'ptsim-report/1';
  trace: string;
  events: number;
  /** Whether times are the trace's @TIME in nanoseconds (else event indexes). */
  timed: boolean;
  moment: { kind: MomentExplanation['moment']; event: number; line: number; time: number };
  /** Facts a recorder writes (pid, exe, cmdline, start_brk, zero_page), `# env` settings, and every header comment as written. */
  header: { facts: Array<[string, string]>; env: Array<[string, string]>; comments: string[] };
  configs: ReportConfigData[];
  explanation: Explanation;
  heapMap: HeapMap;
  /** The settings' notes (a mallopt glibc refuses, a tunable it ignores), then the explanation's. */
  notes: string[];
  /** The resident memory by allocation site at a few moments (a trace with call stacks). */
  sites?: SiteFlames;
}

/** Moments along the timeline at which the sites are taken, besides the explained one, the end and the peak. */
const SITE_SAMPLES = 32;

/** The timeline's sample events to take the sites at: about SITE_SAMPLES of them, evenly spread. */
function siteSampleEvents(events: number[]): number[] {
  if (events.length <= SITE_SAMPLES) return events;
  const out: number[] = [];
  for (let k = 0; k < SITE_SAMPLES; k++)
    out.push(events[Math.round((k * (events.length - 1)) / (SITE_SAMPLES - 1))]!);
  return out;
}

/** Samples as columns. */
function toColumns(samples: TimelineSample[]): SeriesColumns {
  const causes = {} as Record<Cause, Array<number | null>>;
  for (const c of CAUSES) causes[c] = samples.map((x) => (x.causes === null ? null : x.causes[c]));
  return {
    event: samples.map((x) => x.event),
    time: samples.map((x) => x.time),
    rss: samples.map((x) => x.rss),
    heap: samples.map((x) => x.heap),
    mmapped: samples.map((x) => x.mmapped),
    live: samples.map((x) => x.live),
    causes,
    mmapThreshold: samples.map((x) => x.mmapThreshold),
    trimThreshold: samples.map((x) => x.trimThreshold),
    mark: samples.map((x) => x.mark),
  };
}

export async function buildReport(path: string, opts: ReportOptions): Promise<ReportData> {
  const displayName = opts.displayName ?? path;
  const all: ReportConfig[] = [
    { name: opts.defaultName ?? 'default', settings: {} },
    ...opts.configs,
  ];
  const jobs: ConfigRunJob[] = all.map((c, i) => {
    const job: ConfigRunJob = {
      path,
      displayName,
      import: opts.import,
      settings: opts.combine(opts.base, c.settings),
      timeline: opts.timeline,
    };
    // The default configuration maps the heap on its way, unless the moment is the peak (known
    // only at the end: a second replay stops there).
    if (i === 0 && opts.at !== 'peak') job.mapAt = opts.at;
    return job;
  });
  // The other configurations on the worker threads first; the default one is the explanation's
  // own first replay, which gathers its timeline on its way.
  const others = await runConfigs(jobs.slice(1), opts.parallel, (d, t) =>
    opts.progress?.('replaying configurations', d, t),
  );
  const watcher = configWatcher(jobs[0]!);
  let base: ConfigRun | undefined;
  let stored: StoredTrace | null = null;
  const explanation = await explain(path, {
    displayName,
    import: opts.import,
    settings: opts.combine(opts.base, {}),
    at: [opts.at],
    whatIfs: opts.whatIfs,
    ...(opts.freeAt !== undefined ? { freeAt: opts.freeAt } : {}),
    ...(opts.wrappers !== undefined ? { sites: { wrappers: opts.wrappers } } : {}),
    parallel: opts.parallel,
    progress: (d, t) => opts.progress?.('replaying remedies', d, t),
    firstPass: {
      observe: watcher.observe,
      done: (run, s) => {
        base = watcher.finish(run);
        stored = s;
      },
    },
  });
  const first = base;
  if (first === undefined) throw new Error(`${displayName}: nothing to replay`);
  const runs = [first, ...others];
  const m = explanation.moments[0];
  if (m === undefined) throw new Error(`${displayName}: nothing to explain (no event replayed)`);

  let map = first.map;
  let time = first.mapTime;
  if (map === undefined || opts.at === 'peak') {
    const stop = m.event;
    let t = -1;
    const held = stored as StoredTrace | null;
    // From the copy of the trace the explanation kept, when it kept one.
    const run = await replayFile(path, {
      ...opts.combine(opts.base, {}),
      import: opts.import,
      displayName,
      ...(held !== null ? { source: (sink: TraceSink) => deliverStored(held, sink) } : {}),
      stopAfter: stop,
      observe: (ev) => {
        t = ev.time >= 0 ? ev.time : ev.index;
      },
      // Only the moment's own event: the others are replayed without event objects.
      observeAt: [stop],
    });
    if (run.replayer === null) throw run.failure ?? new Error(`${displayName}: nothing to replay`);
    map = heapMap(run.replayer.process, stop);
    time = t;
  }
  // The pins of the map and of the explanation are the same chunks; the explanation knows their tokens and lines.
  for (const p of map.pins) {
    const arena = map.regions[p.region]!.arena;
    const e = m.pins.find((q) => q.arena === arena && q.addr === p.addr);
    if (e !== undefined) {
      p.token = e.token;
      p.line = e.line;
    }
  }

  // A trace with call stacks: the sites at the moment explained, the end, the peak and along the
  // timeline, in one more replay.
  let sites: SiteFlames | null = null;
  if (m.sites !== undefined) {
    opts.progress?.('taking the allocation sites', 0, 1);
    const requests: FlameRequest[] = [
      { kind: 'explained', event: m.event },
      { kind: 'end', event: first.summary.events - 1 },
      { kind: 'peak', event: first.summary.peakEvent },
      ...siteSampleEvents(first.samples.map((x) => x.event)).map((event): FlameRequest => ({
        kind: 'sample',
        event,
      })),
    ];
    sites = await siteFlames(
      path,
      {
        settings: opts.combine(opts.base, {}),
        import: opts.import,
        displayName,
        ...(opts.wrappers !== undefined ? { wrappers: opts.wrappers } : {}),
        stored: stored,
      },
      requests,
    );
    opts.progress?.('taking the allocation sites', 1, 1);
  }

  const data: ReportData = {
    format: 'ptsim-report/1',
    trace: displayName,
    events: explanation.events,
    timed: first.timed,
    moment: { kind: m.moment, event: m.event, line: m.line, time: time ?? 0 },
    header: {
      facts: first.facts.filter(([k]) => RECORDING_FACTS.has(k)),
      env: first.env,
      comments: first.comments,
    },
    configs: runs.map((r, i) => {
      const c: ReportConfigData = {
        name: all[i]!.name,
        series: toColumns(r.samples),
        thresholds: r.thresholds,
        summary: r.summary,
      };
      if (r.measured !== undefined) c.measured = r.measured;
      if (r.failure !== undefined) c.failure = r.failure;
      return c;
    }),
    explanation,
    heapMap: map,
    // The explanation may say again what the command line's notes said (the version modelled).
    notes: [...new Set([...(opts.settingsNotes ?? []), ...explanation.notes])],
  };
  if (sites !== null) data.sites = sites;
  return data;
}
