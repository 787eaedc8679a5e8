/**
 * What every importer shares: it turns the calls an importer recognises into TraceEvents for a
 * TraceSink, exactly as the native reader would deliver the same calls written as a native trace,
 * and it deals with what recorded logs get wrong.
 *
 * An importer fills `core.call` (one object, reused) and calls submit(). The core then:
 *  - numbers the events and fills one ReadEvent (src/trace/event.ts) with them, token keys and
 *    token numbers included (made by the native reader's own helpers), so that the replay treats
 *    imported tokens exactly like native ones;
 *  - keeps the set of live pointers, to catch what a replay would stop on:
 *    - a pointer freed (or reallocated) that was never handed out, common in logs that start
 *      after the program did, or that miss some entry points: reported with its line and skipped
 *      (fatal with `strict`); a realloc of such a pointer becomes a plain allocation of its result,
 *      so that the block's later free is known;
 *    - an address handed out again while still live. In a multi-threaded log this happens when
 *      thread B freed the block but its line was written after thread A's allocation that got
 *      the address back. The core then holds the allocation back and looks ahead (up to WINDOW
 *      calls) for the free: when it comes from another thread that logged nothing in between,
 *      it moves the free before the allocation, which is where it happened. When it cannot, it
 *      reports the allocation and takes the old block as freed just before it (a free event on
 *      the allocation's line), or stops with `strict`.
 *  - reports warnings with file and line, the first few of each kind one by one and the rest as
 *    a count at the end, so that a log with a million odd lines does not drown the output.
 *
 * An importer whose log has the process's own measurements hands them on as `#:rss` samples
 * (rss()), where they stand among the calls. So that the sink learns that records follow an event
 * (TraceEvent.recordsFollow), as the native reader tells it, each event is handed on when the
 * next line of substance is known: the next call, a sample or the end.
 *
 * The common path (no conflict) keeps nothing per call but the live set, and allocates nothing.
 */

import { ReadEvent } from '../trace/event.js';
import { ReadRss } from '../trace/records.js';
import { NO_KEY, keyedTokenText } from '../trace/token-key.js';
import { TokenNumbers } from '../trace/token-numbers.js';
import { NONE, TokenTable } from '../trace/token-table.js';
import {
  NULL_TOKEN,
  Op,
  TraceSyntaxError,
  type OpCode,
  type RssSample,
  type SiteRecord,
  type TraceHeader,
  type TraceSink,
} from '../trace/types.js';

/** One call as an importer recognised it. */
export class Call {
  op: OpCode = Op.malloc;
  tid = 1;
  /** As in TraceEvent: the first and second numeric arguments. */
  n1 = 0;
  n2 = 0;
  /**
   * As in TraceEvent: n1 and n2 exactly when they are above 2^53 (and so not exact as doubles).
   * Cleared by submit(): an importer sets them only for the call that has them.
   */
  exact1: bigint | undefined = undefined;
  exact2: bigint | undefined = undefined;
  /** Nanoseconds since the start of the recording, or -1. */
  time = -1;
  line = 0;
  /** The token taken (free's PTR, realloc's OLD): its key, and its text when the key is NO_KEY. */
  inKey = 0;
  inText = NULL_TOKEN;
  /** The token returned (allocations' PTR, realloc's NEW). */
  outKey = 0;
  outText = NULL_TOKEN;
  /** The call stack it came from (a stack the importer defined with ImportCore.site), or -1. */
  site = -1;

  copyFrom(c: Call): void {
    this.site = c.site;
    this.op = c.op;
    this.tid = c.tid;
    this.n1 = c.n1;
    this.n2 = c.n2;
    this.exact1 = c.exact1;
    this.exact2 = c.exact2;
    this.time = c.time;
    this.line = c.line;
    this.inKey = c.inKey;
    this.inText = c.inText;
    this.outKey = c.outKey;
    this.outText = c.outText;
  }
}

/** Options shared by every importer. */
export interface ImportOptions {
  /** Unknown frees and unresolvable address reuse stop the import instead of being skipped. */
  strict?: boolean;
  /** The log has one thread: an address handed out again while live can never be a late free. */
  singleThreaded?: boolean;
  /** Receives each warning (already prefixed with file and line where there is one). */
  onWarning?: (message: string) => void;
}

/** What an import found, beyond the events. */
export interface ImportReport {
  /** Events delivered to the sink. */
  events: number;
  /** Lines read. */
  lines: number;
  /** Warnings reported (including those only counted). */
  warnings: number;
  /** Calls skipped, by reason (for example `free of a pointer never seen`, `function strdup`). */
  skipped: Record<string, number>;
  /** Frees moved before the allocation that reused their address. */
  reordered: number;
}

