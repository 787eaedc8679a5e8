/**
 * Event batches: the form in which the parse worker (parse-worker.ts) hands events to the thread
 * that consumes them. A batch is one ArrayBuffer of columns, one typed array per TraceEvent field,
 * moved between threads without a copy (postMessage's transfer list), plus the texts of the few
 * tokens that have no key (token-key.ts), in order: each event's `in`, then its `out`.
 *
 * Event indexes are consecutive, so a batch keeps only the index of its first event.
 *
 * The records of the trace (`#:touch`, `#:rss`, and the end of a run of records) travel in the
 * same columns, in trace order among the events, marked by their code in the op column: an
 * event's code is its OpCode, plus FOLLOWED when records follow it. A touch record keeps its
 * token in the in columns (its text, when it has no key, among the texts), its page ranges in
 * `pages` (a plain array, as records are few), their count in n1 and its highest page in n2; a
 * sample keeps anon in n1, heap in n2, rec in inKey, total in outKey, and its mark, when it has one
 * (param 1), among the texts;
 * a `# touches incomplete from here` line keeps its detail among the texts. The records of the site
 * table (`#:stack`, `#:map`, `#:sym`) are few: they travel as objects, in `sites`, each marked by
 * SITE in the op column. An event with a size above 2^53 is preceded by an EXACT record: its exact
 * n1 and n2 in decimal among the texts ('' for one that is exact as a double).
 */

import { ReadEvent as ReadEventClass, type ReadEvent } from './event.js';
import type { ReadRss, ReadTouch } from './records.js';
import { NO_KEY } from './token-key.js';
import {
  NULL_TOKEN,
  type OpCode,
  type RssSample,
  type SiteRecord,
  type TouchRecord,
  type TraceSink,
} from './types.js';

/** Events per batch: about 1 MiB of columns, big enough that the cost of a message vanishes. */
const BATCH_EVENTS = 16384;

/** Bytes per event: six float64 columns, five int32 columns, one byte column. */
const BATCH_BYTES = BATCH_EVENTS * (6 * 8 + 5 * 4 + 1);

/** Codes of the op column: OpCodes below FOLLOWED, then FOLLOWED + OpCode, then the records. */
const FOLLOWED = 0x20;
/** The first code that is not an event without records after it (for Replayer.runBatch). */
export const BATCH_FOLLOWED = FOLLOWED;

/** Where a delivery of a batch stands: the next entry, and the index of the next event. */
export interface BatchPlace {
  entry: number;
  index: number;
}
const TOUCH = 0x40;
const RSS = 0x41;
const RECORDS_END = 0x42;
const INCOMPLETE = 0x43;
const SITE = 0x44;
const EXACT = 0x45;

/** What a batch is sent as (the buffer is transferred). */
export interface BatchMessage {
  kind: 'events';
  buffer: ArrayBuffer;
  count: number;
  firstIndex: number;
  texts: string[];
  pages: number[];
  sites: SiteRecord[];
}

export class EventBatch {
  readonly buffer: ArrayBuffer;
  /**
   * Each entry's numbers side by side: n1, n2, time, line, in key, out key at 6 * i + 0..5, and
   * thread, param, in id, out id, site at 5 * i + 0..4 (what one event needs is in a few cache
   * lines, not in one of each of eleven columns).
   */
  readonly nums: Float64Array;
  readonly ints: Int32Array;
  /** Each entry's code: an event's OpCode (plus BATCH_FOLLOWED when records follow it), or a record's. */
  readonly op: Uint8Array;
  /** Events in the batch. */
  count = 0;
  /** The index of the first event. */
  firstIndex = 0;
  /** The texts of the tokens without a key, in event order (`in` before `out`), and of the marks. */
  texts: string[] = [];
  /** The page ranges of the touch records, in order. */
  pages: number[] = [];
  /** The site records, in order. */
  sites: SiteRecord[] = [];
  /** Events in the batch (count counts the records too). */
  private events = 0;
  /** Entries from which the batch counts as full (at most BATCH_EVENTS - 1: `add` may add two). */
  limit = BATCH_EVENTS - 1;

  /** An empty batch, or a view of the columns of a received one. */
  constructor(buffer: ArrayBuffer = new ArrayBuffer(BATCH_BYTES)) {
    this.buffer = buffer;
    const n = BATCH_EVENTS;
    this.nums = new Float64Array(buffer, 0, 6 * n);
    this.ints = new Int32Array(buffer, 48 * n, 5 * n);
    this.op = new Uint8Array(buffer, 68 * n, n);
  }

