/**
 * Lines for the importers: cuts the decompressed bytes of a log (trace/source.ts streams them)
 * into lines, keeping only the unfinished line between chunks, and hands each to a LineHandler.
 * (The native parser, trace/parser.ts, finds its lines itself, on its fast path.)
 */

import { LINE_TOO_LONG, MAX_LINE, TraceSyntaxError } from '../trace/types.js';

/** Receives the lines of a log. */
export interface LineHandler {
  /**
   * One line, b[s, e), without its newline or a carriage return before it. `no` is its 1-based
   * number; `last` is set for a last line that has no newline (a log cut short, or a hand-made file).
   */
  line(b: Buffer, s: number, e: number, no: number, last: boolean): void;
}

/** Cuts chunks of bytes into lines, keeping only the unfinished line between chunks. */
export class LineSplitter {
  private carry: Buffer = Buffer.allocUnsafe(4096);
  private carryLen = 0;
  /** Lines delivered so far. */
  lines = 0;

  constructor(
    private readonly handler: LineHandler,
    private readonly name: string,
  ) {}

  push(b: Buffer): void {
    let from = 0;
    if (this.carryLen > 0) {
      const nl = b.indexOf(10);
      if (nl < 0) {
        this.keep(b, 0, b.length);
        return;
      }
      this.keep(b, 0, nl);
      this.deliver(this.carry, 0, this.carryLen, false);
      this.carryLen = 0;
      from = nl + 1;
    }
    const len = b.length;
    while (from < len) {
      const nl = b.indexOf(10, from);
      if (nl < 0) {
        this.keep(b, from, len);
        return;
      }
      this.deliver(b, from, nl, false);
      from = nl + 1;
    }
  }

  /** The end of the input: delivers a last line without newline. Returns the number of lines. */
  end(): number {
    if (this.carryLen > 0) {
      this.deliver(this.carry, 0, this.carryLen, true);
      this.carryLen = 0;
    }
    return this.lines;
  }

  private deliver(b: Buffer, s: number, e: number, last: boolean): void {
    if (e > s && b[e - 1] === 13) e--;
    this.handler.line(b, s, e, ++this.lines, last);
  }

  private keep(b: Buffer, s: number, e: number): void {
    const need = this.carryLen + (e - s);
    if (need > MAX_LINE) throw new TraceSyntaxError(this.name, this.lines + 1, LINE_TOO_LONG);
    if (need > this.carry.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.carry.length * 2));
      this.carry.copy(bigger, 0, 0, this.carryLen);
      this.carry = bigger;
    }
    b.copy(this.carry, this.carryLen, s, e);
    this.carryLen = need;
  }
}
