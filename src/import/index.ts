/**
 * One entry point for every trace format: openTrace reads a native trace with the native reader
 * (src/trace/reader.ts) and any other format with its importer, and delivers TraceEvents to the
 * sink either way, the same events the native reader would give for the same calls written as a
 * native trace (so `ptsim convert` output reads back as exactly what was imported).
 *
 * The format is `opts.from`, or recognised from the first lines (detect.ts). Input comes through
 * the same pipeline as the native reader's (src/trace/source.ts): a file or standard input (`-`),
 * plain or compressed (gzip, zstd, xz, bzip2, recognised by their magic bytes), streamed.
 */

import type { TraceReadResult } from '../trace/parser.js';
import { isBinaryTrace } from '../trace/binary.js';
import { readTraceFile, readerFor } from '../trace/reader.js';
import { decompressBytes, inputName, peekInput, streamChosenInput } from '../trace/source.js';
import { escapeControls } from '../trace/shown.js';
import { TraceReadError, TraceSyntaxError, type TraceSink } from '../trace/types.js';
import { ImportCore, type ImportReport } from './core.js';
import { FORMATS, detectFormat, formatNamed, type TraceFormat } from './detect.js';
import { HeaptrackImporter } from './heaptrack.js';
import type { LineImporter } from './importer.js';
import { LineSplitter } from './lines.js';
import { LogallocImporter } from './logalloc.js';
import { LtraceImporter } from './ltrace.js';
import { MalloclabImporter } from './malloclab.js';
import { MtraceImporter } from './mtrace.js';

export { FORMATS, detectFormat, formatNamed, type TraceFormat } from './detect.js';

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
export async function openTrace(
  path: string,
  sink: TraceSink,
  opts: OpenTraceOptions = {},
): Promise<OpenTraceResult> {
  const name = inputName(path, opts.displayName);
  let format: TraceFormat | undefined;
  if (opts.from !== undefined) {
    format = formatNamed(opts.from);
    if (format === undefined)
      throw new TraceReadError(
        name,
        `unknown format '${opts.from}' (known: ${FORMATS.join(', ')})`,
      );
  }
  if (path !== '-') {
    // A file whose first bytes can be looked at without a program (plain or gzip) is recognised
    // before it is read, so that a native trace goes to the native reader, which has a faster
    // path for large files; anything else is recognised while it is streamed, below.
    const { head } = peekInput(path, name, HEAD_BYTES);
    if (head !== undefined && isBinaryTrace(head)) format = binaryFormat(name, format);
    else if (head !== undefined) {
      checkLineEnds(name, head);
      format ??= detectFormat(head.toString('latin1')) ?? unknownFormat(name, head);
    }
  }
  if (format === 'native')
    return nativeResult(await readTraceFile(path, sink, { displayName: name }));
  return streamOnce(path, name, sink, format, opts);
}

/** What reading a native trace found, as openTrace reports it. */
function nativeResult(r: TraceReadResult): OpenTraceResult {
  return {
    format: 'native',
    events: r.events,
    lines: r.lines,
    warnings: 0,
    skipped: {},
    reordered: 0,
  };
}

/**
 * Streams the input once, to the reader of its format: the one given, or the one its first
 * HEAD_BYTES show.
 */
async function streamOnce(
  path: string,
  name: string,
  sink: TraceSink,
  known: TraceFormat | undefined,
  opts: OpenTraceOptions,
): Promise<OpenTraceResult> {
  let end: (() => OpenTraceResult) | undefined;
  let importer: LineImporter | undefined;
  await streamChosenInput(path, name, HEAD_BYTES, (head) => {
    const binary = isBinaryTrace(head);
    if (binary) binaryFormat(name, known);
    else checkLineEnds(name, head);
    const format = binary
      ? 'native'
      : (known ?? detectFormat(head.toString('latin1')) ?? unknownFormat(name, head));
    if (format === 'native') {
      const parser = readerFor(head, name, sink);
      end = () => nativeResult(parser.end());
      return (chunk) => {
        parser.push(chunk);
        return sink.ready?.();
      };
    }
    const created = createImporter(format, name, sink, opts);
    importer = created;
    const splitter = new LineSplitter(created, name);
    end = () => ({ format, ...created.end(splitter.end()) });
    return (chunk) => {
      splitter.push(chunk);
      return sink.ready?.();
    };
  }).catch((e: unknown) => {
    stoppedAt(importer, e);
    throw e;
  });
  // streamChosenInput calls the chooser exactly once, which sets `end`.
  if (end === undefined) throw new Error('ptsim internal error: no reader was chosen');
  return end();
}

