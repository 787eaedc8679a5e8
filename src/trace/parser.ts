/**
 * The trace parser: turns the bytes of a ptsim trace (format version 1, docs/trace-format.md)
 * into TraceEvents. It does no I/O: it is fed bytes in chunks of any size (push) and told when the
 * input ends (end); where the bytes come from (files, standard input, gzip) is source.ts's
 * business, and reader.ts puts the two together.
 *
 * Invariants and design:
 * - The input is never held whole in memory: the parser keeps only the unfinished last line of a
 *   chunk (the "carry") until the next chunk completes it. A line longer than MAX_LINE bytes is an
 *   error, so a file without newlines cannot fill memory.
 * - The hot path allocates nothing per line: the parser works on the raw bytes, recognises
 *   operation names and parses numbers straight from them, and fills one event object (event.ts)
 *   that it hands to the sink for every event line. Consumers copy what they keep (see types.ts).
 *   PTR tokens are read as keys (token-key.ts); only a token without a key (not NULL, not written
 *   `0x...` like a pointer) is made a string as it is read.
 * - Each line is first tried by a fast path that only knows the common shape of a line (single
 *   spaces, decimal numbers, printable ASCII tokens, the five frequent operations) and finds the
 *   end of the line as it goes. Anything else, including every mistake, goes to the general path,
 *   which finds the newline with Buffer.indexOf, splits the line into tokens and checks each one,
 *   with a precise message for what is wrong. Both paths accept the same lines and produce the
 *   same events; the fast path merely gives up early. (Measured on the project's 2-core machine:
 *   the fast path reads about 8 to 11 million lines/s, the general path about 5 million.)
 * - Token strings are built with String.fromCharCode from the bytes: for tokens of a few dozen
 *   bytes this is two to three times faster than any Buffer decoding method (measured on Node 20).
 * - Fields are separated by spaces or tabs; a carriage return counts as a blank too, which makes
 *   CRLF files read like LF files. Any other control character in an event line is an error.
 * - Line numbers count every line (comments and blank lines included), from 1; event indexes count
 *   event lines only, from 0. The last line may lack its newline; if that line does not parse,
 *   the error says the file may be truncated.
 * - The header (the `# KEY VALUE` comment lines before the first event) is given to the sink
 *   exactly once: just before the first event, or at the end of a trace without events.
 * - Records (`#:touch`, `#:rss`: comment lines to a reader of the core format) are delivered in
 *   trace order with the events. To tell the sink whether records follow an event (which the
 *   replay needs, to finish the event after them), an event followed by a line that does not start
 *   like an event line (or by bytes not read yet) is handed over only once the next line of
 *   substance is read: an event line, a record, the end, or a line that does not parse (every
 *   event before a mistake is delivered first, as before). An event followed by an event line, the
 *   common case, goes at once. Records before the first event are kept until the header has been
 *   sent. Other `#:` keywords are skipped (a later version's records); other comment lines stay
 *   comments.
 * - Every mistake in the trace is a TraceSyntaxError (file, line, what is wrong). Errors thrown by
 *   the sink pass through unchanged.
 */

import { isUtf8 } from 'node:buffer';
import { ReadEvent } from './event.js';
import { ReadRss, ReadTouch } from './records.js';
import { shownBytes } from './shown.js';
import { NO_KEY, tokenKeyOf } from './token-key.js';
import { TokenNumbers } from './token-numbers.js';
import {
  LINE_TOO_LONG,
  MAX_HEADER_COMMENTS,
  MAX_LINE,
  NULL_TOKEN,
  OP_NAMES,
  Op,
  TraceSyntaxError,
  type OpCode,
  type RssSample,
  type SiteRecord,
  type SymFrame,
  type TraceHeader,
  type TraceSink,
} from './types.js';
import { MALLOPT_PARAMS } from '../core/constants.js';

/** What reading a whole trace found. */
export interface TraceReadResult {
  /** Event lines delivered to the sink. */
  events: number;
  /** Lines in the input, comments and blank lines included (a last line without newline counts). */
  lines: number;
}

/** Token offsets kept per line. A valid event line has at most 6 tokens; later ones are only counted. */
const MAX_TOKENS = 8;
/** Longest token copied verbatim into an error message. */
const SHOW_MAX = 60;

/** Byte values used by the scanner. */
const LF = 10;
const CR = 13;
const TAB = 9;
const SPACE = 32;
const HASH = 35;
const AT = 64;
const ZERO = 48;
const MINUS = 45;
const COLON = 58;

/** `touches incomplete from here[: DETAIL]`, after the `#` (docs/trace-format.md). */
const INCOMPLETE = /^touches[ \t]+incomplete[ \t]+from[ \t]+here(?![^ \t:\r])[ \t]*:?(.*)$/s;

/** The recorder's reason, as a `# touches incomplete from here` line gives it. */
function incompleteDetail(rest: string): string {
  return rest.trim();
}
const COMMA = 44;
const EQUALS = 61;
const CARET = 94;

/**
 * Where the parser stands between events (see TraceEvent.recordsFollow): nothing waits; the last
 * event waits for the next line of substance (an event, a record or the end) to learn whether
 * records follow it; records after the last event are being delivered.
 */
const IDLE = 0;
const PENDING = 1;
const RECORDS = 2;

/** The arguments each operation takes, by OpCode, as error messages name them. */
const USAGE: readonly string[] = [
  'SIZE PTR',
  'NMEMB SIZE PTR',
  'OLD SIZE NEW',
  'ALIGN SIZE PTR',
  'SIZE PTR',
  'SIZE PTR',
  'PTR',
  'PAD',
  'PARAM VALUE',
  '',
];
/** How many arguments each operation takes, by OpCode. */
const ARITY: readonly number[] = USAGE.map((u) => (u === '' ? 0 : u.split(' ').length));

/**
 * Node's Buffer has an undocumented latin1Slice(start, end) that maps each byte to one char without
 * the argument checks of toString('latin1'). Used for long tokens and on cold paths.
 */
interface FastSliceBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
}

/** A view of the same bytes as a Buffer (no copy), so that the parser only ever sees one kind of array. */
function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk)
    ? chunk
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * Recognises an operation name from its bytes without making a string: the length narrows the
 * candidates, then the bytes are compared. Returns -1 for anything else.
 */
