/**
 * Timelines: the process's memory sampled along a replay (RSS, heap, mmapped bytes, live bytes,
 * resident bytes by cause, the two thresholds), for `ptsim replay --timeline` and the HTML report.
 *
 * A sampler is fed by replayFile's `observe` hook. It samples on a grid (every N events, or every
 * T of trace time), at most one sample per grid cell, and keeps a budget of samples: when the
 * budget is exceeded the cell doubles and every other sample is dropped. A trace of any length
 * thus ends with between half the budget and the budget, evenly spread, without knowing its
 * length in advance. The sample at peak RSS and the one after the last event are always kept.
 *
 * Two fields cost a walk over every chunk: live bytes and the breakdown by cause. They are
 * measured only when the walk is paid for by the events replayed since the previous one (see
 * LIVE_BUDGET), and always after the last event; elsewhere they are null. The rest is read from
 * counters the model keeps anyway, so sampling every event costs little.
 *
 * A trace recorded with `#:rss` samples (docs/trace-format.md) adds what the process measured:
 * after an event that a sample follows, the sample's anon and total figures (null elsewhere, and
 * where the sample has not that figure). Such an event
 * takes the place of its grid cell's sample when that one has no measurement, and keeps its place
 * when the grid coarsens, so that the measurements survive as far as the grid allows.
 */

import { St } from '../core/chunks.js';
import type { Process } from '../core/state.js';
import type { Replayer } from '../replay/replay.js';
import type { TraceEvent } from '../trace/types.js';
import { breakdown, CAUSES, type Cause } from './breakdown.js';

export interface TimelineOptions {
  /** Sample every this many events (default 1). */
  every?: number;
  /** Sample every this many nanoseconds of trace time instead (events without a time count by index). */
  everyTime?: number;
  /** Keep at most this many samples, peak and last included (default 2000; 0: no limit). */
  samples?: number;
  /**
   * With no limit of samples: each sample, once final, is handed to this (in event order) instead
   * of kept, so that the memory a timeline takes does not grow with the trace; finishSpilled()
   * then gives the rest, and where the peak goes among the samples handed on.
   */
  spill?: (x: TimelineSample) => void;
}

/** The end of a timeline whose samples were handed on as they became final (TimelineOptions.spill). */
export interface SpilledEnd {
  /** The samples still held, in event order, the last event's included: they follow those handed on. */
  tail: TimelineSample[];
  /**
   * The peak's sample when it belongs among those handed on: it 'replaces' the one handed on with
   * the same event, or is 'inserted' before the first handed on with a later event (after all of
   * them when none is later). Null when the peak is in the tail (or there is none).
   */
  peak: { sample: TimelineSample; place: 'replace' | 'insert' } | null;
}

export const DEFAULT_TIMELINE_SAMPLES = 2000;

/** One sample, after an event. Byte counts are bytes. */
export interface TimelineSample {
  event: number;
  /** The event's @TIME in nanoseconds, or its index when the trace has no times. */
  time: number;
  rss: number;
  /** The recording's `#:rss` anon figure after this event (null: no sample follows it, or it has none). */
  measuredAnon: number | null;
  /** The recording's `#:rss` total figure (the whole RSS) after this event (null likewise). */
  measuredTotal: number | null;
  /** Bytes the arenas got from the system (the sum of their system_mem). */
  heap: number;
  /** Bytes of chunks mmapped on their own. */
  mmapped: number;
  /** Bytes the program asked for and still holds (null: not measured at this sample). */
  live: number | null;
  /** Resident bytes by cause (breakdown.ts; null: not measured at this sample). */
  causes: Record<Cause, number> | null;
  mmapThreshold: number;
  trimThreshold: number;
  /** 'peak', 'last', 'peak last' or ''. */
  mark: string;
}

/**
 * What the walks may cost, in chunk handles visited: a fixed allowance (enough for a small trace to
 * be measured at every sample), growing by `perSample` with each regular sample taken and by
 * `perEvent` with each event replayed. Samples are taken evenly along the trace, whatever its
 * length, so the second part is spread out along it too; the third keeps long traces on large
 * heaps measured. Live bytes is a quick pass (a few ns a handle). The breakdown costs about
 * 0.3 us a handle (measured) and loops over the handles once per arena: it is taken at one sample
 * in CAUSES_STRIDE at most, and its allowance per event keeps it near a tenth of the replay's own
 * time. The peak sample (every event of a climb is a new peak) draws on allowances of its own,
 * smaller, so that a long climb cannot starve the regular samples.
 */
