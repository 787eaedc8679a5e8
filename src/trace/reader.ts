/**
 * Reading a native trace: the entry points that put the input (source.ts: files, standard input,
 * decompression) and the parser (parser.ts) together.
 *
 * readTraceFile streams a file or standard input into a TraceParser, on a worker thread for large
 * files (worker-client.ts); streamTraceFile does the same in the calling thread; readTraceText
 * parses a trace held in memory. All three read plain and compressed traces alike (source.ts).
 *
 * Every mistake in the trace is a TraceSyntaxError (file, line, what is wrong); a file that cannot
 * be read or corrupt compressed data is a TraceReadError (file, what is wrong). Errors thrown by
 * the sink pass through unchanged.
 */

import { statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { TraceParser, type TraceReadResult } from './parser.js';
import { decompressBytes, inputName, streamInput } from './source.js';
import type { TraceSink } from './types.js';
import { WORKER_MIN_BYTES, readInWorker, workerAvailable } from './worker-client.js';

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
 * A file of WORKER_MIN_BYTES or more is read and parsed by the parse worker on a thread of its
 * own, which leaves the calling thread to the sink (the replay), when the machine has more than
 * one CPU; `worker` forces the choice either way. The sink sees the same calls either way.
 */
export async function readTraceFile(
  path: string,
  sink: TraceSink,
  opts?: { displayName?: string; worker?: boolean },
): Promise<TraceReadResult> {
  const name = inputName(path, opts?.displayName);
  const worker =
    opts?.worker ??
    (path !== '-' && availableParallelism() > 1 && fileSize(path) >= WORKER_MIN_BYTES);
  if (worker && workerAvailable()) return readInWorker(path, name, sink);
  return streamTraceFile(path, name, sink);
}

/** The size of a file, or -1 when it cannot be known (the reading will report why). */
function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
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
  const parser = new TraceParser(name, sink);
  const ready = sink.ready?.bind(sink);
  await streamInput(
    path,
    name,
    ready === undefined
      ? (chunk) => parser.push(chunk)
      : async (chunk) => {
          // The receiver's output is checked every slice of the input, not only every chunk: a
          // 1 MiB chunk of short lines is about 90,000 events, several MB of event log.
          for (let at = 0; at < chunk.length; at += READY_SLICE) {
            parser.push(chunk.subarray(at, Math.min(at + READY_SLICE, chunk.length)));
            const wait = ready();
            if (wait !== undefined) await wait;
          }
        },
  );
  return parser.end();
}