/** How far the core looks ahead for the late free of an address handed out again. */
const WINDOW = 4096;
/** Warnings of one kind shown one by one before the rest are only counted. */
const SHOWN_PER_KIND = 10;

/** The live table holds int32 values: the line of an allocation beyond this one is kept as this one. */
const MAX_KEPT_LINE = 0x7fffffff;

function keptLine(line: number): number {
  return line < MAX_KEPT_LINE ? line : MAX_KEPT_LINE;
}

/** Whether two tokens are the same: same key above 0, or both without key and the same text. */
function sameToken(k1: number, t1: string, k2: number, t2: string): boolean {
  return k1 === k2 && (k1 !== NO_KEY || t1 === t2);
}

/** How a token is written in messages. */
function tokenShown(key: number, text: string): string {
  return key === 0 ? 'NULL' : key > 0 ? keyedTokenText(key) : text;
}

export class ImportCore {
  /** The call an importer fills before submit(). */
  readonly call = new Call();
  readonly header: TraceHeader = { env: [], facts: new Map() };
  private headerSent = false;
  /** Site records given before the header was sent. */
  private earlySites: SiteRecord[] = [];
  private readonly ev = new ReadEvent();
  /** Whether `ev` is filled and waits to be handed on (see rss()). */
  private held = false;
  /** Whether samples were handed on since the last event, and the sink awaits recordsEnd(). */
  private inRecords = false;
  /** Samples given before the header was sent. */
  private earlySamples: RssSample[] = [];
  private readonly rssRec = new ReadRss();
  /** Numbers the events' tokens (inId, outId) by the native reader's rule. */
  private readonly numbers = new TokenNumbers();
  private events = 0;
  /** Live tokens, each with the line that allocated it (keptLine). */
  private readonly live = new TokenTable();
  /** Calls held back while a conflict waits for its resolution; pending[0] is the conflict. */
  private pending: Call[] = [];
  private readonly pool: Call[] = [];
  /** How far lateFree has looked for the head of `pending` (it looks at each call once). */
  private scanned = 1;
  private ended = false;
  private readonly strict: boolean;
  private readonly singleThreaded: boolean;
  private readonly onWarning: (message: string) => void;
  private readonly warnCount = new Map<string, number>();
  private warningsTotal = 0;
  readonly skipped: Record<string, number> = {};
  private reordered = 0;
  private firstReorderLine = 0;

  constructor(
    /** The file name used in messages. */
    readonly name: string,
    private readonly sink: TraceSink,
    opts: ImportOptions = {},
  ) {
    this.strict = opts.strict ?? false;
    this.singleThreaded = opts.singleThreaded ?? false;
    this.onWarning = opts.onWarning ?? ((): void => {});
  }

  /** Hands the filled `call` on. */
  submit(): void {
    try {
      this.take(this.call);
    } finally {
      this.call.exact1 = undefined;
      this.call.exact2 = undefined;
    }
  }

  private take(c: Call): void {
    // The native format's limit on times, so that a conversion always reads back.
    if (c.time > Number.MAX_SAFE_INTEGER)
      this.fail(c.line, `time ${c.time} ns is out of range (more than 2^53-1)`);
    if (this.pending.length === 0) {
      // The common case first: an allocation whose token is not live is added in the same probe
      // that checks it.
      if (
        c.outKey !== 0 &&
        (c.op === Op.malloc ||
          c.op === Op.calloc ||
          c.op === Op.memalign ||
          c.op === Op.valloc ||
          c.op === Op.pvalloc)
      ) {
        if (this.live.add(c.outKey, c.outText, keptLine(c.line)) === NONE) {
          this.emit(
            c.op,
            c.tid,
            c.n1,
            c.n2,
            c.time,
            c.line,
            0,
            NULL_TOKEN,
            c.outKey,
            c.outText,
            c.site,
            c.exact1,
            c.exact2,
          );
          return;
        }
      } else if (!this.conflicts(c)) {
        this.apply(c);
        return;
      }
      if (this.singleThreaded) {
        this.unresolvable(c);
        this.apply(c);
        return;
      }
    }
    this.pending.push(this.copyOf(c));
    this.drain();
  }

  /** Ends the input: resolves what is still held back, sends the header if no event did. */
  finish(lines: number): ImportReport {
    this.ended = true;
    this.drain();
    for (const [kind, n] of this.warnCount) {
      if (n > SHOWN_PER_KIND)
        this.onWarning(`${this.name}: ... ${n - SHOWN_PER_KIND} more of: ${kind} (${n} in all)`);
    }
    if (this.reordered > 0) {
      this.onWarning(
        `${this.name}: note: ${this.reordered} free${this.reordered === 1 ? ' was' : 's were'} logged after the allocation that got the address back (first at line ${this.firstReorderLine}); each was moved before that allocation`,
      );
    }
    if (!this.headerSent) this.sendHeader();
    this.release(false);
    return {
      events: this.events,
      lines,
      warnings: this.warningsTotal,
      skipped: this.skipped,
      reordered: this.reordered,
    };
  }

