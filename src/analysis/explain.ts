/**
 * `ptsim explain`: why the resident memory is what it is at a moment of a replay (the end, the
 * peak, or an event), and what would change it.
 *
 *  - the breakdown: every resident byte by cause (breakdown.ts);
 *  - the pins: the highest chunk of each heap that keeps the free memory below it from being
 *    trimmed, with the event and trace line that allocated it (pins.ts);
 *  - the threshold history: each change of the mmap and trim thresholds and what it cost
 *    (thresholds.ts);
 *  - what would help: the same trace replayed with each remedy (malloc_trim(0) at that moment, a
 *    fixed mmap threshold, a lower trim threshold, fewer arenas, no mmap, no tcache), ranked by the
 *    memory it saves, with its cost in system calls and page faults.
 */

import { openTrace } from '../import/index.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import type { Replayer } from '../replay/replay.js';
import type { TraceEvent } from '../trace/types.js';
import { MALLOPT_PARAMS } from '../core/constants.js';
import { breakdown, CAUSE_TEXT, CAUSES, type Breakdown, type Cause } from './breakdown.js';
import { runMany, type Figures, type FiguresJob } from './figures.js';
import { findPins, type Pin } from './pins.js';
import { ThresholdHistory, type ThresholdChange } from './thresholds.js';

export type Moment = 'end' | 'peak' | number;

interface ExplainOptions {
  displayName?: string;
  import?: ImportSettings;
  settings: ReplaySettings;
  /** The moments to explain (default: the end and the peak). */
  at?: Moment[];
  /** Replay the remedies (default true). */
  whatIfs?: boolean;
  /** Worker threads for the remedies (1: none). */
  parallel?: number;
  progress?: (done: number, total: number) => void;
}

interface PinReport extends Pin {
  /** Trace line of the event that handed the chunk out (0 if unknown). */
  line: number;
  /** The token the trace gave it. */
  token: string;
}

interface Remedy {
  id: string;
  /** What was changed, in the terms a user would type. */
  setting: string;
  /** What it does, in one line. */
  why: string;
  rss: number;
  /** Bytes saved at the moment explained, against the replay as given (negative: worse). */
  saved: number;
  peakRss: number;
  syscalls: number;
  pageFaults: number;
  /** More (or fewer, negative) system calls and page faults than the replay as given. */
  extraSyscalls: number;
  extraPageFaults: number;
  failure?: string;
}

export interface MomentExplanation {
  moment: 'end' | 'peak' | 'event';
  event: number;
  line: number;
  residentBytes: number;
  residentPages: number;
  mappedBytes: number;
  causes: Array<{
    cause: Cause;
    text: string;
    bytes: number;
    pages: number;
    mappedBytes: number;
    chunks: number;
  }>;
  arenas: Breakdown['arenas'];
  pins: PinReport[];
  thresholds: ThresholdChange[];
  remedies: Remedy[];
}

export interface Explanation {
  trace: string;
  events: number;
  cores: number;
  arenas: number;
  /** Set for a trace without touch records that has blocks of 1 MiB or more (Replayer.touchNote). */
  note?: string;
  moments: MomentExplanation[];
  /** glibc's abort, when the replay ended in one (the end explained is the abort). */
  abort?: { message: string; event: number; line: number };
}

/**
 * An event index past the trace's last event: a mistake in what the user asked for, reported by
 * name like the trace's mistakes (the command prints it in one line, exit status 2).
 */
class MomentOutOfRange extends Error {
  constructor(moment: number, events: number) {
    super(
      events === 0
        ? `--at ${moment}: the trace has no events`
        : `--at ${moment}: the trace has ${events} event${events === 1 ? '' : 's'}: give end, peak or an event index from 0 to ${events - 1}`,
    );
    this.name = 'InputError';
  }
}

interface Snapshot {
  event: number;
  line: number;
  b: Breakdown;
  pins: Pin[];
  thresholds: ThresholdChange[];
  baseline: Figures;
}