  /** Where runBatch stands (one, reused). */
  private readonly place: BatchPlace = { entry: 0, index: 0 };

  /**
   * Event `index`, at entry k, as deliver hands it (a new object): for an event whose tokens have
   * keys (it takes no text), without exact sizes.
   */
  eventAt(k: number, index: number): ReadEvent {
    const ev = new ReadEventClass();
    ev.index = index;
    ev.line = this.nums[6 * k + 3]!;
    ev.time = this.nums[6 * k + 2]!;
    ev.tid = this.ints[5 * k]!;
    ev.op = this.op[k]! as OpCode;
    ev.n1 = this.nums[6 * k]!;
    ev.n2 = this.nums[6 * k + 1]!;
    ev.param = this.ints[5 * k + 1]!;
    ev.setIn(this.nums[6 * k + 4]!, NULL_TOKEN);
    ev.setOut(this.nums[6 * k + 5]!, NULL_TOKEN);
    ev.inId = this.ints[5 * k + 2]!;
    ev.outId = this.ints[5 * k + 3]!;
    ev.site = this.ints[5 * k + 4]!;
    return ev;
  }

  /** A received batch. */
  static from(m: BatchMessage): EventBatch {
    const b = new EventBatch(m.buffer);
    b.count = m.count;
    b.firstIndex = m.firstIndex;
    b.texts = m.texts;
    b.pages = m.pages;
    b.sites = m.sites;
    return b;
  }

  /** The message that sends this batch; the batch must not be used afterwards. */
  message(): BatchMessage {
    return {
      kind: 'events',
      buffer: this.buffer,
      count: this.count,
      firstIndex: this.firstIndex,
      texts: this.texts,
      pages: this.pages,
      sites: this.sites,
    };
  }

  /** Appends a copy of ev. Returns true when the batch is full. */
  add(ev: ReadEvent): boolean {
    if (ev.exact1 !== undefined || ev.exact2 !== undefined) {
      // Rare: a size above 2^53. The record and the event share the batch (add leaves room).
      this.op[this.count++] = EXACT;
      this.texts.push(ev.exact1?.toString() ?? '', ev.exact2?.toString() ?? '');
    }
    const i = this.count++;
    if (this.events++ === 0) this.firstIndex = ev.index;
    this.nums[6 * i] = ev.n1;
    this.nums[6 * i + 1] = ev.n2;
    this.nums[6 * i + 2] = ev.time;
    this.nums[6 * i + 3] = ev.line;
    this.ints[5 * i] = ev.tid;
    this.ints[5 * i + 1] = ev.param;
    this.op[i] = ev.recordsFollow === true ? FOLLOWED + ev.op : ev.op;
    this.nums[6 * i + 4] = ev.inKey;
    this.nums[6 * i + 5] = ev.outKey;
    this.ints[5 * i + 2] = ev.inId;
    this.ints[5 * i + 3] = ev.outId;
    this.ints[5 * i + 4] = ev.site;
    // A token without a key keeps its text: reading it makes no string.
    if (ev.inKey === NO_KEY) this.texts.push(ev.in);
    if (ev.outKey === NO_KEY) this.texts.push(ev.out);
    return this.count >= this.limit;
  }

  /** Appends a copy of a touch record (the reader's, whose key is always set). Returns true when the batch is full. */
  addTouch(rec: TouchRecord): boolean {
    const i = this.count++;
    const key = rec.key!;
    this.op[i] = TOUCH;
    this.nums[6 * i + 3] = rec.line;
    this.nums[6 * i + 4] = key;
    this.ints[5 * i + 2] = rec.id ?? -1;
    if (key === NO_KEY) this.texts.push(rec.token);
    this.nums[6 * i] = rec.ranges;
    this.nums[6 * i + 1] = rec.maxPage;
    for (let k = 0; k < 2 * rec.ranges; k++) this.pages.push(rec.pages[k]!);
    return this.count >= this.limit;
  }

  /** Appends a copy of a sample. Returns true when the batch is full. */
  addRss(s: RssSample): boolean {
    const i = this.count++;
    this.op[i] = RSS;
    this.nums[6 * i + 3] = s.line;
    this.nums[6 * i + 2] = s.time;
    this.nums[6 * i] = s.anon;
    this.nums[6 * i + 1] = s.heap;
    this.nums[6 * i + 4] = s.rec ?? -1;
    this.nums[6 * i + 5] = s.total ?? -1;
    this.ints[5 * i + 1] = s.mark === '' ? 0 : 1;
    if (s.mark !== '') this.texts.push(s.mark);
    return this.count >= this.limit;
  }

