/**
 * The replay loop: feeds a trace's events to the simulated allocator, maps the trace's block tokens
 * to the model's chunks, applies the touch model (what the program writes: see TouchMode), and
 * records what each call returned (the fidelity log) and the process's resident memory after every
 * event. It also keeps the trace's `#:rss` samples beside its own figures (measured.ts).
 *
 * An event is complete once the records that follow it in the trace (`#:touch`, `#:rss`) are
 * applied: its RSS, the peak, the onEvent and observe callbacks all come then, so that a block
 * touched and freed between two samples still counts (TraceEvent.recordsFollow).
 *
 * Three kinds of trouble end a replay, each reported with the event and trace line:
 *  - a mistake in the trace (a `free` of a token that is not live, a token reused while live):
 *    a ReplayError;
 *  - an abort glibc itself would raise (a double free it detects): recorded in the summary as
 *    `abort`, with glibc's exact message;
 *  - a state ptsim cannot model faithfully (a double free glibc would not detect, after which its
 *    lists are corrupt, or one whose outcome depends on heap memory ptsim does not keep): a
 *    ReplayError that says so.
 */

import {
  blockLocation,
  type BlockLocation,
  libcCalloc,
  libcFree,
  libcMalloc,
  libcMemalign,
  libcPvalloc,
  libcRealloc,
  libcValloc,
  mallocTrim,
  mallocUsableSize,
  mallopt,
  ptmallocInit,
  threadStart,
} from '../core/api.js';
import { NIL } from '../core/chunks.js';
import { GlibcAbort, type GlibcAbortMessage } from '../core/errors.js';
import { freeAgainVerdict, reallocAgainVerdict } from '../core/free-checks.js';
import { mallinfo2, mallocInfo, mallocStats, type Mallinfo2 } from '../core/stats.js';
import { Process, type ThreadState } from '../core/state.js';
import { arenaThreadFreeres } from '../core/arena.js';
import { checkProcess } from '../core/check.js';
import { DEFAULT_PROFILE, isUnverified, type GlibcProfile } from '../core/profile.js';
import { Kernel, PAGE_SIZE, type KernelOptions, type SyscallCounts } from '../kernel/kernel.js';
import {
  STORE_CHUNK,
  STORE_CHUNK_BITS,
  storedReadEvent,
  type StoredPlace,
  type StoredTrace,
} from '../trace/event-store.js';
import { BATCH_FOLLOWED, type BatchPlace, type EventBatch } from '../trace/batch.js';
import { keyedTokenText, NO_KEY, tokenKey } from '../trace/token-key.js';
import { TokenNumbers } from '../trace/token-numbers.js';
import { NONE, TokenTable } from '../trace/token-table.js';
import {
  OP_NAMES,
  Op,
  TOUCH_MIN_BYTES,
  TOUCH_PAGE,
  maxTouchPage,
  touchNotLive,
  touchPastEnd,
  type RssSample,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from '../trace/types.js';
import { MeasuredSamples, type MeasuredSample } from './measured.js';
import { LiveTokens } from './tokens.js';

/** A problem with the trace, or a state the model cannot follow, tied to an event. */
export class ReplayError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly event: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'ReplayError';
  }
}

/** RSS over time (Replayer.rssOverTime). */
export interface RssOverTime {
  /** The sum, over the events, of the RSS after each times the time to the next event. */
  area: number;
  /** The first and last events' times (their indexes in a trace without times); -1 before the first. */
  first: number;
  last: number;
  /** The RSS after the last event. */
  lastRss: number;
}

/** One line of the fidelity log. */
export interface EventRecord {
  i: number;
  op: string;
  tid: number;
  /** Present for calls that return a block: 0 main arena, k the k-th other arena, -1 mmapped. */
  arena?: number;
  heap?: number;
  off?: number;
  usable?: number;
  /** Present (null) for calls that return a block but returned NULL. */
  ptr?: null;
  brk: number;
}

/**
 * What the program writes into the blocks it gets (docs/trace-format.md, "Extensions"):
 * - `recorded`: blocks of TOUCH_MIN_BYTES or more requested bytes only the pages of their
 *   `#:touch` records, where the records stand; smaller blocks every requested byte;
 * - `full`: every requested byte right after the call (an upper bound without touch records);
 * - `none`: nothing (only glibc's own writes make pages resident: the lower bound).
 * glibc's own writes (headers, links, realloc's copy, calloc's clearing) are the same in all three.
 */
export type TouchMode = 'recorded' | 'full' | 'none';

export const TOUCH_MODES: readonly TouchMode[] = ['recorded', 'full', 'none'];

/** Requests of this size or more make a trace without touch records worth a note (touchNote). */
const NOTE_BYTES = 1 << 20;

export interface ReplayOptions {
  /** The environment glibc would read at start-up (GLIBC_TUNABLES, MALLOC_*_). */
  env?: Array<[string, string]>;
  /** mallopt(param, value) calls made before the first event, by glibc's parameter number. */
  mallopts?: Array<[number, number]>;
  kernel?: KernelOptions;
  /**
   * What the program writes (TouchMode); by default `recorded` when the trace's header says
   * `# touches recorded`, else `full`.
   */
  touch?: TouchMode;
  /** Receives the fidelity log, one record per event, once the event is complete. */
  onEvent?: (rec: EventRecord) => void;
  /** Called once each event is complete (after the records that follow it), with the state then. */
  observe?: (ev: TraceEvent, r: Replayer) => void;
  /** Receives non-fatal remarks about the trace (file:line: text). */
  onWarning?: (msg: string) => void;
  /**
   * CPUs glibc counts for its arena limit (at most 8 x cores arenas by default). The CLI passes
   * the trace's `# nprocs` or the replaying machine's CPU count; 2 when nobody says.
   */
  cores?: number;
  /** 0: no checks; 1: cheap checks after every event; 2: a full heap walk after every event. */
  checkLevel?: 0 | 1 | 2;
  /** The glibc release to model (core/profile.ts); 2.36 by default. */
  profile?: GlibcProfile;
  /** Other trim thresholds to watch, from the start (Process.otherTrimThresholds). */
  otherTrimThresholds?: readonly number[];
  /**
   * The events `observe` is called for, by index, in increasing order; every event when absent. A
   * replay that looks at a few events (or only stops at one) replays those in between without
   * event objects (runStored, runBatch).
   */
  observeAt?: readonly number[];
  /** Keep the integral of RSS over the events' times (rssOverTime), with no observer needed. */
  rssOverTime?: boolean;
}

