/**
 * The replays behind an explanation, as jobs that run here or on worker threads (pool.ts):
 *
 *  - `measure`: the trace replayed with other settings, or edited (trims inserted, an allocation
 *    moved), and measured right after each moment explained;
 *  - `moment`: the trace replayed up to a moment and explained there (analyseMoment).
 *
 * Explaining a moment includes the what-ifs that start from that moment's state: malloc_trim(0)
 * called there, and each pin freed there. They run on checkpoints (copies of the replay's state),
 * so they cost no replay and leave the replay as given untouched. Each is the same as a replay of
 * the trace with that call inserted right after the moment's event.
 *
 * The trace is read from the copy held in memory when there is one (event-store.ts), else from
 * its file.
 */

import { mallocTrim } from '../core/api.js';
import { St } from '../core/chunks.js';
import { openTrace } from '../import/index.js';
import type { SyscallCounts } from '../kernel/kernel.js';
import type { Replayer } from '../replay/replay.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import { Op, type TraceEvent, type TraceHeader } from '../trace/types.js';
import { breakdown, type Breakdown } from './breakdown.js';
import { checkpoint } from './checkpoint.js';
import {
  deliverStored,
  editedIndex,
  momentIndex,
  storedEvent,
  threadExits,
  type Edits,
  type StoredTrace,
} from '../trace/event-store.js';
import { findPins, type Pin } from './pins.js';
import { JobPool } from './pool.js';
import { ThresholdHistory, type ThresholdChange } from './thresholds.js';

/** Where a job reads the trace. */
export interface TraceRef {
  path: string;
  displayName?: string;
  import?: ImportSettings;
  /** The trace held in memory (null: read the file). */
  store: StoredTrace | null;
}

/** The figures of a replay right after one event. */
export interface MomentFigures {
  rss: number;
  /** The highest RSS up to this event. */
  peakRss: number;
  syscalls: number;
  pageFaults: number;
}

interface MeasureJob {
  kind: 'measure';
  trace: TraceRef;
  settings: ReplaySettings;
  edits?: Edits;
  /** The moments to measure at, as indexes of the trace as given, in increasing order. */
  at: number[];
  /**
   * The trim thresholds of other settings, which leave glibc in the same state at start but for
   * that threshold (twins.ts): the replay says whether each would ever have made a difference.
   */
  otherTrimThresholds?: number[];
}

/** What a measure job found: the figures at each moment reached, and why it stopped early. */
export interface Measured {
  figures: Array<MomentFigures | null>;
  /** For an edit that frees a block: where its chunk went at the free. */
  went?: PinFreed['went'];
  failure?: string;
  /**
   * With MeasureJob.otherTrimThresholds: whether each threshold would have changed anything by the
   * last moment (false: the figures are that setting's too).
   */
  otherTrimMattered?: boolean[];
}

/**
 * Watches an edited replay that frees a block (Edits.free): finds the block's chunk right before
 * the free, and says where the free put it (a cache, or merged with the free memory around it).
 */
function freeWatcher(edits: Edits | undefined): {
  observe: (ev: TraceEvent, r: Replayer) => void;
  went: () => PinFreed['went'] | undefined;
  /** The events it looks at. */
  events: number[];
} {
  const f = edits?.free;
  let chunk = -1;
  let went: PinFreed['went'] | undefined;
  return {
    events: f === undefined ? [] : [f.after, f.after + 1],
    observe: (ev, r) => {
      if (f === undefined) return;
      const ck = r.process.ck;
      if (ev.index === f.after) {
        for (let h = 0; h < ck.highWater; h++)
          if (ck.born[h] === f.born && ck.state[h] === St.INUSE) chunk = h;
      } else if (ev.index === f.after + 1 && chunk >= 0) {
        const st = ck.state[chunk];
        went = st === St.TCACHE ? 'tcache' : st === St.FAST ? 'fastbin' : 'merged';
      }
    },
    went: () => went,
  };
}

