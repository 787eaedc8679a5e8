/**
 * The events of a ptsim trace (format version 1, see docs/trace-format.md), as the trace reader
 * hands them to the replay loop.
 *
 * The reader reuses one TraceEvent object for every line it delivers, so that reading a trace of
 * hundreds of millions of events allocates nothing per event: a consumer copies what it keeps.
 */

import type { BatchPlace, EventBatch } from './batch.js';
import type { StoredPlace, StoredTrace } from './event-store.js';

/** Operation codes, in the order of the trace format's table. */
export const Op = {
  malloc: 0,
  calloc: 1,
  realloc: 2,
  memalign: 3,
  valloc: 4,
  pvalloc: 5,
  free: 6,
  mallocTrim: 7,
  mallopt: 8,
  exit: 9,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** The operation names as they are written in a trace and in the fidelity log, indexed by OpCode. */
export const OP_NAMES: readonly string[] = [
  'malloc',
  'calloc',
  'realloc',
  'memalign',
  'valloc',
  'pvalloc',
  'free',
  'malloc_trim',
  'mallopt',
  'exit',
];

/** The token that stands for NULL, after normalisation by the reader. */
export const NULL_TOKEN = '';

/** One event line of a trace. */
export interface TraceEvent {
  /** 0-based index of the event among the trace's event lines. */
  index: number;
  /** 1-based line number in the file. */
  line: number;
  /** Nanoseconds from the `@TIME` field, or -1 when the line has none. */
  time: number;
  /** The trace's thread number. */
  tid: number;
  op: OpCode;
  /**
   * First numeric argument: malloc/valloc/pvalloc/realloc SIZE, calloc NMEMB, memalign ALIGN,
   * malloc_trim PAD, mallopt VALUE. 0 when the operation has none. Sizes above 2^53 are the
   * nearest double (the allocator only needs to know that they are above PTRDIFF_MAX), and exact
   * in exact1.
   */
  n1: number;
  /** Second numeric argument: calloc SIZE, memalign SIZE; otherwise 0 (exact in exact2). */
  n2: number;
  /**
   * n1 and n2 exactly, when they are above 2^53 and so not exact as doubles (those of the trace
   * reader's events: the commands that print sizes back, such as convert and stats, use them);
   * unset otherwise.
   */
  exact1?: bigint;
  exact2?: bigint;
  /**
   * The token the call returns: PTR of malloc/calloc/memalign/valloc/pvalloc, NEW of realloc.
   * NULL_TOKEN ('') when the recorded call returned NULL. '' for operations that return nothing.
   */
  out: string;
  /** The token the call takes: PTR of free, OLD of realloc (NULL_TOKEN for NULL); otherwise ''. */
  in: string;
  /** mallopt: glibc's parameter number (M_MMAP_THRESHOLD is -3, ...); otherwise 0. */
  param: number;
  /**
   * Optional numeric keys of `in` and `out` (token-key.ts: 0 for NULL_TOKEN, the value of a
   * `0x...` pointer token, -1 for a token known by its text only). When present they always agree
   * with `in` and `out`; the trace reader sets them, and a consumer may index tokens by key and
   * read the text only for tokens without one (the reader makes a keyed token's text only when
   * `in` or `out` is read).
   */
  inKey?: number;
  outKey?: number;
  /**
   * Optional token numbers of `in` and `out` (token-numbers.ts: small integers given by the
   * reader, -1 for NULL and for a taken token that had none), for consumers that keep per-token
   * state in arrays. A token keeps its number from the event that returns it until the next event
   * that takes it; the number may then go to another token.
   */
  inId?: number;
  outId?: number;
  /**
   * True, during the sink's event() call, when records (`#:touch`, `#:rss`) stand between this
   * event and the next: the sink gets them (touch, rss), then recordsEnd(), and the event object
   * is not refilled before that (only this flag is cleared), so a consumer may finish with the
   * event then. Unset (or false) when the next line of substance is another event or the end.
   * Only the trace reader sets it.
   */
  recordsFollow?: boolean;
  /**
   * Optional: the number of the call stack the call was made from (the `^ID` field of the event
   * line, naming a `#:stack` record), -1 or absent when the line has none.
   */
  site?: number;
}

/** What the comment lines before the first event say about the recording. */
export interface TraceHeader {
  /** `# env NAME=VALUE` lines, in file order. */
  env: Array<[name: string, value: string]>;
  /** `# nprocs N`, when present. */
  nprocs?: number;
  /**
   * `# touches recorded`: every block of TOUCH_MIN_BYTES or more has `#:touch` records. (The line
   * is also a fact, `touches`.)
   */
  touchesRecorded?: boolean;
  /**
   * `# touches incomplete from here` before the first event: the touch records are incomplete
   * from the start (its line, and the rest of the line as TraceSink.touchesIncomplete has it).
   */
  touchesIncomplete?: { line: number; detail: string };
  /** Every other `# KEY VALUE` line before the first event (pid, exe, cmdline, start_brk, ...). */
  facts: Map<string, string>;
  /** The comment lines before the first event as written (without the `#`), the first MAX_HEADER_COMMENTS of them. */
  comments?: string[];
}

/**
 * A `#:touch TOKEN PAGES` record (docs/trace-format.md): by this point of the trace the program
 * had made these pages of the live block TOKEN resident. The reader reuses one object for every
 * record; a consumer copies what it keeps.
 */
export interface TouchRecord {
  /** 1-based line number in the file. */
  line: number;
  /** The block's token (never NULL). */
  token: string;
  /** Optional key of the token (token-key.ts), as TraceEvent.inKey. */
  key?: number;
  /**
   * Optional token number (token-numbers.ts) the token has at this point, -1 when it has none (it
   * was never returned, or a realloc took it). The trace reader sets it.
   */
  id?: number;
  /**
   * The pages named, as inclusive ranges: pages[2k] to pages[2k + 1] for k < ranges, in the order
   * written. Page 0 holds the block's first byte; pages are TOUCH_PAGE bytes.
   */
  pages: Float64Array;
  ranges: number;
  /** The highest page named, -1 for the empty set (`-`). */
  maxPage: number;
}

/** A `#:rss [@TIME] KEY=VALUE...` sample of the process's resident memory, taken after the event before it. */
export interface RssSample {
  /** 1-based line number in the file. */
  line: number;
  /** Nanoseconds from the `@TIME` field, or -1 when the line has none. */
  time: number;
  /** `anon=`: the process's anonymous resident bytes (RssAnon), or -1 when the sample has none. */
  anon: number;
  /**
   * `total=`: the process's whole resident bytes (VmRSS, what top shows as RES), or -1 when the
   * sample has none. A sample has anon or total, or both. Optional for producers other than the
   * trace reader (absent: none).
   */
  total?: number;
  /** `heap=`: the resident bytes of the allocator's own memory, or -1 when the sample has none. */
  heap: number;
  /** `mark=`: the name of the point where the program asked for the sample, or ''. */
  mark: string;
  /**
   * `rec=`: the part of anon that is the recorder's own memory, or -1 when the sample has none.
   * Optional for producers other than the trace reader (absent: none).
   */
  rec?: number;
}

/**
 * The records that say where the calls came from (docs/trace-format.md, "Extensions: call
 * stacks"): a call stack (`#:stack`), a mapping of a file into the process (`#:map`) and the
 * symbols of one code address (`#:sym`). They define a table; where they stand among the events
 * does not matter beyond a stack preceding the first event that names it. Each object is
 * delivered once and may be kept.
 */
export type SiteRecord = StackRecord | MapRecord | SymRecord;

/** `#:stack ID ADDR...`: the return addresses of a call stack, the allocator's caller first. */
export interface StackRecord {
  kind: 'stack';
  line: number;
  id: number;
  frames: number[];
}

/** `#:map START END OFFSET PATH`: PATH mapped executable at [START, END) from file offset OFFSET. */
export interface MapRecord {
  kind: 'map';
  line: number;
  start: number;
  end: number;
  offset: number;
  path: string;
}

/** One source position of a code address: the function, and its file and line (0 when unknown). */
export interface SymFrame {
  fn: string;
  file: string;
  line: number;
}

/**
 * `#:sym ADDR ...`: what the code at return address ADDR is, innermost first: the functions
 * inlined there (when any), then the function that holds the code.
 */
export interface SymRecord {
  kind: 'sym';
  line: number;
  addr: number;
  frames: SymFrame[];
}

/** The page size of `#:touch` records: pages are counted in 4096-byte pages. */
export const TOUCH_PAGE = 4096;

/**
 * Blocks of this many requested bytes or more have `#:touch` records in a trace with `# touches
 * recorded`; smaller blocks have none and are taken as written whole.
 */
export const TOUCH_MIN_BYTES = 4096;

/**
 * The highest page a `#:touch` record may name for a block of `bytes` requested bytes, wherever
 * the recording had it: blocks start 16-byte aligned (glibc's MALLOC_ALIGNMENT on x86_64), so the
 * last requested byte is at most 4080 + bytes - 1 bytes past the start of page 0. -1 for an empty
 * block (it has no page at all). A replay places the block where its own allocator does, and may
 * find it on one page fewer.
 */
export function maxTouchPage(bytes: number): number {
  return bytes <= 0 ? -1 : Math.floor((bytes - 1 + TOUCH_PAGE - 16) / TOUCH_PAGE);
}

/** What a replay (and a check of the trace) says of a `#:touch` record of a token that is not live. */
export function touchNotLive(token: string): string {
  return `#:touch of ${token}, which is not a live block (never allocated, or freed or reallocated since)`;
}

/** What is said of a `#:touch` record naming `page`, past the last page of a block of `bytes`. */
export function touchPastEnd(token: string, page: number, bytes: number): string {
  const most = maxTouchPage(bytes);
  return most < 0
    ? `#:touch of ${token}: page ${page} is past the block's last requested byte (it has none: 0 bytes requested)`
    : `#:touch of ${token}: page ${page} is past the block's last requested byte (a block of ${bytes} bytes reaches page ${most} at most)`;
}

/** How many header comment lines a reader keeps as text. */
export const MAX_HEADER_COMMENTS = 200;

/**
 * Longest line a reader accepts (the native parser and the importers' line splitter alike): a
 * binary file without newlines must not fill memory.
 */
export const MAX_LINE = 16 << 20;

/** What a reader says of a line longer than MAX_LINE. */
export const LINE_TOO_LONG = `line is longer than ${MAX_LINE >> 20} MiB: is this a text trace?`;

/** Receives a trace as it is read. */
export interface TraceSink {
  /** Called once, before the first event (or at the end of a trace without events). */
  header(h: TraceHeader): void;
  /** Called for each event line, in order. The object is reused for the next line. */
  event(ev: TraceEvent): void;
  /**
   * Called for each `#:touch` record, in trace order (see TraceEvent.recordsFollow). The object is
   * reused. A sink without it ignores touch records.
   */
  touch?(rec: TouchRecord): void;
  /** Called for each `#:rss` sample, in trace order. The object is reused. */
  rss?(sample: RssSample): void;
  /**
   * Called, in trace order like a record, for a `# touches incomplete from here` line after the
   * first event: from this point the recording's `#:touch` records do not cover every page the
   * program touched. `detail` is the rest of the line (the recorder's reason), trimmed.
   */
  touchesIncomplete?(line: number, detail: string): void;
  /**
   * Called for each `#:stack`, `#:map` and `#:sym` record, in trace order. The object is the
   * sink's to keep. A sink without it ignores them.
   */
  site?(rec: SiteRecord): void;
  /**
   * Called after the records that follow an event delivered with recordsFollow set (and after
   * those that come before the first event, if any), before the next event or the end.
   */
  recordsEnd?(): void;
  /**
   * A sink that keeps a copy of the trace (event-store.ts's TraceStore, as a tee) may have the
   * reader keep it instead, on the thread that parses (the parse worker): the thread of the sink
   * is then left to the replay.
   */
  copy?: CopyKeeper;
  /**
   * For a sink that replays (replay/sink.ts): replays the events of a stored trace from `at` on,
   * up to event `stop - 1`, that it can without their being delivered one by one
   * (Replayer.runStored), and moves `at` past them; deliverStored, the only caller, delivers the
   * next one as usual. No event before `stop` has records after it or site records before it.
   * In an edited delivery the events are numbered `shift` more than their index in the store.
   */
  runStored?(t: StoredTrace, at: StoredPlace, stop: number, shift?: number): void;
  /**
   * The same for a batch of events (batch.ts; Replayer.runBatch): replays the batch's events from
   * entry `at.entry` (event `at.index`) on that it can, each without records after it, and moves
   * `at` past them; EventBatch.deliver, the only caller, delivers the next entry as usual.
   */
  runBatch?(b: EventBatch, at: BatchPlace): void;
  /**
   * Optional back-pressure: asked between chunks of input, it returns a promise while the sink's
   * own output is full, and the reader delivers nothing more until it settles.
   */
  ready?(): Promise<void> | undefined;
}

/** TraceSink.copy: the copy of the trace a reader may keep for a sink. */
export interface CopyKeeper {
  /** Most events the copy may hold (beyond, it is given up). */
  readonly limit: number;
  /** From now on the reader keeps the copy: the sink is given nothing more to copy. */
  keptElsewhere(): void;
  /** The copy the reader kept (a stored trace, or null when it was given up), before the end. */
  adopt(copy: unknown): void;
}

/** A line that does not parse, reported with the file name and line number. */
export class TraceSyntaxError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly detail: string,
  ) {
    super(`${file}:${line}: ${detail}`);
    this.name = 'TraceSyntaxError';
  }
}

/** A trace that cannot be read at all: missing file, unreadable file, corrupt compressed data. */
export class TraceReadError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`${file}: ${detail}`);
    this.name = 'TraceReadError';
  }
}