/** Bytes of a string in UTF-8, as strlen counts them in the process's environment. */
function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  return n;
}

/**
 * What the dynamic loader takes with sbrk before main: up to glibc 2.34 it copies the first
 * GLIBC_TUNABLES entry of the environment, NUL included (tunables_strdup, elf/dl-tunables.c).
 */
function loaderSbrk(profile: GlibcProfile, env: ReadonlyArray<readonly [string, string]>): number {
  if (!profile.loaderCopiesTunables) return 0;
  const entry = env.find(([name]) => name === 'GLIBC_TUNABLES');
  return entry === undefined ? 0 : utf8Length(`GLIBC_TUNABLES=${entry[1]}`) + 1;
}

export interface ReplaySummary {
  events: number;
  mallinfo2: Mallinfo2;
  rss: number;
  peakRss: number;
  brk: number;
  /** Index of the event after which RSS was at its peak. */
  peakEvent: number;
  /** Bytes of the main arena's heap (system_mem). */
  heap: number;
  /** Bytes of chunks mmapped on their own. */
  mmapped: number;
  syscalls: SyscallCounts;
  pageFaults: number;
  /** Live blocks at the end. */
  liveBlocks: number;
  /** Bytes the program asked for and still holds. */
  liveBytes: number;
  warnings: number;
  /** The touch model of the replay. */
  touch: TouchMode;
  /** The glibc release modelled (core/profile.ts). */
  glibc: string;
  /** Set when that release's profile is not yet proven against a real build. */
  glibcUnverified?: true;
  /**
   * The trace's `#:rss` samples, when it has any: how many, the last and the one of highest anon
   * (of highest total when none has anon).
   */
  measured?: { samples: number; last: MeasuredSample; peak: MeasuredSample };
  /** Set when glibc would have aborted. */
  abort?: { message: GlibcAbortMessage; event: number; line: number };
}

/** How many freed tokens are remembered to tell a double free from a never-seen token (a power of 2). */
const FREED_MEMORY = 65536;

/**
 * The last FREED_MEMORY frees of a replay (a ring): token (key, and text for a token without one;
 * the text in a keyed token's slot is stale), user address and line, searched only when a free
 * names a token that is not live, to tell a double free from a token never seen. Only the message
 * of a replay's stop depends on it (a checkpoint may leave it out: stepper.ts).
 */
export class RecentFrees {
  readonly key = new Float64Array(FREED_MEMORY);
  readonly text: string[] = new Array<string>(FREED_MEMORY).fill('');
  readonly mem = new Float64Array(FREED_MEMORY);
  readonly line = new Float64Array(FREED_MEMORY);
  next = 0;
}

/** Event i of a stored trace, read back whole and numbered `shift` more (Replayer.runStored). */
function readBack(t: StoredTrace, i: number, shift: number): TraceEvent {
  const ev = storedReadEvent(t, i);
  ev.index += shift;
  return ev;
}

/** Past the last line run of a stored trace (Replayer.runStored). */
const NO_MORE_RUNS = Number.POSITIVE_INFINITY;

/** What run() returns for a call that returns no block (free, mallopt, ...). */
const NO_BLOCK = -2;

/** The key of the token an event takes: the reader's, or made from the text for other producers. */
function inKey(ev: TraceEvent): number {
  const key = ev.inKey;
  return key !== undefined ? key : tokenKey(ev.in);
}

/** The key of the token an event returns. */
function outKey(ev: TraceEvent): number {
  const key = ev.outKey;
  return key !== undefined ? key : tokenKey(ev.out);
}

/** A token's text, for messages: made from its key, or the text itself for a token without one. */
function tokenName(key: number, text: string): string {
  return key > 0 ? keyedTokenText(key) : text;
}

export class Replayer implements TraceSink {
  readonly process: Process;
  readonly kernel: Kernel;
  /** Live tokens: the block each names. */
  private readonly tokens = new LiveTokens();
  /** Numbers the tokens of events that come without numbers (not from the trace reader). */
  private readonly numbers = new TokenNumbers();
  /** Tokens whose call returned NULL in the model although the recording got a block. */
  private readonly deadTokens = new TokenTable(16);
  /** The last frees, to tell a double free from a token never seen (RecentFrees). */
  readonly recentFrees = new RecentFrees();
  private mainTid = -1;
  /** The process's main thread (the thread of the first event), whatever its number becomes later. */
  private mainThread: ThreadState | null = null;
  private readonly exited = new Set<number>();
  /** The thread of the previous event, while it has not exited. */
  private lastTid = -1;
  private lastThread: ThreadState | null = null;
  private events = 0;
  private peakRss = 0;
  private peakEvent = -1;
  private warnings = 0;
  private abort: ReplaySummary['abort'];
  private headerSeen = false;
  private readonly loc: BlockLocation = { arena: 0, heap: 0, off: 0 };
  /**
   * The block the event being completed returned (NIL for none, or NULL): for observers without
   * the fidelity log.
   */
  lastBlock = NIL;
  /** The touch model, and whether the trace says it has touch records. */
  private touchMode: TouchMode = 'full';
  private touchesRecorded = false;
  /**
   * The program writes a new block whole when its request is below this: Infinity (`full`),
   * TOUCH_MIN_BYTES (`recorded`) or 0 (`none`).
   */
  private writeBelow = Number.POSITIVE_INFINITY;
  /**
   * The line of the trace's `# touches incomplete from here`, -1 before it: from there the
   * `recorded` model writes blocks whole, as `full` does (touchesIncomplete).
   */
  private incompleteLine = -1;
  /** The largest request of the trace so far. */
  private largestRequest = 0;
  /** The trace's `#:rss` samples. */
  readonly measured = new MeasuredSamples();
  /** See eventSample. */
  private completedSample = -1;
  /** Samples given their modelled figure so far. */
  private settledSamples = 0;
  /** The index of the last event run (-1 before the first). */
  private lastIndex = -1;
  /** The event run and not yet complete (records follow it), and the block it returned. */
  private pending: TraceEvent | null = null;
  private pendingBlock = NO_BLOCK;
  /** ReplayOptions.checkLevel. */
  private readonly checkLevel: 0 | 1 | 2;
  /** ReplayOptions.observeAt (null: every event), and the first of them not passed yet. */
  private observeAt: readonly number[] | null;
  private observeNext = 0;
  /** ReplayOptions.rssOverTime, and the integral (rssOverTime). */
  private readonly integrate: boolean;
  private readonly overTime: RssOverTime = { area: 0, first: -1, last: -1, lastRss: 0 };