interface MomentJob {
  kind: 'moment';
  trace: TraceRef;
  settings: ReplaySettings;
  at: number;
  whatIfs: boolean;
}

export type ExplainJob = MeasureJob | MomentJob;
export type ExplainResult = Measured | MomentAnalysis;

/** What freeing a pin at the moment does. */
export interface PinFreed {
  figures: MomentFigures;
  /** The thread that frees it. */
  tid: number;
  /** Where the freed chunk ends up: a cache that keeps it, or merged into the free memory around it. */
  went: 'tcache' | 'fastbin' | 'merged';
  /** The top chunk of the pin's arena and the trim threshold after the free (for 'merged'). */
  topAfter: number;
  trimThreshold: number;
  main: boolean;
  failure?: string;
}

/** A trace event as explain tells of it. */
export interface EventFacts {
  line: number;
  tid: number;
  op: number;
  token: string;
  key: number;
  id: number;
}

/** Everything found at one moment. */
export interface MomentAnalysis {
  event: number;
  line: number;
  tid: number;
  b: Breakdown;
  pins: Pin[];
  thresholds: ThresholdChange[];
  /** The thresholds at the moment, and whether glibc still adjusts them. */
  mmapThreshold: number;
  trimThreshold: number;
  dynamicThresholds: boolean;
  baseline: MomentFigures;
  /** malloc_trim(0) right after the moment (null when what-ifs are off). */
  trimNow: (MomentFigures & { returned: number }) | null;
  /** Each live pin freed right after the moment, by chunk (what-ifs only). */
  pinsFreed: Array<{ chunk: number } & PinFreed>;
  /** The events that allocated the pins and the fragmenting blocks. */
  facts: Array<[number, EventFacts]>;
  header: TraceHeader | null;
  /** Arenas at the moment. */
  arenas: number;
  abort?: { message: string; event: number; line: number };
}

/** Most pins freed, one checkpoint each. */
const PINS_FREED = 8;

function total(syscalls: SyscallCounts): number {
  let n = 0;
  for (const v of Object.values(syscalls)) n += v;
  return n;
}

function figuresOf(r: Replayer): MomentFigures {
  const k = r.kernel;
  return {
    rss: k.residentPages * 4096,
    peakRss: r.finish().peakRss,
    syscalls: total(k.syscalls),
    pageFaults: k.pageFaults,
  };
}

function source(t: TraceRef, edits?: Edits): Parameters<typeof replayFile>[1] {
  const o: Parameters<typeof replayFile>[1] = { import: t.import, displayName: t.displayName };
  const store = t.store;
  if (store !== null) o.source = (sink) => deliverStored(store, sink, edits);
  else if (edits !== undefined)
    throw new Error('ptsim internal error: an edited replay needs the trace in memory');
  return o;
}

async function measure(job: MeasureJob): Promise<Measured> {
  const targets = job.at.map((m) => momentIndex(job.edits, m));
  const figures: Array<MomentFigures | null> = job.at.map(() => null);
  let next = 0;
  const freed = freeWatcher(job.edits);
  const run = await replayFile(job.trace.path, {
    ...source(job.trace, job.edits),
    ...job.settings,
    stopAfter: targets[targets.length - 1],
    ...(job.otherTrimThresholds !== undefined
      ? { otherTrimThresholds: job.otherTrimThresholds }
      : {}),
    observe: (ev: TraceEvent, r: Replayer) => {
      freed.observe(ev, r);
      while (next < targets.length && targets[next] === ev.index) figures[next++] = figuresOf(r);
    },
    // Only those events: the others are replayed without event objects.
    observeAt: [...new Set([...targets, ...freed.events])].sort((a, b) => a - b),
  });
  const out: Measured = { figures };
  const went = freed.went();
  if (went !== undefined) out.went = went;
  const r = run.replayer;
  if (job.otherTrimThresholds !== undefined)
    out.otherTrimMattered = job.otherTrimThresholds.map(
      (_, i) => r === null || r.process.trimThresholdsMattered[i]! >= 0,
    );
  if (run.failure !== null) out.failure = run.failure.message;
  else if (r !== null && r.aborted && next < targets.length) {
    const a = r.finish().abort!;
    out.failure = `glibc aborted at event ${a.event} (line ${a.line}): ${a.message}`;
  } else if (next < targets.length) out.failure = 'the replay ended before this moment';
  return out;
}

