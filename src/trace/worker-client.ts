/**
 * The parent's side of the parse worker (parse-worker.ts): starts it on a file and hands the
 * batches it sends to the sink, in this thread, with the same calls in the same order as reading
 * in this thread would make, and the same errors.
 */

import { existsSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { EventBatch } from './batch.js';
import { isBinaryTrace } from './binary-end.js';
import { ReadEvent } from './event.js';
import { ReadRss, ReadTouch } from './records.js';
import type { TraceReadResult } from './parser.js';
import { peekInput } from './source.js';
import type { ParseWorkerInput, ParseWorkerMessage, ParseWorkerStart } from './parse-worker.js';
import { TraceReadError, TraceSyntaxError, type TraceSink } from './types.js';

/**
 * Files from this size on are worth the parse worker: starting it costs tens of milliseconds,
 * which a file of a few hundred thousand events repays.
 */
export const WORKER_MIN_BYTES = 4 << 20;

/**
 * A binary trace from which the parse worker pays: measured with the worker started ahead
 * (cli/parse-ahead.ts), the first million events of cc1 and of the 8-thread mix replayed 16 % and
 * 6 % slower through it, their whole 5.5 and 5 million 5 % and 11 % faster (the replaying thread
 * saves more on each event, taken from a batch without an event object, than the second thread
 * costs, once both are warm). A compressed one counts four times its size.
 */
export const BINARY_WORKER_MIN_BYTES = 32 << 20;

/**
 * Whether readTraceFile has the parse worker read `path` (cli/parse-ahead.ts asks the same, to
 * start it ahead): a file, not standard input, on a machine of more than one CPU, of
 * WORKER_MIN_BYTES or more, or for a binary trace BINARY_WORKER_MIN_BYTES (a compressed one
 * counted four times its size). `name` is the file name used in error messages.
 */
export function worthTheWorker(path: string, name = path, cpus = availableParallelism()): boolean {
  if (path === '-' || cpus < 2) return false;
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    // Not there: the reading will say so.
    return false;
  }
  if (size < WORKER_MIN_BYTES) return false;
  let peek: ReturnType<typeof peekInput>;
  try {
    peek = peekInput(path, name, 4096);
  } catch {
    // The reading will say what is wrong with the file.
    return true;
  }
  if (peek.head === undefined || !isBinaryTrace(peek.head)) return true;
  return size * (peek.compression === 'none' ? 1 : 4) >= BINARY_WORKER_MIN_BYTES;
}

/** How long batches are replayed before the event loop is given a turn. */
const YIELD_MS = 50;

/**
 * The parse worker's script. It exists once compiled (dist/), and in the executable's bundle
 * (dist/bin, whose chunks have the workers' bundled scripts beside them, as dist/trace has this
 * one); code run from the TypeScript sources (the unit tests) reads in the calling thread.
 */
const WORKER_SCRIPT = fileURLToPath(new URL('./parse-worker.js', import.meta.url));

/** Whether the parse worker can be started (its compiled script exists). */
export function workerAvailable(): boolean {
  return existsSync(WORKER_SCRIPT);
}

/** A parse worker started ahead of need, waiting for its input; null if none. */
let ahead: Worker | null = null;

/**
 * Starts a parse worker before the file it will read is known, so that it loads its modules while
 * this thread loads its own (about 0.1 s each): the next readInWorker takes it. One that is not
 * taken does not keep the process alive, and ends with it.
 */
export function prestartParseWorker(): void {
  if (ahead !== null || !workerAvailable()) return;
  const w = new Worker(WORKER_SCRIPT, { workerData: null });
  w.unref();
  // Until taken, an error or an exit only means it is not there to take.
  const gone = (): void => {
    if (ahead === w) ahead = null;
  };
  w.on('error', gone);
  w.on('exit', gone);
  ahead = w;
}

/** The worker started ahead of need, given its input, or a new worker for `input`. */
function startWorker(input: ParseWorkerInput): Worker {
  const w = ahead;
  if (w === null) return new Worker(WORKER_SCRIPT, { workerData: input });
  ahead = null;
  w.ref();
  const start: ParseWorkerStart = { kind: 'input', input };
  w.postMessage(start);
  return w;
}

