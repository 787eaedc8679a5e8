/**
 * A trace held in memory, so that the many replays of one explanation read it once: the events as
 * columns of typed arrays over SharedArrayBuffers, which worker threads receive without a copy.
 *
 * Each event keeps what the replay reads: its operation, thread, numeric arguments, time, line, and
 * the one token it takes or returns (key and number, token-key.ts and token-numbers.ts; a realloc's
 * second token, the one it takes, sits in columns of its own), and, in a trace with call stacks,
the number of its stack (`^ID`; 4 bytes more an event). Lines are kept as runs of a constant
 * distance between line and index (one run for a trace without comments among its events). The
 * texts of tokens without a key are kept as UTF-8 in one buffer, in trace order. About 33 bytes an
 * event. The numbers an event needs sit side by side (thread and token number in one array, sizes
 * and key in another), so that delivering it reads two or three cache lines, not one in each of
 * six columns: while a replay's model fills the caches, that is a few percent of the replay.
 *
 * The records that stand between events (`#:touch`, `#:rss`, `# touches incomplete from here`:
 * docs/trace-format.md) are kept too,
 * each group with the event it follows; so are the call stack, mapping and symbol records (`#:stack`,
`#:map`, `#:sym`), each with the event it comes before.
 *
 * A stored trace can be delivered again to any sink, as the reader delivered it (same events, same
 * token keys and numbers, same records), from its start or from any event on (to a replay
 * continued from a checkpoint), or edited: malloc_trim(0) inserted every N events, or one
 * allocation moved earlier. Edited events are numbered again in their new order. A moved
 * allocation's token gets a number no other token ever has (the number it had may belong to
 * another token where it now comes), and the event that takes it later, and the `#:touch` records
 * that name it until then, take that number: the other tokens keep theirs.
 */

import { keyedTokenText, NO_KEY } from './token-key.js';
import { ReadEvent } from './event.js';
import {
  NULL_TOKEN,
  Op,
  type OpCode,
  type RssSample,
  type SiteRecord,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type CopyKeeper,
  type TraceSink,
} from './types.js';

/** Events per chunk of columns. */
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
/** Events a chunk of a stored trace holds, for a reader of its columns (Replayer.runStored). */
export const STORE_CHUNK_BITS = CHUNK_BITS;
export const STORE_CHUNK = CHUNK;

/** How long events are delivered before the event loop is given a turn. */
const YIELD_MS = 50;
/** Most events a sink's runStored replays between two looks at the clock. */
const RUN_SLICE = 4096;

/** The columns of one chunk of events. */
interface Chunk {
  op: Uint8Array;
  /**
   * Each event's thread and the number of its token, side by side (2 * j, 2 * j + 1): what one
   * event needs is in one or two cache lines rather than in one line of each of five columns.
   */
  ints: Int32Array;
  /**
   * Each event's n1, n2 (calloc's SIZE and memalign's SIZE; mallopt's parameter number) and the
   * key of its token (returned by allocations and realloc's NEW, taken by free), at 3 * j + 0..2.
   */
  nums: Float64Array;
  /** Null while no event of the chunk has a time. */
  time: Float64Array | null;
  /** The call stack of each event (`^ID`, -1: none); null while no event of the chunk has one. */
  site: Int32Array | null;
}

/** A stored trace: plain data, sent to workers as it is. */
export interface StoredTrace {
  header: TraceHeader;
  count: number;
  chunks: Chunk[];
  /** Line runs: from event lineFrom[r] on, line = index + lineDelta[r]. */
  lineFrom: Float64Array;
  lineDelta: Float64Array;
  lineRuns: number;
  /** The token each realloc takes, in order of the reallocs. */
  reallocKey: Float64Array;
  reallocId: Int32Array;
  /** The texts of tokens without a key, in trace order (a realloc's OLD before its NEW). */
  textBytes: Uint8Array;
  textEnds: Uint32Array;
  /** Texts and reallocs before each chunk. */
  chunkTexts: number[];
  chunkReallocs: number[];
  /** The highest token number of any event. */
  maxId: number;
  /** Whether every text is ASCII (read faster as latin1, to the same strings). */
  ascii: boolean;
  /** The groups of records, in trace order: each after event `after` (-1: before the first). */
  records: RecordGroup[];
  /** The `#:stack`, `#:map` and `#:sym` records, in trace order, each read before event `before`. */
  sites: Array<{ before: number; rec: SiteRecord }>;
}

/** A `#:touch` or `#:rss` record, as kept. */
type StoredRecord =
  | { kind: 'touch'; touch: TouchRecord }
  | { kind: 'rss'; rss: RssSample }
  | { kind: 'incomplete'; line: number; detail: string };

/** The records that stand between event `after` and the next. */
interface RecordGroup {
  after: number;
  records: StoredRecord[];
}