/** Line numbers, threads and tokens of a few events, read from the trace without replaying it. */
async function eventFacts(t: TraceRef, wanted: Set<number>): Promise<Map<number, EventFacts>> {
  const out = new Map<number, EventFacts>();
  if (wanted.size === 0) return out;
  const store = t.store;
  if (store !== null) {
    for (const i of wanted) {
      const e = storedEvent(store, i);
      out.set(i, { line: e.line, tid: e.tid, op: e.op, token: e.token, key: e.key, id: e.id });
    }
    return out;
  }
  const last = Math.max(...wanted);
  class Done extends Error {}
  try {
    await openTrace(
      t.path,
      {
        header: () => {},
        event: (ev: TraceEvent) => {
          if (wanted.has(ev.index)) {
            const takes = ev.op === Op.free;
            out.set(ev.index, {
              line: ev.line,
              tid: ev.tid,
              op: ev.op,
              token: takes ? ev.in : ev.out,
              key: (takes ? ev.inKey : ev.outKey) ?? -1,
              id: (takes ? ev.inId : ev.outId) ?? -1,
            });
          }
          if (ev.index >= last) throw new Done();
        },
      },
      { ...t.import, displayName: t.displayName },
    );
  } catch (e) {
    if (!(e instanceof Done)) throw e;
  }
  return out;
}

/** Frees a pin on a checkpoint of the replay, right after the moment's event. */
function freePin(
  r: Replayer,
  pin: Pin,
  birth: EventFacts,
  tid: number,
  moment: { event: number; line: number },
): PinFreed {
  const c = checkpoint(r);
  const ev: TraceEvent = {
    index: moment.event + 1,
    line: moment.line,
    time: -1,
    tid,
    op: Op.free,
    n1: 0,
    n2: 0,
    param: 0,
    in: birth.token,
    out: '',
    inKey: birth.key,
    outKey: 0,
    inId: birth.id,
    outId: -1,
  };
  const s = c.process;
  let failure: string | undefined;
  // The copy's listeners are the original replay's: it gets none.
  c.observeWith(undefined);
  try {
    c.event(ev);
  } catch (e) {
    failure = e instanceof Error ? e.message : String(e);
  }
  const st = s.ck.state[pin.chunk];
  const arena = s.arenas[pin.arena]!;
  const out: PinFreed = {
    figures: figuresOf(c),
    tid,
    went: st === St.TCACHE ? 'tcache' : st === St.FAST ? 'fastbin' : 'merged',
    topAfter: arena.topIsInitial ? 0 : s.ck.size[arena.top]!,
    trimThreshold: s.mp.trimThreshold,
    main: pin.arena === 0,
  };
  if (failure !== undefined) out.failure = failure;
  return out;
}

/**
 * Explains the replay's state as it is (right after event `event`): the breakdown, the pins, the
 * thresholds, and the what-ifs that start from this state.
 */