function opCode(b: Buffer, s: number, e: number): number {
  switch (e - s) {
    case 4:
      if (b[s] === 0x66 && b[s + 1] === 0x72 && b[s + 2] === 0x65 && b[s + 3] === 0x65)
        return Op.free;
      if (b[s] === 0x65 && b[s + 1] === 0x78 && b[s + 2] === 0x69 && b[s + 3] === 0x74)
        return Op.exit;
      return -1;
    case 6:
      // malloc, calloc, valloc: "alloc" after one letter
      if (
        b[s + 1] !== 0x61 ||
        b[s + 2] !== 0x6c ||
        b[s + 3] !== 0x6c ||
        b[s + 4] !== 0x6f ||
        b[s + 5] !== 0x63
      )
        return -1;
      if (b[s] === 0x6d) return Op.malloc;
      if (b[s] === 0x63) return Op.calloc;
      if (b[s] === 0x76) return Op.valloc;
      return -1;
    case 7: // realloc, pvalloc, mallopt
    case 8: // memalign
    case 11: // malloc_trim
      // Rarer operations: compared as a string (one small allocation on these lines only).
      return slowOpCode((b as FastSliceBuffer).latin1Slice(s, e));
    default:
      return -1;
  }
}

function slowOpCode(name: string): number {
  for (let i = 0; i < OP_NAMES.length; i++) if (OP_NAMES[i] === name) return i;
  return -1;
}

/** A token as it may be shown in an error message: UTF-8, control characters escaped, shortened. */
function show(b: Buffer, s: number, e: number): string {
  return shownBytes(b, s, e, SHOW_MAX);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * String.fromCharCode, typed to take Buffer reads as they are typed (number | undefined): every
 * caller passes offsets inside the token it converts, so no read here is past the end.
 */
const fcc = String.fromCharCode as (...codes: Array<number | undefined>) => string;

/**
 * The string of the printable-ASCII bytes b[s, e). String.fromCharCode with the bytes as separate
 * arguments is much faster than Buffer's decoders for short strings, hence the unrolled cases.
 */
function asciiString(b: Buffer, s: number, e: number): string {
  switch (e - s) {
    case 1:
      return fcc(b[s]);
    case 2:
      return fcc(b[s], b[s + 1]);
    case 3:
      return fcc(b[s], b[s + 1], b[s + 2]);
    case 4:
      return fcc(b[s], b[s + 1], b[s + 2], b[s + 3]);
    case 5:
      return fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]);
    case 6:
      return fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]);
    case 7:
      return fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]);
    case 8:
      return fcc(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]);
    case 9:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
      );
    case 10:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
      );
    case 11:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
      );
    case 12:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
      );
    case 13:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
      );
    case 14:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
      );
    case 15:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
      );
    case 16:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
      );
    case 17:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
      );
    case 18:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
      );
    case 19:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
      );
    case 20:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
      );
    case 21:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
      );
    case 22:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
      );
    case 23:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
      );
    case 24:
      return fcc(
        b[s],
        b[s + 1],
        b[s + 2],
        b[s + 3],
        b[s + 4],
        b[s + 5],
        b[s + 6],
        b[s + 7],
        b[s + 8],
        b[s + 9],
        b[s + 10],
        b[s + 11],
        b[s + 12],
        b[s + 13],
        b[s + 14],
        b[s + 15],
        b[s + 16],
        b[s + 17],
        b[s + 18],
        b[s + 19],
        b[s + 20],
        b[s + 21],
        b[s + 22],
        b[s + 23],
      );
    default:
      return (b as FastSliceBuffer).latin1Slice(s, e);
  }
}

/**
 * The string of any token (the general path). ASCII tokens as above; a token with other bytes is
 * decoded as UTF-8 when it is valid UTF-8, so that it shows right in messages, and as Latin-1
 * (one char per byte) otherwise. Equal bytes always give equal strings, which is all the replayer
 * relies on.
 */
function tokenString(b: Buffer, s: number, e: number): string {
  for (let i = s; i < e; i++) {
    if (b[i]! > 0x7e)
      return isUtf8(b.subarray(s, e))
        ? b.toString('utf8', s, e)
        : (b as FastSliceBuffer).latin1Slice(s, e);
  }
  return asciiString(b, s, e);
}

/**
 * The offset of the first byte at or after i that is not printable ASCII (0x21-0x7e). Fast path:
 * the caller guarantees that such a byte (the line's LF) follows.
 */
function printableEnd(b: Buffer, i: number): number {
  while ((b[i]! - 0x21) >>> 0 <= 0x5d) i++;
  return i;
}

/**
 * The incremental trace parser. Feed it the bytes of a trace with push(), in chunks cut anywhere,
 * then call end(). It calls sink.header() once and sink.event() for every event line, and throws
 * TraceSyntaxError at the first line that does not parse.
 */
export class TraceParser {
  /** The one event object, refilled for every line. */
  private readonly ev = new ReadEvent();
  /** Numbers the tokens of the events (their inId and outId). */
  private readonly numbers = new TokenNumbers();
  private readonly header: TraceHeader = { env: [], facts: new Map() };
  private headerSent = false;
  /** Lines finished so far; while a line is being handled, its own number. */
  private lineNo = 0;
  private events = 0;
  /** Start and end offsets of the current line's tokens: [s0, e0, s1, e1, ...]. */
  private readonly tok = new Int32Array(2 * MAX_TOKENS);
  /** The unfinished last line of the previous chunks (carry[0, carryLen)). */
  private carry: Buffer = Buffer.allocUnsafe(4096);
  private carryLen = 0;
  /** Set while handling a last line that has no newline, so that errors mention truncation. */
  private unterminated = false;
  private ended = false;
  /** The value of the last number read by fastNum, or the key of the last token read by fastToken. */
  private num = 0;
  /** IDLE, PENDING (this.ev holds an event not yet delivered) or RECORDS. */
  private state = IDLE;
  /** The end of the bytes being scanned: what lies beyond is not read yet. */
  private scanEnd = 0;
  /** The one object of each record kind, refilled for every record. */
  private readonly touchRec = new ReadTouch();
  private readonly rssRec = new ReadRss();
  /** `#:rss` samples read before the first event, delivered after the header. */
  private early: RssSample[] | null = null;
  /** Site records read before the header was sent, delivered after it. */
  private earlySites: SiteRecord[] = [];
  /** The stack numbers `#:stack` records have defined: 1 at each. */
  private stacks = new Uint8Array(64);

  constructor(
    /** The file name used in error messages. */
    readonly name: string,
    private readonly sink: TraceSink,
  ) {}

  /** Feeds the next bytes of the trace. The parser does not keep a reference to `chunk`. */
  push(chunk: Uint8Array): void {
    if (this.ended) throw new Error('TraceParser.push after end');
    if (chunk.length === 0) return;
    const b = asBuffer(chunk);
    let from = 0;
    if (this.carryLen > 0) {
      // Complete the line that the previous chunk left unfinished, then parse it from the carry.
      const nl = b.indexOf(LF);
      if (nl < 0) {
        this.keep(b, 0, b.length);
        return;
      }
      this.keep(b, 0, nl + 1);
      this.scan(this.carry, 0, this.carryLen);
      this.carryLen = 0;
      from = nl + 1;
    }
    const rest = this.scan(b, from, b.length);
    if (rest < b.length) this.keep(b, rest, b.length);
  }