/** The importer of a format other than native. */
export function createImporter(
  format: Exclude<TraceFormat, 'native'>,
  name: string,
  sink: TraceSink,
  opts: OpenTraceOptions = {},
): LineImporter {
  const strict = opts.strict ?? false;
  const single = format === 'mtrace' || format === 'heaptrack' || format === 'malloclab';
  const core = new ImportCore(name, sink, {
    strict,
    onWarning: opts.onWarning,
    singleThreaded: single,
  });
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
 * Imports a log held in memory (text, or the bytes of a plain or compressed log), for tests and
 * small inputs. `name` is the file name used in messages.
 */
export function importText(
  text: string | Uint8Array,
  name: string,
  sink: TraceSink,
  opts: OpenTraceOptions = {},
): OpenTraceResult {
  const data = decompressBytes(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, name);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const given = opts.from !== undefined ? formatNamed(opts.from) : undefined;
  if (opts.from !== undefined && given === undefined)
    throw new TraceReadError(name, `unknown format '${opts.from}' (known: ${FORMATS.join(', ')})`);
  const format = isBinaryTrace(bytes)
    ? binaryFormat(name, given)
    : (given ??
      detectFormat(bytes.subarray(0, HEAD_BYTES).toString('latin1')) ??
      unknownFormat(name, bytes));
  if (format === 'native') {
    const parser = readerFor(bytes, name, sink);
    parser.push(bytes);
    return nativeResult(parser.end());
  }
  const importer = createImporter(format, name, sink, opts);
  const splitter = new LineSplitter(importer, name);
  try {
    splitter.push(bytes);
    return { format, ...importer.end(splitter.end()) };
  } catch (e) {
    stoppedAt(importer, e);
    throw e;
  }
}

/**
 * A mistake in the input stops the reading: the call the importer holds (it waits to learn whether
 * samples follow it) is a call before the failing line, and goes to the sink first, as the native
 * reader delivers every event before such a line. (An error of the sink's own stops it as it is.)
 */
function stoppedAt(importer: LineImporter | undefined, e: unknown): void {
  if (importer !== undefined && (e instanceof TraceSyntaxError || e instanceof TraceReadError))
    importer.deliverHeld();
}

/**
 * Refuses a file whose lines end in a carriage return alone (classic Mac OS line ends): every
 * reader takes LF or CRLF, and would otherwise read the whole file as one line. Told by the first
 * line: a CR inside it, not just before its LF (or the end of the input), followed by more text.
 */
/** A binary trace is a native trace: no other format is read from it. */
function binaryFormat(name: string, given: TraceFormat | undefined): 'native' {
  if (given !== undefined && given !== 'native')
    throw new TraceReadError(
      name,
      `a binary ptsim trace is a native trace, not ${given}: leave --from out, or give --from native`,
    );
  return 'native';
}

function checkLineEnds(name: string, head: Uint8Array): void {
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const lf = b.indexOf(10);
  const end = lf < 0 ? b.length : lf;
  const cr = b.indexOf(13);
  if (cr < 0 || cr >= end - 1) return;
  let next = cr + 1;
  while (next < end && b[next] === 13) next++;
  if (next >= end) return;
  throw new TraceReadError(
    name,
    "its lines end in a carriage return alone (CR, classic Mac OS line ends); ptsim reads LF or CRLF line ends: convert them first, for example with tr '\\r' '\\n' < IN > OUT",
  );
}

function unknownFormat(name: string, head: Uint8Array): never {
  const text = Buffer.from(head.buffer, head.byteOffset, head.byteLength).toString('utf8');
  const first = text.split('\n').find((l) => l.trim() !== '');
  if (first === undefined)
    throw new TraceReadError(
      name,
      `is empty: no trace to read (give --from to read an empty ${FORMATS.join('/')} trace)`,
    );
  const shown = escapeControls(first.length > 80 ? first.slice(0, 80) + '...' : first);
  throw new TraceReadError(
    name,
    `cannot tell which format this is (it starts with '${shown}'); give --from ${FORMATS.join('|')}`,
  );
}