  constructor(
    readonly file: string,
    private readonly opts: ReplayOptions = {},
  ) {
    const profile = opts.profile ?? DEFAULT_PROFILE;
    this.kernel = new Kernel({ ...opts.kernel, loaderSbrk: loaderSbrk(profile, opts.env ?? []) });
    this.process = new Process(this.kernel, profile);
    this.process.env = opts.env ?? [];
    this.process.ncores = opts.cores ?? 2;
    this.checkLevel = opts.checkLevel ?? 0;
    this.observeAt = opts.observeAt ?? null;
    this.integrate = opts.rssOverTime === true;
  }

  /** Trace header facts are applied by the caller (which merges them with its own options). */
  header(h: TraceHeader): void {
    this.headerSeen = true;
    this.touchesRecorded = h.touchesRecorded === true;
    const mode = this.opts.touch ?? (this.touchesRecorded ? 'recorded' : 'full');
    this.touchMode = mode;
    this.writeBelow =
      mode === 'full' ? Number.POSITIVE_INFINITY : mode === 'recorded' ? TOUCH_MIN_BYTES : 0;
    if (h.touchesIncomplete !== undefined)
      this.touchesIncomplete(h.touchesIncomplete.line, h.touchesIncomplete.detail);
    const mallopts = this.opts.mallopts ?? [];
    if (mallopts.length > 0) {
      for (const [param, value] of mallopts) mallopt(this.process, param, value);
    }
    const others = this.opts.otherTrimThresholds ?? [];
    this.process.otherTrimThresholds = [...others];
    this.process.trimThresholdsMattered = others.map(() => -1);
  }

  /**
   * For an observer: the last `#:rss` sample among the records after the event being completed
   * (an index into measured), or -1 when none follows it.
   */
  get eventSample(): number {
    return this.completedSample;
  }

  /**
   * Replaces the observer (ReplayOptions.observe) and the events it is called for (observeAt,
   * every event when absent): a copy of a replay resumed on its own (a checkpoint of explain's
   * what-ifs) must not call the original's, and looks at events of its own.
   */
  observeWith(observe: ReplayOptions['observe'], at?: readonly number[]): void {
    this.opts.observe = observe;
    this.observeAt = at ?? null;
    this.observeNext = 0;
  }

  /**
   * Replays events of a stored trace as event() would, from event `at.i` up to event `stop - 1`,
   * as long as they are of the common kinds: malloc, calloc, memalign, free and realloc of tokens
   * that have keys and numbers, in a replay that nothing watches event by event (no fidelity log,
   * observer or checks). Moves `at` past the events replayed (`at.realloc` counts the reallocs);
   * the caller hands the event it stops at to event() as usual. The events replayed here take no
   * text from the store, and none has records after it (the caller stops before such an event).
   *
   * In an edited delivery (deliverStored's Edits) the events are numbered `shift` more than their
   * index in the store: the caller stops the run at every edit.
   *
   * This is the loop of the replay of a stored trace (deliverStored): the same calls without an
   * event object filled and handed through the sink for each, which cost a third of the loop.
   * Whatever is unusual about an event (a token not live, one bound already, a thread that
   * starts or has exited, realloc(p, 0)) sends it to event(), before its call; a call that
   * returns NULL is finished by event()'s own code, on the event read from the store.
   */
  runStored(t: StoredTrace, at: StoredPlace, stop: number, shift = 0): void {
    const upTo = this.runsUpTo(at.i + shift);
    if (upTo <= at.i + shift) return;
    stop = Math.min(stop, upTo - shift);
    const s = this.process;
    s.thread = this.lastThread!;
    const tokens = this.tokens;
    let i = at.i;
    // The lines of events, for the ring of recent frees: i + delta up to event nextRun.
    // nextRun starts as a double, not a small integer: the comparison's compiled code is then for
    // numbers from the first, and does not go back to the interpreter when nextRun becomes
    // NO_MORE_RUNS (a run without records is long: this code is compiled while it runs).
    let delta = 0;
    let nextRun = -0.5;
    try {
      for (;;) {
        if (i >= stop) return;
        if (i >= nextRun) {
          delta = this.storedLine(t, i) - i;
          const r = this.lineRun + 1;
          nextRun = r < t.lineRuns ? t.lineFrom[r]! : NO_MORE_RUNS;
        }
        const c = t.chunks[i >>> STORE_CHUNK_BITS]!;
        const j = i & (STORE_CHUNK - 1);
        const key = c.nums[3 * j + 2]!;
        if (key === NO_KEY) return;
        const tid = c.ints[2 * j]!;
        if (tid !== this.lastTid) {
          // A thread seen before and not exited; a new one's start is event()'s.
          const th = s.threads.get(tid);
          if (th === undefined || this.exited.has(tid)) return;
          this.selectThread(tid);
        }
        const id = c.ints[2 * j + 1]!;
        const op = c.op[j]!;
        let p = NO_BLOCK;
        if (op === Op.free) {
          s.eventIndex = i + shift;
          this.lastIndex = i + shift;
          if (key !== 0) {
            const h = tokens.take(id);
            if (h === NIL) return;
            this.rememberFree(key, '', s.ck.addr[h]! + 16, i + delta);
            libcFree(s, h);
          }
        } else if (op === Op.malloc || op === Op.calloc || op === Op.memalign) {
          if (key === 0 || !tokens.unbound(id)) return;
          s.eventIndex = i + shift;
          this.lastIndex = i + shift;
          const n1 = c.nums[3 * j]!;
          const n2 = c.nums[3 * j + 1]!;
          let touch = n1;
          if (op === Op.malloc) p = libcMalloc(s, n1);
          else if (op === Op.calloc) {
            p = libcCalloc(s, n1, n2);
            touch = n1 * n2;
          } else {
            p = libcMemalign(s, n1, n2);
            touch = n2;
          }
          if (p === NIL) this.bind(readBack(t, i, shift), p);
          else {
            tokens.bindNumber(id, p);
            if (touch > this.largestRequest) this.largestRequest = touch;
            if (touch < this.writeBelow) this.kernel.touchRange(s.ck.addr[p]! + 16, touch);
          }
        } else if (op === Op.realloc) {
          const r = at.realloc;
          const oldKey = t.reallocKey[r]!;
          const oldId = t.reallocId[r]!;
          const n1 = c.nums[3 * j]!;
          // realloc(p, 0), a recorded failure, a token without a key: event()'s.
          if (n1 === 0 || key === 0 || oldKey === NO_KEY) return;
          const old = oldKey === 0 ? NIL : tokens.find(oldId, oldKey, '');
          if ((oldKey !== 0 && old === NIL) || !(id === oldId || tokens.unbound(id))) return;
          s.eventIndex = i + shift;
          this.lastIndex = i + shift;
          at.realloc = r + 1;
          const ck = s.ck;
          const oldReq = old === NIL ? 0 : ck.req[old]!;
          const oldMem = old === NIL ? 0 : ck.addr[old]! + 16;
          p = libcRealloc(s, old, n1);
          if (p === NIL)
            p = this.reallocDone(readBack(t, i, shift), old, oldReq, oldMem, oldId, oldKey, '', p);
          else {
            if (old !== NIL) {
              tokens.take(oldId);
              this.rememberFree(oldKey, '', oldMem, i + delta);
            }
            tokens.bindNumber(id, p);
            if (n1 > this.largestRequest) this.largestRequest = n1;
            if (n1 < this.writeBelow) this.writeGrown(p, n1, oldReq);
          }
        } else return;
        this.events++;
        this.settle(i + shift, p, c.time === null ? -1 : c.time[j]!);
        at.i = ++i;
      }
    } catch (e) {
      // Event i's call threw: glibc's abort is recorded as event() records it.
      if (!(e instanceof GlibcAbort)) throw e;
      this.abort = { message: e.glibcMessage, event: i + shift, line: this.storedLine(t, i) };
      if (this.integrate) {
        const c = t.chunks[i >>> STORE_CHUNK_BITS]!;
        this.accumulate(i + shift, c.time === null ? -1 : c.time[i & (STORE_CHUNK - 1)]!);
      }
      at.i = i + 1;
    }
  }

