/**
 * One entry point for every trace format: openTrace reads a native trace with the native reader
 * (src/trace/reader.ts) and any other format with its importer, and delivers TraceEvents to the
 * sink either way, the same events the native reader would give for the same calls written as a
 * native trace (so `ptsim convert` output reads back as exactly what was imported).
 *
 * The format is `opts.from`, or recognised from the first lines (detect.ts). Input is streamed:
 * a file or standard input (`-`), gzip-compressed (recognised by its magic bytes), or compressed
 * with zstd, xz or bzip2 (decompressed by their programs).
 */

import { TraceParser } from '../trace/parser.js';
import { TraceReadError, readTraceFile } from '../trace/reader.js';
import type { TraceSink } from '../trace/types.js';
import { ImportCore, type ImportReport } from './core.js';
import { FORMATS, detectFormat, formatNamed, type TraceFormat } from './detect.js';
import { HeaptrackImporter } from './heaptrack.js';
import type { LineImporter } from './importer.js';
import { LineSplitter, peekFile, streamInput } from './input.js';
import { LogallocImporter } from './logalloc.js';
import { LtraceImporter } from './ltrace.js';
import { MalloclabImporter } from './malloclab.js';
import { MtraceImporter } from './mtrace.js';

export { FORMATS, detectFormat, formatNamed, type TraceFormat } from './detect.js';
export type { ImportReport } from './core.js';

export interface OpenTraceOptions {
  /** The format (`native`, `mtrace`, `logalloc`, `ltrace`, `heaptrack`, `malloclab`); default: recognised. */
  from?: string;
  /** Stop at the first oddity of a recorded log (a free of a pointer never seen...) instead of skipping it. */
  strict?: boolean;
  /** logalloc: the process to import, as its pid is written in the log (default: the first). */
  pid?: number;
  /** The file name used in messages (default: the path, or `<stdin>` for `-`). */
  displayName?: string;
  /** Receives each warning of an importer, with file and line. */
  onWarning?: (message: string) => void;
}

export interface OpenTraceResult extends ImportReport {
  /** The format read. */
  format: TraceFormat;
}

/** How many bytes of a log are looked at to recognise its format. */
const HEAD_BYTES = 64 << 10;

/**
 * Reads the trace at `path` (`-` for standard input) in any format, delivering its events to
 * `sink`. Rejects with TraceSyntaxError (file and line) for a line that does not parse, with
 * TraceReadError for a file that cannot be read or whose format is unknown, or with what the
 * sink threw.
 */
export async function openTrace(path: string, sink: TraceSink, opts: OpenTraceOptions = {}): Promise<OpenTraceResult> {
  const name = opts.displayName ?? (path === '-' ? '<stdin>' : path);
  let format: TraceFormat | undefined;
  if (opts.from !== undefined) {
    format = formatNamed(opts.from);
    if (format === undefined) throw new TraceReadError(name, `unknown format '${opts.from}' (known: ${FORMATS.join(', ')})`);
  }
  if (path !== '-' && (format === undefined || format === 'native')) {
    // A plain or gzip file in the native format goes to the native reader, which has a faster
    // path for large files; anything else is streamed once, below.
    const head = peekFile(path, name, HEAD_BYTES);
    if (head.compression === 'none' || head.compression === 'gzip') {
      format ??= detectFormat(head.text.toString('latin1')) ?? unknownFormat(name, head.text);
      if (format === 'native') {
        const r = await readTraceFile(path, sink, { displayName: name });
        return { format, events: r.events, lines: r.lines, warnings: 0, skipped: {}, reordered: 0 };
      }
    }
  }
  return streamOnce(path, name, sink, format, opts);
}

/**
 * Streams the input once: the first HEAD_BYTES are held until the format is known (from the
 * options, or recognised from them), then everything goes to that format's reader.
 */
