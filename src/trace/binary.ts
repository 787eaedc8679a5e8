/**
 * The binary form of a native trace (docs/trace-format.md, "The binary form"): the same events
 * and records as the text, in blocks of columns that a reader copies into typed arrays rather than
 * parses, with the tokens' numbers (token-numbers.ts) carried along, so that reading one costs
 * neither the parsing of numbers nor the hashing of tokens. `ptsim convert --binary` and
 * `ptsim record --binary` write it; every reader of native traces reads it (reader.ts), plain or
 * compressed, and delivers exactly what the text would have delivered: the same sink calls, in
 * the same order, with the same events (indexes, lines, times, keys, texts and numbers), records
 * and header.
 *
 * Layout (integers little-endian):
 *
 *     file   := MAGIC (8 bytes) version:u32 0:u32 block* end
 *     block  := 1:u32 length:u32 payload      (length bytes, a multiple of 8)
 *     end    := 2:u32 length:u32 JSON {events, lines, peakLive}
 *     payload:= metaLength:u32 meta (JSON) columns, each starting at a multiple of 8
 *
 * A block holds up to BLOCK_ENTRIES entries: events and the records between them, in trace order.
 * Each entry has a code (an OpCode, plus FOLLOWED when records follow the event; or a record's
 * code), and each event a byte of flags that says which of the sparse columns it has an element
 * in: its size (N1), second number (N2), mallopt parameter (PARAM), call stack (SITE), the token it
 * takes (IN) and the token it returns (OUT). A token taken is given by its number, from which the
 * reader knows its key and text (the number was given to that token when it was returned), or,
 * without a number (a pointer never returned), by its key; NULL is not written at all. A token
 * returned is given by its key; its number follows the numbering rule (the number released last,
 * or a new one) unless OUT_ID says it is written out (a token returned again while it has a
 * number). Keys are split in a high part (one of at most 255 per block) and 32 low bits when that
 * is possible, else kept as doubles. Sizes take 2 or 4 bytes when they fit, thread numbers 1, 2
 * or 4; times are differences from the event before when they allow, else doubles. The meta part
 * has the widths chosen, the counts of each column, the lines (runs of a constant distance from
 * index to line), the texts of tokens without a key, and the records, which are few.
 */