const LIVE_BUDGET = { free: 4_000_000, perSample: 2000, perEvent: 2 };
const CAUSES_BUDGET = { free: 300_000, perSample: 250, perEvent: 1 / 8 };
const CAUSES_STRIDE = 8;
const PEAK_LIVE_BUDGET = { free: 1_000_000, perSample: 500, perEvent: 1 / 4 };
const PEAK_CAUSES_BUDGET = { free: 50_000, perSample: 50, perEvent: 1 / 64 };

/** How much a sample measures: counters only, plus live bytes, plus the breakdown. */
const enum Detail {
  None = 0,
  Live = 1,
  Causes = 2,
}

/** Bytes the program asked for and still holds: every handed-out chunk but glibc's own. */
function liveBytes(s: Process): number {
  const ck = s.ck;
  const state = ck.state;
  const born = ck.born;
  const req = ck.req;
  let n = 0;
  for (let h = 0; h < ck.highWater; h++) if (state[h] === St.INUSE && born[h]! >= 0) n += req[h]!;
  // The tcache structures are chunks glibc hands to itself, with a request size and an event.
  const own = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) own.add(th.tcache.chunk);
  if (s.thread.tcache !== null) own.add(s.thread.tcache.chunk);
  for (const h of own) if (state[h] === St.INUSE && born[h]! >= 0) n -= req[h]!;
  return n;
}

function heapBytes(s: Process): number {
  let n = 0;
  for (const a of s.arenas) n += a.systemMem;
  return n;
}

interface Allowance {
  free: number;
  perSample: number;
  perEvent: number;
}

/**
 * In a timeline with no limit of samples (`--timeline-samples 0`: a sample after every event, by
 * default), the samples that earn a walk allowance (Allowance.perSample), at most: four times the
 * default budget. Every sample earning one, the walks would run at nearly every sample, and cost a
 * hundred times the replay; beyond, they are paid by the events. (A timeline with a budget takes
 * samples sparsely enough: its allowance is unchanged.)
 */
const SAMPLES_PAID = 4 * DEFAULT_TIMELINE_SAMPLES;

/** Walks charged against an allowance. */
class WalkBudget {
  private spent = 0;
  /** The samples that earn an allowance, at most (SAMPLES_PAID). */
  paid = Number.POSITIVE_INFINITY;
  constructor(private readonly rule: Allowance) {}

  /** Charges a walk of `cost` handles if the allowance after `samples` samples and `event` covers it. */
  take(samples: number, event: number, cost: number): boolean {
    if (
      this.spent + cost >
      this.rule.free +
        this.rule.perSample * Math.min(samples, this.paid) +
        this.rule.perEvent * (event + 1)
    )
      return false;
    this.spent += cost;
    return true;
  }
}

/**
 * Walks for the regular samples, spread evenly: every sample while the allowance covers them all,
 * then (from the first refusal) at most one in each cell of a grid `stride` times the sampling interval, so that a walked sample is the first of its cell at every coarser
 * interval and survives coarsening (and about one kept sample in `stride` is measured in full).
 * A sample refused for want of allowance leaves its cell open for the next one.
 */
class DetailGrid {
  readonly budget: WalkBudget;
  private lastX = Number.NEGATIVE_INFINITY;
  /** 1 while every sample could be walked (a small heap is measured at each sample), then `stride`. */
  private cells = 1;
  constructor(
    rule: Allowance,
    private readonly stride: number,
  ) {
    this.budget = new WalkBudget(rule);
  }

  take(x: number, samples: number, event: number, cost: number, interval: number): boolean {
    const cell = interval * this.cells;
    if (Math.floor(x / cell) <= Math.floor(this.lastX / cell)) return false;
    if (!this.budget.take(samples, event, cost)) {
      this.cells = this.stride;
      return false;
    }
    this.lastX = x;
    return true;
  }
}

function causesCost(s: Process): number {
  return s.ck.highWater * (1 + s.arenas.length / 8);
}