export async function analyseMoment(
  r: Replayer,
  t: TraceRef,
  history: ThresholdHistory,
  moment: { event: number; line: number; tid: number },
  header: TraceHeader | null,
  whatIfs: boolean,
): Promise<MomentAnalysis> {
  const s = r.process;
  const b = breakdown(s);
  const pins = findPins(s);
  const wanted = new Set<number>();
  for (const p of pins) if (p.bornEvent >= 0) wanted.add(p.bornEvent);
  for (const f of b.fragmentation) for (const x of f.examples) wanted.add(x.bornEvent);
  const facts = await eventFacts(t, wanted);
  const summary = r.finish();
  const a: MomentAnalysis = {
    event: moment.event,
    line: moment.line,
    tid: moment.tid,
    b,
    pins,
    thresholds: history.changes,
    mmapThreshold: s.mp.mmapThreshold,
    trimThreshold: s.mp.trimThreshold,
    dynamicThresholds: !s.mp.noDynThreshold,
    baseline: figuresOf(r),
    trimNow: null,
    pinsFreed: [],
    facts: [...facts],
    header,
    arenas: s.arenas.length,
  };
  if (summary.abort !== undefined) a.abort = { ...summary.abort };
  if (!whatIfs || summary.abort !== undefined || moment.event < 0) return a;
  const held = pins
    .filter((p) => p.kind === 'live' && p.freeBelowBytes > 0 && facts.has(p.bornEvent))
    .sort((x, y) => y.freeBelowBytes - x.freeBelowBytes)
    .slice(0, PINS_FREED);
  for (const p of held) {
    const birth = facts.get(p.bornEvent)!;
    // The thread that allocated it frees it, unless it has exited since: then the moment's thread.
    const gone =
      t.store !== null
        ? threadExits(t.store, birth.tid, p.bornEvent, moment.event)
        : birth.tid !== moment.tid;
    a.pinsFreed.push({
      chunk: p.chunk,
      ...freePin(r, p, birth, gone ? moment.tid : birth.tid, moment),
    });
  }
  const c = checkpoint(r);
  const returned = mallocTrim(c.process, 0);
  a.trimNow = { ...figuresOf(c), returned };
  return a;
}