/** Changes to a stored trace's events. */
export interface Edits {
  /** A malloc_trim(0) after every event whose index + 1 is a multiple of this, on that event's thread. */
  trimEvery?: number;
  /**
   * Event `from` (an allocation) delivered just before event `to` (to < from) instead, its token
   * numbered `id` instead of `oldId`, which event `takenAt` (the next to take the token; -1: none)
   * then takes, and the `#:touch` records in between name. The records that followed it follow the
   * event before it.
   */
  move?: { from: number; to: number; id: number; oldId: number; takenAt: number };
  /**
   * A free of a live block (allocated at event `born`) inserted right after event `after`, on
   * thread `tid`: the token of key
   * `key`, number `id` and text `token`. The `#:touch` records that name it after the free are
   * left out (the block is no longer there to write). Not together with `move`.
   */
  free?: { after: number; born: number; tid: number; key: number; id: number; token: string };
}

/**
 * The buffers of the columns: shared where there is SharedArrayBuffer (Node; a browser page that is
 * not cross-origin isolated, as the visualizer's, has none, and needs none: it sends no store).
 */
const Shared: new (n: number) => ArrayBufferLike =
  typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : ArrayBuffer;

function shared<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(
  Kind: { new (b: ArrayBufferLike): T; BYTES_PER_ELEMENT: number },
  n: number,
): T {
  return new Kind(new Shared(Math.max(1, n) * Kind.BYTES_PER_ELEMENT));
}

function grown<T extends Float64Array | Int32Array | Uint32Array | Uint8Array>(
  Kind: { new (b: ArrayBufferLike): T; BYTES_PER_ELEMENT: number },
  a: T,
  need: number,
): T {
  if (need <= a.length) return a;
  let n = a.length * 2;
  while (n < need) n *= 2;
  const b = shared(Kind, n);
  b.set(a);
  return b;
}

function isAllocation(op: number): boolean {
  return (
    op === Op.malloc ||
    op === Op.calloc ||
    op === Op.memalign ||
    op === Op.valloc ||
    op === Op.pvalloc
  );
}

/** Builds a stored trace from what a reader delivers (a sink that keeps it all). */
export class TraceStore implements TraceSink {
  private t: StoredTrace;
  private texts = 0;
  private reallocs = 0;
  /** The texts' bytes, as a Buffer to write into. */
  private bytes: Buffer;
  /** False once an event did not fit the columns, or the store outgrew its limit: it is not used. */
  ok = true;

  constructor(
    /** Most events kept: beyond, the store gives up (the trace is read from its file again). */
    private readonly limit: number,
  ) {
    this.t = {
      header: { env: [], facts: new Map() },
      count: 0,
      chunks: [],
      lineFrom: shared(Float64Array, 4),
      lineDelta: shared(Float64Array, 4),
      lineRuns: 0,
      reallocKey: shared(Float64Array, 1024),
      reallocId: shared(Int32Array, 1024),
      textBytes: shared(Uint8Array, 4096),
      textEnds: shared(Uint32Array, 256),
      chunkTexts: [],
      chunkReallocs: [],
      maxId: -1,
      ascii: true,
      records: [],
      sites: [],
    };
    this.bytes = textsOf(this.t);
  }

  /**
   * The copy, kept by the reader on the thread that parses when it can (TraceSink.copy): this
   * store then takes what that thread kept, and ignores what it is given meanwhile.
   */
  get copy(): CopyKeeper {
    return {
      limit: this.limit,
      keptElsewhere: () => {
        this.elsewhere = true;
      },
      adopt: (copy: unknown) => {
        const t = copy as StoredTrace | null;
        this.adopted = true;
        if (t === null) this.drop();
        else this.t = t;
      },
    };
  }

  /**
   * Whether the reader keeps the copy (copy.keptElsewhere), and whether it has handed it over: a
   * reading stopped early hands nothing, and the copy is then given up.
   */
  private elsewhere = false;
  private adopted = false;

  /** Keeps the trace's header. */
  header(h: TraceHeader): void {
    if (this.elsewhere) return;
    this.t.header = h;
  }

  /** The records being kept: the group of the event they follow (null between groups). */
  private group: RecordGroup | null = null;

  /** Keeps a copy of a `#:touch` record. */
  touch(rec: TouchRecord): void {
    if (!this.ok || this.elsewhere) return;
    const copy: TouchRecord = {
      line: rec.line,
      token: rec.token,
      pages: rec.pages.slice(0, 2 * rec.ranges),
      ranges: rec.ranges,
      maxPage: rec.maxPage,
    };
    if (rec.key !== undefined) copy.key = rec.key;
    if (rec.id !== undefined) copy.id = rec.id;
    this.record({ kind: 'touch', touch: copy });
  }

  /** Keeps a call stack, mapping or symbol record (the sink's to keep, as TraceSink.site says). */
  site(rec: SiteRecord): void {
    if (!this.ok || this.elsewhere) return;
    this.t.sites.push({ before: this.t.count, rec });
  }

  /** Keeps a copy of a `#:rss` sample. */
  rss(sample: RssSample): void {
    if (!this.ok || this.elsewhere) return;
    this.record({ kind: 'rss', rss: { ...sample } });
  }

  /** Keeps a `# touches incomplete from here` line met after the first event. */
  touchesIncomplete(line: number, detail: string): void {
    if (!this.ok || this.elsewhere) return;
    this.record({ kind: 'incomplete', line, detail });
  }

  /** The end of the records after an event. */
  recordsEnd(): void {
    this.group = null;
  }

