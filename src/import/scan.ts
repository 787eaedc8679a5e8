/**
 * A cursor over the bytes of one line, with the few readers the importers need: blanks, numbers in
 * decimal or hexadecimal, and pointers. Everything works on the bytes and keeps its results in
 * fields, so that reading a line allocates nothing (a pointer's text is made only for the rare
 * pointer too wide to have a token key).
 */

import { shownBytes } from '../trace/shown.js';
import { NO_KEY } from '../trace/token-key.js';
import { NULL_TOKEN } from '../trace/types.js';

/** Hex digits of the widest pointer that has a token key (token-key.ts: at most 2^52 - 1). */
const KEY_DIGITS = 13;

/** The value of a hex digit byte, or -1. */
function hexDigit(c: number): number {
  const d = c - 0x30;
  if (d >>> 0 <= 9) return d;
  const l = (c | 0x20) - 0x61;
  return l >>> 0 <= 5 ? l + 10 : -1;
}

export class Scan {
  b: Buffer = Buffer.alloc(0);
  i = 0;
  e = 0;
  /** The last pointer read: its token key, and its text when the key is NO_KEY. */
  key = 0;
  text = NULL_TOKEN;
  /** Set by dec, hex and num when the number read is above 2^64 - 1 (no size can be). */
  big = false;
  /**
   * Set by dec, hex and num to the number read when it is above 2^53 (and at most 2^64 - 1): its
   * double, returned, is only the nearest one. Undefined otherwise.
   */
  exact: bigint | undefined = undefined;
  /** Where the last number read starts (its `0x` included). */
  numStart = 0;

  set(b: Buffer, s: number, e: number): this {
    this.b = b;
    this.i = s;
    this.e = e;
    return this;
  }

  atEnd(): boolean {
    return this.i >= this.e;
  }

  /** The byte at the cursor, or -1 at the end. */
  peek(): number {
    return this.i < this.e ? this.b[this.i]! : -1;
  }

  /** Skips spaces and tabs; returns how many. */
  blanks(): number {
    const s = this.i;
    while (this.i < this.e && (this.b[this.i] === 0x20 || this.b[this.i] === 0x09)) this.i++;
    return this.i - s;
  }

  /** Consumes the byte c if it is next. */
  eat(c: number): boolean {
    if (this.i < this.e && this.b[this.i] === c) {
      this.i++;
      return true;
    }
    return false;
  }

  /** Consumes the ASCII string if it comes next. */
  eatText(t: string): boolean {
    const n = t.length;
    if (this.e - this.i < n) return false;
    for (let k = 0; k < n; k++) if (this.b[this.i + k] !== t.charCodeAt(k)) return false;
    this.i += n;
    return true;
  }

  /** Whether the ASCII string comes next (not consumed). */
  sees(t: string): boolean {
    const i = this.i;
    const r = this.eatText(t);
    this.i = i;
    return r;
  }

  /** Decimal digits: their value, or -1 when there are none (cursor unchanged). */
  dec(): number {
    let v = 0;
    const s = (this.numStart = this.i);
    while (this.i < this.e) {
      const d = this.b[this.i]! - 0x30;
      if (d >>> 0 > 9) break;
      v = v * 10 + d;
      this.i++;
    }
    // Doubles cannot tell 2^64 - 1 from 2^64: long spellings are compared as text.
    this.big =
      this.i - s >= 20 && tooBig(this.b.toString('latin1', s, this.i), '18446744073709551615');
    // Above 2^53 the sum of digits drifts: the number exactly, and its nearest double.
    this.exact = undefined;
    if (v > Number.MAX_SAFE_INTEGER && !this.big) {
      this.exact = BigInt(this.b.toString('latin1', s, this.i));
      v = Number(this.exact);
    }
    return this.i > s ? v : -1;
  }