/**
 * Reads the trace file at `path` in the parse worker: the worker reads, decompresses and parses;
 * this thread only calls the sink, batch by batch. `name` is the file name used in error messages.
 */
export function readInWorker(
  path: string,
  name: string,
  sink: TraceSink,
): Promise<TraceReadResult> {
  const inFlight = new Int32Array(new SharedArrayBuffer(4));
  const input: ParseWorkerInput = { path, name, inFlight };
  // The copy of the trace the sink keeps, kept here by the worker (TraceSink.copy).
  const copy = sink.copy;
  if (copy !== undefined && copy.limit > 0) {
    input.keep = copy.limit;
    copy.keptElsewhere();
  }
  const worker = startWorker(input);
  const ev = new ReadEvent();
  const touch = new ReadTouch();
  const rss = new ReadRss();
  return new Promise<TraceReadResult>((resolve, reject) => {
    let settled = false;
    const settle = (error: unknown, result?: TraceReadResult): void => {
      if (settled) return;
      settled = true;
      // The worker ends by itself after its last message; after an error of the sink it is stopped.
      if (error !== null) {
        void worker.terminate();
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the sink's or the worker's own error, passed on as it was thrown
        reject(error);
      } else resolve(result!);
    };
    // While the sink's back-pressure (sink.ready) holds, messages wait here; the worker stops
    // sending once the batches in flight reach its limit, so the queue stays short.
    const queue: ParseWorkerMessage[] = [];
    let waiting = false;
    // The worker's exit code once it has stopped: its last messages may still be queued.
    let exitCode: number | null = null;
    const stopped = (): void =>
      settle(new Error(`ptsim internal error: the parse worker stopped (exit code ${exitCode})`));
    // A worker that always has the next batch ready would keep this thread in its message
    // handler: every YIELD_MS the batches wait for one turn of the event loop, so that signals
    // (Ctrl-C) and the sink's own I/O get theirs.
    let lastYield = Date.now();
    const pump = (): void => {
      while (!waiting && !settled && queue.length > 0) {
        handle(queue.shift()!);
        let wait = settled ? undefined : sink.ready?.();
        if (wait === undefined && Date.now() - lastYield >= YIELD_MS)
          wait = new Promise<void>((resolve) => setImmediate(resolve));
        if (wait !== undefined) lastYield = Date.now();
        if (wait !== undefined) {
          waiting = true;
          wait.then(
            () => {
              waiting = false;
              pump();
            },
            (e: unknown) => settle(e),
          );
        }
      }
      if (!waiting && queue.length === 0 && exitCode !== null) stopped();
    };
    worker.on('message', (m: ParseWorkerMessage) => {
      queue.push(m);
      pump();
    });
    const handle = (m: ParseWorkerMessage): void => {
      if (settled) return;
      try {
        switch (m.kind) {
          case 'header':
            sink.header(m.header);
            break;
          case 'events':
            EventBatch.from(m).deliver(ev, touch, rss, sink);
            // The columns go back to the worker for a later batch: no new buffer to allocate
            // (and fault in) per batch on its side, none to free on this one.
            worker.postMessage(m.buffer, [m.buffer]);
            Atomics.sub(inFlight, 0, 1);
            Atomics.notify(inFlight, 0);
            break;
          case 'copy':
            copy?.adopt(m.copy);
            break;
          case 'end':
            settle(null, m.result);
            break;
          case 'syntax':
            settle(new TraceSyntaxError(m.file, m.line, m.detail));
            break;
          case 'read':
            settle(new TraceReadError(m.file, m.detail));
            break;
          case 'crash':
            settle(Object.assign(new Error(m.message), { stack: m.stack }));
            break;
        }
      } catch (e) {
        // Errors thrown by the sink pass through unchanged.
        settle(e);
      }
    };
    worker.on('error', (e) => settle(e));
    worker.on('exit', (code) => {
      exitCode = code;
      pump();
    });
  });
}