  /** Appends a `# touches incomplete from here` line. Returns true when the batch is full. */
  addTouchesIncomplete(line: number, detail: string): boolean {
    const i = this.count++;
    this.op[i] = INCOMPLETE;
    this.nums[6 * i + 3] = line;
    this.texts.push(detail);
    return this.count >= this.limit;
  }

  /** Appends a site record. Returns true when the batch is full. */
  addSite(rec: SiteRecord): boolean {
    this.op[this.count++] = SITE;
    this.sites.push(rec);
    return this.count >= this.limit;
  }

  /** Appends the end of a run of records. Returns true when the batch is full. */
  addRecordsEnd(): boolean {
    this.op[this.count++] = RECORDS_END;
    return this.count >= this.limit;
  }

  /**
   * Hands the batch's events and records to sink in order, in one object of each kind (ev, touch,
   * rss) refilled for each.
   */
  deliver(ev: ReadEvent, touch: ReadTouch, rss: ReadRss, sink: TraceSink): void {
    const texts = this.texts;
    let t = 0;
    let index = this.firstIndex;
    let p = 0;
    let sp = 0;
    // A sink that replays takes the runs of common events itself (Replayer.runBatch); an event
    // with exact sizes (after an EXACT record) is handed over as an event.
    const runs = sink.runBatch !== undefined;
    const place = this.place;
    for (let i = 0; i < this.count; i++) {
      const code = this.op[i]!;
      if (runs && code < FOLLOWED && ev.exact1 === undefined && ev.exact2 === undefined) {
        place.entry = i;
        place.index = index;
        sink.runBatch!(this, place);
        if (place.entry > i) {
          // Events without texts: only the places moved.
          i = place.entry - 1;
          index = place.index;
          continue;
        }
      }
      if (code >= TOUCH) {
        if (code === TOUCH) {
          const key = this.nums[6 * i + 4]!;
          touch.setToken(key, key === NO_KEY ? texts[t++]! : NULL_TOKEN);
          touch.line = this.nums[6 * i + 3]!;
          touch.id = this.ints[5 * i + 2]!;
          touch.clear();
          const ranges = this.nums[6 * i]!;
          for (let k = 0; k < ranges; k++, p += 2) touch.add(this.pages[p]!, this.pages[p + 1]!);
          sink.touch?.(touch);
        } else if (code === RSS) {
          rss.line = this.nums[6 * i + 3]!;
          rss.time = this.nums[6 * i + 2]!;
          rss.anon = this.nums[6 * i]!;
          rss.heap = this.nums[6 * i + 1]!;
          rss.rec = this.nums[6 * i + 4]!;
          rss.total = this.nums[6 * i + 5]!;
          rss.mark = this.ints[5 * i + 1] === 1 ? texts[t++]! : '';
          sink.rss?.(rss);
        } else if (code === INCOMPLETE) {
          sink.touchesIncomplete?.(this.nums[6 * i + 3]!, texts[t++]!);
        } else if (code === SITE) {
          sink.site?.(this.sites[sp++]!);
        } else if (code === EXACT) {
          const a = texts[t++]!;
          const b = texts[t++]!;
          if (a !== '') ev.exact1 = BigInt(a);
          if (b !== '') ev.exact2 = BigInt(b);
        } else {
          sink.recordsEnd?.();
        }
        continue;
      }
      ev.index = index++;
      ev.line = this.nums[6 * i + 3]!;
      ev.time = this.nums[6 * i + 2]!;
      ev.tid = this.ints[5 * i]!;
      ev.n1 = this.nums[6 * i]!;
      ev.n2 = this.nums[6 * i + 1]!;
      ev.param = this.ints[5 * i + 1]!;
      const inKey = this.nums[6 * i + 4]!;
      ev.setIn(inKey, inKey === NO_KEY ? texts[t++]! : NULL_TOKEN);
      const outKey = this.nums[6 * i + 5]!;
      ev.setOut(outKey, outKey === NO_KEY ? texts[t++]! : NULL_TOKEN);
      ev.inId = this.ints[5 * i + 2]!;
      ev.outId = this.ints[5 * i + 3]!;
      ev.site = this.ints[5 * i + 4]!;
      if (code < FOLLOWED) ev.handTo(sink, code as OpCode, false);
      else ev.handTo(sink, (code - FOLLOWED) as OpCode, true);
    }
  }
}
