/**
 * The record objects a trace reader fills and hands to its sink for the extension lines of the
 * format (docs/trace-format.md): `#:touch` (ReadTouch) and `#:rss` (ReadRss), one object of each
 * kind reused for every record, like the event object (event.ts).
 *
 * A touch record's token is held as its key (token-key.ts); `token` makes the text when read.
 */

import { keyedTokenText, NO_KEY } from './token-key.js';
import type { RssSample, TouchRecord } from './types.js';

export class ReadTouch implements TouchRecord {
  line = 0;
  key = NO_KEY;
  id = -1;
  pages = new Float64Array(32);
  ranges = 0;
  maxPage = -1;
  /** The text of a token without a key ('' otherwise). */
  text = '';

  get token(): string {
    return this.key > 0 ? keyedTokenText(this.key) : this.text;
  }

  /** Sets the token: its key, and its text when the key is NO_KEY. */
  setToken(key: number, text: string): void {
    this.key = key;
    this.text = key === NO_KEY ? text : '';
  }

  /** Empties the page set. */
  clear(): void {
    this.ranges = 0;
    this.maxPage = -1;
  }

  /** Adds the pages first to last (inclusive, first <= last). */
  add(first: number, last: number): void {
    const k = 2 * this.ranges;
    if (k + 2 > this.pages.length) {
      const bigger = new Float64Array(this.pages.length * 2);
      bigger.set(this.pages);
      this.pages = bigger;
    }
    this.pages[k] = first;
    this.pages[k + 1] = last;
    this.ranges++;
    if (last > this.maxPage) this.maxPage = last;
  }
}

export class ReadRss implements RssSample {
  line = 0;
  time = -1;
  anon = -1;
  total = -1;
  heap = -1;
  mark = '';
  rec = -1;

  /** Copies another sample's fields. */
  set(s: RssSample): void {
    this.line = s.line;
    this.time = s.time;
    this.anon = s.anon;
    this.total = s.total ?? -1;
    this.heap = s.heap;
    this.mark = s.mark;
    this.rec = s.rec ?? -1;
  }
}