  /** Hex digits without prefix: their value, or -1 when there are none (cursor unchanged). */
  hex(): number {
    let v = 0;
    const s = (this.numStart = this.i);
    while (this.i < this.e) {
      const d = hexDigit(this.b[this.i]!);
      if (d < 0) break;
      v = v * 16 + d;
      this.i++;
    }
    this.big =
      this.i - s > 16 &&
      tooBig(this.b.toString('latin1', s, this.i).toLowerCase(), 'ffffffffffffffff');
    this.exact = undefined;
    if (v > Number.MAX_SAFE_INTEGER && !this.big) {
      this.exact = BigInt('0x' + this.b.toString('latin1', s, this.i));
      v = Number(this.exact);
    }
    return this.i > s ? v : -1;
  }

  /** A number written in decimal or with a 0x prefix in hex; -1 when there is none. */
  num(): number {
    const b = this.b;
    if (
      this.e - this.i > 2 &&
      b[this.i] === 0x30 &&
      (b[this.i + 1]! | 0x20) === 0x78 &&
      hexDigit(b[this.i + 2]!) >= 0
    ) {
      this.i += 2;
      const v = this.hex();
      this.numStart -= 2;
      return v;
    }
    return this.dec();
  }

  /**
   * A pointer written in hex, with the `0x` prefix when `prefixed` (as %p prints it) or bare (as
   * heaptrack does), or one of the ways of writing NULL: `(nil)`, `nil`, `NULL`, and zero.
   * Sets `key` and `text` as the native reader would for the same pointer written `0x...`
   * without leading zeros. Returns false (cursor unchanged) when there is no pointer here.
   */
  ptr(prefixed: boolean): boolean {
    const b = this.b;
    const s = this.i;
    const c0 = this.i < this.e ? b[this.i]! : -1;
    if (
      (c0 === 0x28 || c0 === 0x6e || c0 === 0x4e) &&
      (this.eatText('(nil)') || this.eatText('nil') || this.eatText('NULL'))
    ) {
      this.key = 0;
      this.text = NULL_TOKEN;
      return true;
    }
    if (prefixed) {
      if (!(this.e - this.i >= 2 && b[this.i] === 0x30 && (b[this.i + 1]! | 0x20) === 0x78)) {
        // A bare 0 is NULL too (ltrace and others print it so).
        if (b[this.i] === 0x30 && (this.i + 1 >= this.e || hexDigit(b[this.i + 1]!) < 0)) {
          this.i++;
          this.key = 0;
          this.text = NULL_TOKEN;
          return true;
        }
        return false;
      }
      this.i += 2;
    }
    while (this.i < this.e && b[this.i] === 0x30) this.i++;
    const d = this.i;
    let v = 0;
    while (this.i < this.e) {
      const x = hexDigit(b[this.i]!);
      if (x < 0) break;
      v = v * 16 + x;
      this.i++;
    }
    if (this.i === s + (prefixed ? 2 : 0)) {
      this.i = s;
      return false;
    }
    if (this.i - d <= KEY_DIGITS) {
      this.key = v;
      this.text = NULL_TOKEN;
    } else {
      this.key = NO_KEY;
      this.text = '0x' + b.toString('latin1', d, this.i).toLowerCase();
    }
    return true;
  }

  /** The bytes from s to the cursor as text (for messages and rare tokens). */
  textFrom(s: number): string {
    return this.b.toString('latin1', s, this.i);
  }

  /** The rest of the line as text, shortened for a message. */
  rest(): string {
    const t = this.b.toString('utf8', this.i, Math.min(this.e, this.i + 80));
    return this.e - this.i > 80 ? t + '...' : t;
  }
}

/** Whether the digits (leading zeros allowed) are above max, a spelling of 2^64 - 1. */
function tooBig(digits: string, max: string): boolean {
  const t = digits.replace(/^0+(?=.)/, '');
  return t.length > max.length || (t.length === max.length && t > max);
}

/** A line as text for a message: shortened, control characters escaped. */
export function lineShown(b: Buffer, s: number, e: number): string {
  return shownBytes(b, s, e, 120);
}