  private record(r: StoredRecord): void {
    if (this.group === null) {
      this.group = { after: this.t.count - 1, records: [] };
      this.t.records.push(this.group);
    }
    this.group.records.push(r);
  }

  /** Keeps a copy of ev (the next event of the trace). */
  event(ev: TraceEvent): void {
    this.add(ev);
  }

  /** Keeps a copy of ev (the next event of the trace). */
  add(ev: TraceEvent): void {
    if (!this.ok || this.elsewhere) return;
    const t = this.t;
    const i = t.count;
    if (i !== ev.index || i >= this.limit) {
      this.drop();
      return;
    }
    const j = i % CHUNK;
    if (j === 0) {
      t.chunks.push({
        op: shared(Uint8Array, CHUNK),
        ints: shared(Int32Array, 2 * CHUNK),
        nums: shared(Float64Array, 3 * CHUNK),
        time: null,
        site: null,
      });
      t.chunkTexts.push(this.texts);
      t.chunkReallocs.push(this.reallocs);
    }
    const c = t.chunks[t.chunks.length - 1]!;
    const op = ev.op;
    const inKey = ev.inKey ?? NO_KEY;
    const outKey = ev.outKey ?? NO_KEY;
    const inId = ev.inId ?? -1;
    const outId = ev.outId ?? -1;
    if (inId > t.maxId) t.maxId = inId;
    if (outId > t.maxId) t.maxId = outId;
    c.op[j] = op;
    c.ints[2 * j] = ev.tid;
    c.nums[3 * j] = ev.n1;
    c.nums[3 * j + 1] = op === Op.mallopt ? ev.param : ev.n2;
    if (ev.time >= 0 && c.time === null) {
      c.time = shared(Float64Array, CHUNK);
      c.time.fill(-1);
    }
    if (c.time !== null) c.time[j] = ev.time;
    const site = ev.site ?? -1;
    if (site >= 0 && c.site === null) {
      c.site = shared(Int32Array, CHUNK);
      c.site.fill(-1);
    }
    if (c.site !== null) c.site[j] = site;
    this.group = null;
    // The token that is not kept must be NULL, as the readers make it; anything else is not stored.
    if (isAllocation(op)) {
      if (inKey !== 0 || inId !== -1) return this.drop();
      this.token(c, j, outKey, outId, outKey === NO_KEY ? ev.out : '');
    } else if (op === Op.free) {
      if (outKey !== 0 || outId !== -1) return this.drop();
      this.token(c, j, inKey, inId, inKey === NO_KEY ? ev.in : '');
    } else if (op === Op.realloc) {
      const r = this.reallocs++;
      t.reallocKey = grown(Float64Array, t.reallocKey, r + 1);
      t.reallocId = grown(Int32Array, t.reallocId, r + 1);
      t.reallocKey[r] = inKey;
      t.reallocId[r] = inId;
      if (inKey === NO_KEY) this.text(ev.in);
      this.token(c, j, outKey, outId, outKey === NO_KEY ? ev.out : '');
    } else {
      if (inKey !== 0 || outKey !== 0 || inId !== -1 || outId !== -1) return this.drop();
      c.nums[3 * j + 2] = 0;
      c.ints[2 * j + 1] = -1;
    }
    const delta = ev.line - i;
    if (t.lineRuns === 0 || t.lineDelta[t.lineRuns - 1] !== delta) {
      const r = t.lineRuns++;
      t.lineFrom = grown(Float64Array, t.lineFrom, r + 1);
      t.lineDelta = grown(Float64Array, t.lineDelta, r + 1);
      t.lineFrom[r] = i;
      t.lineDelta[r] = delta;
    }
    t.count++;
  }

  private token(c: Chunk, j: number, key: number, id: number, text: string): void {
    c.nums[3 * j + 2] = key;
    c.ints[2 * j + 1] = id;
    if (key === NO_KEY) this.text(text);
  }

  private text(s: string): void {
    const t = this.t;
    const start = this.texts === 0 ? 0 : t.textEnds[this.texts - 1]!;
    const n = s.length;
    // Texts beyond 4 GiB: too many to keep here.
    if (start + 3 * n > 0xffffffff) return this.drop();
    if (start + 3 * n > t.textBytes.length) {
      t.textBytes = grown(Uint8Array, t.textBytes, start + 3 * n);
      this.bytes = textsOf(t);
    }
    // Most tokens are short and ASCII: their bytes are their character codes.
    const b = t.textBytes;
    let len = n;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        len = this.bytes.write(s, start, 'utf8');
        t.ascii = false;
        break;
      }
      b[start + i] = c;
    }
    t.textEnds = grown(Uint32Array, t.textEnds, this.texts + 1);
    t.textEnds[this.texts++] = start + len;
  }

  private drop(): void {
    this.ok = false;
    this.t.chunks = [];
    this.t.records = [];
    this.t.sites = [];
  }

  /** The stored trace, or null when it was given up. */
  finish(): StoredTrace | null {
    return this.ok && this.elsewhere === this.adopted ? this.t : null;
  }
}

