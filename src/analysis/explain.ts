/**
 * `ptsim explain`: why the resident memory is what it is at a moment of a replay (the end, the
 * peak, or an event), and what would change it.
 *
 *  - the breakdown: every resident byte by cause, fragmentation included (breakdown.ts);
 *  - the pins: the highest chunk of each heap that keeps the free memory below it from being
 *    trimmed, with the event and trace line that allocated it, and what freeing it would really
 *    do (pins.ts);
 *  - the thresholds: where the mmap and trim thresholds stand, and each change of them with what
 *    it cost (thresholds.ts);
 *  - what would help: remedies chosen from the causes found (remedies.ts), each replayed for real
 *    up to the moment (what-if.ts) and offered only when it saves memory there, ranked by what it
 *    saves, with its cost in system calls and page faults.
 *
 * The trace is read once, by the first replay, which keeps a copy of it in memory (event-store.ts)
 * for the others; what-ifs that start at a moment (malloc_trim there, a pin freed there) run on
 * copies of that moment's state rather than replaying up to it again. The other replays run on
 * worker threads kept for the whole explanation, which get the copy of the trace once. They come
 * in rounds, each chosen from what the earlier ones found; only the moments and the settings'
 * figures choose, so a round starts as soon as those are in, while the edited replays of the
 * round before (trims inserted, pins freed or moved) still run.
 */

import { DEFAULT_PROFILE, isUnverified, unverifiedNote } from '../core/profile.js';
import { totalmem } from 'node:os';
import type { Replayer } from '../replay/replay.js';
import {
  replayFile,
  type ImportSettings,
  type ReplaySettings,
  type RunResult,
} from '../replay/run-file.js';
import { SiteTable } from '../trace/site-table.js';
import { Op, type TraceEvent } from '../trace/types.js';
import {
  CAUSE_TEXT,
  CAUSES,
  type Breakdown,
  type Cause,
  type FragmentingBlock,
  type HeapFragmentation,
} from './breakdown.js';
import {
  earliestMove,
  earliestMoves,
  lastUse,
  storedEvent,
  storedHeader,
  threadExits,
  TraceStore,
  type Edits,
  type StoredTrace,
} from '../trace/event-store.js';
import {
  blockSite,
  DEFAULT_SITE_VIEW,
  explainSites,
  processAt,
  type BlockSite,
  type MomentSites,
  type SiteView,
} from './explain-sites.js';
import type { Pin } from './pins.js';
import {
  combine,
  familyBytes,
  settingCandidates,
  trimInterval,
  trimsMatter,
  type Family,
  type SettingCandidate,
} from './remedies.js';
import { symbolizeTable } from './sites.js';
import { typedBytes } from './checkpoint.js';
import { compareMeasured, type MeasuredComparison } from './measured-compare.js';
import { ThresholdHistory, type ThresholdChange } from './thresholds.js';
import { pairTwins, type Twin } from './twins.js';
import { shortBytes, thousands } from './units.js';
import {
  analyseMoment,
  measureFrom,
  momentFrom,
  explainPool,
  takeCheckpoint,
  type Checkpoint,
  type EventFacts,
  type ExplainJob,
  type Measured,
  type MomentAnalysis,
  type MomentFigures,
  type PinFreed,
  type TraceRef,
} from './what-if.js';

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
  /** Most events kept in memory (default: what a quarter of the machine's memory holds). */
  storeLimit?: number;
  /**
   * Where the first pass takes its checkpoints: every `every` events at first (CHECKPOINT_EVERY),
   * at most `bytes` of them together (CHECKPOINT_BYTES). What explain finds does not depend on them:
   * they only spare replaying from the first event.
   */
  checkpoints?: { every?: number; bytes?: number };
  /** How the allocation sites are grouped, for a trace with call stacks. */
  sites?: Partial<SiteView>;
  /** Events right after which each pin is also tried freed (besides its last use and the moment). */
  freeAt?: number[];
  /**
   * Another watcher of the first replay (the report's timeline of the configuration explained),
   * told of each event and of the replay's end, with the trace held in memory (null: not held).
   */
  firstPass?: {
    observe: (ev: TraceEvent, r: Replayer) => void;
    done: (run: RunResult, stored: StoredTrace | null) => void;
  };
}

/** What freeing a pin right after the moment does, measured on a copy of the replay. */
interface PinOutcome {
  rss: number;
  saved: number;
  went: PinFreed['went'];
  /** What became of the freed chunk, in one line. */
  note: string;
}

