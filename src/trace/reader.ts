/**
 * Reading a native trace: the entry points that put the input (source.ts: files, standard input,
 * decompression) and the parser (parser.ts) together.
 *
 * readTraceFile streams a file or standard input into a TraceParser, on a worker thread for large
 * files (worker-client.ts); streamTraceFile does the same in the calling thread; readTraceText
 * parses a trace held in memory. All three read plain and compressed traces alike (source.ts).
 *
 * The binary form of a trace (binary.ts) is read by all three too, recognised by its first bytes.
 * readTraceFile has the parse worker read a long one as well (BINARY_WORKER_MIN_BYTES): the
 * replaying thread then takes its batches without an event object each (Replayer.runBatch).
 *
 * Every mistake in the trace is a TraceSyntaxError (file, line, what is wrong); a file that cannot
 * be read, corrupt compressed data or a damaged binary trace is a TraceReadError (file, what is
 * wrong). Errors thrown by the sink pass through unchanged.
 */

import { BINARY_MAGIC, BinaryTraceReader, isBinaryTrace } from './binary.js';
import { TraceParser, type TraceReadResult } from './parser.js';
import { decompressBytes, inputName, streamChosenInput } from './source.js';
import type { TraceSink } from './types.js';
import { readInWorker, workerAvailable, worthTheWorker } from './worker-client.js';

/** Bytes of input parsed between two looks at the receiver's back-pressure (TraceSink.ready). */
const READY_SLICE = 64 << 10;

export { TraceReadError } from './types.js';

/**
 * Reads a trace held in memory (text, or the bytes of a plain or compressed trace) and delivers
 * it to `sink`. `name` is the file name used in error messages.
 */
export function readTraceText(
  text: string | Uint8Array,
  name: string,
  sink: TraceSink,
): TraceReadResult {
  const bytes = decompressBytes(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, name);
  if (isBinaryTrace(bytes)) {
    const reader = new BinaryTraceReader(name, sink);
    reader.push(bytes);
    return reader.finish();
  }
  const parser = new TraceParser(name, sink);
  parser.push(bytes);
  return parser.end();
}

/**
 * Streams a trace file (`-` for standard input) to `sink`, decompressing it on the way when it is
 * compressed. Resolves when the whole trace has been delivered; rejects with a TraceSyntaxError
 * for a line that does not parse, a TraceReadError when the file cannot be read, or whatever the
 * sink threw.
 *
 * A long file (worker-client.ts, worthTheWorker) is read and parsed by the parse worker on a
 * thread of its own, which leaves the calling thread to the sink (the replay), when the machine
 * has more than one CPU; `worker` forces the choice either way. The sink sees the same calls
 * either way.
 */
export async function readTraceFile(
  path: string,
  sink: TraceSink,
  opts?: { displayName?: string; worker?: boolean },
): Promise<TraceReadResult> {
  const name = inputName(path, opts?.displayName);
  const worker = opts?.worker ?? worthTheWorker(path, name);
  if (worker && workerAvailable()) return readInWorker(path, name, sink);
  return streamTraceFile(path, name, sink);
}

/**
 * readTraceFile in the calling thread: streams the file (or standard input) into a TraceParser
 * that calls `sink`. `name` is the file name used in error messages.
 */
export async function streamTraceFile(
  path: string,
  name: string,
  sink: TraceSink,
): Promise<TraceReadResult> {
  let reader: { push(chunk: Uint8Array): void; end(): TraceReadResult } | undefined;
  const ready = sink.ready?.bind(sink);
  await streamChosenInput(path, name, BINARY_MAGIC.length, (head) => {
    const r = (reader = readerFor(head, name, sink));
    if (ready === undefined) return (chunk) => r.push(chunk);
    // The receiver's output is checked every slice of the input, not only every chunk: a 1 MiB
    // chunk of short lines is about 90,000 events, several MB of event log.
    return async (chunk) => {
      for (let at = 0; at < chunk.length; at += READY_SLICE) {
        r.push(chunk.subarray(at, Math.min(at + READY_SLICE, chunk.length)));
        const wait = ready();
        if (wait !== undefined) await wait;
      }
    };
  });
  // streamChosenInput calls the chooser exactly once, which sets `reader`.
  return reader!.end();
}

/**
 * The reader of a native trace whose first bytes are `head`: the binary form's, or the text's.
 */
export function readerFor(
  head: Uint8Array,
  name: string,
  sink: TraceSink,
): { push(chunk: Uint8Array): void; end(): TraceReadResult } {
  if (isBinaryTrace(head)) {
    const binary = new BinaryTraceReader(name, sink);
    return { push: (chunk) => binary.push(chunk), end: () => binary.finish() };
  }
  const parser = new TraceParser(name, sink);
  return { push: (chunk) => parser.push(chunk), end: () => parser.end() };
}