/** The texts of a stored trace, as one Buffer over their bytes (made once per reading). */
function textsOf(t: StoredTrace): Buffer {
  return Buffer.from(t.textBytes.buffer, t.textBytes.byteOffset, t.textBytes.length);
}

/**
 * Where a delivery of a stored trace stands: the next event, and the reallocs before it (the
 * index of its taken token in reallocKey and reallocId).
 */
export interface StoredPlace {
  i: number;
  realloc: number;
}

/** The event being read from a stored trace, with its place in the texts and the reallocs. */
class Cursor implements StoredPlace {
  i = 0;
  private run = 0;
  text: number;
  realloc: number;
  private readonly texts: Buffer;

  constructor(
    private readonly t: StoredTrace,
    from = 0,
  ) {
    this.texts = textsOf(t);
    // Reading starts at a chunk's first event.
    const c = Math.floor(from / CHUNK);
    this.i = c * CHUNK;
    this.text = t.chunkTexts[c] ?? 0;
    this.realloc = t.chunkReallocs[c] ?? 0;
    while (this.i < from) this.skip();
  }

  /** The line run of the event being read: its distance from line to index, and where it ends. */
  private delta = 0;
  private nextRun = -1;

  private seekRun(i: number): void {
    const t = this.t;
    while (this.run + 1 < t.lineRuns && t.lineFrom[this.run + 1]! <= i) this.run++;
    this.delta = t.lineDelta[this.run] ?? 0;
    this.nextRun = this.run + 1 < t.lineRuns ? t.lineFrom[this.run + 1]! : Infinity;
  }

  /** The text of the next token without a key. */
  private nextText(): string {
    const k = this.text++;
    const ends = this.t.textEnds;
    return this.texts.toString(
      this.t.ascii ? 'latin1' : 'utf8',
      k === 0 ? 0 : ends[k - 1],
      ends[k],
    );
  }

  /** Fills ev with event i, and moves on. */
  read(ev: ReadEvent): void {
    const t = this.t;
    const i = this.i++;
    const c = t.chunks[i >>> CHUNK_BITS]!;
    const j = i & (CHUNK - 1);
    if (i >= this.nextRun) this.seekRun(i);
    ev.index = i;
    ev.line = i + this.delta;
    ev.time = c.time === null ? -1 : c.time[j]!;
    ev.site = c.site === null ? -1 : c.site[j]!;
    ev.tid = c.ints[2 * j]!;
    const op = c.op[j]! as OpCode;
    ev.op = op;
    ev.n1 = c.nums[3 * j]!;
    let inKey = 0;
    let inId = -1;
    let inText = NULL_TOKEN;
    let outKey = 0;
    let outId = -1;
    let outText = NULL_TOKEN;
    if (op === Op.mallopt) {
      ev.param = c.nums[3 * j + 1]!;
      ev.n2 = 0;
    } else {
      ev.param = 0;
      ev.n2 = c.nums[3 * j + 1]!;
    }
    if (op === Op.free) {
      inKey = c.nums[3 * j + 2]!;
      inId = c.ints[2 * j + 1]!;
      if (inKey === NO_KEY) inText = this.nextText();
    } else if (op === Op.realloc) {
      const r = this.realloc++;
      inKey = t.reallocKey[r]!;
      inId = t.reallocId[r]!;
      if (inKey === NO_KEY) inText = this.nextText();
      outKey = c.nums[3 * j + 2]!;
      outId = c.ints[2 * j + 1]!;
      if (outKey === NO_KEY) outText = this.nextText();
    } else if (isAllocation(op)) {
      outKey = c.nums[3 * j + 2]!;
      outId = c.ints[2 * j + 1]!;
      if (outKey === NO_KEY) outText = this.nextText();
    }
    ev.setIn(inKey, inText);
    ev.setOut(outKey, outText);
    ev.inId = inId;
    ev.outId = outId;
  }

  /** Moves past event i without making its texts. */
  skip(): void {
    const t = this.t;
    const i = this.i++;
    const c = t.chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    const op = c.op[j]!;
    if (op === Op.realloc) {
      if (t.reallocKey[this.realloc++] === NO_KEY) this.text++;
      if (c.nums[3 * j + 2] === NO_KEY) this.text++;
    } else if ((op === Op.free || isAllocation(op)) && c.nums[3 * j + 2] === NO_KEY) this.text++;
  }
}

/**
 * A stored trace read one event at a time, from any event on, with the records that follow each:
 * for a replay that goes back and forth (the stepper, stepper.ts). Events and records come as the
 * trace's reader delivered them (as deliverStored delivers them, without the site records).
 */
export class StoredReader {
  private cursor: Cursor;
  /** The first group of records that may follow the next event read. */
  private g = 0;
  private readonly ev = new ReadEvent();
  /** The event last read, until its records are delivered (-1: none). */
  private lastRead = -1;

  constructor(private readonly t: StoredTrace) {
    this.cursor = new Cursor(t);
  }

  /** The index of the next event read. */
  get next(): number {
    return this.cursor.i;
  }

  /** Delivers the records that stand before the first event, if any, to sink. */
  leading(sink: TraceSink): void {
    const first = this.t.records[0];
    if (first === undefined || first.after !== -1) return;
    deliverRecords(first, sink, undefined);
    sink.recordsEnd?.();
  }