  /**
   * Where a run without event objects (runStored, runBatch) that starts at event i must stop at
   * the latest: before the next event observed (ReplayOptions.observeAt; Infinity when nothing
   * observes). i itself, so no run at all, when anything watches every event (the fidelity log,
   * checks), an event waits for the records after it, glibc has aborted, no event has set the
   * thread yet, or a token is bound without its number.
   */
  private runsUpTo(i: number): number {
    const o = this.opts;
    if (
      o.onEvent !== undefined ||
      this.checkLevel !== 0 ||
      this.pending !== null ||
      this.abort !== undefined ||
      this.lastThread === null ||
      !this.tokens.allNumbered
    )
      return i;
    return o.observe !== undefined ? this.nextObserved(i) : Number.POSITIVE_INFINITY;
  }

  /**
   * runStored for a batch of events (batch.ts: the parse worker's): replays
   * the batch's events from entry `at.entry` (event `at.index`) on, as long as they are events
   * without records after them, of the kinds runStored replays, and moves `at` past them; the
   * caller delivers the entry it stops at as usual.
   *
   * The loop is runStored's, on the batch's columns. It is written twice rather than shared as a
   * function called for each event: that measured 10 to 20 % slower on the stored traces (the
   * compiler then inlines less of the allocator's entry points into the loop).
   */
  runBatch(b: EventBatch, at: BatchPlace): void {
    const upTo = this.runsUpTo(at.index);
    if (upTo <= at.index) return;
    const s = this.process;
    s.thread = this.lastThread!;
    const tokens = this.tokens;
    const codes = b.op;
    const nums = b.nums;
    const ints = b.ints;
    const count = b.count;
    let k = at.entry;
    let i = at.index;
    try {
      for (;;) {
        if (k >= count || i >= upTo) return;
        const op = codes[k]!;
        // Records, and events with records after them: the caller's.
        if (op >= BATCH_FOLLOWED) return;
        const inKey = nums[6 * k + 4]!;
        const outKey = nums[6 * k + 5]!;
        if (inKey === NO_KEY || outKey === NO_KEY) return;
        const tid = ints[5 * k]!;
        if (tid !== this.lastTid) {
          const th = s.threads.get(tid);
          if (th === undefined || this.exited.has(tid)) return;
          this.selectThread(tid);
        }
        let p = NO_BLOCK;
        if (op === Op.free) {
          s.eventIndex = i;
          this.lastIndex = i;
          if (inKey !== 0) {
            const h = tokens.take(ints[5 * k + 2]!);
            if (h === NIL) return;
            this.rememberFree(inKey, '', s.ck.addr[h]! + 16, nums[6 * k + 3]!);
            libcFree(s, h);
          }
        } else if (op === Op.malloc || op === Op.calloc || op === Op.memalign) {
          const id = ints[5 * k + 3]!;
          if (outKey === 0 || !tokens.unbound(id)) return;
          s.eventIndex = i;
          this.lastIndex = i;
          const n1 = nums[6 * k]!;
          const n2 = nums[6 * k + 1]!;
          let touch = n1;
          if (op === Op.malloc) p = libcMalloc(s, n1);
          else if (op === Op.calloc) {
            p = libcCalloc(s, n1, n2);
            touch = n1 * n2;
          } else {
            p = libcMemalign(s, n1, n2);
            touch = n2;
          }
          if (p === NIL) this.bind(b.eventAt(k, i), p);
          else {
            tokens.bindNumber(id, p);
            if (touch > this.largestRequest) this.largestRequest = touch;
            if (touch < this.writeBelow) this.kernel.touchRange(s.ck.addr[p]! + 16, touch);
          }
        } else if (op === Op.realloc) {
          const n1 = nums[6 * k]!;
          const oldId = ints[5 * k + 2]!;
          const id = ints[5 * k + 3]!;
          if (n1 === 0 || outKey === 0) return;
          const old = inKey === 0 ? NIL : tokens.find(oldId, inKey, '');
          if ((inKey !== 0 && old === NIL) || !(id === oldId || tokens.unbound(id))) return;
          s.eventIndex = i;
          this.lastIndex = i;
          const ck = s.ck;
          const oldReq = old === NIL ? 0 : ck.req[old]!;
          const oldMem = old === NIL ? 0 : ck.addr[old]! + 16;
          p = libcRealloc(s, old, n1);
          if (p === NIL)
            p = this.reallocDone(b.eventAt(k, i), old, oldReq, oldMem, oldId, inKey, '', p);
          else {
            if (old !== NIL) {
              tokens.take(oldId);
              this.rememberFree(inKey, '', oldMem, nums[6 * k + 3]!);
            }
            tokens.bindNumber(id, p);
            if (n1 > this.largestRequest) this.largestRequest = n1;
            if (n1 < this.writeBelow) this.writeGrown(p, n1, oldReq);
          }
        } else return;
        this.events++;
        this.settle(i, p, nums[6 * k + 2]!);
        at.entry = ++k;
        at.index = ++i;
      }
    } catch (e) {
      if (!(e instanceof GlibcAbort)) throw e;
      this.abort = { message: e.glibcMessage, event: i, line: nums[6 * k + 3]! };
      if (this.integrate) this.accumulate(i, nums[6 * k + 2]!);
      at.entry = k + 1;
      at.index = i + 1;
    }
  }