async function streamOnce(path: string, name: string, sink: TraceSink, known: TraceFormat | undefined, opts: OpenTraceOptions): Promise<OpenTraceResult> {
  let format = known;
  let head: Buffer[] = [];
  let headLen = 0;
  let push: ((chunk: Buffer) => void) | null = null;
  let end: (() => OpenTraceResult) | null = null;

  const start = (): void => {
    format ??= detectFormat(Buffer.concat(head).toString('latin1')) ?? unknownFormat(name, Buffer.concat(head));
    if (format === 'native') {
      const parser = new TraceParser(name, sink);
      push = (chunk) => parser.push(chunk);
      end = () => {
        const r = parser.end();
        return { format: 'native', events: r.events, lines: r.lines, warnings: 0, skipped: {}, reordered: 0 };
      };
    } else {
      const importer = createImporter(format, name, sink, opts);
      const splitter = new LineSplitter(importer, name);
      const f = format;
      push = (chunk) => splitter.push(chunk);
      end = () => ({ format: f, ...importer.end(splitter.end()) });
    }
    const held = head;
    head = [];
    for (const chunk of held) push!(chunk);
  };

  await streamInput(path, name, (chunk) => {
    if (push !== null) {
      push(chunk);
      return;
    }
    // Until the format is known, chunks are copied: the stream may reuse their memory.
    head.push(Buffer.from(chunk));
    headLen += chunk.length;
    if (format !== undefined || headLen >= HEAD_BYTES) start();
  });
  if (push === null) start();
  return end!();
}

/** The importer of a format other than native. */
export function createImporter(format: Exclude<TraceFormat, 'native'>, name: string, sink: TraceSink, opts: OpenTraceOptions = {}): LineImporter {
  const strict = opts.strict ?? false;
  const single = format === 'mtrace' || format === 'heaptrack' || format === 'malloclab';
  const core = new ImportCore(name, sink, { strict, onWarning: opts.onWarning, singleThreaded: single });
  switch (format) {
    case 'mtrace':
      return new MtraceImporter(core, strict);
    case 'logalloc':
      return new LogallocImporter(core, strict, { pid: opts.pid });
    case 'ltrace':
      return new LtraceImporter(core, strict);
    case 'heaptrack':
      return new HeaptrackImporter(core, strict);
    case 'malloclab':
      return new MalloclabImporter(core, strict);
  }
}

/**
 * Imports a log held in memory (text or bytes, not compressed), for tests and small inputs.
 * `name` is the file name used in messages.
 */
export function importText(text: string | Uint8Array, name: string, sink: TraceSink, opts: OpenTraceOptions = {}): OpenTraceResult {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const format = opts.from !== undefined ? formatNamed(opts.from) : (detectFormat(bytes.subarray(0, HEAD_BYTES).toString('latin1')) ?? unknownFormat(name, bytes));
  if (format === undefined) throw new TraceReadError(name, `unknown format '${opts.from}' (known: ${FORMATS.join(', ')})`);
  if (format === 'native') {
    const parser = new TraceParser(name, sink);
    parser.push(bytes);
    const r = parser.end();
    return { format, events: r.events, lines: r.lines, warnings: 0, skipped: {}, reordered: 0 };
  }
  const importer = createImporter(format, name, sink, opts);
  const splitter = new LineSplitter(importer, name);
  splitter.push(bytes);
  return { format, ...importer.end(splitter.end()) };
}

function unknownFormat(name: string, head: Uint8Array): never {
  const text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('utf8');
  const first = text.split('\n').find((l) => l.trim() !== '');
  if (first === undefined) throw new TraceReadError(name, `is empty: no trace to read (give --from to read an empty ${FORMATS.join('/')} trace)`);
  const shown = first.length > 80 ? first.slice(0, 80) + '...' : first;
  throw new TraceReadError(name, `cannot tell which format this is (it starts with '${shown.replace(/[\x00-\x1f\x7f]/g, '?')}'); give --from ${FORMATS.join('|')}`);
}