  /** The next event read is event i. */
  seek(i: number): void {
    this.lastRead = -1;
    const at = this.cursor.i;
    if (i === at) return;
    if (i > at && i - at < CHUNK) while (this.cursor.i < i) this.cursor.skip();
    else this.cursor = new Cursor(this.t, i);
    // The first group after event i - 1 or later.
    const groups = this.t.records;
    let lo = 0;
    let hi = groups.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (groups[mid]!.after < i) lo = mid + 1;
      else hi = mid;
    }
    this.g = lo;
  }

  /**
   * Event i (the same object each time: valid until the next read), read again only when it is not
   * the event last read, whose records are not yet delivered.
   */
  at(i: number): ReadEvent {
    if (this.lastRead === i) return this.ev;
    this.seek(i);
    return this.read();
  }

  /** The next event (the same object each time: valid until the next read). */
  read(): ReadEvent {
    const ev = this.ev;
    const i = this.cursor.i;
    this.lastRead = i;
    this.cursor.read(ev);
    const groups = this.t.records;
    while (this.g < groups.length && groups[this.g]!.after < i) this.g++;
    ev.recordsFollow = this.g < groups.length && groups[this.g]!.after === i ? true : undefined;
    return ev;
  }

  /** Delivers the records that follow the event last read, if it has any, to sink. */
  records(sink: TraceSink): void {
    this.lastRead = -1;
    if (this.ev.recordsFollow !== true) return;
    deliverRecords(this.t.records[this.g++]!, sink, undefined);
    sink.recordsEnd?.();
  }
}

/** Event i of a stored trace, as its reader delivered it (a new object). */
export function storedReadEvent(t: StoredTrace, i: number): ReadEvent {
  const ev = new ReadEvent();
  new Cursor(t, i).read(ev);
  return ev;
}

/** The number of the token event i returns (an allocation's, realloc's NEW), or -1. */
export function returnedTokenId(t: StoredTrace, i: number): number {
  const c = t.chunks[Math.floor(i / CHUNK)]!;
  const j = i % CHUNK;
  const op = c.op[j]!;
  return isAllocation(op) || op === Op.realloc ? c.ints[2 * j + 1]! : -1;
}

/** The texts of the tokens events `events` (in increasing order) return ('' for NULL). */
export function returnedTokens(t: StoredTrace, events: readonly number[]): string[] {
  const out: string[] = [];
  const ev = new ReadEvent();
  let cursor: Cursor | null = null;
  for (const i of events) {
    const c = t.chunks[Math.floor(i / CHUNK)]!;
    const key = c.nums[3 * (i % CHUNK) + 2]!;
    if (key !== NO_KEY) {
      out.push(key === 0 ? NULL_TOKEN : keyedTokenText(key));
      continue;
    }
    // A token without a key: its text, read on from the last one read when it is near.
    if (cursor === null || cursor.i > i || i - cursor.i >= CHUNK) cursor = new Cursor(t, i);
    while (cursor.i < i) cursor.skip();
    cursor.read(ev);
    out.push(ev.out);
  }
  return out;
}

/**
 * The event, up to event `upTo`, that returned the live block the token (key and text) names
 * then: the last that returned it, when none took it since; -1 when none.
 */
export function tokenReturnedAt(t: StoredTrace, key: number, text: string, upTo: number): number {
  let born = -1;
  if (key === 0) return born;
  const ev = new ReadEvent();
  const cursor = new Cursor(t);
  const same = (k: number, s: () => string): boolean =>
    k === key && (key !== NO_KEY || s() === text);
  while (cursor.i <= upTo && cursor.i < t.count) {
    const i = cursor.i;
    const c = t.chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    const op = c.op[j]!;
    // Events that name no token of this key are passed without making their texts.
    const named =
      (op === Op.realloc && (c.nums[3 * j + 2] === key || t.reallocKey[cursor.realloc] === key)) ||
      ((op === Op.free || isAllocation(op)) && c.nums[3 * j + 2] === key);
    if (!named) {
      cursor.skip();
      continue;
    }
    cursor.read(ev);
    if ((op === Op.free || op === Op.realloc) && same(ev.inKey, () => ev.in)) born = -1;
    if (op !== Op.free && same(ev.outKey, () => ev.out)) born = i;
  }
  return born;
}

/**
 * Where event i of the stored trace is delivered once edited (events are numbered again in their
 * new order): the moved event at its new place, the events it jumped over one later, and every
 * event after the trims inserted before it.
 */
export function editedIndex(edits: Edits | undefined, i: number): number {
  if (edits === undefined) return i;
  const n = edits.trimEvery ?? 0;
  const trimsBefore = (j: number): number => (n > 0 ? Math.floor(j / n) : 0);
  const f = edits.free;
  if (f !== undefined) return i + (i > f.after ? 1 : 0) + trimsBefore(i);
  const m = edits.move;
  if (m === undefined) return i + trimsBefore(i);
  if (i === m.from) return m.to + trimsBefore(m.to);
  return i + (i >= m.to && i < m.from ? 1 : 0) + trimsBefore(i);
}