async function momentJob(job: MomentJob): Promise<MomentAnalysis> {
  const history = new ThresholdHistory();
  let line = 0;
  let event = -1;
  let tid = 0;
  const run = await replayFile(job.trace.path, {
    ...source(job.trace),
    ...job.settings,
    stopAfter: job.at,
    observe: (ev: TraceEvent, r: Replayer) => {
      history.observe(ev, r);
      line = ev.line;
      event = ev.index;
      tid = ev.tid;
    },
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${job.trace.path}: nothing to replay`);
  if (run.failure !== null) throw run.failure;
  return analyseMoment(r, job.trace, history, { event, line, tid }, run.header, job.whatIfs);
}

/** A copy of the replay as given, taken right after an event, to resume from. */
export interface Checkpoint {
  event: number;
  line: number;
  tid: number;
  r: Replayer;
  history: ThresholdHistory;
}

/** Takes a checkpoint of a replay (with its threshold history) right after an event. */
export function takeCheckpoint(
  r: Replayer,
  history: ThresholdHistory,
  at: { event: number; line: number; tid: number },
): Checkpoint {
  const c = checkpoint({ r, history });
  return { ...at, r: c.r, history: c.history };
}

/** Thrown by a resumed replay's sink when it has reached its last event. */
const STOP = new Error('stop');

/**
 * Resumes the replay as given from a copy of checkpoint `cp`, with the stored trace's events after
 * it (edited: `stop` and the indexes `observe` sees are edited ones), up to event `stop`. `observe`
 * is called for the events `at` names (and `stop`), or every event when absent; the others are
 * replayed without event objects (Replayer.runStored).
 */
async function resume(
  cp: Checkpoint,
  store: StoredTrace,
  edits: Edits | undefined,
  stop: number,
  observe: (ev: TraceEvent, r: Replayer, h: ThresholdHistory) => void,
  at?: readonly number[],
): Promise<{ r: Replayer; history: ThresholdHistory; failure: Error | null }> {
  const c = checkpoint({ r: cp.r, history: cp.history });
  const r = c.r;
  // An event is complete once the records after it are applied: the copy's observer, in place of
  // the original replay's, sees it then, and stops at the last one.
  r.observeWith(
    (ev, rr) => {
      observe(ev, rr, c.history);
      if (ev.index >= stop) throw STOP;
    },
    at === undefined ? undefined : [...new Set([...at, stop])].sort((x, y) => x - y),
  );
  let failure: Error | null = null;
  if (editedIndex(edits, cp.event) < stop) {
    try {
      await deliverStored(
        store,
        {
          header: () => {},
          event: (ev: TraceEvent) => {
            r.event(ev);
            if (r.aborted) {
              observe(ev, r, c.history);
              throw STOP;
            }
          },
          // The events nothing observes, without event objects. An abort there is at an event
          // the observer does not look at: the replay stops, as at any other.
          runStored: (t, place, until, shift) => {
            r.runStored(t, place, until, shift);
            if (r.aborted) throw STOP;
          },
          touch: (rec) => r.touch(rec),
          rss: (sample) => r.rss(sample),
          recordsEnd: () => r.recordsEnd(),
        },
        edits,
        cp.event + 1,
      );
    } catch (e) {
      if (e !== STOP) failure = e instanceof Error ? e : new Error(String(e));
    }
  }
  r.observeWith(undefined);
  return { r: c.r, history: c.history, failure };
}

/** A measure job, resumed from a checkpoint before anything it changes (its edit's move). */
export async function measureFrom(
  cp: Checkpoint,
  store: StoredTrace,
  edits: Edits | undefined,
  at: number[],
): Promise<Measured> {
  const targets = at.map((m) => momentIndex(edits, m));
  const figures: Array<MomentFigures | null> = at.map(() => null);
  let next = 0;
  const freed = freeWatcher(edits);
  const { r, failure } = await resume(
    cp,
    store,
    edits,
    targets[targets.length - 1]!,
    (ev, r) => {
      freed.observe(ev, r);
      while (next < targets.length && targets[next] === ev.index) figures[next++] = figuresOf(r);
    },
    [...targets, ...freed.events],
  );
  const out: Measured = { figures };
  const went = freed.went();
  if (went !== undefined) out.went = went;
  if (failure !== null) out.failure = failure.message;
  else if (r.aborted && next < targets.length) {
    const a = r.finish().abort!;
    out.failure = `glibc aborted at event ${a.event} (line ${a.line}): ${a.message}`;
  } else if (next < targets.length) out.failure = 'the replay ended before this moment';
  return out;
}

/** A moment explained from a checkpoint at or before it. */
export async function momentFrom(
  cp: Checkpoint,
  t: TraceRef & { store: StoredTrace },
  at: number,
  whatIfs: boolean,
): Promise<MomentAnalysis> {
  let moment = { event: cp.event, line: cp.line, tid: cp.tid };
  const { r, history, failure } = await resume(cp, t.store, undefined, at, (ev, r, h) => {
    h.observe(ev, r);
    moment = { event: ev.index, line: ev.line, tid: ev.tid };
  });
  if (failure !== null) throw failure;
  return analyseMoment(r, t, history, moment, t.store.header, whatIfs);
}

/** Runs one job in this thread. */
export function runExplainJob(job: ExplainJob): Promise<ExplainResult> {
  return job.kind === 'measure' ? measure(job) : momentJob(job);
}

/**
 * Worker threads for explain's jobs, kept over its rounds (1: every job in this thread). The trace
 * held in memory goes to each worker once, not with every job (its columns are shared memory, but
 * its records are copied).
 */
export function explainPool(
  parallel: number | undefined,
  store: StoredTrace | null,
): JobPool<ExplainJob, ExplainResult> {
  return new JobPool(new URL('./explain-worker.js', import.meta.url), runExplainJob, parallel, {
    data: store,
    send: (job) =>
      store !== null && job.trace.store === store
        ? { ...job, trace: { ...job.trace, store: null, held: true } }
        : job,
  });
}

/** A job as a worker receives it, given back the trace held in memory. */
export function receivedJob(job: ExplainJob, store: StoredTrace | null): ExplainJob {
  const t = job.trace as TraceRef & { held?: boolean };
  return t.held === true ? { ...job, trace: { ...t, store } } : job;
}