interface PinReport extends Pin {
  /** Trace line of the event that handed the chunk out (0 if unknown). */
  line: number;
  /** The token the trace gave it. */
  token: string;
  /** Freeing it right after the moment (live pins, with what-ifs). */
  freed?: PinOutcome;
  /** Where it was allocated (a trace with call stacks). */
  site?: BlockSite;
}

interface BlockReport extends FragmentingBlock {
  line: number;
  token: string;
}

interface FragmentationReport extends Omit<HeapFragmentation, 'examples'> {
  examples: BlockReport[];
}

interface Remedy {
  /**
   * setting: one setting; settings: two together; trim_now: malloc_trim(0) at the moment;
   * trim_every: malloc_trim(0) every N events; free_pin: the pin freed at the moment;
   * free_pin_early: the pin freed earlier (right after its last use, or an event given);
   * move_pin: the pin allocated earlier.
   */
  id:
    'setting' | 'settings' | 'trim_now' | 'trim_every' | 'free_pin' | 'free_pin_early' | 'move_pin';
  /** What was changed: settings as compare's --config takes them, or the change to the program. */
  setting: string;
  /** What it does, in one line. */
  why: string;
  /** The cause it addresses. */
  addresses: string;
  rss: number;
  /** Bytes saved at the moment explained, against the replay as given (negative: worse). */
  saved: number;
  peakRss: number;
  syscalls: number;
  pageFaults: number;
  /** More (or fewer, negative) system calls and page faults than the replay as given. */
  extraSyscalls: number;
  extraPageFaults: number;
  /** malloc_trim calls made up to the moment (the trim remedies). */
  calls?: number;
  /** The settings replayed (the setting remedies). */
  settings?: ReplaySettings;
  /** The edit replayed (trim_every, move_pin). */
  edits?: Edits;
  /** The call made right after the moment's event, as a trace line (trim_now, free_pin). */
  call?: string;
  /** What became of the freed pin's chunk, and so why it saves what it saves (free_pin, free_pin_early). */
  note?: string;
  /** Where the pin was allocated (the pin remedies, on a trace with call stacks). */
  site?: BlockSite;
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
  fragmentation: FragmentationReport[];
  pins: PinReport[];
  thresholds: ThresholdChange[];
  /** The thresholds at this moment, and whether glibc still adjusts them on its own. */
  thresholdState: { mmapThreshold: number; trimThreshold: number; dynamic: boolean };
  /** The remedies that save memory at this moment, most saved first. */
  remedies: Remedy[];
  /** The remedies tried that save nothing here (or could not be replayed). */
  tried: Remedy[];
  /** The trace's `#:rss` sample at or before this moment against the replay (measured-compare.ts). */
  measured?: MeasuredComparison;
  /** The top allocation sites of each cause (a trace with call stacks). */
  sites?: MomentSites;
}

export interface Explanation {
  trace: string;
  events: number;
  cores: number;
  arenas: number;
  moments: MomentExplanation[];
  /** What the explanation cannot show about this trace, one line each. */
  notes: string[];
  /** glibc's abort, when the replay ended in one (the end explained is the abort). */
  abort?: { message: string; event: number; line: number };
}

/**
 * An event index past the trace's last event: a mistake in what the user asked for, reported by
 * name like the trace's mistakes (the command prints it in one line, exit status 2).
 */
export class MomentOutOfRange extends Error {
  constructor(moment: number, events: number) {
    super(
      events === 0
        ? `--at ${moment}: the trace has no events`
        : `--at ${moment}: the trace has ${events} event${events === 1 ? '' : 's'}: give end, peak or an event index from 0 to ${events - 1}`,
    );
    this.name = 'InputError';
  }
}

/**
 * Checkpoints of the replay as given kept at most, how far apart they start, and the memory they
 * may take together: a trace that keeps millions of blocks live makes checkpoints of hundreds of
 * MiB each, and keeps fewer (two at least), further apart.
 */
const CHECKPOINTS = 16;
const CHECKPOINT_EVERY = 1 << 16;
const CHECKPOINT_BYTES = 1 << 28;

/** Pins per moment tried allocated earlier (those with the most free memory below them). */
const MOVED_PINS = 2;

/** Formats whose recordings have no threads: every call is replayed on one thread. */
const THREADLESS: Record<string, string> = {
  heaptrack: "heaptrack's raw data has no thread ids",
  mtrace: "glibc's mtrace log has no thread ids",
  malloclab: 'malloclab traces have no threads',
};

/** A quarter of the machine's memory, at about 40 bytes an event. */
function defaultStoreLimit(): number {
  return Math.floor(totalmem() / 4 / 40);
}

/** A count, as the remedies' texts print it. */
function num(n: number): string {
  return thousands(n);
}