  get aborted(): boolean {
    return this.abort !== undefined;
  }

  event(ev: TraceEvent): void {
    if (!this.headerSeen) this.header({ env: [], facts: new Map() });
    if (this.pending !== null) this.recordsEnd();
    this.lastBlock = NIL;
    if (this.abort !== undefined) return;
    const s = this.process;
    s.eventIndex = ev.index;
    this.lastIndex = ev.index;
    if (ev.tid === this.lastTid) s.thread = this.lastThread!;
    else this.selectThread(ev.tid);
    let p: number;
    try {
      p = this.run(ev);
    } catch (e) {
      this.stopAt(ev, e);
      return;
    }
    this.events++;
    if (this.checkLevel !== 0) checkProcess(s, this.checkLevel);
    if (ev.recordsFollow === true) {
      this.pending = ev;
      this.pendingBlock = p;
      return;
    }
    this.complete(ev, p);
  }

  /** An event's call threw: glibc's abort is recorded, anything else passed on. */
  private stopAt(ev: TraceEvent, e: unknown): void {
    if (!(e instanceof GlibcAbort)) throw e;
    this.abort = { message: e.glibcMessage, event: ev.index, line: ev.line };
    // The state glibc aborted in counts for RSS over time, as an observer sees it then.
    if (this.integrate) this.accumulate(ev.index, ev.time);
  }

  /** An event is complete: its RSS counts, its samples get their modelled figure, listeners hear of it. */
  private complete(ev: TraceEvent, p: number): void {
    this.settle(ev.index, p, ev.time);
    // The fidelity log's record is made only for a listener: a replay without one allocates
    // nothing per event.
    const onEvent = this.opts.onEvent;
    if (onEvent !== undefined) onEvent(this.record(ev, p));
    const observe = this.opts.observe;
    if (observe !== undefined && this.nextObserved(ev.index) === ev.index) observe(ev, this);
  }

  /** The first event from event i on that the observer is called for (ReplayOptions.observeAt). */
  private nextObserved(i: number): number {
    const at = this.observeAt;
    if (at === null) return i;
    let k = this.observeNext;
    while (k < at.length && at[k]! < i) k++;
    this.observeNext = k;
    return k < at.length ? at[k]! : Number.POSITIVE_INFINITY;
  }

  /** What completing event i (at `time`, -1 for none), which returned p, does before the listeners hear of it. */
  private settle(i: number, p: number, time: number): void {
    this.lastBlock = p >= 0 ? p : NIL;
    // Set here, not after the listeners: a copy of the replay taken by one (a checkpoint) must not
    // carry this event's sample on to its own next event.
    this.completedSample = -1;
    const rss = this.kernel.residentPages * PAGE_SIZE;
    if (rss > this.peakRss) {
      this.peakRss = rss;
      this.peakEvent = i;
    }
    if (this.measured.count > 0) this.settleSamples(rss);
    if (this.integrate) this.accumulate(i, time);
  }

  /** RSS over time, after event i (at `time`, -1 for none): each event weighs the time to the next. */
  private accumulate(i: number, time: number): void {
    const t = time >= 0 ? time : i;
    const o = this.overTime;
    if (o.last >= 0) o.area += o.lastRss * (t - o.last);
    else o.first = t;
    o.last = t;
    o.lastRss = this.kernel.residentPages * PAGE_SIZE;
  }

  /**
   * RSS over the events' times so far (ReplayOptions.rssOverTime): the integral of the RSS after
   * each event up to the next event's time, and the first and last times (-1 before the first).
   */
  get rssOverTime(): Readonly<RssOverTime> {
    return this.overTime;
  }

  /** The samples kept since the last event complete stand at this point. */
  private settleSamples(rss: number): void {
    const m = this.measured;
    if (this.settledSamples === m.count) return;
    m.settle(rss);
    this.completedSample = m.count - 1;
    this.settledSamples = m.count;
  }

  /**
   * The end of the records that follow an event (or of those before the first event): the event
   * is complete.
   */
  recordsEnd(): void {
    const ev = this.pending;
    if (ev === null) {
      // Records before the first event: their samples stand where nothing is resident yet.
      this.settleSamples(this.kernel.residentPages * PAGE_SIZE);
      this.completedSample = -1;
      return;
    }
    this.pending = null;
    this.complete(ev, this.pendingBlock);
  }