  /** A line that cannot be understood. */
  fail(line: number, detail: string): never {
    throw new TraceSyntaxError(this.name, line, detail);
  }

  /**
   * A warning of some kind: shown for the first few of its kind, counted after. With `fatal` and
   * strict mode, it stops the import instead.
   */
  warn(line: number, kind: string, detail: string, fatal = false): void {
    if (fatal && this.strict) this.fail(line, `${detail} (--strict)`);
    this.warningsTotal++;
    const n = (this.warnCount.get(kind) ?? 0) + 1;
    this.warnCount.set(kind, n);
    if (n <= SHOWN_PER_KIND)
      this.onWarning(line > 0 ? `${this.name}:${line}: ${detail}` : `${this.name}: ${detail}`);
  }

  /** Counts a call left out on purpose (a function ptsim does not replay, another process...). */
  skip(reason: string): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
  }

  /** True when the call hands out a token that is live, other than the one it takes back. */
  private conflicts(c: Call): boolean {
    const k = c.outKey;
    if (k === 0 || c.op === Op.free) return false;
    if (this.live.get(k, c.outText) === NONE) return false;
    return !(c.op === Op.realloc && sameToken(c.inKey, c.inText, k, c.outText));
  }

  private copyOf(c: Call): Call {
    const p = this.pool.pop() ?? new Call();
    p.copyFrom(c);
    return p;
  }

  /** Applies what is held back, in order, as far as the calls seen so far allow. */
  private drain(): void {
    const q = this.pending;
    while (q.length > 0) {
      const head = q[0]!;
      if (this.conflicts(head)) {
        const j = this.lateFree(head);
        if (j < 0 && !this.ended && q.length <= WINDOW) return; // wait for more calls
        this.scanned = 1;
        if (j > 0) {
          const f = q[j]!;
          q.splice(j, 1);
          if (this.reordered++ === 0) this.firstReorderLine = f.line;
          this.apply(f);
          this.pool.push(f);
          continue; // the head no longer conflicts
        }
        this.unresolvable(head);
      }
      q.shift();
      this.apply(head);
      this.pool.push(head);
    }
  }

  /**
   * For the held-back allocation q[0] of a live token: the index of the late free that resolves
   * it, 0 when none can, or -1 when the calls seen so far do not tell yet. The late free is the
   * next call that takes the token, when it is a free (or a realloc that moved the block) by
   * another thread, and that thread logged nothing between the two.
   */
  private lateFree(head: Call): number {
    const q = this.pending;
    for (let j = this.scanned; j < q.length; j++, this.scanned++) {
      const c = q[j]!;
      const takes = c.inKey !== 0 && sameToken(c.inKey, c.inText, head.outKey, head.outText);
      const gives = c.outKey !== 0 && sameToken(c.outKey, c.outText, head.outKey, head.outText);
      if (!takes && !gives) continue;
      if (!takes || c.tid === head.tid) return 0;
      if (c.op === Op.realloc && gives) return 0; // resized in place: the block never left that thread
      for (let i = 1; i < j; i++) if (q[i]!.tid === c.tid) return 0;
      return j;
    }
    return -1;
  }

  /** An address handed out again while live, with no late free to move: reported, and fixed up. */
  private unresolvable(c: Call): void {
    const shown = tokenShown(c.outKey, c.outText);
    const at = this.live.get(c.outKey, c.outText);
    this.warn(
      c.line,
      'address handed out again while still live',
      `${shown} is handed out again but was never freed since ${at < MAX_KEPT_LINE ? `line ${at}` : `a line after ${MAX_KEPT_LINE - 1}`}; taken as freed just before`,
      true,
    );
    // The old block must have been freed for the allocator to hand its address out again.
    this.live.delete(c.outKey, c.outText);
    this.emit(Op.free, c.tid, 0, 0, c.time, c.line, c.outKey, c.outText, 0, NULL_TOKEN, -1);
  }

  /** Applies one call to the live set and delivers it (or skips it). */
  private apply(c: Call): void {
    const op = c.op;
    if (op === Op.free) {
      if (c.inKey !== 0 && this.live.delete(c.inKey, c.inText) === NONE) {
        this.unknown(c, 'free');
        return;
      }
    } else if (op === Op.realloc && c.inKey !== 0) {
      if (this.live.delete(c.inKey, c.inText) === NONE) {
        this.unknown(c, 'realloc');
        if (c.outKey === 0) return;
        // The program holds the result from now on: known as a plain allocation of it.
        this.live.set(c.outKey, c.outText, keptLine(c.line));
        this.emit(
          Op.malloc,
          c.tid,
          c.n1,
          0,
          c.time,
          c.line,
          0,
          NULL_TOKEN,
          c.outKey,
          c.outText,
          c.site,
          c.exact1,
        );
        return;
      }
      if (c.outKey !== 0) this.live.set(c.outKey, c.outText, keptLine(c.line));
      else if (c.n1 !== 0) this.live.set(c.inKey, c.inText, keptLine(c.line)); // failed: the old block stays
    } else if (c.outKey !== 0) {
      this.live.set(c.outKey, c.outText, keptLine(c.line));
    }
    this.emit(
      op,
      c.tid,
      c.n1,
      c.n2,
      c.time,
      c.line,
      c.inKey,
      c.inText,
      c.outKey,
      c.outText,
      c.site,
      c.exact1,
      c.exact2,
    );
  }

  private unknown(c: Call, what: string): void {
    const shown = tokenShown(c.inKey, c.inText);
    const kind = `${what} of a pointer never seen`;
    this.skip(kind);
    const outcome =
      what === 'realloc' && c.outKey !== 0 ? 'replayed as an allocation of its result' : 'skipped';
    this.warn(
      c.line,
      kind,
      `${what} of ${shown}, which was never allocated in this log: ${outcome}`,
      true,
    );
  }

  private emit(
    op: OpCode,
    tid: number,
    n1: number,
    n2: number,
    time: number,
    line: number,
    inKey: number,
    inText: string,
    outKey: number,
    outText: string,
    site: number,
    exact1?: bigint,
    exact2?: bigint,
  ): void {
    if (!this.headerSent) this.sendHeader();
    this.release(false);
    const ev = this.ev;
    ev.index = this.events++;
    ev.line = line;
    ev.time = time;
    ev.tid = tid;
    ev.op = op;
    ev.n1 = n1;
    ev.n2 = n2;
    ev.exact1 = exact1;
    ev.exact2 = exact2;
    ev.param = 0;
    ev.site = site;
    ev.setIn(inKey, inText);
    ev.setOut(outKey, outText);
    // As the native reader does: the token taken gives its number up first, then the token
    // returned gets one.
    ev.inId = this.numbers.takeIn(inKey, inKey === NO_KEY ? inText : NULL_TOKEN);
    ev.outId = this.numbers.numberOut(outKey, outKey === NO_KEY ? outText : NULL_TOKEN);
    this.held = true;
  }

  /**
   * Hands on the event that waits, if any (with recordsFollow when samples come next), or ends
   * the samples that followed the last one.
   */
  private release(recordsFollow: boolean): void {
    if (this.held) {
      this.held = false;
      const ev = this.ev;
      if (!recordsFollow) {
        this.sink.event(ev);
        return;
      }
      ev.recordsFollow = true;
      this.inRecords = true;
      try {
        this.sink.event(ev);
      } finally {
        ev.recordsFollow = undefined;
      }
    } else if (this.inRecords && !recordsFollow) {
      this.inRecords = false;
      this.sink.recordsEnd?.();
    }
  }

  /** Hands on the event that waits (if any) when the reading stops at a mistake in the input. */
  deliverHeld(): void {
    if (this.headerSent) this.release(false);
  }

  /**
   * A `#:rss` sample of the process's resident memory, standing after the last call submitted
   * (before the first call when none came yet). Only for an importer that holds no calls back (a
   * single-threaded log): a call held back would come after the sample.
   */
  rss(sample: RssSample): void {
    if (this.pending.length > 0)
      throw new Error('ptsim internal error: a sample while calls are held back');
    if (!this.headerSent) {
      this.earlySamples.push({ ...sample });
      return;
    }
    this.release(true);
    this.rssRec.set(sample);
    this.sink.rss?.(this.rssRec);
  }

  /**
   * Hands a site record (a call stack, a mapping, the symbols of an address) on, after the
   * header; a stack must be handed on before the first call that names it.
   */
  site(rec: SiteRecord): void {
    if (this.headerSent) this.sink.site?.(rec);
    else this.earlySites.push(rec);
  }

  private sendHeader(): void {
    this.headerSent = true;
    this.sink.header(this.header);
    for (const rec of this.earlySites) this.sink.site?.(rec);
    this.earlySites = [];
    const early = this.earlySamples;
    if (early.length === 0) return;
    this.earlySamples = [];
    for (const sample of early) {
      this.rssRec.set(sample);
      this.sink.rss?.(this.rssRec);
    }
    this.sink.recordsEnd?.();
  }
}