export class TimelineSampler {
  /** The grid cell: events, or nanoseconds of trace time. It doubles as the budget requires. */
  interval: number;
  readonly byTime: boolean;
  /** True once an event carried a @TIME. */
  timed = false;
  private readonly budget: number;
  private samples: TimelineSample[] = [];
  /** Where final samples go (TimelineOptions.spill), or null: they are kept. */
  private readonly spill: ((x: TimelineSample) => void) | null;
  /** A copy of the sample handed on whose event was then the peak's (null: none yet). */
  private spilledAtPeak: TimelineSample | null = null;
  /** The grid cell of the last sample taken. */
  private lastCell = Number.NEGATIVE_INFINITY;
  private peak: TimelineSample | null = null;
  private peakRss = 0;
  private lastEvent = -1;
  private lastTime = -1;
  /** The measured anon and total figures after the last event, or null. */
  private lastAnon: number | null = null;
  private lastTotal: number | null = null;
  private replayer: Replayer | null = null;
  /** Regular samples taken so far, kept or not. */
  private taken = 0;
  private readonly liveGrid = new DetailGrid(LIVE_BUDGET, 1);
  private readonly causesGrid = new DetailGrid(CAUSES_BUDGET, CAUSES_STRIDE);
  private readonly peakLive = new WalkBudget(PEAK_LIVE_BUDGET);
  private readonly peakCauses = new WalkBudget(PEAK_CAUSES_BUDGET);

  constructor(opts: TimelineOptions = {}) {
    if (opts.every !== undefined && opts.everyTime !== undefined)
      throw new RangeError('sample by events or by time, not both');
    this.byTime = opts.everyTime !== undefined;
    this.interval = opts.everyTime ?? opts.every ?? 1;
    if (!(this.interval > 0) || !Number.isFinite(this.interval))
      throw new RangeError('the sampling interval must be a positive number');
    this.budget = opts.samples ?? DEFAULT_TIMELINE_SAMPLES;
    if (!Number.isInteger(this.budget) || (this.budget !== 0 && this.budget < 4))
      throw new RangeError('a timeline keeps at least 4 samples (0: no limit)');
    if (opts.spill !== undefined && this.budget !== 0)
      throw new RangeError('samples are handed on only in a timeline with no limit of samples');
    this.spill = opts.spill ?? null;
    if (this.budget === 0)
      for (const b of [
        this.liveGrid.budget,
        this.causesGrid.budget,
        this.peakLive,
        this.peakCauses,
      ])
        b.paid = SAMPLES_PAID;
  }

  /** The observe hook: call after every event. */
  readonly observe = (ev: TraceEvent, r: Replayer): void => {
    this.replayer = r;
    const time = ev.time >= 0 ? ev.time : ev.index;
    if (ev.time >= 0) this.timed = true;
    this.lastEvent = ev.index;
    this.lastTime = time;
    const sample = r.eventSample;
    const anon = sample >= 0 ? figure(r.measured.anonOf(sample)) : null;
    const total = sample >= 0 ? figure(r.measured.totalOf(sample)) : null;
    this.lastAnon = anon;
    this.lastTotal = total;
    const rss = r.kernel.residentPages * 4096;
    // The replay's own rule for its peak (the first event at the highest RSS), so that the peak
    // sample is the summary's peakEvent.
    if (rss > this.peakRss) {
      this.peakRss = rss;
      const s = r.process;
      const n = this.taken;
      const detail = this.peakCauses.take(n, ev.index, causesCost(s))
        ? Detail.Causes
        : this.peakLive.take(n, ev.index, s.ck.highWater)
          ? Detail.Live
          : Detail.None;
      this.peak = this.fill(this.peak ?? blank(), ev.index, time, r, detail);
      this.peak.measuredAnon = anon;
      this.peak.measuredTotal = total;
    }
    const x = this.byTime ? time : ev.index;
    const cell = Math.floor(x / this.interval);
    if (cell <= this.lastCell) {
      // A measured moment replaces the cell's sample unless that one is measured too.
      const prev = this.samples[this.samples.length - 1];
      if (sample < 0 || prev === undefined || measured(prev)) return;
      const x = this.fill(prev, ev.index, time, r, Detail.None);
      x.measuredAnon = anon;
      x.measuredTotal = total;
      return;
    }
    this.lastCell = cell;
    const s = r.process;
    const n = ++this.taken;
    const detail = this.causesGrid.take(x, n, ev.index, causesCost(s), this.interval)
      ? Detail.Causes
      : this.liveGrid.take(x, n, ev.index, s.ck.highWater, this.interval)
        ? Detail.Live
        : Detail.None;
    const row = this.fill(blank(), ev.index, time, r, detail);
    row.measuredAnon = anon;
    row.measuredTotal = total;
    this.samples.push(row);
    // Two places are kept for the peak and the last event.
    if (this.budget > 0) while (this.samples.length > this.budget - 2) this.coarsen();
    else if (this.spill !== null) this.handOn();
  };