import { grown } from '../core/release.js';
import {
  BINARY_MAGIC,
  BLOCK_END_KIND,
  BLOCK_EVENTS_KIND,
  BLOCK_HEADER,
  FILE_HEADER,
  isBinaryTrace,
  type BinaryEnd,
} from './binary-end.js';
import { ReadEvent } from './event.js';
import { ReadRss, ReadTouch } from './records.js';
import { NO_KEY, tokenKey } from './token-key.js';
import { TokenNumbers } from './token-numbers.js';
import {
  NULL_TOKEN,
  Op,
  TraceReadError,
  type OpCode,
  type RssSample,
  type SiteRecord,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from './types.js';

export { BINARY_MAGIC, isBinaryTrace };

const VERSION = 1;

/** Entries a writer puts in a block (a reader takes up to BLOCK_MAX). */
const BLOCK_ENTRIES = 16384;
const BLOCK_MAX = 1 << 20;

/** Codes of entries: an OpCode (+ FOLLOWED), or a record. */
const OP_MASK = 0x1f;
const FOLLOWED = 0x20;
const RECORD = 0x40;
const TOUCH = 0x40;
const RSS = 0x41;
const RECORDS_END = 0x42;
const INCOMPLETE = 0x43;
const SITE = 0x44;
const EXACT = 0x45;
const HEADER = 0x46;

/** Flags of an event. */
const F_N1 = 1;
const F_N2 = 2;
const F_PARAM = 4;
const F_SITE = 8;
const F_IN = 16;
const F_OUT = 32;
const F_OUT_ID = 64;
const F_KNOWN = 127;

const TWO32 = 4294967296;

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** The sparse columns of a block, in the order of the columns (and of the meta part's counts). */
const SPARSE = ['n1', 'n2', 'param', 'site', 'ins', 'inKeys', 'outs', 'outIds'] as const;

/**
 * The counts of the sparse columns of a block, in SPARSE's order. A class of small integers
 * (badMeta bounds the counts of a meta part), so that every Counts has one shape: objects made by
 * Object.fromEntries, or with fields of doubles here and small integers there, sent readColumns's
 * compiled code back to the interpreter at every block.
 */
class Counts {
  n1 = 0;
  n2 = 0;
  param = 0;
  site = 0;
  ins = 0;
  inKeys = 0;
  outs = 0;
  outIds = 0;
}

/** A block's entries counted by readColumns's scan: events, records and the sparse columns. */
class EntryCounts extends Counts {
  events = 0;
  recs = 0;
}

/** A block's meta part (JSON). */
interface Meta {
  /** Index of the first event. */
  first: number;
  /** Entries, events. */
  n: number;
  e: number;
  /** Bytes a thread number takes: 1, 2 or 4 (signed). */
  tidW: number;
  /** Bytes a size takes: 2 or 4 (unsigned), or 8 (double). */
  n1W: number;
  /** A key returned: 5 (a high part's index and 32 low bits) or 8 (double). */
  keyW: number;
  /** The high parts of keys (keyW 5). */
  hi: number[];
  /** 0: no times; 4: differences (unsigned), from `time0` for the first event; 8: doubles. */
  timeW: number;
  time0: number;
  /** The columns' counts, as Counts in order. */
  c: number[];
  /** Line runs: event offsets in the block and the distance from index to line, in pairs. */
  runs: number[];
  /** The texts of tokens without a key, in order (an event's taken token before its returned one). */
  texts: string[];
  /** The records' contents, in the order of their entries (RECORDS_END has none). */
  recs: unknown[];
}

/** How a touch record is written in a block's records. */
interface TouchJson {
  l: number;
  k: number;
  t: string;
  i: number;
  p: number[];
}

/** How a sample is written. */
interface RssJson {
  l: number;
  t: number;
  a: number;
  h: number;
  m: string;
  r: number;
  T: number;
}

/**
 * The numbering rule of token-numbers.ts, without the tokens: the numbers released (the last on
 * top) and the next new one. A token returned gets the number released last, or a new one.
 */
class NumberRule {
  private released = new Int32Array(1024);
  private n = 0;
  /** Numbers ever given: the next new one. */
  next = 0;

  /** A taken token gives its number up. */
  release(id: number): void {
    if (this.n === this.released.length) {
      const bigger = new Int32Array(this.n * 2);
      bigger.set(this.released);
      this.released = bigger;
    }
    this.released[this.n++] = id;
  }

  /** The number the rule gives the next token returned. */
  peek(): number {
    return this.n > 0 ? this.released[this.n - 1]! : this.next;
  }

  /** Gives it. */
  take(): number {
    return this.n > 0 ? this.released[--this.n]! : this.next++;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * A sink that encodes what it is given as a binary trace, handing the bytes to `write` a block at
 * a time. The tokens are numbered here, by the rule every reader of the text follows, whatever
 * numbers the events carried.
 */
export class BinaryTraceEncoder implements TraceSink {
  private readonly numbers = new TokenNumbers();
  /** The numbering rule's state, mirrored, to tell which numbers the reader will find by it. */
  private readonly rule = new NumberRule();

  private readonly codes = new Uint8Array(BLOCK_ENTRIES);
  private readonly flags = new Uint8Array(BLOCK_ENTRIES);
  private readonly tids = new Int32Array(BLOCK_ENTRIES);
  private readonly times = new Float64Array(BLOCK_ENTRIES);
  private readonly n1s = new Float64Array(BLOCK_ENTRIES);
  private readonly n2s = new Float64Array(BLOCK_ENTRIES);
  private readonly params = new Float64Array(BLOCK_ENTRIES);
  private readonly sites = new Int32Array(BLOCK_ENTRIES);
  private readonly inIds = new Int32Array(BLOCK_ENTRIES);
  private readonly inKeys = new Float64Array(BLOCK_ENTRIES);
  private readonly outKeys = new Float64Array(BLOCK_ENTRIES);
  private readonly outIds = new Int32Array(BLOCK_ENTRIES);
  private readonly c = new Counts();
  private n = 0;
  private e = 0;
  private first = 0;
  private runs: number[] = [];
  private texts: string[] = [];
  private recs: unknown[] = [];
  /** The index the next event should have, to stay in this block. */
  private nextIndex = 0;
  private started = false;
  private ended = false;
  /** Events encoded; the last event's line. */
  events = 0;
  private lastLine = 0;

  constructor(private readonly write: (bytes: Uint8Array) => void) {}

  header(h: TraceHeader): void {
    // Member by member, in the order the reader made them (the facts' map as its entries).
    const json: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(h))
      json[k] = k === 'facts' ? [...(v as Map<string, string>)] : v;
    this.record(HEADER, json);
  }

  event(ev: TraceEvent): void {
    // Room for the event and its exact sizes, in the same block.
    if (this.n >= BLOCK_ENTRIES - 2 || (this.e > 0 && ev.index !== this.nextIndex)) this.flush();
    if (ev.exact1 !== undefined || ev.exact2 !== undefined)
      this.record(EXACT, [ev.exact1?.toString() ?? '', ev.exact2?.toString() ?? '']);
    if (this.e === 0) {
      this.first = ev.index;
      this.nextIndex = ev.index;
    }
    const k = this.n++;
    const e = this.e++;
    this.nextIndex++;
    this.events++;
    this.lastLine = ev.line;
    this.codes[k] = ev.op + (ev.recordsFollow === true ? FOLLOWED : 0);
    const delta = ev.line - ev.index;
    const runs = this.runs;
    if (runs.length === 0 || runs[runs.length - 1] !== delta) runs.push(e, delta);
    this.tids[e] = ev.tid;
    this.times[e] = ev.time;
    const c = this.c;
    let f = 0;
    if (ev.n1 !== 0) {
      f |= F_N1;
      this.n1s[c.n1++] = ev.n1;
    }
    if (ev.n2 !== 0) {
      f |= F_N2;
      this.n2s[c.n2++] = ev.n2;
    }
    if (ev.param !== 0) {
      f |= F_PARAM;
      this.params[c.param++] = ev.param;
    }
    const site = ev.site ?? -1;
    if (site !== -1) {
      f |= F_SITE;
      this.sites[c.site++] = site;
    }
    // The taken token first, then the returned one, as the readers number them.
    const inKey = ev.inKey ?? tokenKey(ev.in);
    if (inKey !== 0) {
      f |= F_IN;
      const text = inKey === NO_KEY ? ev.in : NULL_TOKEN;
      const id = this.numbers.takeIn(inKey, text);
      this.inIds[c.ins++] = id;
      if (id >= 0) {
        this.rule.release(id);
      } else {
        this.inKeys[c.inKeys++] = inKey;
        if (inKey === NO_KEY) this.texts.push(text);
      }
    }
    const outKey = ev.outKey ?? tokenKey(ev.out);
    if (outKey !== 0) {
      f |= F_OUT;
      const text = outKey === NO_KEY ? ev.out : NULL_TOKEN;
      const id = this.numbers.numberOut(outKey, text);
      this.outKeys[c.outs++] = outKey;
      if (outKey === NO_KEY) this.texts.push(text);
      // A number given by the rule is never one a live token holds: any other is written out.
      if (id === this.rule.peek()) this.rule.take();
      else {
        f |= F_OUT_ID;
        this.outIds[c.outIds++] = id;
      }
    }
    this.flags[e] = f;
  }

  touch(rec: TouchRecord): void {
    const key = rec.key ?? tokenKey(rec.token);
    const text = key === NO_KEY ? rec.token : NULL_TOKEN;
    const json: TouchJson = {
      l: rec.line,
      k: key,
      t: text,
      i: this.numbers.lookup(key, text),
      p: Array.from(rec.pages.subarray(0, 2 * rec.ranges)),
    };
    this.record(TOUCH, json);
  }

  rss(s: RssSample): void {
    const json: RssJson = {
      l: s.line,
      t: s.time,
      a: s.anon,
      h: s.heap,
      m: s.mark,
      r: s.rec ?? -1,
      T: s.total ?? -1,
    };
    this.record(RSS, json);
  }

  touchesIncomplete(line: number, detail: string): void {
    this.record(INCOMPLETE, { l: line, d: detail });
  }

  site(rec: SiteRecord): void {
    this.record(SITE, rec);
  }

  recordsEnd(): void {
    this.record(RECORDS_END, undefined);
  }

  /** Writes what is gathered and the end of the trace (`lines`: the lines of the text read). */
  end(lines = this.lastLine): void {
    if (this.ended) return;
    this.ended = true;
    this.flush();
    // peakLive: the numbers the rule gave, as many as the tokens once live together (a new number
    // is given only when every lower one is held), for the executable's choice of huge pages.
    const end: BinaryEnd = { events: this.events, lines, peakLive: this.rule.next };
    const json = new TextEncoder().encode(JSON.stringify(end));
    const out = new Uint8Array(BLOCK_HEADER + json.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, BLOCK_END_KIND, true);
    dv.setUint32(4, json.length, true);
    out.set(json, BLOCK_HEADER);
    this.write(out);
  }

  private record(code: number, json: unknown): void {
    if (this.n >= BLOCK_ENTRIES) this.flush();
    this.codes[this.n++] = code;
    if (code !== RECORDS_END) this.recs.push(json);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    const head = new Uint8Array(FILE_HEADER);
    head.set(BINARY_MAGIC);
    new DataView(head.buffer).setUint32(8, VERSION, true);
    this.write(head);
  }

  /** Encodes the block gathered, if any. */
  private flush(): void {
    this.start();
    if (this.n === 0) return;
    const { n, e, c } = this;
    const tidW = widthOfTids(this.tids, e);
    const n1W = allUint(this.n1s, c.n1, 0xffff) ? 2 : allUint(this.n1s, c.n1, 0xffffffff) ? 4 : 8;
    const hi: number[] = [];
    const keyW = splitKeys(this.outKeys, c.outs, hi) ? 5 : 8;
    const { timeW, time0 } = timesOf(this.times, e);
    const meta: Meta = {
      first: this.first,
      n,
      e,
      tidW,
      n1W,
      keyW,
      hi: keyW === 5 ? hi : [],
      timeW,
      time0,
      c: countsList(c),
      runs: this.runs,
      texts: this.texts,
      recs: this.recs,
    };
    const metaBytes = new TextEncoder().encode(JSON.stringify(meta));
    const lay = layout(meta, metaBytes.length);
    const payload = new Uint8Array(lay.end);
    const buf = payload.buffer;
    new DataView(buf).setUint32(0, metaBytes.length, true);
    payload.set(metaBytes, 4);
    payload.set(this.codes.subarray(0, n), lay.codes);
    payload.set(this.flags.subarray(0, e), lay.flags);
    const tids = this.tids.subarray(0, e);
    if (tidW === 1) new Uint8Array(buf, lay.tids, e).set(tids);
    else if (tidW === 2) new Uint16Array(buf, lay.tids, e).set(tids);
    else new Int32Array(buf, lay.tids, e).set(tids);
    const n1s = this.n1s.subarray(0, c.n1);
    if (n1W === 2) new Uint16Array(buf, lay.n1, c.n1).set(n1s);
    else if (n1W === 4) new Uint32Array(buf, lay.n1, c.n1).set(n1s);
    else new Float64Array(buf, lay.n1, c.n1).set(n1s);
    new Float64Array(buf, lay.n2, c.n2).set(this.n2s.subarray(0, c.n2));
    new Float64Array(buf, lay.param, c.param).set(this.params.subarray(0, c.param));
    new Int32Array(buf, lay.site, c.site).set(this.sites.subarray(0, c.site));
    new Int32Array(buf, lay.ins, c.ins).set(this.inIds.subarray(0, c.ins));
    new Float64Array(buf, lay.inKeys, c.inKeys).set(this.inKeys.subarray(0, c.inKeys));
    if (keyW === 8) new Float64Array(buf, lay.outs, c.outs).set(this.outKeys.subarray(0, c.outs));
    else {
      const lo = new Uint32Array(buf, lay.outs, c.outs);
      const idx = new Uint8Array(buf, lay.outHi, c.outs);
      const index = new Map(hi.map((h, i) => [h, i]));
      for (let k = 0; k < c.outs; k++) {
        const key = this.outKeys[k]!;
        const h = Math.floor(key / TWO32);
        lo[k] = key - h * TWO32;
        idx[k] = index.get(h)!;
      }
    }
    new Int32Array(buf, lay.outIds, c.outIds).set(this.outIds.subarray(0, c.outIds));
    if (timeW === 4) {
      const d = new Uint32Array(buf, lay.times, e);
      let prev = time0;
      for (let k = 0; k < e; k++) {
        const t = this.times[k]!;
        d[k] = t - prev;
        prev = t;
      }
    } else if (timeW === 8) new Float64Array(buf, lay.times, e).set(this.times.subarray(0, e));
    const head = new Uint8Array(BLOCK_HEADER);
    const dv = new DataView(head.buffer);
    dv.setUint32(0, BLOCK_EVENTS_KIND, true);
    dv.setUint32(4, payload.length, true);
    this.write(head);
    this.write(payload);
    this.n = 0;
    this.e = 0;
    Object.assign(this.c, new Counts());
    this.runs = [];
    this.texts = [];
    this.recs = [];
  }
}

/** The counts as the meta part lists them. */
function countsList(c: Counts): number[] {
  return SPARSE.map((k) => c[k]);
}

/** The counts of a meta part's list. */
function countsOf(list: readonly number[]): Counts {
  const c = new Counts();
  c.n1 = list[0]! | 0;
  c.n2 = list[1]! | 0;
  c.param = list[2]! | 0;
  c.site = list[3]! | 0;
  c.ins = list[4]! | 0;
  c.inKeys = list[5]! | 0;
  c.outs = list[6]! | 0;
  c.outIds = list[7]! | 0;
  return c;
}

/** The narrowest width that holds every thread number (signed 32 bits at most). */
function widthOfTids(a: Int32Array, n: number): number {
  let min = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min < 0) return 4;
  return max < 0x100 ? 1 : max < 0x10000 ? 2 : 4;
}

/** Whether the first n values are integers from 0 to max. */
function allUint(a: Float64Array, n: number, max: number): boolean {
  for (let i = 0; i < n; i++) {
    const v = a[i]!;
    if (!(v >= 0 && v <= max) || Math.floor(v) !== v || Object.is(v, -0)) return false;
  }
  return true;
}

/** Whether the keys split into at most 255 high parts (listed in `hi`) and 32 low bits. */
function splitKeys(a: Float64Array, n: number, hi: number[]): boolean {
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const h = Math.floor(a[i]! / TWO32);
    if (!seen.has(h)) {
      if (seen.size === 255) return false;
      seen.add(h);
      hi.push(h);
    }
  }
  return true;
}

/** How a block's times are written: none, unsigned differences, or doubles. */
function timesOf(a: Float64Array, n: number): { timeW: number; time0: number } {
  let none = true;
  let deltas = true;
  let prev = n > 0 ? a[0]! : 0;
  for (let i = 0; i < n; i++) {
    const t = a[i]!;
    if (t !== -1) none = false;
    const d = t - prev;
    if (!Number.isSafeInteger(t) || t < 0 || d >>> 0 !== d) deltas = false;
    prev = t;
  }
  if (none) return { timeW: 0, time0: 0 };
  return deltas ? { timeW: 4, time0: a[0]! } : { timeW: 8, time0: 0 };
}

/** Where each column of a block starts, from its meta part's length and counts; and its end. */
type Layout = Record<
  (typeof SPARSE)[number] | 'codes' | 'flags' | 'tids' | 'outHi' | 'times' | 'end',
  number
>;

function layout(m: Meta, metaLength: number): Layout {
  const c = countsOf(m.c);
  let at = align8(4 + metaLength);
  const take = (bytes: number): number => {
    const here = at;
    at = align8(at + bytes);
    return here;
  };
  // In the order of the columns: each take() starts where the one before ended.
  const split = m.keyW === 5;
  return {
    codes: take(m.n),
    flags: take(m.e),
    tids: take(m.tidW * m.e),
    n1: take(m.n1W * c.n1),
    n2: take(8 * c.n2),
    param: take(8 * c.param),
    site: take(4 * c.site),
    ins: take(4 * c.ins),
    inKeys: take(8 * c.inKeys),
    outs: take((split ? 4 : 8) * c.outs),
    outHi: take(split ? c.outs : 0),
    outIds: take(4 * c.outIds),
    times: take(m.timeW * m.e),
    end: at,
  };
}

// ---------------------------------------------------------------------------------------------
// Reading

/** What reading a binary trace found (as TraceParser.end reports it for a text). */
export interface BinaryReadResult {
  events: number;
  lines: number;
}

/**
 * A checked meta part in an object of one shape, whose lists are each of one kind of array (JSON
 * gives an empty list, a list of small integers and one of larger numbers, strings or objects
 * each a kind of its own), and whose numbers are each held one way: a field that held a small
 * integer in one block and a larger number in the next changed the object's hidden class, and
 * sent readColumns's compiled code back to the interpreter at the blocks that followed.
 */
class StableMeta implements Meta {
  // Numbers that may be large (or not whole) start as doubles: every value is then held as one.
  first = 0.5;
  time0 = 0.5;
  // Numbers badMeta bounds: small integers.
  n = 0;
  e = 0;
  tidW = 0;
  n1W = 0;
  keyW = 0;
  timeW = 0;
  readonly hi: number[];
  readonly c: number[];
  readonly runs: number[];
  readonly texts: string[];
  readonly recs: unknown[];

  constructor(m: Meta) {
    this.first = m.first;
    this.time0 = m.time0;
    this.n = m.n | 0;
    this.e = m.e | 0;
    this.tidW = m.tidW | 0;
    this.n1W = m.n1W | 0;
    this.keyW = m.keyW | 0;
    this.timeW = m.timeW | 0;
    this.hi = doubles(m.hi);
    this.c = doubles(m.c);
    this.runs = doubles(m.runs);
    this.texts = m.texts.length > 0 ? m.texts : NO_TEXTS;
    this.recs = m.recs.length > 0 ? m.recs : NO_RECS;
  }
}

/** Whether counts are those of a meta part's list. */
function sameCounts(c: Counts, list: readonly number[]): boolean {
  const mine = countsList(c);
  for (let i = 0; i < mine.length; i++) if (mine[i] !== list[i]) return false;
  return true;
}

/** A copy of a list of numbers as an array of doubles, whatever the numbers are. */
function doubles(a: readonly number[]): number[] {
  const out = [0.5];
  out.pop();
  for (const v of a) out.push(v);
  return out;
}

/** An empty list of texts, or of records, whose array kind is that of a list with some. */
const NO_TEXTS: string[] = [''];
NO_TEXTS.pop();
const NO_RECS: unknown[] = [{}];
NO_RECS.pop();

/** A block's columns, checked, each of one type, as BinaryTraceReader.deliverBlock reads them. */
class BlockColumns {
  codes: Uint8Array = new Uint8Array(0);
  flags: Uint8Array = new Uint8Array(0);
  tids: Int32Array = new Int32Array(0);
  n1s: Float64Array = new Float64Array(0);
  n2s: Float64Array = new Float64Array(0);
  params: Float64Array = new Float64Array(0);
  sites: Int32Array = new Int32Array(0);
  inIds: Int32Array = new Int32Array(0);
  inKeys: Float64Array = new Float64Array(0);
  outKeys: Float64Array = new Float64Array(0);
  outIds: Int32Array = new Int32Array(0);
  times: Float64Array = new Float64Array(0);
  timeW = 0;
  first = 0;
  n = 0;
  runs: Float64Array = new Float64Array(0);
  texts = NO_TEXTS;
  recs = NO_RECS;
}

/**
 * Reads a binary trace pushed to it in pieces of any size, delivering to `sink` what the text
 * would have delivered. A damaged file is a TraceReadError naming the file and the byte where the
 * damage was found; everything before the block found damaged is delivered.
 */
export class BinaryTraceReader {
  private buf = new Uint8Array(1 << 16);
  private start = 0;
  private end = 0;
  /** Bytes of the input consumed before buf[start]. */
  private offset = 0;
  private headerRead = false;
  private result: BinaryReadResult | null = null;

  private readonly ev = new ReadEvent();
  private readonly touchRec = new ReadTouch();
  private readonly rssRec = new ReadRss();
  private delivered = 0;

  /** The numbering rule's state, and the token that has each number. */
  private readonly rule = new NumberRule();
  private idKey = new Float64Array(1024);
  private live = new Uint8Array(1024);
  private readonly idText = new Map<number, string>();

  /** A block's columns, widened to one type each. */
  private tids = new Int32Array(BLOCK_ENTRIES);
  private n1s = new Float64Array(BLOCK_ENTRIES);
  private outKeys = new Float64Array(BLOCK_ENTRIES);
  private times = new Float64Array(BLOCK_ENTRIES);
  private readonly cols = new BlockColumns();
  /** Holds the block being read (consume). */
  private blockBuf = new ArrayBuffer(1 << 16);

  constructor(
    private readonly name: string,
    private readonly sink: TraceSink,
  ) {
    if (!LITTLE_ENDIAN)
      throw new TraceReadError(name, 'binary traces are read on little-endian machines only');
  }

  /** Takes the next bytes of the input. */
  push(chunk: Uint8Array): void {
    const len = chunk.length;
    if (this.end + len > this.buf.length) {
      // What is held moves to the front, into a bigger buffer when it must.
      const held = this.end - this.start;
      let size = this.buf.length;
      while (held + len > size) size *= 2;
      if (size === this.buf.length) this.buf.copyWithin(0, this.start, this.end);
      else {
        const bigger = new Uint8Array(size);
        bigger.set(this.buf.subarray(this.start, this.end));
        this.buf = bigger;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += len;
    this.consume();
  }

  /** The end of the input: what was read, or the error of a file cut short. */
  finish(): BinaryReadResult {
    if (!this.headerRead) {
      if (this.end - this.start === 0 && this.offset === 0)
        throw new TraceReadError(this.name, 'empty input: not a binary trace');
      throw this.cut();
    }
    if (this.result === null) throw this.cut();
    return this.result;
  }

  private cut(): TraceReadError {
    return new TraceReadError(
      this.name,
      `binary trace cut short at byte ${this.offset + this.end - this.start}: it has no end (${this.delivered} events read)`,
    );
  }

  private corrupt(at: number, what: string): TraceReadError {
    return new TraceReadError(
      this.name,
      `damaged binary trace: ${what} (block at byte ${at}; ${this.delivered} events read)`,
    );
  }

  private consume(): void {
    for (;;) {
      const have = this.end - this.start;
      const at = this.offset;
      if (!this.headerRead) {
        if (have < FILE_HEADER) return;
        const head = this.buf.subarray(this.start, this.start + FILE_HEADER);
        if (!isBinaryTrace(head))
          throw new TraceReadError(
            this.name,
            "not a binary trace (its first bytes are not ptsim's)",
          );
        const version = new DataView(head.buffer, head.byteOffset, FILE_HEADER).getUint32(8, true);
        if (version !== VERSION)
          throw new TraceReadError(
            this.name,
            `binary trace of version ${version}: this ptsim reads version ${VERSION}`,
          );
        this.headerRead = true;
        this.skip(FILE_HEADER);
        continue;
      }
      if (have === 0) return;
      if (this.result !== null) throw this.corrupt(at, 'bytes after the end of the trace');
      if (have < BLOCK_HEADER) return;
      const dv = new DataView(this.buf.buffer, this.buf.byteOffset + this.start, BLOCK_HEADER);
      const kind = dv.getUint32(0, true);
      const length = dv.getUint32(4, true);
      if (kind !== BLOCK_EVENTS_KIND && kind !== BLOCK_END_KIND)
        throw this.corrupt(at, `unknown block kind ${kind}`);
      if (kind === BLOCK_EVENTS_KIND && length % 8 !== 0)
        throw this.corrupt(at, `a block of ${length} bytes, not a multiple of 8`);
      if (length > 1 << 30) throw this.corrupt(at, `a block of ${length} bytes`);
      if (have < BLOCK_HEADER + length) return;
      // A copy, at the start of the reader's block buffer (the columns are views into it, read
      // before the next block is): not a buffer of its own per block, whose allocation, pages and
      // collection cost more than reading the block.
      const s = this.start + BLOCK_HEADER;
      if (length > this.blockBuf.byteLength) this.blockBuf = new ArrayBuffer(grownSize(length));
      const payload = new Uint8Array(this.blockBuf, 0, length);
      payload.set(this.buf.subarray(s, s + length));
      this.skip(BLOCK_HEADER + length);
      if (kind === BLOCK_END_KIND) this.readEnd(payload, at);
      else this.readBlock(payload, at);
    }
  }

  private skip(n: number): void {
    this.start += n;
    this.offset += n;
    if (this.start === this.end) this.start = this.end = 0;
  }

  private readEnd(payload: Uint8Array, at: number): void {
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      throw this.corrupt(at, 'the end is not JSON');
    }
    const r = json as Partial<BinaryEnd> | null;
    if (
      r === null ||
      typeof r !== 'object' ||
      !isCount(r.events) ||
      !isCount(r.lines) ||
      r.events !== this.delivered
    )
      throw this.corrupt(
        at,
        `the end says ${String(r?.events)} events, ${this.delivered} were read`,
      );
    // Absent from files written before it was kept; else the reader's rule gave as many numbers.
    if (r.peakLive !== undefined && r.peakLive !== this.rule.next)
      throw this.corrupt(
        at,
        `the end says ${String(r.peakLive)} tokens were live at once, the numbers read say ${this.rule.next}`,
      );
    this.result = { events: r.events, lines: r.lines };
  }

  private readBlock(payload: Uint8Array, at: number): void {
    const buf = payload.buffer;
    if (payload.length < 8) throw this.corrupt(at, 'a block too short for its meta part');
    const metaLength = new DataView(buf).getUint32(0, true);
    if (4 + metaLength > payload.length) throw this.corrupt(at, 'the meta part overruns the block');
    let m: Meta;
    try {
      m = JSON.parse(new TextDecoder().decode(payload.subarray(4, 4 + metaLength))) as Meta;
    } catch {
      throw this.corrupt(at, 'the meta part is not JSON');
    }
    const bad = badMeta(m);
    if (bad !== null) throw this.corrupt(at, bad);
    this.readColumns(payload, new StableMeta(m), metaLength, at);
  }

  /**
   * readBlock's checks of a block's columns against its meta part, and their delivery: apart from
   * readBlock, whose reads of the JSON meta part (objects and arrays whose shapes differ from block
   * to block) send its compiled code back to the interpreter now and then, which these loops would
   * share.
   */
  private readColumns(payload: Uint8Array, m: Meta, metaLength: number, at: number): void {
    const buf = payload.buffer;
    const lay = layout(m, metaLength);
    if (lay.end !== payload.length)
      throw this.corrupt(at, `columns of ${lay.end} bytes in a block of ${payload.length}`);
    const count = countsOf(m.c);
    const { n, e } = m;
    const codes = new Uint8Array(buf, lay.codes, n);
    const flags = new Uint8Array(buf, lay.flags, e);
    // Checked before anything is delivered: every code and flag known, every column's count right.
    const seen = new EntryCounts();
    const unknown = scanEntries(codes, flags, n, e, seen);
    if (unknown !== null) throw this.corrupt(at, unknown);
    const inIds = new Int32Array(buf, lay.ins, count.ins);
    seen.inKeys = negatives(inIds);
    if (seen.events !== e || seen.recs !== m.recs.length || !sameCounts(seen, m.c))
      throw this.corrupt(at, 'the columns do not hold what the events say');
    if (m.runs.length === 0 ? e > 0 : m.runs[0] !== 0)
      throw this.corrupt(at, 'the lines of the events are missing');

    // The columns, each of one type.
    if (this.tids.length < e) this.widen(e);
    const tids = this.tids;
    if (m.tidW === 1) tids.set(new Uint8Array(buf, lay.tids, e));
    else if (m.tidW === 2) tids.set(new Uint16Array(buf, lay.tids, e));
    else tids.set(new Int32Array(buf, lay.tids, e));
    let n1s: Float64Array;
    if (m.n1W === 8) n1s = new Float64Array(buf, lay.n1, count.n1);
    else {
      n1s = this.n1s;
      n1s.set(
        m.n1W === 2
          ? new Uint16Array(buf, lay.n1, count.n1)
          : new Uint32Array(buf, lay.n1, count.n1),
      );
    }
    const n2s = new Float64Array(buf, lay.n2, count.n2);
    const params = new Float64Array(buf, lay.param, count.param);
    const sites = new Int32Array(buf, lay.site, count.site);
    const inKeys = new Float64Array(buf, lay.inKeys, count.inKeys);
    let outKeys: Float64Array;
    if (m.keyW === 8) outKeys = new Float64Array(buf, lay.outs, count.outs);
    else {
      outKeys = this.outKeys;
      const lo = new Uint32Array(buf, lay.outs, count.outs);
      const idx = new Uint8Array(buf, lay.outHi, count.outs);
      if (!joinKeys(lo, idx, m.hi, outKeys)) throw this.corrupt(at, 'a key with no high part');
    }
    const outIds = new Int32Array(buf, lay.outIds, count.outIds);
    const timeW = m.timeW;
    let times: Float64Array = this.times;
    if (timeW === 4) addUp(new Uint32Array(buf, lay.times, e), m.time0, times);
    else if (timeW === 8) times = new Float64Array(buf, lay.times, e);

    const wrong = badValues(
      m,
      tids,
      n1s.subarray(0, count.n1),
      n2s,
      params,
      sites,
      inKeys,
      outKeys,
      count.outs,
      times,
    );
    if (wrong !== null) throw this.corrupt(at, wrong);

    const cols = this.cols;
    cols.codes = codes;
    cols.flags = flags;
    cols.tids = tids;
    cols.n1s = n1s;
    cols.n2s = n2s;
    cols.params = params;
    cols.sites = sites;
    cols.inIds = inIds;
    cols.inKeys = inKeys;
    cols.outKeys = outKeys;
    cols.outIds = outIds;
    cols.times = times;
    cols.timeW = timeW;
    cols.first = m.first;
    cols.n = n;
    cols.runs = Float64Array.from(m.runs);
    cols.texts = m.texts;
    cols.recs = m.recs;
    // Checked here, not after the loop of deliverBlock: code compiled while that loop ran (on-stack
    // replacement) has seen nothing after it, and would return to the interpreter at every block.
    if (this.deliverBlock(cols, at) !== cols.texts.length)
      throw this.corrupt(at, 'texts left over');
  }

  /**
   * Delivers a block's entries, checked by readColumns, and returns how many texts they took.
   * Kept apart from readBlock, whose meta part (JSON, whose arrays differ in kind from block to
   * block) would otherwise send this loop, with the replay inlined into it, back to the
   * interpreter time and again while the compiler warms up.
   */
  private deliverBlock(cols: BlockColumns, at: number): number {
    const { codes, flags, tids, n1s, n2s, params, sites, inIds, inKeys, outKeys, outIds } = cols;
    const { times, timeW, texts, runs, n } = cols;
    const recList = cols.recs;
    const sink = this.sink;
    const ev = this.ev;
    let run = 0;
    let delta = runs[1]!;
    let nextRun = runs.length > 2 ? runs[2]! : Infinity;
    let index = cols.first;
    let ei = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let a4 = 0;
    let b = 0;
    let bk = 0;
    let o = 0;
    let oi = 0;
    let t = 0;
    let r = 0;
    for (let k = 0; k < n; k++) {
      const code = codes[k]!;
      if (code >= RECORD) {
        if (code === RECORDS_END) sink.recordsEnd?.();
        else {
          const rec = recList[r++];
          if (code === EXACT) this.exact(rec, at);
          else this.deliverRecord(code, rec, at);
        }
        continue;
      }
      if (ei === nextRun) {
        run += 2;
        delta = runs[run + 1]!;
        nextRun = run + 2 < runs.length ? runs[run + 2]! : Infinity;
      }
      const f = flags[ei]!;
      ev.index = index;
      ev.line = index + delta;
      ev.time = timeW === 0 ? -1 : times[ei]!;
      ev.tid = tids[ei]!;
      ev.n1 = (f & F_N1) !== 0 ? n1s[a1++]! : 0;
      // Only mallopt's value may be negative.
      if (ev.n1 < 0 && (code & OP_MASK) !== Op.mallopt)
        throw this.corrupt(at, `event ${index} has a negative size`);
      ev.n2 = (f & F_N2) !== 0 ? n2s[a2++]! : 0;
      ev.param = (f & F_PARAM) !== 0 ? params[a3++]! : 0;
      ev.site = (f & F_SITE) !== 0 ? sites[a4++]! : -1;
      if ((f & F_IN) !== 0) {
        const id = inIds[b++]!;
        if (id >= 0) {
          if (id >= this.rule.next || this.live[id] === 0)
            throw this.corrupt(
              at,
              `event ${index} takes token number ${id}, which no live token has`,
            );
          const key = this.idKey[id]!;
          ev.setIn(key, key === NO_KEY ? this.idText.get(id)! : NULL_TOKEN);
          this.live[id] = 0;
          this.rule.release(id);
        } else {
          const key = inKeys[bk++]!;
          ev.setIn(key, key === NO_KEY ? text(texts, t++) : NULL_TOKEN);
        }
        ev.inId = id;
      } else {
        ev.setIn(0, NULL_TOKEN);
        ev.inId = -1;
      }
      if ((f & F_OUT) !== 0) {
        const key = outKeys[o++]!;
        const s = key === NO_KEY ? text(texts, t++) : NULL_TOKEN;
        let id: number;
        if ((f & F_OUT_ID) !== 0) {
          id = outIds[oi++]!;
          if (
            id < 0 ||
            id >= this.rule.next ||
            this.live[id] === 0 ||
            this.idKey[id] !== key ||
            (key === NO_KEY && this.idText.get(id) !== s)
          )
            throw this.corrupt(
              at,
              `event ${index} returns a token under a number it does not have`,
            );
        } else {
          id = this.rule.take();
          if (id >= this.live.length) this.grow(id + 1);
          this.idKey[id] = key;
          this.live[id] = 1;
          if (key === NO_KEY) this.idText.set(id, s);
        }
        ev.setOut(key, s);
        ev.outId = id;
      } else {
        ev.setOut(0, NULL_TOKEN);
        ev.outId = -1;
      }
      ei++;
      index++;
      this.delivered++;
      // One call for both: a second call site would be one more the compiler must learn.
      ev.handTo(sink, (code & OP_MASK) as OpCode, code >= FOLLOWED);
    }
    return t;
  }

  private widen(n: number): void {
    this.tids = new Int32Array(n);
    this.n1s = new Float64Array(n);
    this.outKeys = new Float64Array(n);
    this.times = new Float64Array(n);
  }

  /**
   * Room for token numbers below `need`: the arrays grow within the room their buffers have
   * (release.ts), so that millions of live tokens are not copied, nor their pages written, at
   * each doubling.
   */
  private grow(need: number): void {
    let size = this.live.length;
    while (size < need) size *= 2;
    this.idKey = grown(this.idKey, size);
    this.live = grown(this.live, size);
  }

  /** An EXACT record: the next event's exact sizes. */
  private exact(rec: unknown, at: number): void {
    if (!Array.isArray(rec) || rec.length !== 2 || !rec.every((s) => /^\d*$/.test(String(s))))
      throw this.corrupt(at, 'a damaged exact size');
    const [a, b] = rec as [string, string];
    if (a !== '') this.ev.exact1 = BigInt(a);
    if (b !== '') this.ev.exact2 = BigInt(b);
  }

  private deliverRecord(code: number, rec: unknown, at: number): void {
    const sink = this.sink;
    const o = rec as Record<string, unknown> | null;
    if (o === null || typeof o !== 'object') throw this.corrupt(at, 'a damaged record');
    switch (code) {
      case HEADER: {
        if (!isHeader(o)) throw this.corrupt(at, 'a damaged header');
        const h: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(o))
          h[k] = k === 'facts' ? new Map(v as Array<[string, string]>) : v;
        sink.header(h as unknown as TraceHeader);
        return;
      }
      case TOUCH: {
        const j = o as unknown as TouchJson;
        if (
          !Array.isArray(j.p) ||
          j.p.length % 2 !== 0 ||
          !j.p.every((v) => Number.isSafeInteger(v) && v >= 0) ||
          !isKey(j.k) ||
          typeof j.t !== 'string' ||
          !Number.isSafeInteger(j.i) ||
          !isCount(j.l)
        )
          throw this.corrupt(at, 'a damaged touch record');
        const touch = this.touchRec;
        touch.setToken(j.k, j.t);
        touch.line = j.l;
        touch.id = j.i;
        touch.clear();
        for (let k = 0; k + 1 < j.p.length; k += 2) touch.add(j.p[k]!, j.p[k + 1]!);
        sink.touch?.(touch);
        return;
      }
      case RSS: {
        const j = o as unknown as RssJson;
        if (
          !isCount(j.l) ||
          ![j.t, j.a, j.h, j.r, j.T].every((v) => typeof v === 'number' && v >= -1) ||
          typeof j.m !== 'string'
        )
          throw this.corrupt(at, 'a damaged sample');
        const s = this.rssRec;
        s.line = j.l;
        s.time = j.t;
        s.anon = j.a;
        s.heap = j.h;
        s.mark = j.m;
        s.rec = j.r;
        s.total = j.T;
        sink.rss?.(s);
        return;
      }
      case INCOMPLETE:
        if (!isCount(o.l) || typeof o.d !== 'string')
          throw this.corrupt(at, 'a damaged touches-incomplete line');
        sink.touchesIncomplete?.(o.l, o.d);
        return;
      case SITE:
        if (!isSiteRecord(o))
          throw this.corrupt(at, 'a damaged call stack, mapping or symbol record');
        sink.site?.(o);
        return;
    }
  }
}

// readColumns's loops, each in a function of its own that returns at once when the loop ends.
// V8 compiles a loop that runs long while it runs (on-stack replacement), before the code after
// it has ever run; that code, reached later, sends the compiled loop back to the interpreter,
// and a loop that enters the same compiled code at every block went back at every block.

/**
 * Counts a block's n entries (codes, and the flags of its events) into `seen`: null, or what is
 * wrong with them (an unknown code or flag, more events than the e the block says).
 */
function scanEntries(
  codes: Uint8Array,
  flags: Uint8Array,
  n: number,
  e: number,
  seen: EntryCounts,
): string | null {
  // The events are counted by their flags, then each column's count summed from those counts: a
  // store per event rather than one per column it has a value in.
  const byFlags = FLAG_COUNTS.fill(0);
  let events = 0;
  for (let k = 0; k < n; k++) {
    const code = codes[k]!;
    if (code >= RECORD) {
      if (code > HEADER) return `unknown record code 0x${code.toString(16)}`;
      if (code !== RECORDS_END) seen.recs++;
      continue;
    }
    if ((code & OP_MASK) > Op.exit) return `unknown operation code 0x${code.toString(16)}`;
    if (events >= e) return 'more events than the block says';
    const f = flags[events++]!;
    if (f > F_KNOWN || (f & (F_OUT_ID | F_OUT)) === F_OUT_ID)
      return `unknown flags 0x${f.toString(16)}`;
    byFlags[f]!++;
  }
  for (let f = 0; f <= F_KNOWN; f++) {
    const count = byFlags[f]!;
    if (count === 0) continue;
    if (f & F_N1) seen.n1 += count;
    if (f & F_N2) seen.n2 += count;
    if (f & F_PARAM) seen.param += count;
    if (f & F_SITE) seen.site += count;
    if (f & F_IN) seen.ins += count;
    if (f & F_OUT) seen.outs += count;
    if (f & F_OUT_ID) seen.outIds += count;
  }
  seen.events += events;
  return null;
}

/** scanEntries's counts of events by their flags (F_KNOWN is every flag). */
const FLAG_COUNTS = new Int32Array(F_KNOWN + 1);

/** How many values are negative (events whose taken token has no number: their keys follow). */
function negatives(a: Int32Array): number {
  let count = 0;
  for (let k = 0; k < a.length; k++) if (a[k]! < 0) count++;
  return count;
}

/** Keys of 5 bytes made whole: each a high part (by its index) and 32 low bits; false when an index has no high part. */
function joinKeys(
  lo: Uint32Array,
  idx: Uint8Array,
  hi: readonly number[],
  out: Float64Array,
): boolean {
  for (let k = 0; k < lo.length; k++) {
    const h = hi[idx[k]!];
    if (h === undefined) return false;
    out[k] = h * TWO32 + lo[k]!;
  }
  return true;
}

/** Times from their differences, from t0 for the first. */
function addUp(d: Uint32Array, t0: number, out: Float64Array): void {
  let t = t0;
  for (let k = 0; k < d.length; k++) out[k] = t += d[k]!;
}

/** A power of two of at least n bytes. */
function grownSize(n: number): number {
  let size = 1 << 16;
  while (size < n) size *= 2;
  return size;
}

function text(texts: string[], t: number): string {
  return texts[t] ?? NULL_TOKEN;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** What is wrong with a block's meta part, or null. */
function badMeta(m: Meta): string | null {
  if (m === null || typeof m !== 'object') return 'the meta part is not an object';
  if (!isCount(m.n) || !isCount(m.e) || m.n > BLOCK_MAX || m.e > m.n)
    return 'a block of an impossible size';
  if (!isCount(m.first)) return 'a first event index that is not a count';
  if (![1, 2, 4].includes(m.tidW) || ![2, 4, 8].includes(m.n1W) || ![5, 8].includes(m.keyW))
    return 'unknown column widths';
  if (![0, 4, 8].includes(m.timeW) || typeof m.time0 !== 'number') return 'unknown times';
  if (!Array.isArray(m.c) || m.c.length !== 8 || !m.c.every((v) => isCount(v) && v <= m.e))
    return 'the column counts are damaged';
  if (!Array.isArray(m.hi) || !m.hi.every((h) => Number.isSafeInteger(h)) || m.hi.length > 255)
    return "the keys' high parts are damaged";
  if (
    !Array.isArray(m.runs) ||
    m.runs.length % 2 !== 0 ||
    !m.runs.every((v) => Number.isSafeInteger(v))
  )
    return 'the lines are damaged';
  if (!Array.isArray(m.texts) || !m.texts.every((s) => typeof s === 'string'))
    return 'the texts are damaged';
  if (!Array.isArray(m.recs)) return 'the records are damaged';
  return null;
}

/** A key as readers make them: NO_KEY, 0 (NULL) or a pointer's value. */
function isKey(k: unknown): k is number {
  return typeof k === 'number' && Number.isSafeInteger(k) && k >= NO_KEY;
}

const isStrings = (a: unknown, n: number): boolean =>
  Array.isArray(a) && a.length === n && a.every((x) => typeof x === 'string');

/** Whether a header's parts have the types readers give them. */
function isHeader(o: Record<string, unknown>): boolean {
  const pairs = (a: unknown): boolean => Array.isArray(a) && a.every((x) => isStrings(x, 2));
  if (!pairs(o.env) || !pairs(o.facts)) return false;
  if (o.nprocs !== undefined && !isCount(o.nprocs)) return false;
  if (o.touchesRecorded !== undefined && typeof o.touchesRecorded !== 'boolean') return false;
  if (
    o.comments !== undefined &&
    !(Array.isArray(o.comments) && o.comments.every((c) => typeof c === 'string'))
  )
    return false;
  const ti = o.touchesIncomplete as Record<string, unknown> | undefined;
  if (ti !== undefined && (ti === null || !isCount(ti.line) || typeof ti.detail !== 'string'))
    return false;
  return true;
}

/** Whether a site record has the fields of its kind. */
function isSiteRecord(o: Record<string, unknown>): o is SiteRecord & Record<string, unknown> {
  const nums = (a: unknown): boolean =>
    Array.isArray(a) && a.every((x) => Number.isSafeInteger(x) && (x as number) >= 0);
  if (!isCount(o.line)) return false;
  switch (o.kind) {
    case 'stack':
      return isCount(o.id) && nums(o.frames);
    case 'map':
      return nums([o.start, o.end, o.offset]) && typeof o.path === 'string';
    case 'sym':
      return (
        isCount(o.addr) &&
        Array.isArray(o.frames) &&
        o.frames.every(
          (f: Record<string, unknown> | null) =>
            f !== null &&
            typeof f === 'object' &&
            typeof f.fn === 'string' &&
            typeof f.file === 'string' &&
            isCount(f.line),
        )
      );
    default:
      return false;
  }
}

/** The most a size can be: 2^64 - 1, which a double rounds to 2^64. */
const MAX_SIZE = 2 ** 64;

/**
 * What is wrong with the values of a block's columns (those a reader of the text could never give:
 * sizes that are not whole numbers, keys that are no key, ...), or null. Columns of narrow
 * unsigned integers are right by their type: only the wide ones are looked at. Each loop is a
 * function of its own (see scanEntries).
 */
function badValues(
  m: Meta,
  tids: Int32Array,
  n1s: Float64Array,
  n2s: Float64Array,
  params: Float64Array,
  sites: Int32Array,
  inKeys: Float64Array,
  outKeys: Float64Array,
  outs: number,
  times: Float64Array,
): string | null {
  if (m.tidW === 4 && !allAtLeast(tids, m.e, 0)) return 'a negative thread number';
  if (m.n1W === 8 && !allSizes(n1s, -MAX_SIZE)) return 'a size that is not one';
  if (!allSizes(n2s, 0)) return 'a size that is not one';
  if (!allSafeIntegers(params)) return 'a mallopt parameter that is not one';
  if (!allAtLeast(sites, sites.length, 0)) return 'a negative call stack number';
  if (!allKeys(inKeys, inKeys.length, false)) return 'a key that is not one';
  if (m.keyW === 8) {
    if (!allKeys(outKeys, outs, true)) return 'a key that is not one';
  } else {
    // High parts below 2^21 make keys below 2^53, whole; -1 only for NO_KEY itself.
    if (!m.hi.every((h) => h >= -1 && h < 2 ** 21)) return 'a key that is not one';
    if (!allAtLeastKeys(outKeys, outs)) return 'a key that is not one';
  }
  if (m.timeW === 8 && !allTimes(times, m.e)) return 'a time that is not one';
  if (m.timeW === 4 && !(Number.isSafeInteger(m.time0) && m.time0 >= 0))
    return 'a time that is not one';
  return null;
}

/** Whether the first n values are at least `least`. */
function allAtLeast(a: Int32Array, n: number, least: number): boolean {
  for (let k = 0; k < n; k++) if (a[k]! < least) return false;
  return true;
}

/** Whether every value is a whole number from `least` to MAX_SIZE. */
function allSizes(a: Float64Array, least: number): boolean {
  for (let k = 0; k < a.length; k++) {
    const v = a[k]!;
    if (!Number.isInteger(v) || v > MAX_SIZE || v < least) return false;
  }
  return true;
}

function allSafeIntegers(a: Float64Array): boolean {
  for (let k = 0; k < a.length; k++) if (!Number.isSafeInteger(a[k])) return false;
  return true;
}

/** Whether the first n values are keys (not NULL's, when `returned`: a call that returned one). */
function allKeys(a: Float64Array, n: number, returned: boolean): boolean {
  for (let k = 0; k < n; k++) {
    const key = a[k]!;
    if (!isKey(key) || (returned && key === 0)) return false;
  }
  return true;
}

/** Keys of 5 bytes, whole by their making: whether none is NULL's or below NO_KEY. */
function allAtLeastKeys(a: Float64Array, n: number): boolean {
  for (let k = 0; k < n; k++) {
    const key = a[k]!;
    if (key === 0 || key < NO_KEY) return false;
  }
  return true;
}

/** Whether the first n values are times: -1 (none) or safe integers from 0. */
function allTimes(a: Float64Array, n: number): boolean {
  for (let k = 0; k < n; k++) {
    const t = a[k]!;
    if (t !== -1 && !(Number.isSafeInteger(t) && t >= 0)) return false;
  }
  return true;
}
