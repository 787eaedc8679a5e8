/**
 * Event batches: the form in which the parse worker (parse-worker.ts) hands events to the thread
 * that consumes them. A batch is one ArrayBuffer of columns, one typed array per TraceEvent field,
 * moved between threads without a copy (postMessage's transfer list), plus the texts of the few
 * tokens that have no key (token-key.ts), in order: each event's `in`, then its `out`.
 *
 * Event indexes are consecutive, so a batch keeps only the index of its first event.
 */

import type { ReadEvent } from './event.js';
import { NO_KEY } from './token-key.js';
import { NULL_TOKEN, type OpCode, type TraceSink } from './types.js';

/** Events per batch: about 1 MiB of columns, big enough that the cost of a message vanishes. */
const BATCH_EVENTS = 16384;

/** Bytes per event: six float64 columns, four int32 columns, one byte column. */
const BATCH_BYTES = BATCH_EVENTS * (6 * 8 + 4 * 4 + 1);

/** What a batch is sent as (the buffer is transferred). */
export interface BatchMessage {
  kind: 'events';
  buffer: ArrayBuffer;
  count: number;
  firstIndex: number;
  texts: string[];
}

export class EventBatch {
  readonly buffer: ArrayBuffer;
  private readonly n1: Float64Array;
  private readonly n2: Float64Array;
  private readonly time: Float64Array;
  private readonly line: Float64Array;
  private readonly inKey: Float64Array;
  private readonly outKey: Float64Array;
  private readonly tid: Int32Array;
  private readonly param: Int32Array;
  private readonly inId: Int32Array;
  private readonly outId: Int32Array;
  private readonly op: Uint8Array;
  /** Events in the batch. */
  count = 0;
  /** The index of the first event. */
  firstIndex = 0;
  /** The texts of the tokens without a key, in event order (`in` before `out`). */
  texts: string[] = [];

  /** An empty batch, or a view of the columns of a received one. */
  constructor(buffer: ArrayBuffer = new ArrayBuffer(BATCH_BYTES)) {
    this.buffer = buffer;
    const n = BATCH_EVENTS;
    this.n1 = new Float64Array(buffer, 0, n);
    this.n2 = new Float64Array(buffer, 8 * n, n);
    this.time = new Float64Array(buffer, 16 * n, n);
    this.line = new Float64Array(buffer, 24 * n, n);
    this.inKey = new Float64Array(buffer, 32 * n, n);
    this.outKey = new Float64Array(buffer, 40 * n, n);
    this.tid = new Int32Array(buffer, 48 * n, n);
    this.param = new Int32Array(buffer, 52 * n, n);
    this.inId = new Int32Array(buffer, 56 * n, n);
    this.outId = new Int32Array(buffer, 60 * n, n);
    this.op = new Uint8Array(buffer, 64 * n, n);
  }

  /** A received batch. */
  static from(m: BatchMessage): EventBatch {
    const b = new EventBatch(m.buffer);
    b.count = m.count;
    b.firstIndex = m.firstIndex;
    b.texts = m.texts;
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
    };
  }

  /** Appends a copy of ev. Returns true when the batch is full. */
  add(ev: ReadEvent): boolean {
    const i = this.count++;
    if (i === 0) this.firstIndex = ev.index;
    this.n1[i] = ev.n1;
    this.n2[i] = ev.n2;
    this.time[i] = ev.time;
    this.line[i] = ev.line;
    this.tid[i] = ev.tid;
    this.param[i] = ev.param;
    this.op[i] = ev.op;
    this.inKey[i] = ev.inKey;
    this.outKey[i] = ev.outKey;
    this.inId[i] = ev.inId;
    this.outId[i] = ev.outId;
    // A token without a key keeps its text: reading it makes no string.
    if (ev.inKey === NO_KEY) this.texts.push(ev.in);
    if (ev.outKey === NO_KEY) this.texts.push(ev.out);
    return this.count === BATCH_EVENTS;
  }

  /** Hands the batch's events to sink in order, in one object (ev) refilled for each. */
  deliver(ev: ReadEvent, sink: TraceSink): void {
    const texts = this.texts;
    let t = 0;
    for (let i = 0; i < this.count; i++) {
      ev.index = this.firstIndex + i;
      ev.line = this.line[i]!;
      ev.time = this.time[i]!;
      ev.tid = this.tid[i]!;
      ev.op = this.op[i]! as OpCode;
      ev.n1 = this.n1[i]!;
      ev.n2 = this.n2[i]!;
      ev.param = this.param[i]!;
      const inKey = this.inKey[i]!;
      ev.setIn(inKey, inKey === NO_KEY ? texts[t++]! : NULL_TOKEN);
      const outKey = this.outKey[i]!;
      ev.setOut(outKey, outKey === NO_KEY ? texts[t++]! : NULL_TOKEN);
      ev.inId = this.inId[i]!;
      ev.outId = this.outId[i]!;
      sink.event(ev);
    }
  }
}