function pinName(p: Pin, token: string): string {
  return token !== '' ? token : `the block at event ${p.bornEvent}`;
}

/** One line on what freeing a pin did. */
function pinNote(p: PinFreed, saved: number): string {
  if (p.failure !== undefined) return `could not be freed: ${p.failure}`;
  if (saved > 0) return `gives back ${shortBytes(saved)}`;
  if (p.went === 'tcache')
    return 'gives back nothing: the freed chunk would go into the tcache, where glibc still counts it as in use';
  if (p.went === 'fastbin')
    return 'gives back nothing: the freed chunk would go into a fastbin, where it is not merged with the free memory below';
  return p.main
    ? `gives back nothing: the freed chunk is merged with the free memory around it, but the top of the heap (${shortBytes(p.topAfter)}) stays below the trim threshold (${shortBytes(p.trimThreshold)})`
    : "gives back nothing: the freed chunk is merged with the free memory around it, but glibc keeps it in the thread's heap";
}

/** One line on what freeing a pin earlier did, at the moment explained. */
function earlyNote(went: PinFreed['went'] | undefined, saved: number): string {
  const where =
    went === 'tcache'
      ? 'the freed chunk went into the tcache, where glibc still counts it as in use'
      : went === 'fastbin'
        ? 'the freed chunk went into a fastbin, where it is not merged with the free memory around it'
        : 'the freed chunk was merged with the free memory around it';
  if (saved > 0) return `gives back ${shortBytes(saved)} by this moment (${where})`;
  if (saved < 0) return `costs ${shortBytes(-saved)} by this moment (${where})`;
  return `gives back nothing by this moment: ${where}${went === 'merged' ? ', and the heap kept it' : ''}`;
}

/** A measured remedy against the moment's baseline. */
function remedyOf(
  base: Omit<
    Remedy,
    'rss' | 'saved' | 'peakRss' | 'syscalls' | 'pageFaults' | 'extraSyscalls' | 'extraPageFaults'
  >,
  m: MomentAnalysis,
  f: MomentFigures | null,
  failure?: string,
): Remedy {
  const b = m.baseline;
  const r: Remedy = {
    ...base,
    rss: f?.rss ?? 0,
    saved: f === null ? 0 : m.b.residentBytes - f.rss,
    peakRss: f?.peakRss ?? 0,
    syscalls: f?.syscalls ?? 0,
    pageFaults: f?.pageFaults ?? 0,
    extraSyscalls: f === null ? 0 : f.syscalls - b.syscalls,
    extraPageFaults: f === null ? 0 : f.pageFaults - b.pageFaults,
  };
  if (f === null) r.failure = failure ?? 'the replay did not reach this moment';
  return r;
}

/** Adds the trace's measurement at the moment, when it has one (the `#:rss` samples). */
function withMeasured(x: MomentExplanation, r: Replayer): void {
  const c = compareMeasured(r.measured, x.event);
  if (c !== undefined) x.measured = c;
}

/**
 * The pins of a moment that explain tries allocating earlier (and freeing earlier), the one that
 * saves most first, MOVED_PINS at most, each with whether it is the first live one: those that
 * free memory below them, not born of a realloc (which cannot be allocated earlier on its own).
 */
function movablePins(m: MomentAnalysis): Array<readonly [Pin, boolean]> {
  return m.pins
    .filter((p) => {
      const op = m.facts.find(([i]) => i === p.bornEvent)?.[1].op;
      return p.freeBelowBytes > 0 && op !== undefined && op !== Op.realloc;
    })
    .sort((x, y) => y.freeBelowBytes - x.freeBelowBytes)
    .slice(0, MOVED_PINS)
    .map((p, i, all) => [p, all.findIndex((q) => q.kind === 'live') === i] as const);
}