  /** Ends the input: parses a last line without newline, sends the header if no event did. */
  end(): TraceReadResult {
    if (!this.ended) {
      if (this.carryLen > 0) {
        // The last line has no newline: give it one and parse it like the others.
        this.unterminated = true;
        this.keep(Buffer.of(LF), 0, 1);
        this.scan(this.carry, 0, this.carryLen);
        this.carryLen = 0;
        this.unterminated = false;
      }
      this.ended = true;
      if (this.state !== IDLE) this.settle();
      if (!this.headerSent) this.sendHeader();
    }
    return { events: this.events, lines: this.lineNo };
  }

  /** Appends b[s, e) to the carry, growing it by doubling. */
  private keep(b: Buffer, s: number, e: number): void {
    const need = this.carryLen + (e - s);
    if (need > MAX_LINE) {
      this.lineNo++;
      this.fail(LINE_TOO_LONG);
    }
    if (need > this.carry.length) {
      let size = this.carry.length * 2;
      while (size < need) size *= 2;
      const bigger = Buffer.allocUnsafe(size);
      this.carry.copy(bigger, 0, 0, this.carryLen);
      this.carry = bigger;
    }
    b.copy(this.carry, this.carryLen, s, e);
    this.carryLen = need;
  }

  /**
   * Handles every complete line of b[from, to). Returns the offset where the unfinished last line
   * starts (`to` when the range ends with a newline).
   */
  private scan(b: Buffer, from: number, to: number): number {
    // Lines that start at or before the last newline are complete; the fast path relies on it.
    const last = b.lastIndexOf(LF, to - 1);
    this.scanEnd = to;
    let ls = from;
    while (ls <= last) {
      this.lineNo++;
      let le = this.fastLine(b, ls);
      if (le < 0) {
        le = b.indexOf(LF, ls);
        this.slowLine(b, ls, le);
      }
      ls = le + 1;
    }
    return ls;
  }

  /**
   * The fast path for the line starting at b[ls]: `[@TIME ]TID OP ARGS` with single spaces, decimal
   * numbers of at most 15 digits and printable-ASCII tokens, for malloc, free, realloc, calloc and
   * memalign, ending in LF or CRLF. Delivers the event and returns the offset of the line's LF, or
   * returns -1, having delivered nothing, as soon as the line looks any different.
   *
   * The caller guarantees that a LF follows in b. Reads never go past it: every loop stops at a
   * byte that LF cannot match, so no bounds checks are needed (hence the `!` on this path's reads,
   * here and in fastNum, fastToken and printableEnd).
   */
  private fastLine(b: Buffer, ls: number): number {
    const ev = this.ev;
    let i = ls;
    let c = b[i]!;
    let d: number;
    let time = -1;
    if (c === AT) {
      const start = ++i;
      time = 0;
      for (;;) {
        c = b[i]!;
        d = c - ZERO;
        if (d >>> 0 > 9) break;
        time = time * 10 + d;
        i++;
      }
      if (c !== SPACE || i === start || i - start > 15) return -1;
      c = b[++i]!;
    }
    d = c - ZERO;
    if (d >>> 0 > 9) return -1;
    let tid = d;
    for (;;) {
      c = b[++i]!;
      d = c - ZERO;
      if (d >>> 0 > 9) break;
      tid = tid * 10 + d;
    }
    if (c !== SPACE || tid > 0x7fffffff) return -1;
    i++;

    // The operation, with the space after it.
    let op: OpCode;
    switch (b[i]) {
      case 0x6d: // m
        if (
          b[i + 1] === 0x61 &&
          b[i + 2] === 0x6c &&
          b[i + 3] === 0x6c &&
          b[i + 4] === 0x6f &&
          b[i + 5] === 0x63 &&
          b[i + 6] === SPACE
        ) {
          op = Op.malloc;
          i += 7;
        } else if (
          b[i + 1] === 0x65 &&
          b[i + 2] === 0x6d &&
          b[i + 3] === 0x61 &&
          b[i + 4] === 0x6c &&
          b[i + 5] === 0x69 &&
          b[i + 6] === 0x67 &&
          b[i + 7] === 0x6e &&
          b[i + 8] === SPACE
        ) {
          op = Op.memalign;
          i += 9;
        } else return -1;
        break;
      case 0x66: // f
        if (b[i + 1] !== 0x72 || b[i + 2] !== 0x65 || b[i + 3] !== 0x65 || b[i + 4] !== SPACE)
          return -1;
        op = Op.free;
        i += 5;
        break;
      case 0x72: // r
        if (
          b[i + 1] !== 0x65 ||
          b[i + 2] !== 0x61 ||
          b[i + 3] !== 0x6c ||
          b[i + 4] !== 0x6c ||
          b[i + 5] !== 0x6f ||
          b[i + 6] !== 0x63 ||
          b[i + 7] !== SPACE
        )
          return -1;
        op = Op.realloc;
        i += 8;
        break;
      case 0x63: // c
        if (
          b[i + 1] !== 0x61 ||
          b[i + 2] !== 0x6c ||
          b[i + 3] !== 0x6c ||
          b[i + 4] !== 0x6f ||
          b[i + 5] !== 0x63 ||
          b[i + 6] !== SPACE
        )
          return -1;
        op = Op.calloc;
        i += 7;
        break;
      default:
        return -1;
    }

    // The arguments.
    let s: number;
    let n1 = 0;
    let n2 = 0;
    let inKey = 0;
    let inText = NULL_TOKEN;
    switch (op) {
      case Op.free:
        s = i;
        i = this.fastToken(b, i);
        if (i === s) return -1;
        inKey = this.num;
        if (inKey === NO_KEY) inText = asciiString(b, s, i);
        break;
      case Op.malloc:
        i = this.fastNum(b, i);
        if (i < 0) return -1;
        n1 = this.num;
        break;
      case Op.realloc:
        s = i;
        i = this.fastToken(b, i);
        if (b[i] !== SPACE || i === s) return -1;
        inKey = this.num;
        if (inKey === NO_KEY) inText = asciiString(b, s, i);
        i = this.fastNum(b, i + 1);
        if (i < 0) return -1;
        n1 = this.num;
        break;
      default: // calloc, memalign
        i = this.fastNum(b, i);
        if (i < 0) return -1;
        n1 = this.num;
        i = this.fastNum(b, i);
        if (i < 0) return -1;
        n2 = this.num;
        break;
    }
    let outKey = 0;
    let outText = NULL_TOKEN;
    if (op !== Op.free) {
      s = i;
      i = this.fastToken(b, i);
      if (i === s) return -1;
      outKey = this.num;
      if (outKey === NO_KEY) outText = asciiString(b, s, i);
    }
    // The last token must end the line, or be followed by the stack's number.
    let site = -1;
    if (b[i] === SPACE && b[i + 1] === CARET) {
      const start = i + 2;
      let v = 0;
      i = start;
      for (;;) {
        const d = b[i]! - ZERO;
        if (d >>> 0 > 9) break;
        v = v * 10 + d;
        i++;
      }
      if (i === start || i - start > 9 || !this.stackDefined(v)) return -1;
      site = v;
    }
    if (b[i] === CR) i++;
    if (b[i] !== LF) return -1;

    if (!this.headerSent) this.sendHeader();
    if (this.state !== IDLE) this.settle();
    ev.time = time;
    ev.tid = tid;
    ev.op = op;
    ev.n1 = n1;
    ev.n2 = n2;
    ev.setOut(outKey, outText);
    ev.setIn(inKey, inText);
    ev.param = 0;
    ev.site = site;
    ev.line = this.lineNo;
    ev.index = this.events++;
    this.numberTokens();
    // As deliver(b, i), written out: this is the hot path.
    const next = i + 1;
    if (next < this.scanEnd) {
      const c = b[next]!;
      if ((c - ZERO) >>> 0 <= 9 || c === AT) {
        this.sink.event(ev);
        return i;
      }
    }
    this.state = PENDING;
    return i;
  }

