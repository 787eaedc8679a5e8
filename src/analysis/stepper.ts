/**
 * `ptsim step`'s engine, and the browser visualizer's: a trace held in memory, replayed one event
 * at a time, forwards and back, with each step explained in one plain sentence from the model's
 * state before and after it.
 *
 * The trace is held as explain holds it (event-store.ts): columns of typed arrays, about 33 bytes
 * an event, not an object per event; what a step's sentence or the heap view needs of an event
 * (its tokens' texts, its line) is read from the columns when that event is shown.
 *
 * Going forward continues the replay. Going back restores the nearest checkpoint before the target
 * (a snapshot of the replay's whole state, taken every `checkpointEvery` events as the replay
 * first passes there: checkpoint.ts) and replays forward from it, so that any event is at most
 * that many events of replay away. Snapshots share the blocks of the state that have not changed
 * since the one before; when they outgrow CHECKPOINT_BYTES, every other one goes. Nothing here
 * does I/O: the caller delivers the trace (Stepper.read).
 */

import { NIL, St } from '../core/chunks.js';
import { IS_MMAPPED, M } from '../core/constants.js';
import type { Process } from '../core/state.js';
import { PAGE_SIZE } from '../kernel/kernel.js';
import { RecentFrees, type Replayer } from '../replay/replay.js';
import { replaySink, type ReplaySettings } from '../replay/sink.js';
import { NO_KEY, tokenKey } from '../trace/token-key.js';
import { OP_NAMES, Op, type TraceEvent, type TraceHeader, type TraceSink } from '../trace/types.js';
import { snapshotBytes, Snapshots, type Snapshot } from './checkpoint.js';
import {
  returnedTokenId,
  returnedTokens,
  StoredReader,
  storedReadEvent,
  tokenReturnedAt,
  TraceStore,
  type StoredTrace,
} from '../trace/event-store.js';
import { chunkPlace, heapView, type HeapView, type TokenNames } from './heap-view.js';

export interface StepperOptions {
  settings: ReplaySettings;
  onWarning?: (msg: string) => void;
  /** CPUs glibc sees when neither the settings nor the trace say. */
  fallbackCores?: number;
  /** The same for a release that counts the CPUs it may run on (2.34, 2.35). */
  fallbackAllowedCores?: number;
  /**
   * Events between checkpoints (0: none). By default CHECKPOINT_EVERY, and twice as many each
   * time the checkpoints outgrow CHECKPOINT_BYTES.
   */
  checkpointEvery?: number;
  /** Called after each event replayed (every time it is replayed), with the replay's state. */
  observe?: (ev: TraceEvent, r: Replayer) => void;
}

/** One event replayed and explained. */
export interface Step {
  event: number;
  line: number;
  /** The call, as the trace has it: `free(b3)`, `malloc(24) -> a`. */
  call: string;
  sentence: string;
  /** The arena of the block returned or freed (-1 mmapped), or null for calls without one. */
  arena: number | null;
}

/** Why the replay cannot go past an event: glibc's abort there, or a mistake in the trace. */
export interface Stop {
  event: number;
  kind: 'abort' | 'mistake';
  message: string;
}