/**
 * The index, once edited, of the last event delivered of those up to event m of the trace as
 * given: where a replay of the edited trace stands when it has made every call the trace as given
 * had made by then (the moved event included, when it was one of them).
 */
export function momentIndex(edits: Edits | undefined, m: number): number {
  const move = edits?.move;
  if (move !== undefined && m === move.from) return editedIndex(edits, m - 1);
  // The free inserted after event m is one of the calls made by then.
  if (edits?.free !== undefined && m === edits.free.after) return editedIndex(edits, m) + 1;
  return editedIndex(edits, m);
}

/** A copy of a stored trace's header, as its reader delivered it. */
export function storedHeader(t: StoredTrace): TraceHeader {
  return {
    env: t.header.env.map(([k, v]) => [k, v] as [string, string]),
    ...(t.header.nprocs !== undefined ? { nprocs: t.header.nprocs } : {}),
    ...(t.header.touchesRecorded !== undefined
      ? { touchesRecorded: t.header.touchesRecorded }
      : {}),
    facts: new Map(t.header.facts),
    ...(t.header.comments !== undefined ? { comments: [...t.header.comments] } : {}),
  };
}

/**
 * Delivers the stored trace to `sink`, as its reader did, or edited; from event `start` on (its
 * header only when it starts at the first event). Gives the event loop a turn now and then; stops
 * when the sink throws (the replay's own stop included).
 */
export async function deliverStored(
  t: StoredTrace,
  sink: TraceSink,
  edits?: Edits,
  start = 0,
): Promise<void> {
  const move = edits?.move;
  if (move !== undefined && start > move.to)
    throw new Error('ptsim internal error: a moved event before the start of a delivery');
  const free = edits?.free;
  if (free !== undefined && (start > free.after || move !== undefined))
    throw new Error('ptsim internal error: an inserted free before the start of a delivery');
  const groups = t.records;
  let g = 0;
  while (g < groups.length && groups[g]!.after < start - 1) g++;
  if (start === 0) {
    sink.header(storedHeader(t));
    if (g < groups.length && groups[g]!.after === -1) {
      deliverRecords(groups[g++]!, sink, move);
      sink.recordsEnd?.();
    }
  } else if (g < groups.length && groups[g]!.after === start - 1) g++;
  // The site records: those read before the first event delivered at once, the others in place.
  const sites = t.sites;
  let sr = 0;
  const sitesBefore = (i: number): void => {
    if (sink.site === undefined) return;
    while (sr < sites.length && sites[sr]!.before <= i) sink.site(sites[sr++]!.rec);
  };
  sitesBefore(start);
  const trimEvery = edits?.trimEvery ?? 0;
  const edited = move !== undefined || free !== undefined || trimEvery > 0;
  const ev = new ReadEvent();
  const cursor = new Cursor(t, start);
  const moved = move !== undefined ? new Cursor(t, move.from) : null;
  // The records after the moved event follow the event before it.
  const movedRecords =
    move !== undefined ? (groups.find((x) => x.after === move.from) ?? null) : null;
  // Where the first event delivered goes: before the moved one's place, only trims come first.
  let k = editedIndex(trimEvery > 0 ? { trimEvery } : undefined, start);
  let last = Date.now();
  // The trace as given, the common case, on a path of its own.
  const siteCount = sink.site !== undefined ? sites.length : 0;
  const runStored = sink.runStored?.bind(sink);
  while (!edited && cursor.i < t.count) {
    const i = cursor.i;
    if (runStored !== undefined) {
      // The sink replays what it can up to the next event with records after it, or site records
      // before it, and at most a slice of events between two looks at the clock.
      let stop = Math.min(t.count, i + RUN_SLICE);
      if (g < groups.length && groups[g]!.after < stop) stop = groups[g]!.after;
      if (sr < siteCount && sites[sr]!.before < stop) stop = sites[sr]!.before;
      runStored(t, cursor, stop);
      if (cursor.i > i) {
        // Those events take no text: the cursor's place and its count of reallocs moved.
        if (Date.now() - last >= YIELD_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          last = Date.now();
        }
        continue;
      }
    }
    if (sr < siteCount && sites[sr]!.before <= i) sitesBefore(i);
    const own = g < groups.length && groups[g]!.after === i ? groups[g++]! : null;
    cursor.read(ev);
    ev.recordsFollow = own !== null ? true : undefined;
    sink.event(ev);
    if (own !== null) {
      deliverRecords(own, sink, undefined);
      sink.recordsEnd?.();
    }
    if ((i & 4095) === 0 && Date.now() - last >= YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      last = Date.now();
    }
  }
  while (cursor.i < t.count) {
    const i = cursor.i;
    if (runStored !== undefined) {
      // As in the loop above, and up to the next edit: the events in between are numbered
      // k - i more than in the store.
      let stop = Math.min(t.count, i + RUN_SLICE);
      if (g < groups.length && groups[g]!.after < stop) stop = groups[g]!.after;
      if (sr < siteCount && sites[sr]!.before < stop) stop = sites[sr]!.before;
      if (move !== undefined)
        for (const e of [move.to, move.from - 1, move.from, move.takenAt])
          if (e >= i && e < stop) stop = e;
      if (free !== undefined && free.after >= i && free.after < stop) stop = free.after;
      // The next event a trim follows.
      if (trimEvery > 0) stop = Math.min(stop, i + trimEvery - 1 - (i % trimEvery));
      runStored(t, cursor, stop, k - i);
      if (cursor.i > i) {
        k += cursor.i - i;
        if (Date.now() - last >= YIELD_MS) {
          await new Promise<void>((resolve) => setImmediate(resolve));
          last = Date.now();
        }
        continue;
      }
    }
    sitesBefore(i);
    if (moved !== null && i === move!.to) {
      moved.read(ev);
      ev.outId = move!.id;
      ev.recordsFollow = undefined;
      ev.index = k++;
      sink.event(ev);
    }
    const own = g < groups.length && groups[g]!.after === i ? groups[g++]! : null;
    if (moved !== null && i === move!.from) {
      // Delivered already: read past it.
      cursor.skip();
    } else {
      cursor.read(ev);
      if (move !== undefined && i === move.takenAt) ev.inId = move.id;
      if (edited) ev.index = k;
      k++;
      const extra = movedRecords !== null && i === move!.from - 1 ? movedRecords : null;
      ev.recordsFollow = own !== null || extra !== null ? true : undefined;
      sink.event(ev);
      if (own !== null) deliverRecords(own, sink, move, free);
      if (extra !== null) deliverRecords(extra, sink, move);
      if (own !== null || extra !== null) sink.recordsEnd?.();
    }
    if (free !== undefined && i === free.after) {
      ev.index = k++;
      ev.tid = free.tid;
      ev.op = Op.free;
      ev.site = -1;
      ev.n1 = 0;
      ev.n2 = 0;
      ev.param = 0;
      ev.setIn(free.key, free.key === NO_KEY ? free.token : NULL_TOKEN);
      ev.setOut(0, NULL_TOKEN);
      ev.inId = free.id;
      ev.outId = -1;
      ev.recordsFollow = undefined;
      sink.event(ev);
    }
    if (trimEvery > 0 && (i + 1) % trimEvery === 0) {
      ev.index = k++;
      ev.op = Op.mallocTrim;
      ev.site = -1;
      ev.n1 = 0;
      ev.n2 = 0;
      ev.param = 0;
      ev.setIn(0, NULL_TOKEN);
      ev.setOut(0, NULL_TOKEN);
      ev.inId = -1;
      ev.outId = -1;
      ev.recordsFollow = undefined;
      sink.event(ev);
    }
    if ((i & 4095) === 0 && Date.now() - last >= YIELD_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      last = Date.now();
    }
  }
  sitesBefore(t.count);
}