  /**
   * Delivers the event just read, whose line ends at b[le], unless records may follow it: when the
   * next line does not start like an event line (a digit or `@`), or is not read yet, the event
   * waits until the next line of substance says.
   */
  private deliver(b: Buffer, le: number): void {
    const next = le + 1;
    if (next < this.scanEnd) {
      const c = b[next]!;
      if ((c - ZERO) >>> 0 <= 9 || c === AT) {
        this.sink.event(this.ev);
        this.delivered();
        return;
      }
    }
    this.state = PENDING;
  }

  /**
   * Fast path: a decimal number of 1 to 15 digits at b[i] followed by a space. Leaves its value in
   * this.num and returns the offset after the space, or -1 when the bytes are anything else.
   */
  private fastNum(b: Buffer, i: number): number {
    const start = i;
    let v = 0;
    let c = b[i]!;
    let d = c - ZERO;
    while (d >>> 0 <= 9) {
      v = v * 10 + d;
      c = b[++i]!;
      d = c - ZERO;
    }
    if (c !== SPACE || i === start || i - start > 15) return -1;
    this.num = v;
    return i + 1;
  }

  /**
   * Fast path: the printable-ASCII token at b[i] (none if b[i] is not printable). Leaves its key
   * in this.num and returns the offset after it. A pointer (`0x`, then 1 to 13 lower-case hex
   * digits, the first not 0: the common case) is read in one pass, its key computed on the way;
   * any other token is measured, then given its key by tokenKeyOf.
   */
  private fastToken(b: Buffer, i: number): number {
    const s = i;
    if (b[i] === ZERO && b[i + 1] === 0x78 && b[i + 2] !== ZERO) {
      let v = 0;
      let j = i + 2;
      for (;;) {
        const c = b[j]!;
        let d = c - ZERO;
        if (d >>> 0 > 9) {
          d = c - 0x61;
          if (d >>> 0 > 5) break;
          d += 10;
        }
        v = v * 16 + d;
        j++;
      }
      // The digits must end the token (a blank, CR or LF follows), and be 1 to 13 of them.
      const digits = j - i - 2;
      if (digits >= 1 && digits <= 13 && (b[j]! - 0x21) >>> 0 > 0x5d) {
        this.num = v;
        return j;
      }
    }
    const e = printableEnd(b, i);
    this.num = e > s ? tokenKeyOf(b, s, e) : NO_KEY;
    return e;
  }

  /** The general path: splits the line b[ls, le) into tokens, then checks and delivers it. */
  private slowLine(b: Buffer, ls: number, le: number): void {
    const tok = this.tok;
    let nt = 0; // tokens seen on this line
    let ts = -1; // start of the token being read, -1 between tokens
    let ctl = -1; // offset of the first control character of the line, -1 if none
    for (let i = ls; i < le; i++) {
      const c = b[i]!;
      if (c > SPACE) {
        if (ts < 0) ts = i;
      } else if (c === SPACE || c === TAB || c === CR) {
        if (ts >= 0) {
          if (nt < MAX_TOKENS) {
            tok[2 * nt] = ts;
            tok[2 * nt + 1] = i;
          }
          nt++;
          ts = -1;
        }
      } else {
        // Another control character: part of a token, and an error if the line is an event.
        if (ts < 0) ts = i;
        if (ctl < 0) ctl = i;
      }
    }
    if (ts >= 0) {
      if (nt < MAX_TOKENS) {
        tok[2 * nt] = ts;
        tok[2 * nt + 1] = le;
      }
      nt++;
    }
    if (nt > 0) this.line(b, ls, le, nt, ctl);
  }

  /** Checks and delivers a line of nt tokens (offsets in this.tok); le is the offset of its newline. */
  private line(b: Buffer, ls: number, le: number, nt: number, ctl: number): void {
    if (this.lineNo === 1 && b[this.tokStart(0)] === 0xef) nt = this.skipBom(b, nt);
    if (nt === 0) return;
    const s0 = this.tokStart(0);
    if (b[s0] === HASH) {
      if (b[s0 + 1] === COLON) this.record(b, ls, le, nt, ctl);
      else if (!this.headerSent) this.headerLine(b, s0 + 1, le);
      else if (nt >= 3) this.incompleteLine(b, s0 + 1, le);
      return;
    }
    if (ctl >= 0) this.controlCharacter(b, ls, ctl);
    if (!this.headerSent) this.sendHeader();
    if (this.state !== IDLE) this.settle();

    const ev = this.ev;
    let k = 0; // index of the next token
    ev.time = -1;
    if (b[s0] === AT) {
      ev.time = this.time(b, s0, this.tokEnd(0));
      k = 1;
    }
    if (k >= nt) this.fail('missing thread number');
    ev.tid = this.tid(b, this.tokStart(k), this.tokEnd(k));
    k++;
    if (k >= nt) this.fail('missing operation after the thread number');
    const op = opCode(b, this.tokStart(k), this.tokEnd(k));
    if (op < 0) this.unknownOp(b, this.tokStart(k), this.tokEnd(k));
    k++;
    ev.site = -1;
    if (nt - k === ARITY[op]! + 1 && b[this.tokStart(nt - 1)] === CARET) {
      ev.site = this.siteId(b, this.tokStart(nt - 1), this.tokEnd(nt - 1));
      nt--;
    }
    if (nt - k !== ARITY[op]) this.arity(op, nt - k);

    ev.n1 = 0;
    ev.n2 = 0;
    ev.setOut(0, NULL_TOKEN);
    ev.setIn(0, NULL_TOKEN);
    ev.param = 0;
    switch (op) {
      case Op.malloc:
      case Op.valloc:
      case Op.pvalloc:
        ev.n1 = this.size(b, this.tokStart(k), this.tokEnd(k), 'size', 1);
        this.outToken(b, this.tokStart(k + 1), this.tokEnd(k + 1));
        break;
      case Op.free:
        this.inToken(b, this.tokStart(k), this.tokEnd(k));
        break;
      case Op.calloc:
      case Op.memalign:
        ev.n1 = this.size(
          b,
          this.tokStart(k),
          this.tokEnd(k),
          op === Op.calloc ? 'nmemb' : 'alignment',
          1,
        );
        ev.n2 = this.size(b, this.tokStart(k + 1), this.tokEnd(k + 1), 'size', 2);
        this.outToken(b, this.tokStart(k + 2), this.tokEnd(k + 2));
        break;
      case Op.realloc:
        this.inToken(b, this.tokStart(k), this.tokEnd(k));
        ev.n1 = this.size(b, this.tokStart(k + 1), this.tokEnd(k + 1), 'size', 1);
        this.outToken(b, this.tokStart(k + 2), this.tokEnd(k + 2));
        break;
      case Op.mallocTrim:
        ev.n1 = this.size(b, this.tokStart(k), this.tokEnd(k), 'pad', 1);
        break;
      case Op.mallopt:
        ev.param = this.malloptParam(b, this.tokStart(k), this.tokEnd(k));
        ev.n1 = this.malloptValue(b, this.tokStart(k + 1), this.tokEnd(k + 1));
        break;
      case Op.exit:
        break;
    }
    ev.op = op as OpCode;
    ev.line = this.lineNo;
    ev.index = this.events++;
    this.numberTokens();
    this.deliver(b, le);
  }