  /**
   * Hands on every sample but the one of the current cell (a later event of the cell may still
   * take its place): with no limit of samples, a sample of a cell that is over is final but for the
   * peak's mark, which finishSpilled() places.
   */
  private handOn(): void {
    const xs = this.samples;
    if (xs.length < 2) return;
    const peak = this.peak;
    for (let i = 0; i < xs.length - 1; i++) {
      const x = xs[i]!;
      if (peak !== null && x.event === peak.event)
        this.spilledAtPeak = { ...x, causes: x.causes === null ? null : { ...x.causes } };
      this.spill!(x);
    }
    xs[0] = xs[xs.length - 1]!;
    xs.length = 1;
  }

  /** The samples in event order, the peak and the last event included. Call once, after the replay. */
  finish(): TimelineSample[] {
    if (this.spill !== null)
      throw new Error('ptsim internal error: finish() of a timeline that hands its samples on');
    return this.settle().tail;
  }

  /** The end of a timeline that handed its samples on (TimelineOptions.spill). Call once, after the replay. */
  finishSpilled(): SpilledEnd {
    if (this.spill === null)
      throw new Error('ptsim internal error: finishSpilled() of a timeline that keeps its samples');
    return this.settle();
  }

  /**
   * The last event's sample, measured in full, and the peak's mark, on the samples held; the peak
   * placed among those handed on when it belongs there.
   */
  private settle(): SpilledEnd {
    const r = this.replayer;
    if (r === null) return { tail: [], peak: null };
    const out = this.samples;
    this.samples = [];
    let last =
      out.length > 0 && out[out.length - 1]!.event === this.lastEvent ? out[out.length - 1]! : null;
    if (last === null) {
      last = this.fill(blank(), this.lastEvent, this.lastTime, r, Detail.Causes);
      last.measuredAnon = this.lastAnon;
      last.measuredTotal = this.lastTotal;
      out.push(last);
    } else if (last.causes === null) {
      const { measuredAnon, measuredTotal } = last;
      this.fill(last, this.lastEvent, this.lastTime, r, Detail.Causes);
      last.measuredAnon = measuredAnon;
      last.measuredTotal = measuredTotal;
    }
    last.mark = 'last';
    const peak = this.peak;
    if (peak === null) return { tail: out, peak: null };
    const handed = this.spilledAtPeak;
    const held = out.find((x) => x.event === peak.event);
    const same = held ?? (handed !== null && handed.event === peak.event ? handed : undefined);
    if (same !== undefined) {
      same.mark = same.mark === '' ? 'peak' : `peak ${same.mark}`;
      // The same moment, measured by whichever of the two walked more.
      if (same.causes === null && peak.causes !== null) same.causes = peak.causes;
      if (same.live === null && peak.live !== null) same.live = peak.live;
      if (!measured(same)) {
        same.measuredAnon = peak.measuredAnon;
        same.measuredTotal = peak.measuredTotal;
      }
      return { tail: out, peak: same === held ? null : { sample: same, place: 'replace' } };
    }
    peak.mark = 'peak';
    // Before the samples held: among those handed on, if any were.
    if (this.spill !== null && out[0]!.event > peak.event)
      return { tail: out, peak: { sample: peak, place: 'insert' } };
    let i = out.length;
    while (i > 0 && out[i - 1]!.event > peak.event) i--;
    out.splice(i, 0, peak);
    return { tail: out, peak: null };
  }

