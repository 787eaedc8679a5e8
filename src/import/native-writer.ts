/**
 * Writes TraceEvents as a native trace (docs/trace-format.md), the inverse of the native reader:
 * reading the output back gives the same header and the same events (tokens, numbers, times,
 * threads and all) as the writer was given, and the same records (`#:touch`, `#:rss`) in the same
 * places, so that a recording converted (say, decompressed) replays as before.
 *
 * Output is written in blocks of about 1 MiB: to a file descriptor with synchronous writes (the
 * disk sets the pace), or to a stream (standard output), whose buffer `ready()` says to wait for
 * while it is full: the reader's sink back-pressure (TraceSink.ready) then holds the input until
 * the stream has drained, so memory stays flat when the output is slower than the input. `gzip`
 * compresses each block as one gzip member; concatenated members are one valid gzip file
 * (RFC 1952), which gunzip and ptsim read as a whole. `binary` writes the binary form of the trace
 * (src/trace/binary.ts) through the same output.
 */

import { closeSync, openSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { MALLOPT_PARAMS } from '../core/constants.js';
import { symLine } from './symbolize.js';
import { BinaryTraceEncoder } from '../trace/binary.js';
import {
  OP_NAMES,
  Op,
  type RssSample,
  type SiteRecord,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from '../trace/types.js';

/** Characters gathered before a write. */
const BLOCK = 1 << 20;

/** mallopt parameter names by glibc's number, to write them as names. */
const PARAM_NAMES = new Map<number, string>(Object.entries(MALLOPT_PARAMS).map(([k, v]) => [v, k]));

/**
 * The tokens as the native format writes them. A keyed token is written from its key, so that its
 * text is never made as a string first; only a token without a key is read as text.
 */
function inToken(ev: TraceEvent): string {
  const k = ev.inKey;
  if (k === undefined) return ev.in === '' ? '0' : ev.in;
  return k === 0 ? '0' : k > 0 ? '0x' + k.toString(16) : ev.in;
}

function outToken(ev: TraceEvent): string {
  const k = ev.outKey;
  if (k === undefined) return ev.out === '' ? '0' : ev.out;
  return k === 0 ? '0' : k > 0 ? '0x' + k.toString(16) : ev.out;
}

/**
 * A number as the native format writes it: decimal digits, never an exponent. A size above 2^53
 * is written exactly when the reader kept it (`exact`); otherwise as the integer its double holds,
 * except 2^64, which only stands for 2^64 - 1 (sizes are at most that): written so, it reads back
 * as the same double.
 */
function num(n: number, exact?: bigint): string {
  if (exact !== undefined) return exact.toString();
  if (n >= 2 ** 64) return '18446744073709551615';
  // Above 2^53 String() gives the shortest spelling of the double (2^63: 9223372036854776000).
  return Number.isSafeInteger(n) || !Number.isInteger(n) ? String(n) : BigInt(n).toString();
}

/**
 * The text of one event line (without its newline); with `site`, its call stack's number (`^ID`)
 * when it has one, for a writer that writes the `#:stack` records too.
 */
export function eventLine(ev: TraceEvent, site = false): string {
  let s = ev.time >= 0 ? `@${num(ev.time)} ${ev.tid} ` : `${ev.tid} `;
  switch (ev.op) {
    case Op.malloc:
    case Op.valloc:
    case Op.pvalloc:
      s += `${OP_NAMES[ev.op]} ${num(ev.n1, ev.exact1)} ${outToken(ev)}`;
      break;
    case Op.calloc:
    case Op.memalign:
      s += `${OP_NAMES[ev.op]} ${num(ev.n1, ev.exact1)} ${num(ev.n2, ev.exact2)} ${outToken(ev)}`;
      break;
    case Op.realloc:
      s += `realloc ${inToken(ev)} ${num(ev.n1, ev.exact1)} ${outToken(ev)}`;
      break;
    case Op.free:
      s += `free ${inToken(ev)}`;
      break;
    case Op.mallocTrim:
      s += `malloc_trim ${num(ev.n1, ev.exact1)}`;
      break;
    case Op.mallopt:
      s += `mallopt ${PARAM_NAMES.get(ev.param) ?? String(ev.param)} ${num(ev.n1)}`;
      break;
    case Op.exit:
      s += 'exit';
      break;
  }
  if (site && ev.site !== undefined && ev.site >= 0) s += ` ^${ev.site}`;
  return s;
}

/** A `# touches incomplete from here` line (with its newline). */
function incompleteLine(detail: string): string {
  const d = detail.replace(/[\r\n]+/g, ' ');
  return d === '' ? '# touches incomplete from here\n' : `# touches incomplete from here: ${d}\n`;
}

/** The text of a `#:stack`, `#:map` or `#:sym` record (without its newline). */
function siteLine(rec: SiteRecord): string {
  const hex = (n: number): string => `0x${n.toString(16)}`;
  switch (rec.kind) {
    case 'stack':
      return `#:stack ${rec.id}${rec.frames.map((a) => ` ${hex(a)}`).join('')}`;
    case 'map':
      return `#:map ${hex(rec.start)} ${hex(rec.end)} ${hex(rec.offset)} ${rec.path.replace(/[\r\n]/g, '?')}`;
    case 'sym':
      return symLine(rec.addr, rec.frames);
  }
}

/**
 * A promise that resolves once `out` has drained (or closed), while its buffer is full; undefined
 * when there is no need to wait. The one back-pressure wait of every output stream.
 */
export function whenDrained(out: Writable): Promise<void> | undefined {
  if (!out.writableNeedDrain) return undefined;
  return new Promise<void>((resolve) => {
    const done = (): void => {
      out.off('drain', done);
      out.off('close', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
  });
}

/** The header's comment lines (each with its newline). */
export function headerLines(h: TraceHeader): string {
  let s = '';
  for (const [k, v] of h.env) s += `# env ${k}=${v}\n`;
  if (h.nprocs !== undefined) s += `# nprocs ${h.nprocs}\n`;
  if (h.touchesRecorded === true && !h.facts.has('touches')) s += '# touches recorded\n';
  for (const [k, v] of h.facts)
    s += v === '' ? `# ${k}\n` : `# ${k} ${v.replace(/[\r\n]+/g, ' ')}\n`;
  if (h.touchesIncomplete !== undefined) s += incompleteLine(h.touchesIncomplete.detail);
  return s;
}

/** A TraceSink that writes a native trace to a file, an open descriptor, or a stream (standard output). */
export class NativeTraceWriter implements TraceSink {
  private buf = '';
  private readonly fd: number;
  private readonly ownsFd: boolean;
  private readonly stream: Writable | null = null;
  /** The binary form's encoder, and the bytes it made that are not written yet. */
  private readonly encoder: BinaryTraceEncoder | null;
  private encoded: Uint8Array[] = [];
  private encodedBytes = 0;
  /** Events written. */
  events = 0;
  /** Bytes written to the file (compressed when gzip). */
  bytes = 0;

  constructor(
    path: string | number | Writable,
    private readonly gzip = false,
    binary = false,
  ) {
    if (typeof path === 'number') {
      this.fd = path;
      this.ownsFd = false;
    } else if (typeof path !== 'string') {
      this.stream = path;
      this.fd = -1;
      this.ownsFd = false;
    } else {
      this.fd = openSync(path, 'w');
      this.ownsFd = true;
    }
    this.encoder = binary
      ? new BinaryTraceEncoder((b) => {
          this.encoded.push(b);
          this.encodedBytes += b.length;
        })
      : null;
  }

  header(h: TraceHeader): void {
    if (this.encoder !== null) return this.encoder.header(h);
    this.buf += headerLines(h);
  }

  event(ev: TraceEvent): void {
    this.events++;
    if (this.encoder !== null) {
      this.encoder.event(ev);
      if (this.encodedBytes >= BLOCK) this.flush();
      return;
    }
    this.placeSites(ev.line);
    this.buf += eventLine(ev, true) + '\n';
    if (this.buf.length >= BLOCK) this.flush();
  }

  /** The end of the records after an event: the binary form keeps it, the text needs none. */
  recordsEnd(): void {
    this.encoder?.recordsEnd();
  }

  touch(rec: TouchRecord): void {
    if (this.encoder !== null) return this.encoder.touch(rec);
    this.placeSites(rec.line);
    const ranges: string[] = [];
    for (let k = 0; k < rec.ranges; k++) {
      const a = rec.pages[2 * k]!;
      const b = rec.pages[2 * k + 1]!;
      ranges.push(a === b ? num(a) : `${num(a)}-${num(b)}`);
    }
    this.buf += `#:touch ${rec.token} ${ranges.length === 0 ? '-' : ranges.join(',')}\n`;
    if (this.buf.length >= BLOCK) this.flush();
  }

  /**
   * A site record is written where it stood in the input, by its line: a reader may deliver one
   * before the event line just above it (docs/trace-format.md), so it waits for the first line
   * written that came after it. One without a line (made here, as the symbols of a conversion) is
   * written at once.
   */
  site(rec: SiteRecord): void {
    if (this.encoder !== null) return this.encoder.site(rec);
    if (rec.line > 0) {
      this.heldSites.push(rec);
      return;
    }
    this.placeSites(Number.POSITIVE_INFINITY);
    this.buf += siteLine(rec) + '\n';
    if (this.buf.length >= BLOCK) this.flush();
  }

  /** Site records held (in input order), each until a line written comes after it. */
  private heldSites: SiteRecord[] = [];

  /** Writes the held site records that stood before input line `line`. */
  private placeSites(line: number): void {
    const held = this.heldSites;
    if (held.length === 0 || held[0]!.line > line) return;
    let k = 0;
    while (k < held.length && held[k]!.line < line) this.buf += siteLine(held[k++]!) + '\n';
    held.splice(0, k);
  }

  rss(x: RssSample): void {
    if (this.encoder !== null) return this.encoder.rss(x);
    this.placeSites(x.line);
    let s = x.time >= 0 ? `#:rss @${num(x.time)}` : '#:rss';
    if (x.anon >= 0) s += ` anon=${num(x.anon)}`;
    if (x.total !== undefined && x.total >= 0) s += ` total=${num(x.total)}`;
    if (x.heap >= 0) s += ` heap=${num(x.heap)}`;
    if (x.rec !== undefined && x.rec >= 0) s += ` rec=${num(x.rec)}`;
    if (x.mark !== '') s += ` mark=${x.mark}`;
    this.buf += s + '\n';
  }

  touchesIncomplete(line: number, detail: string): void {
    if (this.encoder !== null) return this.encoder.touchesIncomplete(line, detail);
    this.placeSites(line);
    this.buf += incompleteLine(detail);
  }

  /**
   * A promise to wait for before writing more, while the stream's buffer is full (it resolves on
   * 'drain', or when the stream closes); undefined when there is no need to wait.
   */
  ready(): Promise<void> | undefined {
    return this.stream === null ? undefined : whenDrained(this.stream);
  }

  /**
   * Writes what is gathered, then closes the file (a stream is left open: see drained). `lines`:
   * the lines of the input, which the binary form's end keeps (default: the last event's line).
   */
  close(lines?: number): void {
    this.encoder?.end(lines);
    this.placeSites(Number.POSITIVE_INFINITY);
    this.flush();
    if (this.ownsFd) closeSync(this.fd);
  }

  /** Resolves once a stream has taken everything written to it (at once for a file). */
  async drained(): Promise<void> {
    await this.ready();
  }

  private flush(): void {
    let data: Buffer;
    if (this.encoder !== null) {
      if (this.encodedBytes === 0) return;
      data = Buffer.concat(this.encoded);
      this.encoded = [];
      this.encodedBytes = 0;
    } else {
      if (this.buf.length === 0) return;
      data = Buffer.from(this.buf, 'utf8');
      this.buf = '';
    }
    if (this.gzip) data = gzipSync(data);
    this.bytes += data.length;
    if (this.stream !== null) {
      this.stream.write(data);
      return;
    }
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off);
  }
}