/**
 * Hands a group's records to the sink. Between a moved allocation and the event that takes its
 * token, a `#:touch` record names it by the number it has in the edited trace.
 */
function deliverRecords(
  group: RecordGroup,
  sink: TraceSink,
  move: Edits['move'],
  free?: Edits['free'],
): void {
  for (const r of group.records) {
    // A block freed earlier is not written after its free.
    if (
      r.kind === 'touch' &&
      free !== undefined &&
      group.after > free.after &&
      r.touch.id === free.id
    )
      continue;
    if (r.kind === 'rss') {
      sink.rss?.(r.rss);
      continue;
    }
    if (r.kind === 'incomplete') {
      sink.touchesIncomplete?.(r.line, r.detail);
      continue;
    }
    const rec = r.touch;
    if (
      move !== undefined &&
      rec.id === move.oldId &&
      group.after >= move.from &&
      (move.takenAt < 0 || group.after < move.takenAt)
    )
      sink.touch?.({ ...rec, id: move.id });
    else sink.touch?.(rec);
  }
}

/** What explain needs to know of one event of a stored trace. */
export interface StoredEvent {
  index: number;
  line: number;
  tid: number;
  op: OpCode;
  n1: number;
  /** The token it returns (allocations, realloc) or takes (free): key, number and text. */
  key: number;
  id: number;
  token: string;
}

/** Event i of a stored trace. */
export function storedEvent(t: StoredTrace, i: number): StoredEvent {
  const ev = new ReadEvent();
  new Cursor(t, i).read(ev);
  const takes = ev.op === Op.free;
  return {
    index: i,
    line: ev.line,
    tid: ev.tid,
    op: ev.op,
    n1: ev.n1,
    key: takes ? ev.inKey : ev.outKey,
    id: takes ? ev.inId : ev.outId,
    token: takes ? ev.in : ev.out,
  };
}

/**
 * How allocation `from` can be moved to the earliest place it could take: before the first event
 * of its thread (of this thread's life, after an exit with the same number), and after the last
 * earlier event that names its token; null when it cannot move (it is there already).
 */