  private fill(
    x: TimelineSample,
    event: number,
    time: number,
    r: Replayer,
    detail: Detail,
  ): TimelineSample {
    const s = r.process;
    x.event = event;
    x.time = time;
    x.rss = r.kernel.residentPages * 4096;
    x.measuredAnon = null;
    x.measuredTotal = null;
    x.heap = heapBytes(s);
    x.mmapped = s.mp.mmappedMem;
    x.mmapThreshold = s.mp.mmapThreshold;
    x.trimThreshold = s.mp.trimThreshold;
    x.mark = '';
    x.live = detail >= Detail.Live ? liveBytes(s) : null;
    if (detail >= Detail.Causes) {
      const b = breakdown(s, false);
      const c = {} as Record<Cause, number>;
      for (const k of CAUSES) c[k] = b.causes[k].bytes;
      x.causes = c;
    } else x.causes = null;
    return x;
  }

  /** Doubles the grid cell and keeps one sample per new cell: its first, unless a later one measured more. */
  private coarsen(): void {
    this.interval *= 2;
    const kept: TimelineSample[] = [];
    let cell = Number.NEGATIVE_INFINITY;
    for (const x of this.samples) {
      const c = Math.floor((this.byTime ? x.time : x.event) / this.interval);
      if (c !== cell) {
        kept.push(x);
        cell = c;
      } else if (rank(x) > rank(kept[kept.length - 1]!)) {
        kept[kept.length - 1] = x;
      }
    }
    this.samples = kept;
    const last = kept[kept.length - 1];
    this.lastCell =
      last === undefined
        ? Number.NEGATIVE_INFINITY
        : Math.floor((this.byTime ? last.time : last.event) / this.interval);
  }
}

function detailOf(x: TimelineSample): Detail {
  return x.causes !== null ? Detail.Causes : x.live !== null ? Detail.Live : Detail.None;
}

/** Which of two samples of a cell a coarser grid keeps: a measured one, then the more detailed. */
function rank(x: TimelineSample): number {
  return (measured(x) ? 4 : 0) + detailOf(x);
}

/** Whether a `#:rss` sample follows the sample's event. */
function measured(x: TimelineSample): boolean {
  return x.measuredAnon !== null || x.measuredTotal !== null;
}

/** A sample's figure as MeasuredSamples keeps it (-1: none), as the timeline has it. */
function figure(v: number): number | null {
  return v < 0 ? null : v;
}

function blank(): TimelineSample {
  return {
    event: 0,
    time: 0,
    rss: 0,
    measuredAnon: null,
    measuredTotal: null,
    heap: 0,
    mmapped: 0,
    live: null,
    causes: null,
    mmapThreshold: 0,
    trimThreshold: 0,
    mark: '',
  };
}

// ------------------------------------------------------------------ files

export type TimelineFormat = 'csv' | 'jsonl';

/** The format a file name asks for, or null when its extension is not one of ours. */
export function timelineFormatOf(path: string): TimelineFormat | null {
  const p = path.toLowerCase();
  if (p.endsWith('.csv')) return 'csv';
  if (p.endsWith('.jsonl') || p.endsWith('.ndjson')) return 'jsonl';
  return null;
}

function causeColumn(c: Cause): string {
  return `resident_${c.replace(/-/g, '_')}`;
}

/** The columns of a timeline file, in order (the CSV header and the JSON keys alike). */
export const TIMELINE_COLUMNS: readonly string[] = [
  'event',
  'time',
  'rss',
  'heap',
  'mmapped',
  'live_bytes',
  ...CAUSES.map(causeColumn),
  'mmap_threshold',
  'trim_threshold',
  'measured_anon',
  'measured_total',
  'mark',
];

/** The keys of the breakdown's columns, each as JSON writes it (`"resident_free_top":`). */
const CAUSE_KEYS = CAUSES.map((c) => `${JSON.stringify(causeColumn(c))}:`);

/** What a timeline file starts with: CSV's header row, nothing for JSON lines. */
export function timelineHeader(format: TimelineFormat): string {
  return format === 'csv' ? TIMELINE_COLUMNS.join(',') + '\n' : '';
}

/**
 * The bytes before each field of a line (TIMELINE_COLUMNS' order, the mark last) and after its
 * last, for each format: CSV's commas, or JSON's keys (all ASCII).
 */