/** Replays up to `stopAfter` (or the end) and takes the snapshot there. */
async function snapshot(
  path: string,
  opts: ExplainOptions,
  stopAfter: number | undefined,
): Promise<{ snap: Snapshot; r: Replayer }> {
  const history = new ThresholdHistory();
  let lastLine = 0;
  let lastEvent = -1;
  const run = await replayFile(path, {
    ...opts.settings,
    import: opts.import,
    displayName: opts.displayName,
    stopAfter,
    onEvent: (rec) => {
      history.lastRecord = rec;
    },
    observe: (ev: TraceEvent, r: Replayer) => {
      history.observe(ev, r);
      lastLine = ev.line;
      lastEvent = ev.index;
    },
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${path}: nothing to replay`);
  if (run.failure !== null) throw run.failure;
  const s = r.finish();
  const baseline: Figures = {
    events: s.events,
    rss: s.rss,
    peakRss: s.peakRss,
    peakEvent: s.peakEvent,
    meanRss: 0,
    heapBytes: s.mallinfo2.arena,
    mmappedBytes: s.mmapped,
    syscalls: s.syscalls,
    pageFaults: s.pageFaults,
  };
  return {
    snap: {
      event: lastEvent,
      line: lastLine,
      b: breakdown(r.process),
      pins: findPins(r.process),
      thresholds: history.changes,
      baseline,
    },
    r,
  };
}

/** Line numbers and tokens of a few events, read from the trace without replaying it. */
async function eventFacts(
  path: string,
  opts: ExplainOptions,
  wanted: Set<number>,
): Promise<Map<number, { line: number; token: string }>> {
  const out = new Map<number, { line: number; token: string }>();
  if (wanted.size === 0) return out;
  const last = Math.max(...wanted);
  class Done extends Error {}
  try {
    await openTrace(
      path,
      {
        header: () => {},
        event: (ev: TraceEvent) => {
          if (wanted.has(ev.index)) out.set(ev.index, { line: ev.line, token: ev.out });
          if (ev.index >= last) throw new Done();
        },
      },
      { ...opts.import, displayName: opts.displayName },
    );
  } catch (e) {
    if (!(e instanceof Done)) throw e;
  }
  return out;
}

/** The remedies worth trying, given what the replay as given looked like. */
function remedies(arenaCount: number): Array<{
  id: string;
  setting: string;
  why: string;
  settings: ReplaySettings;
  trimAtEnd?: boolean;
}> {
  const list: Array<{
    id: string;
    setting: string;
    why: string;
    settings: ReplaySettings;
    trimAtEnd?: boolean;
  }> = [
    {
      id: 'malloc_trim',
      setting: 'malloc_trim(0) at this moment',
      why: 'consolidates and returns every whole free page inside the heaps, and the top of the main heap',
      settings: {},
      trimAtEnd: true,
    },
    {
      id: 'mmap_threshold',
      setting: 'M_MMAP_THRESHOLD=131072',
      why: 'fixes the mmap threshold at 128 KiB: big blocks stay in mmap and go back to the kernel on free()',
      settings: { mallopts: [[MALLOPT_PARAMS['M_MMAP_THRESHOLD']!, 131072]] },
    },
    {
      id: 'trim_threshold',
      setting: 'M_TRIM_THRESHOLD=0',
      why: 'free() lowers the heap top whenever it can',
      settings: { mallopts: [[MALLOPT_PARAMS['M_TRIM_THRESHOLD']!, 0]] },
    },
    {
      id: 'mmap_max',
      setting: 'M_MMAP_MAX=0',
      why: 'no block gets an mmap of its own: everything comes from the heaps',
      settings: { mallopts: [[MALLOPT_PARAMS['M_MMAP_MAX']!, 0]] },
    },
    {
      id: 'tcache_off',
      setting: 'glibc.malloc.tcache_count=0',
      why: 'no per-thread cache: freed blocks go straight back to their arena',
      settings: { extraTunables: 'glibc.malloc.tcache_count=0' },
    },
  ];
  if (arenaCount > 1) {
    list.push({
      id: 'arena_max_1',
      setting: 'M_ARENA_MAX=1',
      why: 'one arena for all threads: memory freed by one thread serves the others',
      settings: { mallopts: [[MALLOPT_PARAMS['M_ARENA_MAX']!, 1]] },
    });
    list.push({
      id: 'arena_max_2',
      setting: 'M_ARENA_MAX=2',
      why: 'at most two arenas',
      settings: { mallopts: [[MALLOPT_PARAMS['M_ARENA_MAX']!, 2]] },
    });
  }
  return list;
}

function totalSyscalls(f: Figures): number {
  let n = 0;
  for (const v of Object.values(f.syscalls)) n += v;
  return n;
}

/** Explains the replay of `path` at each requested moment. */
export async function explain(path: string, opts: ExplainOptions): Promise<Explanation> {
  const moments = opts.at ?? ['end', 'peak'];
  // The whole replay first: it gives the end, the peak's event and the arena count.
  const whole = await snapshot(path, opts, undefined);
  const endSnap = whole.snap;
  const cores = whole.r.process.ncores;
  const arenaCount = whole.r.process.arenas.length;
  for (const m of moments)
    if (typeof m === 'number' && m >= endSnap.baseline.events)
      throw new MomentOutOfRange(m, endSnap.baseline.events);
  const points: Array<{ kind: 'end' | 'peak' | 'event'; snap: Snapshot }> = [];
  for (const m of moments) {
    if (m === 'end') points.push({ kind: 'end', snap: endSnap });
    else {
      const ev = m === 'peak' ? endSnap.baseline.peakEvent : m;
      if (ev < 0) continue;
      if (ev >= endSnap.event) {
        points.push({ kind: m === 'peak' ? 'peak' : 'event', snap: endSnap });
        continue;
      }
      points.push({
        kind: m === 'peak' ? 'peak' : 'event',
        snap: (await snapshot(path, opts, ev)).snap,
      });
    }
  }

  // The remedies, replayed to each moment.
  const base = remedies(arenaCount);
  const jobs: FiguresJob[] = [];
  if (opts.whatIfs !== false) {
    for (const p of points) {
      for (const rem of base) {
        const settings: ReplaySettings = {
          ...opts.settings,
          mallopts: [...(opts.settings.mallopts ?? []), ...(rem.settings.mallopts ?? [])],
        };
        if (rem.settings.extraTunables !== undefined)
          settings.extraTunables = rem.settings.extraTunables;
        const job: FiguresJob = {
          path,
          displayName: opts.displayName,
          import: opts.import,
          settings,
          stopAfter: p.snap.event,
        };
        if (rem.trimAtEnd) job.trimAtEnd = true;
        jobs.push(job);
      }
    }
  }
  const figures = jobs.length > 0 ? await runMany(jobs, opts.parallel, opts.progress) : [];

  const wanted = new Set<number>();
  for (const p of points)
    for (const pin of p.snap.pins) if (pin.bornEvent >= 0) wanted.add(pin.bornEvent);
  const facts = await eventFacts(path, opts, wanted);

  const out: MomentExplanation[] = points.map((p, k) => {
    const b = p.snap.b;
    const causes = CAUSES.map((c) => ({ cause: c, text: CAUSE_TEXT[c], ...b.causes[c] })).sort(
      (x, y) => y.bytes - x.bytes,
    );
    const rems: Remedy[] = [];
    if (opts.whatIfs !== false) {
      base.forEach((rem, j) => {
        const f = figures[k * base.length + j]!;
        const r: Remedy = {
          id: rem.id,
          setting: rem.setting,
          why: rem.why,
          rss: f.rss,
          saved: b.residentBytes - f.rss,
          peakRss: f.peakRss,
          syscalls: totalSyscalls(f),
          pageFaults: f.pageFaults,
          extraSyscalls: totalSyscalls(f) - totalSyscalls(p.snap.baseline),
          extraPageFaults: f.pageFaults - p.snap.baseline.pageFaults,
        };
        if (f.failure !== undefined) r.failure = f.failure;
        rems.push(r);
      });
      rems.sort((x, y) => y.saved - x.saved || x.extraSyscalls - y.extraSyscalls);
    }
    const pins: PinReport[] = p.snap.pins
      .map((pin) => ({
        ...pin,
        line: facts.get(pin.bornEvent)?.line ?? 0,
        token: facts.get(pin.bornEvent)?.token ?? '',
      }))
      .sort((x, y) => y.heldBytes - x.heldBytes);
    return {
      moment: p.kind,
      event: p.snap.event,
      line: p.snap.line,
      residentBytes: b.residentBytes,
      residentPages: b.residentPages,
      mappedBytes: b.mappedBytes,
      causes,
      arenas: b.arenas,
      pins,
      thresholds: p.snap.thresholds,
      remedies: rems,
    };
  });
  const ex: Explanation = {
    trace: opts.displayName ?? path,
    events: endSnap.baseline.events,
    cores,
    arenas: arenaCount,
    moments: out,
  };
  const note = whole.r.touchNote();
  if (note !== null) ex.note = note;
  const abort = whole.r.finish().abort;
  if (abort !== undefined) ex.abort = abort;
  return ex;
}