export function earliestMove(t: StoredTrace, from: number): NonNullable<Edits['move']> | null {
  const target = storedEvent(t, from);
  // A token with a key is the same token as any with the same key: earliestMoves reads the
  // columns, without making the events.
  if (target.key !== NO_KEY) return earliestMoves(t, [from]).get(from)!;
  // A token without a key: the events, by text.
  let first = -1;
  let after = 0;
  const ev = new ReadEvent();
  const cursor = new Cursor(t);
  const same = (key: number, text: () => string): boolean =>
    key === NO_KEY && text() === target.token;
  while (cursor.i < from) {
    const i = cursor.i;
    cursor.read(ev);
    // The first event of the target's thread since the thread last exited.
    if (ev.tid === target.tid) {
      if (ev.op === Op.exit) {
        first = -1;
        after = Math.max(after, i + 1);
        continue;
      }
      if (first < 0) first = i;
    }
    if (same(ev.inKey, () => ev.in) || same(ev.outKey, () => ev.out))
      after = Math.max(after, i + 1);
  }
  return moveTo(t, from, target.id, first < 0 ? from : first, after);
}

/**
 * earliestMove of several allocations at once: of those whose tokens have keys, in one scan of the
 * store's columns for all of them (a scan reads the store's columns up to the latest of them: on a trace of
 * millions of events, about as long as a replay's first steps). The moves by allocation.
 */
export function earliestMoves(
  t: StoredTrace,
  froms: readonly number[],
): Map<number, NonNullable<Edits['move']> | null> {
  const out = new Map<number, NonNullable<Edits['move']> | null>();
  const targets = [...new Set(froms)].map((from) => storedEvent(t, from));
  for (const x of targets) if (x.key === NO_KEY) out.set(x.index, earliestMove(t, x.index));
  const ts = targets.filter((x) => x.key !== NO_KEY);
  const n = ts.length;
  // As earliestMove, for each: the first event of its thread since the thread last exited, and
  // the place after the last event that names its token.
  const first = ts.map(() => -1);
  const after = ts.map(() => 0);
  const end = Math.max(0, ...ts.map((x) => x.index));
  let r = 0;
  for (let i = 0; i < end; i++) {
    const c = t.chunks[i >>> CHUNK_BITS]!;
    const j = i & (CHUNK - 1);
    const op = c.op[j]!;
    const isRealloc = op === Op.realloc;
    const inKey = op === Op.free ? c.nums[3 * j + 2]! : isRealloc ? t.reallocKey[r]! : 0;
    if (isRealloc) r++;
    const outKey = isRealloc || isAllocation(op) ? c.nums[3 * j + 2]! : 0;
    const tid = c.ints[2 * j]!;
    for (let k = 0; k < n; k++) {
      const x = ts[k]!;
      if (i >= x.index) continue;
      if (tid === x.tid) {
        if (op === Op.exit) {
          first[k] = -1;
          after[k] = Math.max(after[k]!, i + 1);
          continue;
        }
        if (first[k]! < 0) first[k] = i;
      }
      if (x.key !== 0 && (inKey === x.key || outKey === x.key))
        after[k] = Math.max(after[k]!, i + 1);
    }
  }
  for (let k = 0; k < n; k++) {
    const x = ts[k]!;
    out.set(x.index, moveTo(t, x.index, x.id, first[k]! < 0 ? x.index : first[k]!, after[k]!));
  }
  return out;
}

/**
 * The move of allocation `from`, whose token has number `id`, to the later of `first` and
 * `after`; null when that is not earlier.
 */
function moveTo(
  t: StoredTrace,
  from: number,
  id: number,
  first: number,
  after: number,
): NonNullable<Edits['move']> | null {
  const to = Math.max(first, after);
  if (to >= from) return null;
  // The event that takes the token next: the first after `from` to take its number.
  let takenAt = -1;
  let r = t.chunkReallocs[from >>> CHUNK_BITS] ?? 0;
  for (let i = from & ~(CHUNK - 1); i < t.count; i++) {
    const c = t.chunks[i >>> CHUNK_BITS]!;
    const j = i & (CHUNK - 1);
    const op = c.op[j]!;
    if (op !== Op.free && op !== Op.realloc) continue;
    const taken = op === Op.free ? c.ints[2 * j + 1]! : t.reallocId[r++]!;
    if (i > from && taken === id) {
      takenAt = i;
      break;
    }
  }
  return { from, to, id: t.maxId + 1, oldId: id, takenAt };
}

/** Whether thread `tid` exits between events `from` and `to` (both included). */
export function threadExits(t: StoredTrace, tid: number, from: number, to: number): boolean {
  for (let i = from; i <= to && i < t.count; i++) {
    const c = t.chunks[Math.floor(i / CHUNK)]!;
    const j = i % CHUNK;
    if (c.op[j] === Op.exit && c.ints[2 * j] === tid) return true;
  }
  return false;
}

/**
 * The last event, up to event `upTo`, that names the live block allocated at event `born` with
 * token number `id`: its allocation, or an event that a `#:touch` record naming it follows. A trace
 * does not see the program's reads and writes: this is the earliest the block could be freed as
 * far as the trace shows.
 */
export function lastUse(t: StoredTrace, born: number, id: number, upTo: number): number {
  let last = born;
  for (const g of t.records) {
    if (g.after <= last) continue;
    if (g.after > upTo) break;
    if (g.records.some((r) => r.kind === 'touch' && r.touch.id === id)) last = g.after;
  }
  return last;
}