  /**
   * A `#:touch` record: in the `recorded` model, the program writes the pages it names, clipped to
   * the block's requested bytes (page 0 is the page that holds the block's first byte, where the
   * replay put the block). In every model the record must name a live block and pages the block
   * can reach.
   */
  touch(rec: TouchRecord): void {
    if (this.abort !== undefined) return;
    const key = rec.key ?? tokenKey(rec.token);
    const text = key === NO_KEY ? rec.token : '';
    const id = rec.id ?? this.numbers.lookup(key, text);
    const h = this.tokens.find(id, key, text);
    if (h === NIL) {
      // A block the model could not allocate: there is nothing to write.
      if (this.deadTokens.get(key, text) !== NONE) return;
      throw new ReplayError(
        this.file,
        rec.line,
        this.lastIndex,
        touchNotLive(tokenName(key, text)),
      );
    }
    const ck = this.process.ck;
    const req = ck.req[h]!;
    const most = maxTouchPage(req);
    if (rec.maxPage > most) {
      throw new ReplayError(
        this.file,
        rec.line,
        this.lastIndex,
        touchPastEnd(tokenName(key, text), rec.maxPage, req),
      );
    }
    if (this.touchMode !== 'recorded') return;
    const mem = ck.addr[h]! + 16;
    const end = mem + req;
    const page0 = mem - (mem % TOUCH_PAGE);
    const pages = rec.pages;
    for (let k = 0; k < rec.ranges; k++) {
      const from = Math.max(mem, page0 + pages[2 * k]! * TOUCH_PAGE);
      const to = Math.min(end, page0 + (pages[2 * k + 1]! + 1) * TOUCH_PAGE);
      if (from < to) this.kernel.touchRange(from, to - from);
    }
  }

  /**
   * `# touches incomplete from here`: the recorder could no longer read which pages the program
   * touched, so the records after this point may miss pages. In the `recorded` model the replay
   * says so once and takes the `full` model from here: every live block of TOUCH_MIN_BYTES or
   * more is written whole now (its records so far may lack the pages it gained since), and every
   * later block whole at its call. The records that still follow are checked and change nothing.
   * (The other models do not read the records.) Only the first such line counts.
   */
  touchesIncomplete(line: number, detail: string): void {
    if (this.abort !== undefined || this.incompleteLine >= 0) return;
    this.incompleteLine = line;
    if (this.touchMode !== 'recorded') return;
    this.warnings++;
    const why = detail === '' ? '' : ` (${detail})`;
    this.opts.onWarning?.(
      `${this.file}:${line}: the recording's touch records are incomplete from here${why}; from this point the replay takes blocks of ${TOUCH_MIN_BYTES} bytes or more as written whole, an upper bound (--touch full)`,
    );
    this.writeBelow = Number.POSITIVE_INFINITY;
    const ck = this.process.ck;
    this.tokens.forEachHandle((h) => {
      const req = ck.req[h]!;
      if (req >= TOUCH_MIN_BYTES) this.kernel.touchRange(ck.addr[h]! + 16, req);
    });
  }

  /** A `#:rss` sample: kept, with the replay's RSS at the same point once it is known. */
  rss(sample: RssSample): void {
    this.measured.add(this.lastIndex, sample);
  }

  /** The thread of an event that does not come from the thread of the event before. */
  private selectThread(tid: number): void {
    const s = this.process;
    if (this.mainTid < 0) this.mainTid = tid;
    let th = s.threads.get(tid);
    if (th === undefined || this.exited.has(tid)) {
      if (th !== undefined) this.exited.delete(tid);
      if (s.threads.size === 0 && tid === this.mainTid) {
        th = s.thread;
        th.tid = tid;
        this.mainThread = th;
      } else {
        // A new thread. The first one is created by the main thread (the thread of the first
        // event), which therefore has initialised malloc and owns the main arena by then.
        th = { tid: tid, tcache: null, tcacheShuttingDown: false, arena: null };
        threadStart(s, this.mainThread!);
      }
      s.threads.set(tid, th);
    }
    s.thread = th;
    this.lastTid = tid;
    this.lastThread = th;
  }

  /** Replays one call: returns the block it returned (NIL for NULL), or NO_BLOCK for calls that return none. */
  private run(ev: TraceEvent): number {
    const s = this.process;
    const ck = s.ck;
    let p = NIL;
    // The bytes the program asked for, which it writes if the touch model says so.
    let touch = 0;
    switch (ev.op) {
      case Op.malloc:
        p = libcMalloc(s, ev.n1);
        touch = ev.n1;
        break;
      case Op.calloc:
        p = libcCalloc(s, ev.n1, ev.n2);
        touch = ev.n1 * ev.n2;
        break;
      case Op.memalign:
        p = libcMemalign(s, ev.n1, ev.n2);
        touch = ev.n2;
        break;
      case Op.valloc:
        p = libcValloc(s, ev.n1);
        touch = ev.n1;
        break;
      case Op.pvalloc:
        p = libcPvalloc(s, ev.n1);
        touch = ev.n1;
        break;
      case Op.realloc:
        return this.realloc(ev);
      case Op.free: {
        const h = this.takeToken(ev, 'free');
        if (h !== NIL) libcFree(s, h);
        return NO_BLOCK;
      }
      case Op.mallocTrim:
        mallocTrim(s, ev.n1);
        return NO_BLOCK;
      case Op.mallopt:
        mallopt(s, ev.param, ev.n1);
        return NO_BLOCK;
      case Op.exit:
        this.threadExit(ev);
        return NO_BLOCK;
    }
    this.bind(ev, p);
    if (p === NIL) return p;
    if (touch > this.largestRequest) this.largestRequest = touch;
    if (touch < this.writeBelow) this.kernel.touchRange(ck.addr[p]! + 16, touch);
    return p;
  }