/** Bytes for a sentence: exact bytes below 1 KiB, else KiB or MiB with at most one decimal. */
function bytesText(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const t = Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${t} ${units[u]}`;
}

const hex = (n: number): string => '0x' + n.toString(16);

/** `a 32-byte`, `an 80-byte`, `an 18-byte`: the article a number takes when read aloud. */
function aSize(n: number): string {
  const t = String(n);
  const an =
    t.startsWith('8') || (t.length % 3 === 2 && (t.startsWith('11') || t.startsWith('18')));
  return `${an ? 'an' : 'a'} ${t}-byte`;
}

/** The call as a line of C would write it. */
function callText(ev: TraceEvent): string {
  const name = OP_NAMES[ev.op]!;
  const ret = ev.out === '' ? '' : ` -> ${ev.out}`;
  const ptr = ev.in === '' ? 'NULL' : ev.in;
  switch (ev.op) {
    case Op.malloc:
    case Op.valloc:
    case Op.pvalloc:
      return `${name}(${ev.n1})${ret}`;
    case Op.calloc:
    case Op.memalign:
      return `${name}(${ev.n1}, ${ev.n2})${ret}`;
    case Op.realloc:
      return `realloc(${ptr}, ${ev.n1})${ret}`;
    case Op.free:
      return `free(${ptr})`;
    case Op.mallocTrim:
      return `malloc_trim(${ev.n1})`;
    case Op.mallopt: {
      const p = Object.entries(M).find(([, v]) => v === ev.param);
      return `mallopt(${p === undefined ? ev.param : `M_${p[0]}`}, ${ev.n1})`;
    }
    default:
      return `thread ${ev.tid} exits`;
  }
}

/** A free chunk or top as it stood before a step. */
interface Spot {
  state: number;
  size: number;
  bin: number;
}

/** What a step's sentence needs of the state before it. */
interface Before {
  brk: number;
  rss: number;
  mmapThreshold: number;
  trimThreshold: number;
  mmappedMem: number;
  /** Free chunks and tops, by address. */
  spots: Map<number, Spot>;
  tops: Set<number>;
  /** The arenas' last_remainder addresses. */
  lastRemainders: Set<number>;
  /** The block the event takes (free, realloc), or null. */
  taken: { addr: number; size: number; mmapped: boolean; arena: number } | null;
  fastChunks: number;
  systemMem: number;
  /** The calling thread's cached chunks. */
  tcached: number;
}

/** The chunk of a live block returned by event e (not a tcache struct made then), or NIL. */
function chunkBornAt(s: Process, e: number): number {
  const ck = s.ck;
  const structs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) structs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) structs.add(s.thread.tcache.chunk);
  for (let h = 0; h < ck.highWater; h++)
    if (ck.state[h] === St.INUSE && ck.born[h] === e && !structs.has(h)) return h;
  return NIL;
}

/** The chunk that holds address a (not a bin header), or NIL. */
function chunkHolding(s: Process, a: number): number {
  const ck = s.ck;
  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    if (st === St.DEAD || st === St.BINHDR) continue;
    if (ck.addr[h]! <= a && a < ck.addr[h]! + ck.size[h]!) return h;
  }
  return NIL;
}

function fastChunks(s: Process): number {
  let n = 0;
  const ck = s.ck;
  for (let h = 0; h < ck.highWater; h++) if (ck.state[h] === St.FAST) n++;
  return n;
}

function systemMem(s: Process): number {
  return s.arenas.reduce((n, a) => n + a.systemMem, 0);
}

function tcached(s: Process, tid: number): number {
  const th = s.threads.get(tid);
  if (th === undefined || th.tcache === null) return 0;
  return th.tcache.counts.reduce((n, c) => n + c, 0);
}

function binName(state: number, bin: number, size: number): string {
  if (state === St.TCACHE) return `the tcache (bin ${hex(size)})`;
  if (state === St.FAST) return `the ${hex(size)} fastbin`;
  if (bin === 1) return 'the unsorted bin';
  return bin < 64 ? `small bin ${bin}` : `large bin ${bin}`;
}

/**
 * Events between checkpoints, unless the options say; doubled each time the checkpoints outgrow
 * CHECKPOINT_BYTES.
 */
const CHECKPOINT_EVERY = 8192;
/** Bytes the checkpoints may take; beyond, every other one goes (the rest twice as far apart). */
const CHECKPOINT_BYTES = 256 * 2 ** 20;

/** What a checkpoint keeps: the replay, and the event that returned each token number's block. */
interface State {
  r: Replayer;
  born: Int32Array;
}

/** A snapshot of the replay's state after event `pos`. */
interface Checkpoint {
  pos: number;
  snap: Snapshot<State>;
}

/** A watched token: its key and text, and the event that returned the block it names (-1: none). */
interface Watch {
  key: number;
  text: string;
  born: number;
  /** The last known chunk address of its block (-1: none yet). */
  addr: number;
}

export class Stepper {
  private r!: Replayer;
  /**
   * For each token number, the event that returned the live block the token of that number names
   * now (-1: none): the step's sentences and the heap view's tokens, as the trace names them.
   */
  private born: Int32Array;
  private readonly reader: StoredReader;
  /** Events between checkpoints (0: none), and the checkpoints, every one up to the furthest. */
  private every = 0;
  private checkpoints: Checkpoint[] = [];
  private readonly snapshots = new Snapshots();
  /** Bytes the checkpoints take. */
  private checkpointBytes = 0;
  /** Whether the checkpoints may be thinned when they outgrow CHECKPOINT_BYTES. */
  private readonly thin: boolean;
  /** Index of the last event replayed (-1: none). */
  private pos = -1;
  /** Whether the replay runs from the start (not from a checkpoint, which has no recent frees). */
  private fromStart = true;
  /** Set once the replay has met glibc's abort or a mistake: it cannot go past `stop.event - 1`. */
  stop: Stop | null = null;
  private readonly watched = new Map<string, Watch>();

  private constructor(
    readonly trace: string,
    private readonly store: StoredTrace,
    private readonly opts: StepperOptions,
  ) {
    this.reader = new StoredReader(store);
    this.born = new Int32Array(store.maxId + 1).fill(-1);
    this.every = opts.checkpointEvery ?? CHECKPOINT_EVERY;
    this.thin = opts.checkpointEvery === undefined;
  }

  /**
   * Takes the trace into memory from `read`, which delivers it to the sink it is given (a mistake
   * in its syntax is thrown, as every reader does).
   */
  static async read(
    name: string,
    read: (sink: TraceSink) => Promise<unknown> | void,
    opts: StepperOptions,
  ): Promise<Stepper> {
    const store = new TraceStore(Number.POSITIVE_INFINITY);
    await read(store);
    const t = store.finish();
    if (t === null) throw new Error(`ptsim internal error: ${name} could not be held in memory`);
    const st = new Stepper(name, t, opts);
    st.restart();
    return st;
  }

  /**
   * Delivers the trace held in memory to another sink (a replay with other settings), as its
   * reader delivered it.
   */
  feed(sink: TraceSink): void {
    const reader = new StoredReader(this.store);
    sink.header(this.store.header);
    reader.leading(sink);
    for (let i = 0; i < this.store.count; i++) {
      sink.event(reader.read());
      reader.records(sink);
    }
  }

  /** The trace's header, as its reader gave it. */
  get traceHeader(): TraceHeader {
    return this.store.header;
  }

  /** Events in the trace. */
  get events(): number {
    return this.store.count;
  }

  /** Events between checkpoints (0: none). */
  get checkpointInterval(): number {
    return this.every;
  }

  /** Checkpoints taken so far, and the bytes they take. */
  get checkpointStats(): { count: number; bytes: number } {
    return { count: this.checkpoints.length, bytes: this.checkpointBytes };
  }

  /** Index of the last event replayed (-1 before the first). */
  get position(): number {
    return this.pos;
  }

  /** The last event the replay can reach. */
  get last(): number {
    return this.stop === null ? this.store.count - 1 : this.stop.event - 1;
  }

  /** The replay's state now. */
  get replayer(): Replayer {
    return this.r;
  }

  /** A fresh replay, before the first event. */
  private restart(): void {
    const rs = replaySink(this.trace, {
      ...this.opts.settings,
      fallbackCores: this.opts.fallbackCores,
      fallbackAllowedCores: this.opts.fallbackAllowedCores,
      onWarning: this.opts.onWarning,
      observe: this.opts.observe,
    });
    rs.sink.header(this.store.header);
    this.r = rs.replayer!;
    this.born.fill(-1);
    this.reader.seek(0);
    this.reader.leading(this.r);
    this.pos = -1;
    this.fromStart = true;
    this.rewatch();
  }

  /** Goes back to checkpoint c (a copy of it: the checkpoint stays as it was). */
  private restore(c: Checkpoint): void {
    const state = this.snapshots.restore(c.snap);
    this.r = state.r;
    this.born = state.born;
    this.pos = c.pos;
    this.fromStart = false;
    this.rewatch();
  }

  /** Takes a checkpoint after event i; thins them out when they outgrow their bytes. */
  private takeCheckpoint(i: number): void {
    // The ring of recent frees is left out: only the message of a stop depends on it, and a stop
    // met after a restore is met again from the start (advance).
    const fresh = new Map([[this.r.recentFrees, () => new RecentFrees()]]);
    const snap = this.snapshots.take<State>({ r: this.r, born: this.born }, fresh);
    this.checkpoints.push({ pos: i, snap });
    this.checkpointBytes += snap.bytes;
    if (!this.thin || this.checkpointBytes <= CHECKPOINT_BYTES) return;
    // Every other one goes (those that stay are twice as far apart); the bytes of the blocks still
    // shared are counted again.
    this.every *= 2;
    this.checkpoints = this.checkpoints.filter((c) => (c.pos + 1) % this.every === 0);
    this.checkpointBytes = snapshotBytes(this.checkpoints.map((c) => c.snap));
  }

  /** The latest checkpoint strictly before event `target`, or null. */
  private checkpointBefore(target: number): Checkpoint | null {
    if (this.every <= 0) return null;
    for (
      let j = Math.min(Math.floor(target / this.every) - 1, this.checkpoints.length - 1);
      j >= 0;
      j--
    ) {
      const c = this.checkpoints[j]!;
      if (c.pos < target) return c;
    }
    return null;
  }

  /** Replays the next event; false when there is none (the end, an abort, a mistake). */
  private advance(explain: boolean): Step | null | false {
    const i = this.pos + 1;
    if (i > this.last) return false;
    const ev = this.reader.at(i);
    const before = explain ? this.before(ev) : null;
    try {
      this.r.event(ev);
      if (this.r.aborted && !this.fromStart) return this.stopAgain(i, explain);
      if (this.r.aborted) {
        const a = this.r.finish().abort!;
        this.stop = { event: i, kind: 'abort', message: `glibc would abort here: ${a.message}` };
        return false;
      }
      this.reader.records(this.r);
    } catch (e) {
      if (e instanceof Error && (e.name === 'ReplayError' || e.name === 'TraceSyntaxError')) {
        if (!this.fromStart) return this.stopAgain(i, explain);
        this.stop = { event: i, kind: 'mistake', message: e.message };
        // The model may be half-way through the event (a token reused while live: the block was
        // allocated before the token was found bound): back to the state after the one before.
        const c = this.checkpointBefore(i);
        if (c !== null) this.restore(c);
        else this.restart();
        while (this.pos < i - 1) if (this.advance(false) === false) break;
        return false;
      }
      throw e;
    }
    this.pos = i;
    this.see(ev);
    const k = this.every > 0 ? (i + 1) / this.every - 1 : -1;
    if (k === this.checkpoints.length && Number.isInteger(k)) this.takeCheckpoint(i);
    if (this.watched.size > 0) this.trackWatched(ev);
    return before === null ? null : this.explain(ev, before);
  }

  /**
   * A stop met at event i by a replay from a checkpoint: its message may depend on the frees the
   * checkpoint left out, so the replay runs again from the start and meets it there.
   */
  private stopAgain(i: number, explain: boolean): Step | null | false {
    this.restart();
    while (this.pos < i - 1) if (this.advance(false) === false) return false;
    return this.advance(explain);
  }

  /** Takes note of the tokens event ev (just replayed) takes and returns. */
  private see(ev: TraceEvent): void {
    const op = ev.op;
    // realloc to a size that fails in the model keeps OLD live: the replay says so in a warning,
    // and the tokens are those of the trace, as the replay's numbers are.
    if ((op === Op.free || op === Op.realloc) && ev.inId !== undefined && ev.inId >= 0)
      this.born[ev.inId] = -1;
    if (op !== Op.free && ev.outId !== undefined && ev.outId >= 0) this.born[ev.outId] = ev.index;
  }

  /** The event that returned the live block of the token event ev takes (-1: none). */
  private bornOfIn(ev: TraceEvent): number {
    return ev.inId !== undefined && ev.inId >= 0 ? this.born[ev.inId]! : -1;
  }

  /** Goes to just after event n (-1: before the first), from a checkpoint when going back or far. */
  goTo(n: number): Step | null {
    const target = Math.min(n, this.last);
    // From the latest checkpoint before the target, when going back or past a checkpoint (strictly
    // before it: the target's step is explained).
    if (target < this.pos || target - this.pos > 1) {
      const c = this.checkpointBefore(target);
      if (c !== null && (target < this.pos || c.pos > this.pos)) this.restore(c);
      else if (target < this.pos) this.restart();
    }
    let step: Step | null = null;
    while (this.pos < target) {
      const r = this.advance(this.pos + 1 === target);
      if (r === false) break;
      step = r;
    }
    return step;
  }

  /** Replays k events (or to the end); each step explained. */
  next(k = 1): Step[] {
    const out: Step[] = [];
    for (let j = 0; j < k; j++) {
      const r = this.advance(true);
      if (r === false) break;
      out.push(r!);
    }
    return out;
  }

  /**
   * Runs to the first event `before` picks (tested before replaying it) or, with `after`, whose
   * step it picks; returns that step, or null at the end. Only the events `after` must see are
   * explained on the way, so that running far is a replay, not an explanation of every event.
   */
  runUntil(before: (ev: TraceEvent) => boolean, after: ((s: Step) => boolean) | null): Step | null {
    for (;;) {
      const i = this.pos + 1;
      if (i > this.last) return null;
      const pick = before(this.reader.at(i));
      const r = this.advance(pick || after !== null);
      if (r === false) return null;
      if (pick || (after !== null && after(r!))) return r;
    }
  }

  /** The event at index i as the trace has it. */
  eventAt(i: number): TraceEvent | null {
    return i >= 0 && i < this.store.count ? storedReadEvent(this.store, i) : null;
  }

  /** The heap view at the current position. */
  view(): HeapView {
    const s = this.r.process;
    const ck = s.ck;
    // The tokens of the live blocks, as the trace names them: only those of the chunks shown.
    const events: number[] = [];
    for (let h = 0; h < ck.highWater; h++) {
      const e = ck.born[h]!;
      if (ck.state[h] === St.INUSE && e >= 0 && e < this.store.count) {
        const id = returnedTokenId(this.store, e);
        if (id >= 0 && this.born[id] === e) events.push(e);
      }
    }
    events.sort((a, b) => a - b);
    const texts = returnedTokens(this.store, events);
    const names = new Map<number, string>();
    for (let k = 0; k < events.length; k++) names.set(events[k]!, texts[k]!);
    const book: TokenNames = { tokenOf: (e) => names.get(e) ?? null };
    const line = this.pos >= 0 ? storedReadEvent(this.store, this.pos).line : 0;
    return heapView(this.r, book, this.pos, line);
  }

  watch(token: string): void {
    const key = tokenKey(token);
    const w: Watch = { key, text: key === NO_KEY ? token : '', born: -1, addr: -1 };
    w.born = tokenReturnedAt(this.store, key, w.text, this.pos);
    this.watched.set(token, w);
    this.trackWatch(w);
  }

  unwatch(token: string): boolean {
    return this.watched.delete(token);
  }

  get watches(): string[] {
    return [...this.watched.keys()];
  }

  /** The watched tokens' events again, after a restart or a restore. */
  private rewatch(): void {
    for (const w of this.watched.values())
      w.born = tokenReturnedAt(this.store, w.key, w.text, this.pos);
  }

  /** Follows the watched tokens through event ev, just replayed. */
  private trackWatched(ev: TraceEvent): void {
    for (const w of this.watched.values()) {
      const same = (key: number, text: () => string): boolean =>
        key === w.key && (key !== NO_KEY || text() === w.text);
      if ((ev.op === Op.free || ev.op === Op.realloc) && same(ev.inKey ?? -2, () => ev.in))
        w.born = -1;
      if (ev.op !== Op.free && same(ev.outKey ?? -2, () => ev.out)) w.born = ev.index;
      this.trackWatch(w);
    }
  }

  /** Where a watched token's block is now, while it is live. */
  private trackWatch(w: Watch): void {
    if (w.born < 0) return;
    const s = this.r.process;
    const h = chunkBornAt(s, w.born);
    if (h !== NIL) w.addr = s.ck.addr[h]!;
  }

  /** Where a watched token's block is now, in one line. */
  whereIs(token: string): string {
    const s = this.replayer.process;
    const ck = s.ck;
    const w = this.watched.get(token);
    const key = tokenKey(token);
    const e = w?.born ?? tokenReturnedAt(this.store, key, key === NO_KEY ? token : '', this.pos);
    if (e >= 0) {
      const h = chunkBornAt(s, e);
      if (h !== NIL) {
        const p = chunkPlace(s, h);
        const where = p.arena < 0 ? 'mmapped' : p.arena === 0 ? 'main arena' : `arena ${p.arena}`;
        return `${token}: live, ${aSize(ck.size[h]!)} chunk in the ${where}${p.arena > 0 ? ` heap ${p.heap}` : ''} at offset ${p.off} (${ck.req[h]} bytes asked for, since event ${e})`;
      }
    }
    const addr = w?.addr ?? -1;
    if (addr < 0) return `${token}: not live now`;
    const h = chunkHolding(s, addr);
    if (h === NIL) return `${token}: not live; its memory went back to the kernel`;
    const st = ck.state[h]!;
    const size = ck.size[h]!;
    const what =
      st === St.TCACHE || st === St.FAST || st === St.BINNED
        ? `a free ${size}-byte chunk in ${binName(st, ck.bin[h]!, size)}`
        : s.arenas.some((a) => a.top === h)
          ? `the top chunk (${bytesText(size)})`
          : `${aSize(size)} chunk in use again (another block now)`;
    return `${token}: not live; its memory is ${ck.addr[h] === addr ? '' : 'part of '}${what}`;
  }

  /** The facts a sentence needs, before event ev. */
  private before(ev: TraceEvent): Before {
    const r = this.replayer;
    const s = r.process;
    const ck = s.ck;
    const spots = new Map<number, Spot>();
    const tops = new Set<number>();
    for (const a of s.arenas) if (!a.topIsInitial) tops.add(ck.addr[a.top]!);
    for (let h = 0; h < ck.highWater; h++) {
      const st = ck.state[h]!;
      if (st === St.TCACHE || st === St.FAST || st === St.BINNED)
        spots.set(ck.addr[h]!, { state: st, size: ck.size[h]!, bin: ck.bin[h]! });
    }
    let taken: Before['taken'] = null;
    if ((ev.op === Op.free || ev.op === Op.realloc) && ev.in !== '') {
      const e = this.bornOfIn(ev);
      const h = e < 0 ? NIL : chunkBornAt(s, e);
      if (h !== NIL)
        taken = {
          addr: ck.addr[h]!,
          size: ck.size[h]!,
          mmapped: (ck.flags[h]! & IS_MMAPPED) !== 0,
          arena: chunkPlace(s, h).arena,
        };
    }
    return {
      brk: r.kernel.brkEnd,
      rss: r.kernel.residentPages * PAGE_SIZE,
      mmapThreshold: s.mp.mmapThreshold,
      trimThreshold: s.mp.trimThreshold,
      mmappedMem: s.mp.mmappedMem,
      spots,
      tops,
      lastRemainders: new Set(s.arenas.map((a) => a.lastRemainder)),
      taken,
      fastChunks: fastChunks(s),
      systemMem: systemMem(s),
      tcached: tcached(s, ev.tid),
    };
  }

  /** The step's sentence, from the state before (b) and now. */
  private explain(ev: TraceEvent, b: Before): Step {
    const call = callText(ev);
    const step = (sentence: string, arena: number | null): Step => ({
      event: ev.index,
      line: ev.line,
      call,
      sentence: `${call}: ${sentence}`,
      arena,
    });
    const s = this.replayer.process;
    const k = this.replayer.kernel;
    const consolidated =
      fastChunks(s) < b.fastChunks && ev.op !== Op.malloc && ev.op !== Op.calloc
        ? `; malloc_consolidate merged the fastbins' ${b.fastChunks - fastChunks(s)} chunks`
        : '';
    switch (ev.op) {
      case Op.free: {
        if (ev.in === '') return step('free(NULL) does nothing', null);
        const t = b.taken;
        if (t === null)
          return step('the block was not live in the model, so nothing happened', null);
        return step(this.freed(ev, t, b) + consolidated, t.arena);
      }
      case Op.realloc: {
        const t = b.taken;
        if (ev.n1 === 0 && t !== null)
          return step(`realloc to 0 bytes frees the block: ${this.freed(ev, t, b)}`, t.arena);
        if (t === null) return this.allocated(ev, b, step);
        const h = this.returned(ev);
        if (h === NIL) return step(`returned NULL; ${ev.in} stays where it was`, t.arena);
        const ck = s.ck;
        const size = ck.size[h]!;
        const arena = chunkPlace(s, h).arena;
        if (ck.addr[h] === t.addr)
          return step(
            size === t.size
              ? `the ${size}-byte chunk already holds ${ev.n1} bytes, so it stayed as it was`
              : `${size > t.size ? 'grew' : 'shrank'} in place, from ${aSize(t.size)} chunk to ${aSize(size)} one`,
            arena,
          );
        if (t.mmapped && (ck.flags[h]! & IS_MMAPPED) !== 0)
          return step(
            `mremap moved the mapping: the chunk is now ${size} bytes, at a new address`,
            arena,
          );
        return step(
          `could not grow in place, so it moved to a new ${size}-byte chunk and the old ${t.size}-byte chunk was freed after the copy`,
          arena,
        );
      }
      case Op.malloc:
      case Op.calloc:
      case Op.memalign:
      case Op.valloc:
      case Op.pvalloc:
        return this.allocated(ev, b, step);
      case Op.mallocTrim: {
        const back = b.rss - k.residentPages * PAGE_SIZE;
        return step(
          back > 0
            ? `${bytesText(back)} of free memory went back to the kernel (RSS ${bytesText(b.rss)} -> ${bytesText(k.residentPages * PAGE_SIZE)})`
            : 'nothing could go back to the kernel',
          null,
        );
      }
      case Op.mallopt:
        return step(
          `the mmap threshold is ${bytesText(s.mp.mmapThreshold)} and the trim threshold ${bytesText(s.mp.trimThreshold)}${s.mp.noDynThreshold ? ', no longer raised by free' : ''}`,
          null,
        );
      default: {
        const n = b.tcached;
        return step(
          n > 0 || tcached(s, ev.tid) !== n
            ? `its tcache's ${n} chunk${n === 1 ? '' : 's'} and the tcache itself were freed, and its arena goes to the next new thread`
            : 'its arena goes to the next new thread',
          null,
        );
      }
    }
  }

  /** The handle of the block event ev returned, or NIL. */
  private returned(ev: TraceEvent): number {
    if (ev.out === '') return NIL;
    return ev.outId !== undefined && ev.outId >= 0 && this.born[ev.outId] === ev.index
      ? chunkBornAt(this.replayer.process, ev.index)
      : NIL;
  }

  /** Where an allocated block came from. */
  private allocated(ev: TraceEvent, b: Before, say: (s: string, a: number | null) => Step): Step {
    const s = this.replayer.process;
    const ck = s.ck;
    const h = this.returned(ev);
    if (h === NIL) return say('returned NULL', null);
    const size = ck.size[h]!;
    const addr = ck.addr[h]!;
    const place = chunkPlace(s, h);
    const spot = b.spots.get(addr);
    // A chunk from a fastbin may bring the rest of its fastbin into the tcache: that is no
    // consolidation.
    const merged = spot?.state === St.FAST ? 0 : b.fastChunks - fastChunks(s);
    const note =
      merged > 0
        ? `; malloc_consolidate had first merged the fastbins' ${merged} chunk${merged === 1 ? '' : 's'} into the bins`
        : '';
    const step = (t: string, a: number | null): Step => say(t + note, a);
    const chunk = `${aSize(size)} chunk${place.arena > 0 ? ` of arena ${place.arena}` : ''} (${ck.req[h]} bytes asked for)`;
    if (place.arena < 0)
      return step(
        `${chunk} mmapped on its own: the request is at least the mmap threshold of ${bytesText(b.mmapThreshold)}`,
        -1,
      );
    if (spot !== undefined) {
      const from = binName(spot.state, spot.bin, spot.size);
      if (spot.size === size || spot.state === St.TCACHE || spot.state === St.FAST)
        return step(`${chunk} reused from ${from}`, place.arena);
      // Where the rest went (the unsorted bin, as the last remainder for a small request).
      const rest = chunkHolding(s, addr + size);
      const restSt = rest === NIL ? -1 : ck.state[rest]!;
      const restText =
        rest !== NIL && ck.addr[rest] === addr + size && restSt === St.BINNED
          ? `; the other ${ck.size[rest]} bytes went to ${binName(restSt, ck.bin[rest]!, ck.size[rest]!)}${s.arenas.some((a) => a.lastRemainder === addr + size) ? ' as the last remainder' : ''}`
          : `; the other ${spot.size - size} bytes stay free`;
      const sorted =
        spot.bin !== 1 || spot.state !== St.BINNED
          ? ` in ${from}`
          : b.lastRemainders.has(addr)
            ? ', the last remainder in the unsorted bin'
            : ' (malloc first sorted the unsorted bin, where it was, into the bins)';
      return step(
        `${chunk} split from ${aSize(spot.size)} free chunk${sorted}${restText}`,
        place.arena,
      );
    }
    const grew = systemMem(s) - b.systemMem;
    const top = s.arenas.find((a) => !a.topIsInitial && ck.addr[a.top]! === addr + size);
    if (b.tops.has(addr) || (grew > 0 && top !== undefined)) {
      const left = top === undefined ? '' : `; the top is now ${bytesText(ck.size[top.top]!)}`;
      const first = !b.tops.has(addr);
      return step(
        grew > 0
          ? first
            ? `${chunk} cut from the top, after the arena's first ${bytesText(grew)} came from the kernel${left}`
            : `the top was too small, so the arena got ${bytesText(grew)} more from the kernel and cut ${chunk} from the top${left}`
          : `${chunk} cut from the top${left}`,
        place.arena,
      );
    }
    if (grew > 0)
      return step(
        `${chunk} from memory the arena just got from the kernel (${bytesText(grew)})`,
        place.arena,
      );
    if (fastChunks(s) < b.fastChunks)
      return step(
        `${chunk} from a free chunk that malloc_consolidate made by merging the fastbins`,
        place.arena,
      );
    return step(`${chunk} carved from a free chunk of the arena`, place.arena);
  }

  /** What free did with the block t (before: b). */
  private freed(ev: TraceEvent, t: NonNullable<Before['taken']>, b: Before): string {
    const s = this.replayer.process;
    const ck = s.ck;
    const size = t.size;
    if (t.mmapped) {
      const raised =
        s.mp.mmapThreshold !== b.mmapThreshold
          ? `; the mmap threshold rose to ${bytesText(s.mp.mmapThreshold)} and the trim threshold to ${bytesText(s.mp.trimThreshold)}, so later blocks of this size go to the heap`
          : '';
      return `the ${size}-byte mmapped chunk went back to the kernel with munmap${raised}`;
    }
    const h = chunkHolding(s, t.addr);
    const returned = b.systemMem - systemMem(s);
    const backText = returned > 0 ? `, so ${bytesText(returned)} went back to the kernel` : '';
    if (h === NIL) return `the ${size}-byte chunk was freed and its memory went back to the kernel`;
    const st = ck.state[h]!;
    if (st === St.TCACHE) {
      const th = s.threads.get(ev.tid);
      const n = th?.tcache?.counts[ck.bin[h]!] ?? 0;
      return `the ${size}-byte chunk went into the tcache (bin ${hex(size)}, now ${n} of ${s.mp.tcacheCount})`;
    }
    if (st === St.FAST)
      return `the ${size}-byte chunk went into the ${hex(size)} fastbin, unmerged and still marked in use`;
    const top = s.arenas.find((a) => a.top === h);
    if (top !== undefined) {
      const topSize = ck.size[h]!;
      const withTop =
        ck.addr[h]! < t.addr ? 'the free chunk before it and with the top' : 'the top';
      if (returned > 0)
        return `the ${size}-byte chunk merged with ${withTop}; the top was above the trim threshold of ${bytesText(s.mp.trimThreshold)}${backText}, leaving a top of ${bytesText(topSize)}`;
      if (topSize >= s.mp.trimThreshold && top === s.main)
        return `the ${size}-byte chunk merged with ${withTop}; the top is ${bytesText(topSize)}, above the trim threshold of ${bytesText(s.mp.trimThreshold)}, but glibc keeps M_TOP_PAD (${bytesText(s.mp.topPad)}) of it and less than a page more was free, so nothing went back to the kernel`;
      return `the ${size}-byte chunk merged with ${withTop}; the top is ${bytesText(topSize)}, ${topSize >= s.mp.trimThreshold ? 'above' : 'below'} the trim threshold of ${bytesText(s.mp.trimThreshold)}, so nothing went back to the kernel`;
    }
    if (st === St.BINNED) {
      const merged = ck.size[h]!;
      if (merged === size && ck.addr[h] === t.addr)
        return `the ${size}-byte chunk went into ${binName(st, ck.bin[h]!, size)}; its neighbours are in use, so nothing merged${backText}`;
      const sides =
        ck.addr[h]! < t.addr && ck.addr[h]! + merged > t.addr + size
          ? 'the free chunks on both sides'
          : ck.addr[h]! < t.addr
            ? 'the free chunk before it'
            : 'the free chunk after it';
      return `the ${size}-byte chunk merged with ${sides} into ${aSize(merged)} chunk in ${binName(st, ck.bin[h]!, merged)}${backText}`;
    }
    return `the ${size}-byte chunk was freed${backText}`;
  }
}