const SEPARATORS: Record<TimelineFormat, { before: Uint8Array[]; end: Uint8Array }> = {
  csv: {
    before: TIMELINE_COLUMNS.map((_, k) => ascii(k === 0 ? '' : ',')),
    end: ascii('\n'),
  },
  jsonl: {
    before: [
      '{"event":',
      ',"time":',
      ',"rss":',
      ',"heap":',
      ',"mmapped":',
      ',"live_bytes":',
      ...CAUSE_KEYS.map((k) => `,${k}`),
      ',"mmap_threshold":',
      ',"trim_threshold":',
      ',"measured_anon":',
      ',"measured_total":',
      ',"mark":',
    ].map(ascii),
    end: ascii('}\n'),
  },
};

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * The most bytes encodeTimelineLine writes: 19 fields of at most 24 characters (a double's
 * shortest form) and their keys, and the longest mark ('peak last', quoted).
 */
export const TIMELINE_LINE_MAX_BYTES = 2048;

/**
 * One sample as a line of a timeline file, its newline included, written into `b` from `at`
 * (which has TIMELINE_LINE_MAX_BYTES of room); returns the end. The fields are in the order of
 * TIMELINE_COLUMNS, as CSV or as one JSON object, every number written digit by digit: a file of a
 * sample after every event has millions of lines, which as strings cost their building, their
 * copy into a buffer and the collector (a third of such a timeline's time).
 */
export function encodeTimelineLine(
  x: TimelineSample,
  format: TimelineFormat,
  b: Uint8Array,
  at: number,
): number {
  const { before, end } = SEPARATORS[format];
  const csv = format === 'csv';
  const c = x.causes;
  let k = 0;
  at = putField(b, putBytes(b, at, before[k++]!), x.event, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.time, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.rss, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.heap, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.mmapped, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.live, csv);
  for (let j = 0; j < CAUSES.length; j++)
    at = putField(b, putBytes(b, at, before[k++]!), c === null ? null : c[CAUSES[j]!], csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.mmapThreshold, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.trimThreshold, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.measuredAnon, csv);
  at = putField(b, putBytes(b, at, before[k++]!), x.measuredTotal, csv);
  // The mark is letters and a space: nothing to quote in CSV, nothing to escape in JSON.
  at = putBytes(b, at, before[k]!);
  at = putAscii(b, at, csv ? x.mark : JSON.stringify(x.mark));
  return putBytes(b, at, end);
}

/** One sample as a line of a timeline file (encodeTimelineLine's bytes as a string). */
function timelineLine(x: TimelineSample, format: TimelineFormat): string {
  const at = encodeTimelineLine(x, format, lineScratch, 0);
  return String.fromCharCode(...lineScratch.subarray(0, at));
}

const lineScratch = new Uint8Array(TIMELINE_LINE_MAX_BYTES);

function putBytes(b: Uint8Array, at: number, s: Uint8Array): number {
  for (let i = 0; i < s.length; i++) b[at + i] = s[i]!;
  return at + s.length;
}

/** A character string known to be ASCII. */
function putAscii(b: Uint8Array, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
  return at + s.length;
}

/** A value: a number as String() writes it, or empty (CSV) / null (JSON) where not measured. */
function putField(b: Uint8Array, at: number, v: number | null, csv: boolean): number {
  if (v === null) return csv ? at : putAscii(b, at, 'null');
  if (!(v >= 0 && v <= Number.MAX_SAFE_INTEGER && Math.floor(v) === v))
    return putAscii(b, at, String(v));
  let digits = 1;
  for (let t = v; t >= 10; t = Math.floor(t / 10)) digits++;
  const stop = at + digits;
  // v / 10 is below 2^50 here, where a double's step is at most 1/8: the floor is exact.
  for (let i = stop - 1; i >= at; i--) {
    const q = Math.floor(v / 10);
    b[i] = 48 + (v - q * 10);
    v = q;
  }
  return stop;
}

/** The event of a line timelineLine made (its first field). */
export function timelineLineEvent(line: string, format: TimelineFormat): number {
  return format === 'csv'
    ? Number(line.slice(0, line.indexOf(',')))
    : Number(line.slice('{"event":'.length, line.indexOf(',')));
}

/** The text of a timeline file: CSV with a header row, or one JSON object per line. */
export function formatTimeline(samples: TimelineSample[], format: TimelineFormat): string {
  let out = timelineHeader(format);
  for (const x of samples) out += timelineLine(x, format);
  return out;
}