  private realloc(ev: TraceEvent): number {
    const s = this.process;
    const ck = s.ck;
    const key = inKey(ev);
    const text = key === NO_KEY ? ev.in : '';
    // OLD gives its number up, even if the model keeps it bound (see tokens.ts).
    const id = this.inNumber(ev, key, text);
    const old = key === 0 ? NIL : this.lookupLive(ev, id, key, text, 'realloc');
    const oldReq = old === NIL ? 0 : ck.req[old]!;
    // Taken before the call, which may merge the old chunk away.
    const oldMem = old === NIL ? 0 : ck.addr[old]! + 16;
    const p = libcRealloc(s, old, ev.n1);
    return this.reallocDone(ev, old, oldReq, oldMem, id, key, text, p);
  }

  /**
   * What follows realloc's call: the tokens (OLD's number given up, NEW's bound) and the bytes
   * the program writes. `old` is OLD's block (NIL for NULL), which held oldReq bytes at oldMem;
   * OLD is number `id`, key and text; p is what the call returned.
   */
  private reallocDone(
    ev: TraceEvent,
    old: number,
    oldReq: number,
    oldMem: number,
    id: number,
    key: number,
    text: string,
    p: number,
  ): number {
    if (old !== NIL && ev.n1 === 0) {
      // realloc(p, 0) frees p and returns NULL in glibc 2.36.
      this.forget(ev, id, key, text, oldMem);
      this.bind(ev, NIL);
    } else if (p === NIL && old !== NIL) {
      const name = tokenName(key, text);
      this.warn(ev, `realloc of ${name} to ${ev.n1} bytes returned NULL; ${name} stays live`);
      this.tokens.keep(id, key, text, old);
      this.outNumber(ev);
    } else {
      if (old !== NIL) this.forget(ev, id, key, text, oldMem);
      if (outKey(ev) === 0 && old !== NIL && p !== NIL && ev.n1 !== 0) {
        // The recorded realloc failed, so the program still uses OLD: it now names the new block.
        this.warn(
          ev,
          `the recording says this realloc failed; ${tokenName(key, text)} now names the block ptsim returned`,
        );
        this.tokens.keep(id, key, text, p);
      } else {
        this.bind(ev, p);
      }
      if (p !== NIL && ev.n1 > this.largestRequest) this.largestRequest = ev.n1;
      if (p !== NIL && ev.n1 < this.writeBelow) this.writeGrown(p, ev.n1, oldReq);
    }
    return p;
  }

  /**
   * The program writes the bytes of block p (n bytes) that the old block (oldReq bytes) did not
   * have; in the recorded model, where a big old block was not written whole, all of a (small)
   * new block.
   */
  private writeGrown(p: number, n: number, oldReq: number): void {
    const from =
      this.touchMode === 'recorded' && this.incompleteLine < 0 && oldReq >= TOUCH_MIN_BYTES
        ? 0
        : oldReq;
    if (n > from) this.kernel.touchRange(this.process.ck.addr[p]! + 16 + from, n - from);
  }

  /** The line run of a stored trace where runStored found the last line it looked for. */
  private lineRun = 0;

  /** The line of event i of a stored trace: found on from the last one (runStored goes forwards). */
  private storedLine(t: StoredTrace, i: number): number {
    let r = this.lineRun;
    if (r >= t.lineRuns || t.lineFrom[r]! > i) r = 0;
    while (r + 1 < t.lineRuns && t.lineFrom[r + 1]! <= i) r++;
    this.lineRun = r;
    return i + (t.lineRuns > 0 ? t.lineDelta[r]! : 0);
  }

  /** The fidelity log's record of an event, after the call (p as run() returned it). */
  private record(ev: TraceEvent, p: number): EventRecord {
    const op = OP_NAMES[ev.op]!;
    if (p === NO_BLOCK) return { i: ev.index, op, tid: ev.tid, brk: this.brk() };
    if (p === NIL) return { i: ev.index, op, tid: ev.tid, ptr: null, brk: this.brk() };
    const loc = this.loc;
    blockLocation(this.process, p, loc);
    return {
      i: ev.index,
      op,
      tid: ev.tid,
      arena: loc.arena,
      heap: loc.heap,
      off: loc.off,
      usable: mallocUsableSize(this.process, p),
      brk: this.brk(),
    };
  }

  private brk(): number {
    return this.kernel.brkEnd - this.kernel.brkBase;
  }

  /** The number of the token an event takes: the reader's, or given here for other producers. */
  private inNumber(ev: TraceEvent, key: number, text: string): number {
    const id = ev.inId;
    return id !== undefined ? id : this.numbers.takeIn(key, text);
  }

  /** The number of the token an event returns (the reader's, or given here). */
  private outNumber(ev: TraceEvent): number {
    const id = ev.outId;
    if (id !== undefined) return id;
    const key = outKey(ev);
    return this.numbers.numberOut(key, key === NO_KEY ? ev.out : '');
  }

  /** Binds the token a call returned (the event's `out`) to the model's block. */
  private bind(ev: TraceEvent, p: number): void {
    const id = this.outNumber(ev);
    const key = outKey(ev);
    if (key === 0) {
      if (p !== NIL)
        this.warn(
          ev,
          'the recording says this call returned NULL; the block ptsim returned stays live, unnamed',
        );
      return;
    }
    // The text is read only for a token without a key: a keyed token's text is never made.
    const text = key === NO_KEY ? ev.out : '';
    if (p === NIL) {
      const name = tokenName(key, text);
      this.warn(
        ev,
        `ptsim's allocator returned NULL where the recording got ${name}; later frees of ${name} are ignored`,
      );
      this.deadTokens.set(key, text, 0);
      return;
    }
    if (this.tokens.bind(id, key, text, p) !== NIL) {
      throw new ReplayError(
        this.file,
        ev.line,
        ev.index,
        `token ${tokenName(key, text)} is reused while still live (it was never freed)`,
      );
    }
  }

  /** The block a realloc names (the event's `in`: number, key and text; not NULL). */
  private lookupLive(ev: TraceEvent, id: number, key: number, text: string, what: string): number {
    const h = this.tokens.find(id, key, text);
    if (h !== NIL) return h;
    this.notLive(ev, key, what);
  }