/** Explains the replay of `path` at each requested moment. */
export async function explain(path: string, opts: ExplainOptions): Promise<Explanation> {
  const moments = opts.at ?? ['end', 'peak'];
  const whatIfs = opts.whatIfs !== false;

  // The whole replay first: it gives the end, the peak's event and the arena count, keeps the
  // trace in memory for the other replays, and checkpoints to resume from along the way.
  // Nothing is replayed again when only the end is explained, without remedies.
  const again = whatIfs || moments.some((m) => m !== 'end');
  const store = new TraceStore(again ? (opts.storeLimit ?? defaultStoreLimit()) : 0);
  const history = new ThresholdHistory();
  const checkpoints: Checkpoint[] = [];
  let every = opts.checkpoints?.every ?? CHECKPOINT_EVERY;
  const budget = opts.checkpoints?.bytes ?? CHECKPOINT_BYTES;
  let room = CHECKPOINTS;
  let line = 0;
  let event = -1;
  let tid = 0;
  const table = new SiteTable();
  const watcher = opts.firstPass?.observe;
  const run = await replayFile(path, {
    sites: table,
    ...opts.settings,
    import: opts.import,
    displayName: opts.displayName,
    tee: store,
    observe: (ev: TraceEvent, r: Replayer) => {
      watcher?.(ev, r);
      history.observe(ev, r);
      line = ev.line;
      event = ev.index;
      tid = ev.tid;
      if (store.ok && (ev.index + 1) % every === 0) {
        while (checkpoints.length >= room) {
          // Twice as far apart from now on: every other one goes.
          every *= 2;
          for (let k = checkpoints.length - 1; k >= 0; k--)
            if ((checkpoints[k]!.event + 1) % every !== 0) checkpoints.splice(k, 1);
        }
        if ((ev.index + 1) % every === 0) {
          const cp = takeCheckpoint(r, history, { event, line, tid });
          checkpoints.push(cp);
          // Room for as many as the latest's size allows (the state only grows with the trace).
          const fit = Math.floor(budget / Math.max(1, typedBytes(cp.r)));
          room = Math.min(room, Math.max(2, fit));
        }
      }
    },
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${path}: nothing to replay`);
  if (run.failure !== null) throw run.failure;
  const stored = store.finish();
  opts.firstPass?.done(run, stored);
  const ref: TraceRef = {
    path,
    displayName: opts.displayName,
    import: opts.import,
    store: stored,
  };
  const summary = r.finish();
  const events = summary.events;
  for (const m of moments)
    if (typeof m === 'number' && m >= events) throw new MomentOutOfRange(m, events);

  // The moments, as events.
  const points: Array<{ kind: 'end' | 'peak' | 'event'; event: number }> = [];
  for (const m of moments) {
    if (m === 'end') points.push({ kind: 'end', event });
    else {
      const ev = m === 'peak' ? summary.peakEvent : m;
      if (ev < 0) continue;
      points.push({ kind: m === 'peak' ? 'peak' : 'event', event: Math.min(ev, event) });
    }
  }
  const analyses = new Map<number, MomentAnalysis>();
  if (points.some((p) => p.event === event))
    analyses.set(
      event,
      await analyseMoment(r, ref, history, { event, line, tid }, run.header, whatIfs),
    );
  const at = [...new Set(points.map((p) => p.event))].sort((a, b) => a - b);
  /** The last checkpoint before event e (its state is the replay's right after an earlier event). */
  const checkpointBefore = (e: number): Checkpoint | undefined =>
    stored === null ? undefined : checkpoints.filter((c) => c.event < e).pop();

  // The replays: rounds of jobs, each round's choices made from what the earlier ones found. Jobs
  // that can resume from a checkpoint run here, the others on the worker threads, side by side.
  const candidates = new Map<string, SettingCandidate>();
  let measured = new Map<string, Measured>();
  const moves = new Map<string, { event: number; pin: Pin; edits: Edits }>();
  const frees = new Map<string, { event: number; pin: Pin; edits: Edits; lastUse: boolean }>();
  const siteView = { ...DEFAULT_SITE_VIEW, ...opts.sites };
  const siteOf = (born: number): BlockSite | undefined =>
    table.hasSites ? blockSite(table, born, siteView) : undefined;
  let done = 0;
  let total = 0;
  const trimEvery = trimInterval(event + 1);
  const edited = stored !== null;
  const figuresOf = (m: MomentAnalysis, setting: string): MomentFigures | undefined =>
    measured.get(setting)?.figures[at.indexOf(m.event)] ?? undefined;
  const savedBy = (m: MomentAnalysis, setting: string): number => {
    const f = figuresOf(m, setting);
    return f === undefined ? 0 : m.b.residentBytes - f.rss;
  };
  /**
   * Whether a milder variant of a setting is worth a replay: when the setting saves memory at a
   * price in kernel work (or, for arenas, in lock contention, which a replay cannot show).
   */
  const worthMilder = (m: MomentAnalysis, setting: string, family: Family): boolean => {
    const f = figuresOf(m, setting);
    if (f === undefined || m.b.residentBytes - f.rss <= 0) return false;
    return (
      family === 'arenas' || f.syscalls + f.pageFaults > m.baseline.syscalls + m.baseline.pageFaults
    );
  };
  // The scans of the stored trace behind the pins' edits, made once: every round plans again.
  const scans = new Map<string, unknown>();
  const once = <T>(key: string, scan: () => T): T => {
    if (!scans.has(key)) scans.set(key, scan());
    return scans.get(key) as T;
  };
  const pool = explainPool(opts.parallel, stored);
  /** Every job planned, in the order the results are kept; their results, as they come. */
  const order: string[] = [];
  const results = new Map<string, Promise<MomentAnalysis | Measured>>();
  /** The jobs that run here (from checkpoints), one after the other. */
  let here: Promise<unknown> = Promise.resolve();
  const keep = (key: string, res: MomentAnalysis | Measured): void => {
    if (key.startsWith('moment ')) analyses.set(Number(key.slice(7)), res as MomentAnalysis);
    else measured.set(key, res as Measured);
  };
  /**
   * Whether a job's result may decide the next round's jobs: the moments and the settings do, the
   * edited replays (periodic trims, pins freed or moved) never do.
   */
  const decides = (key: string): boolean => !/^(trim_every|free |move )/.test(key);
  try {
    for (let round = 0; ; round++) {
      const jobs: ExplainJob[] = [];
      const keys: string[] = [];
      const local: Array<{ key: string; run: () => Promise<MomentAnalysis | Measured> }> = [];
      // The round's jobs in the order planned, wherever they run (a worker, or here from a
      // checkpoint): the order their results are kept in does not depend on the checkpoints.
      const inOrder: string[] = [];
      const planned = (key: string): boolean =>
        results.has(key) || keys.includes(key) || local.some((l) => l.key === key);
      for (const e of at)
        if (round === 0 && !analyses.has(e)) {
          const cp = checkpointBefore(e + 1);
          inOrder.push(`moment ${e}`);
          if (cp !== undefined && stored !== null)
            local.push({
              key: `moment ${e}`,
              run: () => momentFrom(cp, { ...ref, store: stored }, e, whatIfs),
            });
          else {
            jobs.push({ kind: 'moment', trace: ref, settings: opts.settings, at: e, whatIfs });
            keys.push(`moment ${e}`);
          }
        }
      const want = (key: string, settings: ReplaySettings, edits?: Edits, only?: number): void => {
        if (planned(key)) return;
        inOrder.push(key);
        const when = only !== undefined ? [only] : at;
        const cp =
          edits?.move !== undefined
            ? checkpointBefore(edits.move.to)
            : edits?.free !== undefined
              ? checkpointBefore(edits.free.after)
              : undefined;
        if (cp !== undefined && stored !== null) {
          local.push({ key, run: () => measureFrom(cp, stored, edits, when) });
          return;
        }
        const job: ExplainJob = { kind: 'measure', trace: ref, settings, at: when };
        if (edits !== undefined) job.edits = edits;
        jobs.push(job);
        keys.push(key);
      };
      // The moves of the pins this round may move, found in one scan of the stored trace.
      if (whatIfs && stored !== null) {
        const born = [...analyses.values()]
          .filter((m) => m.abort === undefined && m.event >= 0)
          .flatMap((m) => movablePins(m).map(([p]) => p.bornEvent))
          .filter((b) => !scans.has(`move ${b}`));
        for (const [b, move] of earliestMoves(stored, born)) scans.set(`move ${b}`, move);
      }
      if (whatIfs)
        for (const m of analyses.values()) {
          // Nothing to change before the first event, nor in a process glibc has aborted.
          if (m.abort !== undefined || m.event < 0) continue;
          for (const c of settingCandidates(m)) {
            if (c.after !== undefined && !worthMilder(m, c.after, c.family)) continue;
            candidates.set(c.setting, c);
            want(c.setting, combine(opts.settings, c.settings));
          }
          if (edited && trimsMatter(m) && Math.floor((m.event + 1) / trimEvery) > 0)
            want('trim_every', opts.settings, { trimEvery });
          if (stored !== null)
            for (const [p, first] of movablePins(m)) {
              // Freed earlier: right after its last use (the first live pin only, to bound the
              // replays: one that starts early costs about a replay of the trace), and after each
              // event asked for.
              const born = m.facts.find(([i]) => i === p.bornEvent)![1];
              const last = once(`last ${p.bornEvent} ${m.event}`, () =>
                lastUse(stored, p.bornEvent, born.id, m.event),
              );
              const when = new Set([...(first ? [last] : []), ...(opts.freeAt ?? [])]);
              // Only a block the program holds can be freed.
              if (p.kind === 'live')
                for (const after of when) {
                  // At the moment itself, it is the pin freed there (analyseMoment).
                  if (after < p.bornEvent || after >= m.event) continue;
                  // The thread that allocated it frees it, unless it has exited by then.
                  const gone = once(`exits ${born.tid} ${p.bornEvent} ${after}`, () =>
                    threadExits(stored, born.tid, p.bornEvent, after),
                  );
                  const tid = gone ? storedEvent(stored, after).tid : born.tid;
                  const key = `free ${p.bornEvent} ${after} ${m.event}`;
                  const edits: Edits = {
                    free: {
                      after,
                      born: p.bornEvent,
                      tid,
                      key: born.key,
                      id: born.id,
                      token: born.token,
                    },
                  };
                  frees.set(key, {
                    event: m.event,
                    pin: p,
                    edits,
                    lastUse: after === last && first,
                  });
                  want(key, opts.settings, edits, m.event);
                }
              const move = once(`move ${p.bornEvent}`, () => earliestMove(stored, p.bornEvent));
              if (move === null) continue;
              const key = `move ${p.bornEvent} ${move.to} ${m.event}`;
              const edits: Edits = { move };
              moves.set(key, { event: m.event, pin: p, edits });
              want(key, opts.settings, edits, m.event);
            }
          // Two settings together, when two causes each have settings: the best of each of the two
          // families that save most (or address the most memory), once their settings are measured.
          const families = new Map<Family, { c: SettingCandidate; saved: number }>();
          let pending = false;
          for (const c of settingCandidates(m)) {
            if (c.after !== undefined) continue;
            if (!measured.has(c.setting)) pending = true;
            const saved = savedBy(m, c.setting);
            const cur = families.get(c.family);
            if (cur === undefined || saved > cur.saved) families.set(c.family, { c, saved });
          }
          for (const c of candidates.values()) {
            const cur = families.get(c.family);
            const saved = savedBy(m, c.setting);
            if (cur !== undefined && saved > cur.saved) families.set(c.family, { c, saved });
          }
          // Any setting of the top's family also stops the dynamic threshold: the thresholds'
          // setting adds nothing to it.
          if (families.has('top')) families.delete('thresholds');
          const ranked = [...families.entries()].sort(
            (x, y) => y[1].saved - x[1].saved || familyBytes(m, y[0]) - familyBytes(m, x[0]),
          );
          if (!pending && ranked.length >= 2) {
            const a = ranked[0]![1].c;
            const b = ranked[1]![1].c;
            want(
              `${a.setting} ${b.setting}`,
              combine(combine(opts.settings, a.settings), b.settings),
            );
          }
        }
      if (jobs.length === 0 && local.length === 0) break;
      total += jobs.length + local.length;
      opts.progress?.(done, total);
      // The results are kept in the order planned.
      order.push(...inOrder);
      const settle = (key: string, p: Promise<MomentAnalysis | Measured>): void => {
        const r = p.then((res) => {
          opts.progress?.(++done, total);
          return res;
        });
        // Its failure is met where it is awaited.
        r.catch(() => {});
        results.set(key, r);
      };
      // The replays that decide the next round's start first.
      const byDecision = (ks: number[]): number[] => [
        ...ks.filter((k) => decides(keys[k]!)),
        ...ks.filter((k) => !decides(keys[k]!)),
      ];
      // Settings that leave glibc in the same state share one replay (twins.ts): among the
      // settings' jobs, those that measure at the same moments.
      const start = stored !== null ? { ...ref, header: storedHeader(stored) } : null;
      const twinned =
        start !== null
          ? await pairTwins(
              jobs,
              () => start,
              (j) =>
                j.kind === 'measure' && j.edits === undefined && j.trace.store === stored
                  ? j.at.join()
                  : null,
            )
          : new Map<number, Twin>();
      for (const k of byDecision(keys.map((_, k) => k)))
        if (!twinned.has(k)) settle(keys[k]!, pool.run(jobs[k]!));
      for (const [k, how] of twinned) {
        const twin = jobs[k]!;
        settle(
          keys[k]!,
          results.get(keys[how.runner]!)!.then((res) => {
            const m = res as Measured;
            if (how.kind === 'trim' && m.otherTrimMattered?.[how.watch] !== false)
              return pool.run(twin);
            const { otherTrimMattered: _, ...same } = m;
            return same;
          }),
        );
      }
      for (const l of [
        ...local.filter((l) => decides(l.key)),
        ...local.filter((l) => !decides(l.key)),
      ]) {
        const p = here.then(() => l.run());
        here = p.catch(() => {});
        settle(l.key, p);
      }
      // The next round is planned from the moments and the settings' figures alone: the edited
      // replays (trims, pins freed or moved) go on meanwhile.
      const decisive = [...keys, ...local.map((l) => l.key)].filter(decides);
      const got = await Promise.all(decisive.map((key) => results.get(key)!));
      decisive.forEach((key, k) => keep(key, got[k]!));
    }
    for (const key of order) if (!decides(key)) keep(key, await results.get(key)!);
  } finally {
    await pool.close();
  }
  // In the order planned, whatever order they finished in.
  measured = new Map(
    order.filter((k) => !k.startsWith('moment ')).map((k) => [k, measured.get(k)!]),
  );

  const out: MomentExplanation[] = points.map((p) => {
    const m = analyses.get(p.event)!;
    const b = m.b;
    const facts = new Map<number, EventFacts>(m.facts);
    const causes = CAUSES.map((c) => ({ cause: c, text: CAUSE_TEXT[c], ...b.causes[c] })).sort(
      (x, y) => y.bytes - x.bytes,
    );
    const k = at.indexOf(p.event);
    const all: Remedy[] = [];
    /** Combinations that save no more than one of their settings alone. */
    const tried: Remedy[] = [];
    const tokenOf = (e: number): string => facts.get(e)?.token ?? '';
    const pins: PinReport[] = m.pins
      .map((pin) => {
        const rep: PinReport = {
          ...pin,
          line: facts.get(pin.bornEvent)?.line ?? 0,
          token: tokenOf(pin.bornEvent),
        };
        const fr = m.pinsFreed.find((x) => x.chunk === pin.chunk);
        if (fr !== undefined) {
          const saved = b.residentBytes - fr.figures.rss;
          rep.freed = {
            rss: fr.figures.rss,
            saved,
            went: fr.went,
            note: pinNote(fr, saved),
          };
          const name = pinName(pin, rep.token);
          all.push(
            remedyOf(
              {
                id: 'free_pin',
                setting: `free(${name}) at this moment`,
                why: `the program frees ${name}, the block that pins ${pin.arena === 0 ? 'the main heap' : `arena ${pin.arena} heap ${pin.heap}`}, right after this event`,
                addresses: 'pin',
                call: `${fr.tid} free ${rep.token}`,
                note: rep.freed.note,
                ...(siteOf(pin.bornEvent) !== undefined ? { site: siteOf(pin.bornEvent)! } : {}),
              },
              m,
              fr.failure === undefined ? fr.figures : null,
              fr.failure,
            ),
          );
        }
        return rep;
      })
      .sort((x, y) => y.heldBytes - x.heldBytes);
    if (m.trimNow !== null)
      all.push(
        remedyOf(
          {
            id: 'trim_now',
            setting: 'malloc_trim(0) at this moment',
            // mtrim: the fastbins are merged first, in the releases that have them.
            why: `${r.process.profile.fastbins ? 'consolidates and returns' : 'returns'} every whole free page inside the heaps, and the top of the main heap`,
            addresses: 'free memory inside the heaps',
            calls: 1,
            call: `${m.tid} malloc_trim 0`,
          },
          m,
          m.trimNow,
        ),
      );
    for (const [key, res] of measured) {
      const f = res.figures[k] ?? null;
      if (key === 'trim_every') {
        all.push(
          remedyOf(
            {
              id: 'trim_every',
              setting: `malloc_trim(0) every ${num(trimEvery)} events`,
              why: `the program calls malloc_trim(0) after every ${num(trimEvery)} calls, from the thread that made the last one`,
              addresses: 'free memory inside the heaps',
              calls: Math.floor((p.event + 1) / trimEvery),
              edits: { trimEvery },
            },
            m,
            f,
            res.failure,
          ),
        );
        continue;
      }
      const early = frees.get(key);
      if (early !== undefined) {
        if (early.event !== p.event) continue;
        const pin = early.pin;
        const token = tokenOf(pin.bornEvent);
        const name = pinName(pin, token);
        const after = early.edits.free!.after;
        const f = res.figures[0] ?? null;
        const saved = f === null ? 0 : m.b.residentBytes - f.rss;
        const site = siteOf(pin.bornEvent);
        all.push(
          remedyOf(
            {
              id: 'free_pin_early',
              setting: early.lastUse
                ? `free(${name}) right after its last use (event ${after})`
                : `free(${name}) after event ${after}`,
              why: early.lastUse
                ? `the program frees ${name} right after event ${after}, the last that names it (${after === pin.bornEvent ? 'its allocation' : 'a record of the pages it touched'}; a trace does not see reads and writes), instead of keeping it`
                : `the program frees ${name} right after event ${after} instead of keeping it`,
              addresses: 'pin',
              edits: early.edits,
              call: `${early.edits.free!.tid} free ${token}`,
              note: earlyNote(res.went, saved),
              ...(site !== undefined ? { site } : {}),
            },
            m,
            f,
            res.failure,
          ),
        );
        continue;
      }
      const move = moves.get(key);
      if (move !== undefined) {
        if (move.event !== p.event) continue;
        const pin = move.pin;
        const name = pinName(pin, tokenOf(pin.bornEvent));
        const to = move.edits.move!.to;
        all.push(
          remedyOf(
            {
              id: 'move_pin',
              setting: `${name} allocated earlier (event ${pin.bornEvent} moved before event ${to})`,
              why: `the program allocates ${name} before the churn, as early as its thread and its name allow, so that the blocks freed around it are not below it`,
              addresses: 'pin',
              edits: move.edits,
              ...(siteOf(pin.bornEvent) !== undefined ? { site: siteOf(pin.bornEvent)! } : {}),
            },
            m,
            res.figures[0] ?? null,
            res.failure,
          ),
        );
        continue;
      }
      const single = candidates.get(key);
      const parts = single !== undefined ? [single] : key.split(' ').map((s) => candidates.get(s)!);
      const rem = remedyOf(
        {
          id: single !== undefined ? 'setting' : 'settings',
          setting: key,
          why: parts.map((c) => c.why).join('; and '),
          addresses: [...new Set(parts.map((c) => c.family))].join(' and '),
          settings: parts.reduce<ReplaySettings>((s, c) => combine(s, c.settings), {}),
        },
        m,
        f,
        res.failure,
      );
      if (single === undefined && f !== null) {
        // Offered only when it saves more than each of its settings alone.
        const alone = parts.map((c) => measured.get(c.setting)?.figures[k]?.rss ?? Infinity);
        if (alone.some((rss) => rss <= f.rss)) {
          tried.push(rem);
          continue;
        }
      }
      all.push(rem);
    }
    const helps = all
      .filter((x) => x.failure === undefined && x.saved > 0)
      .sort(
        (x, y) =>
          y.saved - x.saved ||
          x.extraSyscalls + x.extraPageFaults - (y.extraSyscalls + y.extraPageFaults) ||
          x.setting.localeCompare(y.setting),
      );
    tried.unshift(...all.filter((x) => !helps.includes(x)));
    const fragmentation: FragmentationReport[] = b.fragmentation.map((f) => ({
      ...f,
      examples: f.examples.map((x) => ({
        ...x,
        line: facts.get(x.bornEvent)?.line ?? 0,
        token: tokenOf(x.bornEvent),
      })),
    }));
    const x: MomentExplanation = {
      moment: p.kind,
      event: m.event,
      line: m.line,
      residentBytes: b.residentBytes,
      residentPages: b.residentPages,
      mappedBytes: b.mappedBytes,
      causes,
      arenas: b.arenas,
      fragmentation,
      pins,
      thresholds: m.thresholds,
      thresholdState: {
        mmapThreshold: m.mmapThreshold,
        trimThreshold: m.trimThreshold,
        dynamic: m.dynamicThresholds,
      },
      remedies: helps,
      tried,
    };
    withMeasured(x, r);
    return x;
  });

  if (table.hasSites) symbolizeTable(table);
  if (table.hasSites)
    await explainSites(
      out,
      table,
      { ...DEFAULT_SITE_VIEW, ...opts.sites },
      { event, process: r.process },
      (e) => processAt(path, e, { ...opts, store: stored }),
    );

  const notes: string[] = [];
  // Another release than the default: which, and whether its profile is proven.
  const profile = r.process.profile;
  if (isUnverified(profile)) notes.push(unverifiedNote(profile));
  else if (profile !== DEFAULT_PROFILE)
    notes.push(`replayed on a model of glibc ${profile.version}'s malloc`);
  // A trace without touch records that has blocks of 1 MiB or more: its RSS is an upper bound.
  const touchNote = r.touchNote();
  if (touchNote !== null) notes.push(touchNote);
  const from = run.header?.facts.get('from');
  if (from !== undefined && THREADLESS[from] !== undefined)
    notes.push(
      `${THREADLESS[from]}: every call is replayed on one thread, in one arena, so what the program's threads and arenas did (and M_ARENA_MAX) cannot be shown`,
    );
  // (A copy not kept because the reading stopped early, at glibc's abort, matters to no remedy.)
  if (whatIfs && !store.ok && events > 0 && again)
    notes.push(
      'the trace has too many events to keep in memory: periodic malloc_trim and allocations moved earlier were not tried',
    );
  const ex: Explanation = {
    trace: opts.displayName ?? path,
    events,
    cores: r.process.ncores,
    arenas: r.process.arenas.length,
    moments: out,
    notes,
  };
  if (summary.abort !== undefined) ex.abort = summary.abort;
  return ex;
}
