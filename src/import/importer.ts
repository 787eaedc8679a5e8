/**
 * The shape every importer has: a LineHandler fed the lines of its log, on top of an ImportCore
 * that turns the calls it recognises into events.
 */

import { shownBytes } from '../trace/shown.js';
import { TraceSyntaxError } from '../trace/types.js';
import type { ImportCore, ImportReport } from './core.js';
import type { LineHandler } from './lines.js';
import { Scan } from './scan.js';

export abstract class LineImporter implements LineHandler {
  protected readonly scan = new Scan();

  constructor(
    protected readonly core: ImportCore,
    protected readonly strict: boolean,
  ) {}

  line(b: Buffer, s: number, e: number, no: number, last: boolean): void {
    if (!last) {
      this.parse(b, s, e, no);
      return;
    }
    // A last line without its newline is usually a log cut short (the program was killed while
    // writing). It is used when it reads as a whole call, and left out with a warning otherwise.
    try {
      this.parse(b, s, e, no);
    } catch (err) {
      if (
        !(err instanceof TraceSyntaxError) ||
        err.name !== 'TraceSyntaxError' ||
        this.strict ||
        err.line !== no
      )
        throw err;
      this.core.warn(
        no,
        'incomplete last line',
        `the last line is incomplete (the log was cut short?) and is ignored: ${err.detail}`,
      );
    }
  }

  /**
   * The number just read by the scanner as a size: sizes are size_t, and a number above 2^64 - 1
   * is a mistake (which the native reader would refuse too).
   */
  protected size(v: number, no: number, what = 'size'): number {
    const sc = this.scan;
    if (sc.big)
      this.core.fail(
        no,
        `${what} ${shownBytes(sc.b, sc.numStart, sc.i, 60)} is out of range (more than 2^64-1)`,
      );
    return v;
  }

  /** Parses one line (without its newline). */
  protected abstract parse(b: Buffer, s: number, e: number, no: number): void;

  /** The end of the log: whatever the importer still holds, then the core's report. */
  end(lines: number): ImportReport {
    this.flush();
    return this.core.finish(lines);
  }

  /** Hands on the call the core holds, when the reading stops at a mistake (index.ts stoppedAt). */
  deliverHeld(): void {
    this.core.deliverHeld();
  }

  /** Called at the end of the log, before the core finishes (for calls an importer holds). */
  protected flush(): void {}
}