  private controlCharacter(b: Buffer, ls: number, ctl: number): never {
    this.fail(
      `unexpected control character 0x${b[ctl]!.toString(16).padStart(2, '0')} in column ${ctl - ls + 1}: is this a text trace?`,
    );
  }

  /**
   * Delivers what waits: the pending event (no records follow it), or the end of the records
   * after the last event.
   */
  private settle(): void {
    const state = this.state;
    this.state = IDLE;
    if (state === PENDING) {
      this.sink.event(this.ev);
      this.delivered();
    } else if (state === RECORDS) {
      this.sink.recordsEnd?.();
    }
  }

  /** Before a record after the first event: the pending event goes first, told that records follow. */
  private beginRecord(): void {
    if (this.state !== PENDING) return;
    this.state = RECORDS;
    const ev = this.ev;
    ev.recordsFollow = true;
    this.sink.event(ev);
    // Set only while the sink has the event: the object goes on to the next line.
    ev.recordsFollow = undefined;
    this.delivered();
  }

  /** A `#:KEYWORD ...` line of nt tokens; keywords other than touch and rss are skipped. */
  private record(b: Buffer, ls: number, le: number, nt: number, ctl: number): void {
    const k = this.tokStart(0) + 2;
    const n = this.tokEnd(0) - k;
    if (
      n === 5 &&
      b[k] === 0x74 &&
      b[k + 1] === 0x6f &&
      b[k + 2] === 0x75 &&
      b[k + 3] === 0x63 &&
      b[k + 4] === 0x68
    )
      this.touchLine(b, ls, nt, ctl);
    else if (n === 3 && b[k] === 0x72 && b[k + 1] === 0x73 && b[k + 2] === 0x73)
      this.rssLine(b, ls, le, ctl);
    else if (n === 5 && (b as FastSliceBuffer).latin1Slice(k, k + 5) === 'stack')
      this.stackLine(b, ls, le, ctl);
    else if (n === 3 && b[k] === 0x6d && b[k + 1] === 0x61 && b[k + 2] === 0x70)
      this.mapLine(b, ls, le, ctl);
    else if (n === 3 && b[k] === 0x73 && b[k + 1] === 0x79 && b[k + 2] === 0x6d)
      this.symLine(b, ls, le);
  }

  /** Hands a site record to the sink, or keeps it until the header has been sent. */
  private siteRecord(rec: SiteRecord): void {
    if (this.headerSent) this.sink.site?.(rec);
    else this.earlySites.push(rec);
  }

  /** Whether a `#:stack` record has defined stack `id`. */
  private stackDefined(id: number): boolean {
    return id < this.stacks.length && this.stacks[id] === 1;
  }

  /** `^ID` at the end of an event line (general path): a stack defined by an earlier `#:stack`. */
  private siteId(b: Buffer, s: number, e: number): number {
    let v = 0;
    for (let i = s + 1; i < e; i++) {
      const d = b[i]! - ZERO;
      if (d >>> 0 > 9 || i - s > 9)
        this.fail(`'${show(b, s, e)}' is not a stack number (^ then a decimal number below 10^9)`);
      v = v * 10 + d;
    }
    if (e - s === 1) this.fail(`'^' without a stack number`);
    if (!this.stackDefined(v))
      this.fail(
        `stack ^${v} is not defined: a '#:stack ${v} ...' record must come before its first use`,
      );
    return v;
  }

  /** The blank-separated fields of b[s, e) as strings (record lines of any length). */
  private fields(b: Buffer, s: number, e: number): string[] {
    return (b as FastSliceBuffer)
      .latin1Slice(s, e)
      .split(/[ \t\r]+/)
      .filter((f) => f !== '');
  }

  /** A code address of a record: `0x` and hex digits, below 2^53. */
  private address(text: string, what: string): number {
    if (!/^0[xX][0-9a-fA-F]{1,13}$/.test(text))
      this.fail(
        `${what}: '${text.slice(0, SHOW_MAX)}' is not an address (0x and at most 13 hex digits)`,
      );
    return parseInt(text.slice(2), 16);
  }

  /** `#:stack ID ADDR...`: the return addresses of one call stack, the allocator's caller first. */
  private stackLine(b: Buffer, ls: number, le: number, ctl: number): void {
    if (ctl >= 0) this.controlCharacter(b, ls, ctl);
    const f = this.fields(b, ls, le);
    if (f.length < 2) this.fail('#:stack takes ID ADDR...: the stack number is missing');
    const idText = f[1]!;
    if (!/^[0-9]{1,9}$/.test(idText))
      this.fail(
        `#:stack: '${idText.slice(0, SHOW_MAX)}' is not a stack number (a decimal number below 10^9)`,
      );
    const id = Number(idText);
    if (this.stackDefined(id)) this.fail(`#:stack ${id} is defined twice`);
    const frames = f.slice(2).map((a) => this.address(a, `#:stack ${id}`));
    if (id >= this.stacks.length) {
      let size = this.stacks.length * 2;
      while (size <= id) size *= 2;
      const bigger = new Uint8Array(size);
      bigger.set(this.stacks);
      this.stacks = bigger;
    }
    this.stacks[id] = 1;
    this.siteRecord({ kind: 'stack', line: this.lineNo, id, frames });
  }

