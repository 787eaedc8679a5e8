/**
 * The one map from trace tokens to small non-negative integers, for every reader and consumer
 * that indexes tokens: token numbers (token-numbers.ts, on the parser's hot path), the replay's
 * tokens that lost their number, the importers' live pointers with the line that allocated each
 * (import/core.ts), and the statistics' blocks without a token number.
 *
 * A token is given as its key (token-key.ts) and, for a token without a key, its text; NULL (key
 * 0) is never bound. Keyed tokens, nearly all the tokens of a recorded trace, live in an
 * open-addressing hash table: keys in a Float64Array (exact below 2^52), values in an Int32Array
 * (so values are 0 to 2^31-1), linear probing, deletion by backward shift (no tombstones, so a
 * long replay of allocations and frees never degrades it), doubling when more than three quarters
 * full: 12 bytes a slot, 16 to 32 bytes a token (at half full, 24 to 48; probes stay short, as the
 * keys are scattered by the hash, slotOf). The rare tokens without a key (names like `buf1`) live
 * in a Map by their text.
 *
 * Why not a Map for all: a recorded log holds tens of millions of pointer tokens over its life,
 * and a Map of numbers costs an allocation per entry and far more time per operation than a
 * probe in typed arrays. Nothing here allocates per operation, apart from the Map's own work for
 * unkeyed tokens. (Values are int32 rather than doubles: doubles cost the parser a few per cent.)
 */

import { bigArray, release } from '../core/release.js';

/** What the table answers for a token it does not hold. */
export const NONE = -1;

/** Key stored in an empty slot: 0 is the key of NULL, which is never bound. */
const EMPTY = 0;

export class TokenTable {
  private keys: Float64Array;
  private vals: Int32Array;
  private mask: number;
  /** 32 - log2(slots): slotOf's shift. */
  private shift: number;
  /** Keyed tokens in the table. */
  private keyed = 0;
  /** Tokens without a key, by text. */
  private readonly named = new Map<string, number>();

  constructor(capacity = 1024) {
    let n = 16;
    while (n * 3 < capacity * 4) n *= 2;
    this.keys = new Float64Array(n);
    this.vals = new Int32Array(n);
    this.mask = n - 1;
    this.shift = Math.clz32(n) + 1;
  }

  /** Tokens bound. */
  get size(): number {
    return this.keyed + this.named.size;
  }

  /** The value bound to the token (key above 0, or NO_KEY and its text), or NONE. */
  get(key: number, text: string): number {
    if (key <= 0) return this.named.get(text) ?? NONE;
    const keys = this.keys;
    const mask = this.mask;
    for (let i = slotOf(key, this.shift); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) return this.vals[i]!;
      if (k === EMPTY) return NONE;
    }
  }

  /** Binds the token to value h, 0 to 2^31-1 (replacing any binding). */
  set(key: number, text: string, h: number): void {
    this.bind(key, text, h, true);
  }

  /**
   * Binds the token to value h unless it is bound already. Returns the value it was bound to
   * (unchanged), or NONE when the binding is new: one probe for both the check and the binding.
   */
  add(key: number, text: string, h: number): number {
    return this.bind(key, text, h, false);
  }

  private bind(key: number, text: string, h: number, replace: boolean): number {
    if (key <= 0) {
      const old = this.named.get(text);
      if (old === undefined || replace) this.named.set(text, h);
      return old ?? NONE;
    }
    const keys = this.keys;
    const mask = this.mask;
    let i = slotOf(key, this.shift);
    for (;;) {
      const k = keys[i]!;
      if (k === key) {
        const old = this.vals[i]!;
        if (replace) this.vals[i] = h;
        return old;
      }
      if (k === EMPTY) break;
      i = (i + 1) & mask;
    }
    keys[i] = key;
    this.vals[i] = h;
    if (++this.keyed * 4 > mask * 3) this.grow();
    return NONE;
  }

  /** Unbinds the token and returns its value, or NONE if it was not bound. */
  delete(key: number, text: string): number {
    if (key <= 0) {
      const h = this.named.get(text);
      if (h === undefined) return NONE;
      this.named.delete(text);
      return h;
    }
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    const shift = this.shift;
    let i = slotOf(key, shift);
    for (;;) {
      const k = keys[i]!;
      if (k === key) break;
      if (k === EMPTY) return NONE;
      i = (i + 1) & mask;
    }
    const h = vals[i]!;
    this.keyed--;
    // Backward shift: move later entries of the probe run into the hole when their home slot
    // does not lie (cyclically) between the hole and them.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j]!;
      if (k === EMPTY) break;
      const home = slotOf(k, shift);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = k;
        vals[hole] = vals[j]!;
        hole = j;
      }
    }
    keys[hole] = EMPTY;
    return h;
  }

  /** Calls f with every bound value. */
  forEachValue(f: (h: number) => void): void {
    const keys = this.keys;
    for (let i = 0; i <= this.mask; i++) if (keys[i] !== EMPTY) f(this.vals[i]!);
    for (const h of this.named.values()) f(h);
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const n = oldKeys.length * 2;
    const mask = n - 1;
    const shift = Math.clz32(n) + 1;
    const keys = bigArray(Float64Array, n);
    const vals = bigArray(Int32Array, n);
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j]!;
      if (k === EMPTY) continue;
      let i = slotOf(k, shift);
      while (keys[i] !== EMPTY) i = (i + 1) & mask;
      keys[i] = k;
      vals[i] = oldVals[j]!;
    }
    this.keys = keys;
    this.vals = vals;
    this.mask = mask;
    this.shift = shift;
    // A big table's old arrays (half the new ones' bytes) are freed now, not at the collector's pace.
    release(oldKeys);
    release(oldVals);
  }
}

/**
 * The home slot of a key (below 2^52) in a table of 2^(32 - shift) slots: Fibonacci hashing of
 * its 32-bit halves folded together, whose top bits mix all the key's bits (pointers are multiples
 * of 16 and differ mostly in their middle bits).
 */
function slotOf(key: number, shift: number): number {
  const lo = key >>> 0;
  const hi = (key / 4294967296) >>> 0;
  return Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> shift;
}