  /** The handle a free names, or NIL for free(NULL) and tokens whose allocation failed in the model. */
  private takeToken(ev: TraceEvent, what: string): number {
    const key = inKey(ev);
    if (key === 0) return NIL;
    const text = key === NO_KEY ? ev.in : '';
    const h = this.tokens.unbind(this.inNumber(ev, key, text), key, text);
    if (h !== NIL) {
      this.remember(ev, key, text, this.process.ck.addr[h]! + 16);
      return h;
    }
    if (this.deadTokens.delete(key, text) !== NONE) return NIL;
    this.notLive(ev, key, what);
  }

  /** Unbinds the token a call took (the event's `in`), whose block was at user address mem. */
  private forget(ev: TraceEvent, id: number, key: number, text: string, mem: number): void {
    this.tokens.unbind(id, key, text);
    this.remember(ev, key, text, mem);
  }

  /** Records a freed token and its user address in the ring of recent frees (the text only for a token without a key). */
  private remember(ev: TraceEvent, key: number, text: string, mem: number): void {
    this.rememberFree(key, text, mem, ev.line);
  }

  private rememberFree(key: number, text: string, mem: number, line: number): void {
    const f = this.recentFrees;
    const slot = f.next;
    f.next = (slot + 1) & (FREED_MEMORY - 1);
    f.key[slot] = key;
    if (key === NO_KEY) f.text[slot] = text;
    f.mem[slot] = mem;
    f.line[slot] = line;
  }

  /** A free or realloc of a token that is not live: a double free, or a token never seen. */
  private notLive(ev: TraceEvent, key: number, what: string): never {
    const text = key === NO_KEY ? ev.in : '';
    const name = tokenName(key, text);
    const f = this.recentFrees;
    let slot = -1;
    for (let k = 1; k <= FREED_MEMORY; k++) {
      const i = (f.next - k + FREED_MEMORY) % FREED_MEMORY;
      if (f.key[i] === key && (key !== NO_KEY || f.text[i] === text)) {
        slot = i;
        break;
      }
    }
    if (slot < 0) {
      throw new ReplayError(
        this.file,
        ev.line,
        ev.index,
        `${what} of ${name}, which is not a live block (never allocated, or freed long ago)`,
      );
    }
    // glibc is handed the old address again: what would it make of it now?
    const mem = f.mem[slot]!;
    const verdict =
      what === 'realloc'
        ? reallocAgainVerdict(this.process, mem, ev.n1)
        : freeAgainVerdict(this.process, mem);
    const already = `${what} of ${name}, which was already freed at line ${f.line[slot]}`;
    if (verdict === 'undetected') {
      throw new ReplayError(
        this.file,
        ev.line,
        ev.index,
        `${already}: glibc ${this.process.profile.version} does not detect this here and its heap would now be corrupt, so the replay stops`,
      );
    }
    if (verdict === 'unknown') {
      throw new ReplayError(
        this.file,
        ev.line,
        ev.index,
        `${already}: what glibc ${this.process.profile.version} does here depends on heap memory ptsim does not keep, so the replay stops`,
      );
    }
    throw new GlibcAbort(verdict);
  }

  private threadExit(ev: TraceEvent): void {
    const s = this.process;
    // __libc_thread_freeres flushes the tcache and detaches the arena, but glibc runs it only for
    // threads created with pthread_create: the process's main thread keeps both.
    if (s.thread !== this.mainThread) arenaThreadFreeres(s);
    this.exited.add(ev.tid);
    this.lastTid = -1;
  }

  private warn(ev: TraceEvent, msg: string): void {
    this.warnings++;
    this.opts.onWarning?.(`${this.file}:${ev.line}: ${msg}`);
  }

  /** The summary after the last event (or after an abort). */
  finish(): ReplaySummary {
    const s = this.process;
    const k = this.kernel;
    const rss = k.residentPages * PAGE_SIZE;
    let peakRss = this.peakRss;
    let peakEvent = this.peakEvent;
    // An event whose records were cut short (the trace stopped at a mistake) counts as it stands.
    if (this.pending !== null && rss > peakRss) {
      peakRss = rss;
      peakEvent = this.pending.index;
    }
    let liveBytes = 0;
    this.tokens.forEachHandle((h) => {
      liveBytes += s.ck.req[h]!;
    });
    const summary: ReplaySummary = {
      events: this.events,
      mallinfo2: mallinfo2(s),
      rss,
      peakRss,
      brk: this.brk(),
      peakEvent,
      heap: s.main.systemMem,
      mmapped: s.mp.mmappedMem,
      syscalls: { ...k.syscalls },
      pageFaults: k.pageFaults,
      liveBlocks: this.tokens.size,
      liveBytes,
      warnings: this.warnings,
      touch: this.touchMode,
      glibc: this.process.profile.version,
    };
    if (isUnverified(this.process.profile)) summary.glibcUnverified = true;
    const m = this.measured;
    if (m.count > 0) {
      this.settleSamples(rss);
      summary.measured = { samples: m.count, last: m.get(m.count - 1), peak: m.get(m.peak()) };
    }
    if (this.abort !== undefined) summary.abort = this.abort;
    return summary;
  }

  /**
   * A note for a trace without touch records that has blocks of 1 MiB or more, replayed with the
   * `full` model: its RSS is an upper bound. Null otherwise.
   */
  touchNote(): string | null {
    if (this.touchMode !== 'full' || this.touchesRecorded || this.largestRequest < NOTE_BYTES)
      return null;
    return `${this.file} has blocks of 1 MiB or more but no touch records, so its RSS is an upper bound (the replay takes every requested byte as written); \`ptsim record\` records the pages each large block really touches`;
  }

  /** malloc_stats() output at this point (what glibc prints on stderr). */
  stats(): string {
    if (!this.process.initialized) ptmallocInit(this.process);
    return mallocStats(this.process);
  }

  /** malloc_info(0, fp) output at this point. */
  info(): string {
    if (!this.process.initialized) ptmallocInit(this.process);
    return mallocInfo(this.process);
  }

  /** The thread whose call is being replayed (for diagnostics). */
  get currentThread(): ThreadState {
    return this.process.thread;
  }
}
