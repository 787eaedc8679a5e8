/**
 * The parse worker: reads, gunzips and parses a trace file on a thread of its own, so that the
 * thread that replays the events does nothing else (readTraceFile starts it for large files, and
 * worker-client.ts hands what it sends to the sink).
 *
 * Messages to the parent, in trace order: the header (once, before the first batch, or before
 * the end of a trace without events), batches of events and records (batch.ts), then either the end (what
 * reading found) or the error that stopped the reading (every event before the failing line is
 * delivered first).
 *
 * Backpressure: `inFlight` (shared with the parent) counts the batches sent and not yet replayed;
 * at MAX_IN_FLIGHT the worker blocks (Atomics.wait) until the parent has replayed one. Memory stays
 * bounded however much faster parsing is than replaying. The parent sends each batch's buffer
 * back once replayed, and the next batches are filled in those buffers: a handful of them serve
 * the whole trace.
 *
 * A worker may be started before its file is known (worker-client.ts, prestartParseWorker): it
 * loads its modules while the parent loads its own, then waits for its input.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { TraceStore, type StoredTrace } from './event-store.js';
import { EventBatch } from './batch.js';
import type { ReadEvent } from './event.js';
import type { TraceReadResult } from './parser.js';
import { streamTraceFile } from './reader.js';
import {
  TraceReadError,
  TraceSyntaxError,
  type RssSample,
  type SiteRecord,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from './types.js';

/** What the parent gives the worker. */
export interface ParseWorkerInput {
  path: string;
  /** The file name used in error messages. */
  name: string;
  /** inFlight[0]: batches sent and not yet replayed (an Int32Array over a SharedArrayBuffer). */
  inFlight: Int32Array;
  /**
   * Keep a copy of the trace (TraceSink.copy) of at most this many events, sent at the end; none
   * when absent.
   */
  keep?: number;
}

/** Batches the parent may hold before the worker waits. */
export const MAX_IN_FLIGHT = 4;

export type ParseWorkerMessage =
  | { kind: 'header'; header: TraceHeader }
  | ReturnType<EventBatch['message']>
  | { kind: 'copy'; copy: StoredTrace | null }
  | { kind: 'end'; result: TraceReadResult }
  | { kind: 'syntax'; file: string; line: number; detail: string }
  | { kind: 'read'; file: string; detail: string }
  | { kind: 'crash'; message: string; stack: string };

function send(m: ParseWorkerMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

/** The first message a parent sends a worker it started without its input (ahead of need). */
export interface ParseWorkerStart {
  kind: 'input';
  input: ParseWorkerInput;
}

/** Buffers of batches the parent has replayed and sent back, to fill again. */
const spare: ArrayBuffer[] = [];
let started: (input: ParseWorkerInput) => void = () => {};
parentPort!.on('message', (m: ArrayBuffer | ParseWorkerStart) => {
  if (m instanceof ArrayBuffer) spare.push(m);
  else started(m.input);
});
// The input comes with the worker, or, for one started ahead of need (worker-client.ts,
// prestartParseWorker), in the parent's first message: the port keeps the worker waiting for it.
const given = workerData as ParseWorkerInput | null;
const { path, name, inFlight, keep } =
  given ?? (await new Promise<ParseWorkerInput>((resolve) => (started = resolve)));
// The buffers coming back do not keep the worker alive once the trace is read.
parentPort!.unref();

/**
 * The first batches are smaller: the replaying thread starts sooner, and warms its compiler up on
 * them while this thread parses on.
 */
const FIRST_LIMITS = [255, 1023, 4095];

class BatchingSink implements TraceSink {
  private batch = withLimit(new EventBatch(), 0);
  /** Batches sent. */
  private sent = 0;
  /** The copy of the trace kept for the parent (ParseWorkerInput.keep). */
  readonly kept = keep !== undefined ? new TraceStore(keep) : null;

  header(h: TraceHeader): void {
    this.kept?.header(h);
    send({ kind: 'header', header: h });
  }

  event(ev: TraceEvent): void {
    this.kept?.event(ev);
    // The parser's own event object (event.ts), whose token keys are always set.
    if (this.batch.add(ev as ReadEvent)) this.flush();
  }

  touch(rec: TouchRecord): void {
    this.kept?.touch(rec);
    if (this.batch.addTouch(rec)) this.flush();
  }

  rss(s: RssSample): void {
    this.kept?.rss(s);
    if (this.batch.addRss(s)) this.flush();
  }

  touchesIncomplete(line: number, detail: string): void {
    this.kept?.touchesIncomplete(line, detail);
    if (this.batch.addTouchesIncomplete(line, detail)) this.flush();
  }

  recordsEnd(): void {
    this.kept?.recordsEnd();
    if (this.batch.addRecordsEnd()) this.flush();
  }

  site(rec: SiteRecord): void {
    this.kept?.site(rec);
    if (this.batch.addSite(rec)) this.flush();
  }

  /** Sends the events batched so far, first waiting while the parent holds MAX_IN_FLIGHT batches. */
  flush(): void {
    if (this.batch.count === 0) return;
    for (;;) {
      const n = Atomics.load(inFlight, 0);
      if (n < MAX_IN_FLIGHT) break;
      Atomics.wait(inFlight, 0, n);
    }
    Atomics.add(inFlight, 0, 1);
    send(this.batch.message(), [this.batch.buffer]);
    this.batch = withLimit(new EventBatch(spare.pop()), ++this.sent);
  }
}

/** The batch, full from the size the n-th batch sent (from 0) has. */
function withLimit(b: EventBatch, n: number): EventBatch {
  if (n < FIRST_LIMITS.length) b.limit = FIRST_LIMITS[n]!;
  return b;
}

const sink = new BatchingSink();
try {
  const result = await streamTraceFile(path, name, sink);
  sink.flush();
  if (sink.kept !== null) send({ kind: 'copy', copy: sink.kept.finish() });
  send({ kind: 'end', result });
} catch (e) {
  sink.flush();
  if (e instanceof TraceSyntaxError)
    send({ kind: 'syntax', file: e.file, line: e.line, detail: e.detail });
  else if (e instanceof TraceReadError) send({ kind: 'read', file: e.file, detail: e.detail });
  else
    send({
      kind: 'crash',
      message: String(e instanceof Error ? e.message : e),
      stack: e instanceof Error ? (e.stack ?? '') : '',
    });
}