  /** `#:map START END OFFSET PATH`: a file mapped executable into the process. */
  private mapLine(b: Buffer, ls: number, le: number, ctl: number): void {
    if (ctl >= 0) this.controlCharacter(b, ls, ctl);
    const m = /^\s*#:map[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)[ \t]+(.*?)[ \t\r]*$/.exec(
      b.toString('utf8', ls, le),
    );
    if (!m || m[4] === '') this.fail('#:map takes START END OFFSET PATH');
    const start = this.address(m[1]!, '#:map START');
    const end = this.address(m[2]!, '#:map END');
    const offset = this.address(m[3]!, '#:map OFFSET');
    if (end <= start) this.fail(`#:map: END ${m[2]} is not above START ${m[1]}`);
    const path = m[4]!;
    this.siteRecord({ kind: 'map', line: this.lineNo, start, end, offset, path });
  }

  /**
   * `#:sym ADDR FILE:LINE FUNCTION [ | FILE:LINE FUNCTION]...`: the source positions of a return
   * address, innermost first, separated by a `|` between blanks; FILE is percent-encoded (a blank,
   * `|` and `%` are %20, %7C, %25), `??` when unknown; FUNCTION is the rest of the part, `??` when
   * unknown.
   */
  private symLine(b: Buffer, ls: number, le: number): void {
    const text = b.toString('utf8', ls, le).replace(/\r$/, '');
    const m = /^\s*#:sym[ \t]+(\S+)[ \t]+(.*)$/.exec(text);
    if (!m) this.fail('#:sym takes ADDR FILE:LINE FUNCTION');
    const addr = this.address(m[1]!, '#:sym');
    const frames: SymFrame[] = [];
    for (const part of m[2]!.split(/\s\|\s/)) {
      const p = /^\s*(\S+):([0-9]+)[ \t]+(.*?)\s*$/.exec(part);
      if (!p || p[3] === '')
        this.fail(`#:sym ${m[1]}: '${part.trim().slice(0, SHOW_MAX)}' is not FILE:LINE FUNCTION`);
      let file: string;
      try {
        file = decodeURIComponent(p[1]!);
      } catch {
        this.fail(`#:sym ${m[1]}: malformed percent-encoding in '${p[1]!.slice(0, SHOW_MAX)}'`);
      }
      frames.push({ fn: p[3]!, file, line: Number(p[2]) });
    }
    this.siteRecord({ kind: 'sym', line: this.lineNo, addr, frames });
  }

  /** `#:touch TOKEN PAGES` */
  private touchLine(b: Buffer, ls: number, nt: number, ctl: number): void {
    if (ctl >= 0) this.controlCharacter(b, ls, ctl);
    if (nt !== 3) this.fail(`#:touch takes TOKEN PAGES, got ${plural(nt - 1, 'argument')}`);
    const rec = this.touchRec;
    const ts = this.tokStart(1);
    const te = this.tokEnd(1);
    const key = tokenKeyOf(b, ts, te);
    if (key === 0)
      this.fail(`#:touch of NULL ('${show(b, ts, te)}'): a touch record names a live block`);
    rec.setToken(key, key === NO_KEY ? tokenString(b, ts, te) : NULL_TOKEN);
    this.pageList(b, this.tokStart(2), this.tokEnd(2), rec);
    if (this.state === IDLE)
      this.fail(`#:touch of ${rec.token} before the first event: no block is live yet`);
    rec.line = this.lineNo;
    rec.id = this.numbers.lookup(key, rec.text);
    this.beginRecord();
    this.sink.touch?.(rec);
  }

  /** PAGES of a touch record: `-`, or page numbers and inclusive ranges separated by commas. */
  private pageList(b: Buffer, s: number, e: number, rec: ReadTouch): void {
    rec.clear();
    if (e - s === 1 && b[s] === MINUS) return;
    let i = s;
    for (;;) {
      let j = i;
      let first = 0;
      while (j < e && (b[j]! - ZERO) >>> 0 <= 9) first = first * 10 + (b[j++]! - ZERO);
      if (j === i || j - i > 15) this.badPageList(b, s, e);
      let last = first;
      if (j < e && b[j] === MINUS) {
        const k = ++j;
        last = 0;
        while (j < e && (b[j]! - ZERO) >>> 0 <= 9) last = last * 10 + (b[j++]! - ZERO);
        if (j === k || j - k > 15) this.badPageList(b, s, e);
        if (last < first) this.fail(`#:touch: page range ${first}-${last} runs backwards`);
      }
      rec.add(first, last);
      if (j === e) return;
      if (b[j] !== COMMA || j + 1 === e) this.badPageList(b, s, e);
      i = j + 1;
    }
  }

  private badPageList(b: Buffer, s: number, e: number): never {
    this.fail(
      `#:touch: malformed page list '${show(b, s, e)}': expected page numbers and ranges like 0-3,7,12-40, or - for none`,
    );
  }

  /**
   * `#:rss [@TIME] KEY=VALUE ...`: anon= or total= is required (or both), heap=, rec= and mark= are
   * read, other keys are skipped. Its fields are found here (a sample may have more than
   * MAX_TOKENS of them).
   */
  private rssLine(b: Buffer, ls: number, le: number, ctl: number): void {
    if (ctl >= 0) this.controlCharacter(b, ls, ctl);
    let time = -1;
    let anon = -1;
    let total = -1;
    let heap = -1;
    let recorder = -1;
    let mark: string | null = null;
    let i = this.tokEnd(0);
    for (let first = true; ; first = false) {
      while (i < le && (b[i] === SPACE || b[i] === TAB || b[i] === CR)) i++;
      if (i >= le) break;
      const s = i;
      while (i < le && b[i] !== SPACE && b[i] !== TAB && b[i] !== CR) i++;
      if (first && b[s] === AT) {
        time = this.time(b, s, i);
        continue;
      }
      let eq = s;
      while (eq < i && b[eq] !== EQUALS) eq++;
      if (eq === s || eq === i)
        this.fail(`#:rss: '${show(b, s, i)}' is not KEY=VALUE (or @TIME, first)`);
      const name = (b as FastSliceBuffer).latin1Slice(s, eq);
      if (
        name !== 'anon' &&
        name !== 'total' &&
        name !== 'heap' &&
        name !== 'mark' &&
        name !== 'rec'
      )
        continue;
      if (eq + 1 === i) this.fail(`#:rss: ${name}= has no value`);
      const seen =
        name === 'anon'
          ? anon >= 0
          : name === 'total'
            ? total >= 0
            : name === 'heap'
              ? heap >= 0
              : name === 'rec'
                ? recorder >= 0
                : mark !== null;
      if (seen) this.fail(`#:rss: ${name}= is given twice`);
      if (name === 'mark') mark = tokenString(b, eq + 1, i);
      else if (name === 'anon') anon = this.size(b, eq + 1, i, '#:rss anon=');
      else if (name === 'total') total = this.size(b, eq + 1, i, '#:rss total=');
      else if (name === 'heap') heap = this.size(b, eq + 1, i, '#:rss heap=');
      else recorder = this.size(b, eq + 1, i, '#:rss rec=');
    }
    if (anon < 0 && total < 0)
      this.fail(
        "#:rss without anon=BYTES or total=BYTES (the process's anonymous, or whole, resident memory)",
      );
    if (this.state === IDLE) {
      // Before the first event: kept until the header is out.
      (this.early ??= []).push({
        line: this.lineNo,
        time,
        anon,
        total,
        heap,
        mark: mark ?? '',
        rec: recorder,
      });
      return;
    }
    const rec = this.rssRec;
    rec.line = this.lineNo;
    rec.time = time;
    rec.anon = anon;
    rec.total = total;
    rec.heap = heap;
    rec.mark = mark ?? '';
    rec.rec = recorder;
    this.beginRecord();
    this.sink.rss?.(rec);
  }

  /**
   * Where token j of the line being checked starts (offsets in this.tok). j is below MAX_TOKENS:
   * line() reads only tokens the arity check has counted, six at most. (A checked read here
   * costs the general path about a tenth of its speed.)
   */
  private tokStart(j: number): number {
    return this.tok[2 * j]!;
  }

  /** Where token j of the line being checked ends. */
  private tokEnd(j: number): number {
    return this.tok[2 * j + 1]!;
  }

  /** Numbers the event's tokens, the one it takes first (see token-numbers.ts). */
  private numberTokens(): void {
    const ev = this.ev;
    const inKey = ev.inKey;
    ev.inId = this.numbers.takeIn(inKey, inKey === NO_KEY ? ev.in : NULL_TOKEN);
    const outKey = ev.outKey;
    ev.outId = this.numbers.numberOut(outKey, outKey === NO_KEY ? ev.out : NULL_TOKEN);
  }

  /** The PTR token a call takes (general path): its key, and its text if it has none. */
  private inToken(b: Buffer, s: number, e: number): void {
    const key = tokenKeyOf(b, s, e);
    this.ev.setIn(key, key === NO_KEY ? tokenString(b, s, e) : NULL_TOKEN);
  }

  /** The PTR token a call returns (general path). */
  private outToken(b: Buffer, s: number, e: number): void {
    const key = tokenKeyOf(b, s, e);
    this.ev.setOut(key, key === NO_KEY ? tokenString(b, s, e) : NULL_TOKEN);
  }

  /**
   * An unsigned number (a size_t): decimal, or hexadecimal after `0x`. Values up to 2^64-1 are
   * accepted; those above 2^53 are rounded to the nearest double, and kept exactly in the event's
   * exact1 or exact2 when `field` says which.
   */
  private size(b: Buffer, s: number, e: number, what: string, field: 0 | 1 | 2 = 0): number {
    let v = 0;
    if (e - s > 2 && b[s] === ZERO && (b[s + 1]! | 0x20) === 0x78) {
      for (let i = s + 2; i < e; i++) {
        const c = b[i]!;
        let d = c - ZERO;
        if (d >>> 0 > 9) {
          d = (c | 0x20) - 0x61;
          if (d >>> 0 > 5) return this.notANumber(b, s, e, what);
          d += 10;
        }
        v = v * 16 + d;
      }
      if (e - s > 18) this.checkSizeRange(b, s, e, what, 16);
    } else {
      for (let i = s; i < e; i++) {
        const d = b[i]! - ZERO;
        if (d >>> 0 > 9) return this.notANumber(b, s, e, what);
        v = v * 10 + d;
      }
      if (e - s > 19) this.checkSizeRange(b, s, e, what, 10);
    }
    // Above 2^53 the digits' sum above is not exact: the number is read again exactly, its double
    // is the nearest one, and the event also carries it exactly.
    if (v > Number.MAX_SAFE_INTEGER) return this.exact(field, b, s, e);
    return v;
  }

  /** A size above 2^53 read exactly (decimal, or hexadecimal after 0x): sets the event's exact1 or
   *  exact2 (field 1 or 2), and returns the nearest double. */
  private exact(field: 0 | 1 | 2, b: Buffer, s: number, e: number): number {
    const v = BigInt((b as FastSliceBuffer).latin1Slice(s, e));
    if (field === 1) this.ev.exact1 = v;
    else if (field === 2) this.ev.exact2 = v;
    return Number(v);
  }

  /** After the sink has had an event: exact sizes are set only while it has the event that has them. */
  private delivered(): void {
    const ev = this.ev;
    if (ev.exact1 !== undefined || ev.exact2 !== undefined) ev.exact1 = ev.exact2 = undefined;
  }

  /** Rejects a number above 2^64-1 (only called for long spellings; leading zeros are allowed). */
  private checkSizeRange(b: Buffer, s: number, e: number, what: string, radix: 10 | 16): void {
    let i = radix === 16 ? s + 2 : s;
    while (i < e - 1 && b[i] === ZERO) i++;
    const digits = (b as FastSliceBuffer).latin1Slice(i, e).toLowerCase();
    const max = radix === 16 ? 'ffffffffffffffff' : '18446744073709551615';
    if (digits.length > max.length || (digits.length === max.length && digits > max)) {
      this.fail(`${what} ${show(b, s, e)} is out of range (more than 2^64-1)`);
    }
  }

  private notANumber(b: Buffer, s: number, e: number, what: string): never {
    if (b[s] === MINUS && e - s > 1) {
      const digits = (b as FastSliceBuffer).latin1Slice(s + 1, e);
      if (/^(?:[0-9]+|0[xX][0-9a-fA-F]+)$/.test(digits))
        this.fail(`${what} ${show(b, s, e)} is negative`);
    }
    this.fail(`${what} '${show(b, s, e)}' is not a number`);
  }

  /** `@TIME`: nanoseconds, a non-negative decimal integer after the `@`. */
  private time(b: Buffer, s: number, e: number): number {
    if (e - s === 1) this.fail(`missing time after '@'`);
    let v = 0;
    for (let i = s + 1; i < e; i++) {
      const d = b[i]! - ZERO;
      if (d >>> 0 > 9)
        this.fail(`time '${show(b, s, e)}' is not '@' followed by a decimal number of nanoseconds`);
      v = v * 10 + d;
    }
    if (v > Number.MAX_SAFE_INTEGER)
      this.fail(`time '${show(b, s, e)}' is out of range (more than 2^53-1)`);
    return v;
  }

  /** TID: a non-negative decimal integer below 2^31. */
  private tid(b: Buffer, s: number, e: number): number {
    let v = 0;
    for (let i = s; i < e; i++) {
      const d = b[i]! - ZERO;
      if (d >>> 0 > 9) this.badTid(b, s, e);
      v = v * 10 + d;
    }
    if (v > 0x7fffffff)
      this.fail(`thread number ${show(b, s, e)} is out of range (at most 2147483647)`);
    return v;
  }

  private badTid(b: Buffer, s: number, e: number): never {
    if (opCode(b, s, e) >= 0) this.fail(`missing thread number before '${show(b, s, e)}'`);
    this.fail(`thread number '${show(b, s, e)}' is not a non-negative decimal integer`);
  }

  private unknownOp(b: Buffer, s: number, e: number): never {
    const name = show(b, s, e);
    const lower = name.toLowerCase();
    const hint = OP_NAMES.includes(lower)
      ? ` (operation names are lower case: '${lower}')`
      : name.startsWith('@')
        ? ' (the time must be the first field of the line)'
        : ` (known: ${OP_NAMES.join(', ')})`;
    this.fail(`unknown operation '${name}'${hint}`);
  }

  private arity(op: number, got: number): never {
    const name = OP_NAMES[op]!;
    const takes = USAGE[op] === '' ? 'takes no arguments' : `takes ${USAGE[op]}`;
    this.fail(`${name} ${takes}, got ${plural(got, 'argument')}`);
  }

  /** mallopt PARAM: a name from MALLOPT_PARAMS or glibc's number for it (an int). */
  private malloptParam(b: Buffer, s: number, e: number): number {
    const text = show(b, s, e);
    const c = b[s]!;
    if ((c >= ZERO && c <= ZERO + 9) || c === MINUS) {
      const v = this.intValue(b, s, e);
      if (v === undefined) this.fail(`mallopt parameter '${text}' is not a number`);
      if (v < -0x80000000 || v > 0x7fffffff)
        this.fail(`mallopt parameter ${text} is out of range (an int)`);
      return v;
    }
    const known = Object.prototype.hasOwnProperty.call(MALLOPT_PARAMS, text)
      ? MALLOPT_PARAMS[text]
      : undefined;
    if (known === undefined) {
      this.fail(
        `mallopt parameter '${text}' is unknown (known: ${Object.keys(MALLOPT_PARAMS).join(', ')}, or glibc's number)`,
      );
    }
    return known;
  }

  /** mallopt VALUE: an int, written signed (-2147483648..2147483647) or unsigned (up to 4294967295). */
  private malloptValue(b: Buffer, s: number, e: number): number {
    const v = this.intValue(b, s, e);
    if (v === undefined) this.fail(`value '${show(b, s, e)}' is not a number`);
    if (v < -0x80000000 || v > 0xffffffff)
      this.fail(`value ${show(b, s, e)} is out of range for mallopt (an int)`);
    return v;
  }

  /** A decimal integer, maybe negative, or a 0x hexadecimal one; undefined if it is neither. */
  private intValue(b: Buffer, s: number, e: number): number | undefined {
    const text = (b as FastSliceBuffer).latin1Slice(s, e);
    if (/^-?[0-9]+$/.test(text)) return Number(text);
    if (/^0[xX][0-9a-fA-F]+$/.test(text)) return Number.parseInt(text.slice(2), 16);
    return undefined;
  }

  /**
   * A comment line after the first event: `# touches incomplete from here...` is delivered in
   * trace order like a record (TraceSink.touchesIncomplete); any other stays a comment.
   */
  private incompleteLine(b: Buffer, s: number, le: number): void {
    let i = s;
    while (i < le && (b[i] === SPACE || b[i] === TAB)) i++;
    if (b[i] !== 0x74 /* t */) return;
    const m = INCOMPLETE.exec(b.toString('utf8', i, le));
    if (m === null) return;
    this.beginRecord();
    this.sink.touchesIncomplete?.(this.lineNo, incompleteDetail(m[1]!));
  }

  /**
   * A comment line before the first event: `# KEY VALUE`. s is just after the `#`, le at the
   * newline. `env` and `nprocs` are checked; any other key is kept as a fact for people.
   */
  private headerLine(b: Buffer, s: number, le: number): void {
    const raw = b.toString('utf8', s, le);
    const text = raw.trim();
    const comments = (this.header.comments ??= []);
    if (comments.length < MAX_HEADER_COMMENTS) {
      const shown = raw.trimEnd().replace(/^ /, '');
      comments.push(shown.length > 1000 ? `${shown.slice(0, 1000)}...` : shown);
    }
    const m = /^(\S+)(?:\s+(.*))?$/s.exec(text);
    if (m === null) return; // a bare '#'
    const key = m[1]!;
    const value = (m[2] ?? '').trim();
    if (key === 'env') {
      const eq = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(value);
      if (eq === null)
        this.fail(`malformed header line '# env ${value}': expected '# env NAME=VALUE'`);
      this.header.env.push([eq[1]!, eq[2]!]);
    } else if (key === 'nprocs') {
      const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
      if (!(n >= 1 && n <= 0x7fffffff))
        this.fail(`malformed header line '# nprocs ${value}': expected a positive number of CPUs`);
      this.header.nprocs = n;
    } else if (key === 'touches' && INCOMPLETE.test(text)) {
      this.header.touchesIncomplete ??= {
        line: this.lineNo,
        detail: incompleteDetail(INCOMPLETE.exec(text)![1]!),
      };
    } else if (key === 'touches') {
      if (value !== 'recorded')
        this.fail(`malformed header line '# touches ${value}': expected '# touches recorded'`);
      this.header.touchesRecorded = true;
      this.header.facts.set(key, value);
    } else {
      this.header.facts.set(key, value);
    }
  }

  /** A UTF-8 byte order mark at the start of the file is skipped (some editors write one). */
  private skipBom(b: Buffer, nt: number): number {
    const t = this.tok;
    const s = this.tokStart(0);
    const e = this.tokEnd(0);
    if (e - s < 3 || b[s + 1] !== 0xbb || b[s + 2] !== 0xbf) return nt;
    t[0] = s + 3;
    if (s + 3 < e) return nt;
    // The BOM was a token of its own: drop it.
    t.copyWithin(0, 2);
    return nt - 1;
  }

  /** Sends the header, then the samples read before the first event. */
  private sendHeader(): void {
    this.headerSent = true;
    this.sink.header(this.header);
    const sites = this.earlySites;
    this.earlySites = [];
    for (const rec of sites) this.sink.site?.(rec);
    const early = this.early;
    if (early === null) return;
    this.early = null;
    for (const sample of early) {
      this.rssRec.set(sample);
      this.sink.rss?.(this.rssRec);
    }
    this.sink.recordsEnd?.();
  }

  /** Stops at a mistake in the trace, once whatever waits has been delivered. */
  private fail(detail: string): never {
    if (this.state !== IDLE) this.settle();
    if (this.unterminated) detail += ' (the file ends in the middle of this line: truncated?)';
    throw new TraceSyntaxError(this.name, this.lineNo, detail);
  }
}
