/**
 * Reading a trace: the entry points that put the parser (parser.ts) and the input together.
 *
 * readTraceFile streams a file or standard input into a TraceParser, gunzipping on the way when
 * the data starts with gzip's magic bytes (1f 8b), on a worker thread for large files
 * (worker-client.ts); streamTraceFile does the same in the calling thread; readTraceText parses
 * a trace held in memory.
 *
 * Every mistake in the trace is a TraceSyntaxError (file, line, what is wrong); a file that cannot
 * be read or a corrupt gzip stream is a TraceReadError (file, what is wrong). Errors thrown by the
 * sink pass through unchanged.
 */

import { createReadStream, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { pipeline } from 'node:stream/promises';
import { createGunzip, gunzipSync } from 'node:zlib';
import { TraceParser, type TraceReadResult } from './parser.js';
import { TraceReadError, type TraceSink } from './types.js';
import { WORKER_MIN_BYTES, readInWorker, workerAvailable } from './worker-client.js';

export { TraceReadError } from './types.js';

/** Bytes read from a file at a time, and the size of gunzip's output chunks. */
const CHUNK = 1 << 20;

/** gzip's magic bytes. */
function isGzip(b: Uint8Array): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

/** Other compressors' magic bytes, to say what a file is rather than fail on line 1. */
function otherCompression(b: Uint8Array): string | undefined {
  if (b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a && b[5] === 0) return 'xz';
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b.length >= 4 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68 && b[3] >= 0x31 && b[3] <= 0x39) return 'bzip2';
  return undefined;
}

function unsupported(name: string, kind: string): TraceReadError {
  return new TraceReadError(name, `is ${kind}-compressed; ptsim reads plain or gzip-compressed traces (decompress it first)`);
}

/** The error to report for an exception raised while reading (not parsing) a trace. */
function readError(name: string, e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code !== 'string') return e;
  if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') {
    return new TraceReadError(name, `gzip data is corrupt or truncated (${e.message})`);
  }
  switch (code) {
    case 'ENOENT':
      return new TraceReadError(name, 'no such file');
    case 'EISDIR':
      return new TraceReadError(name, 'is a directory, not a trace file');
    case 'EACCES':
    case 'EPERM':
      return new TraceReadError(name, 'permission denied');
    default:
      if (code.startsWith('E')) return new TraceReadError(name, `cannot read: ${e.message}`);
      return e;
  }
}

/**
 * Reads a trace held in memory (text, or the bytes of a plain or gzip-compressed trace) and
 * delivers it to `sink`. `name` is the file name used in error messages.
 */
export function readTraceText(text: string | Uint8Array, name: string, sink: TraceSink): TraceReadResult {
  let bytes: Uint8Array = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  if (isGzip(bytes)) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw readError(name, e);
    }
  } else {
    const kind = otherCompression(bytes);
    if (kind !== undefined) throw unsupported(name, kind);
  }
  const parser = new TraceParser(name, sink);
  parser.push(bytes);
  return parser.end();
}

/**
 * Streams a trace file (`-` for standard input) to `sink`, gunzipping it on the way when it starts
 * with gzip's magic bytes. Resolves when the whole trace has been delivered; rejects with a
 * TraceSyntaxError for a line that does not parse, a TraceReadError when the file cannot be read,
 * or whatever the sink threw.
 *
 * A file of WORKER_MIN_BYTES or more is read and parsed by the parse worker on a thread of its
 * own, which leaves the calling thread to the sink (the replay), when the machine has more than
 * one CPU; `worker` forces the choice either way. The sink sees the same calls either way.
 */
export async function readTraceFile(path: string, sink: TraceSink, opts?: { displayName?: string; worker?: boolean }): Promise<TraceReadResult> {
  const name = opts?.displayName ?? (path === '-' ? '<stdin>' : path);
  const worker = opts?.worker ?? (path !== '-' && availableParallelism() > 1 && fileSize(path) >= WORKER_MIN_BYTES);
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
export async function streamTraceFile(path: string, name: string, sink: TraceSink): Promise<TraceReadResult> {
  const parser = new TraceParser(name, sink);
  // Errors raised by the parser or the sink are passed through as they are; only I/O and zlib
  // errors are translated.
  let passThrough: unknown = undefined;
  const feed = (chunk: Uint8Array): void => {
    try {
      parser.push(chunk);
    } catch (e) {
      passThrough = e;
      throw e;
    }
  };
  const source =
    path === '-'
      ? process.stdin.iterator({ destroyOnReturn: false })
      : createReadStream(path, { highWaterMark: CHUNK })[Symbol.asyncIterator]();
  try {
    // Look at the first bytes (a pipe may deliver them one at a time) to recognise gzip.
    const head: Buffer[] = [];
    let headLen = 0;
    let done = false;
    while (headLen < 6) {
      const r = await source.next();
      if (r.done === true) {
        done = true;
        break;
      }
      const chunk = r.value as Buffer;
      head.push(chunk);
      headLen += chunk.length;
    }
    const first = head.length === 1 ? head[0]! : Buffer.concat(head);
    if (isGzip(first)) {
      async function* compressed(): AsyncGenerator<Buffer> {
        yield first;
        if (done) return;
        for (;;) {
          const r = await source.next();
          if (r.done === true) return;
          yield r.value as Buffer;
        }
      }
      await pipeline(compressed, createGunzip({ chunkSize: CHUNK }), async (out: AsyncIterable<Buffer>) => {
        for await (const chunk of out) feed(chunk);
      });
    } else {
      const kind = otherCompression(first);
      if (kind !== undefined) throw unsupported(name, kind);
      feed(first);
      if (!done) {
        for (;;) {
          const r = await source.next();
          if (r.done === true) break;
          feed(r.value as Buffer);
        }
      }
    }
    try {
      return parser.end();
    } catch (e) {
      passThrough = e;
      throw e;
    }
  } catch (e) {
    if (e === passThrough || e instanceof TraceReadError) throw e;
    throw readError(name, e);
  } finally {
    // Closes the file (or releases standard input) if we stopped early.
    await source.return?.();
  }
}
