/**
 * A set of live tokens, each with one number attached (the line that allocated it, for an
 * importer; a slot index, for the statistics), indexed like the replay indexes tokens: by token
 * key (token-key.ts) in an open-addressing table of doubles, and by text for the rare tokens that
 * have no key.
 *
 * Why not a Map: a recorded log holds tens of millions of pointer tokens over its life, and a Map
 * of numbers costs an allocation per entry and far more time per operation than a probe in a
 * typed array. Deletion shifts entries back (no tombstones), so a log that allocates and frees
 * forever keeps its probe runs short.
 */

import { NO_KEY } from '../trace/token-key.js';

/** Key of an empty slot: 0 is the key of NULL, which is never live. */
const EMPTY = 0;

/** The value get() returns for a token that is not in the set. */
export const ABSENT = -1;

export class LiveSet {
  private keys: Float64Array;
  private vals: Float64Array;
  private mask: number;
  private keyed = 0;
  private readonly named = new Map<string, number>();

  constructor(capacity = 1024) {
    let n = 16;
    while (n < capacity * 2) n *= 2;
    this.keys = new Float64Array(n);
    this.vals = new Float64Array(n);
    this.mask = n - 1;
  }

  /** Tokens in the set. */
  get size(): number {
    return this.keyed + this.named.size;
  }

  /** The value of the token (key above 0, or NO_KEY and its text), or ABSENT. */
  get(key: number, text: string): number {
    if (key <= 0) return key === NO_KEY ? (this.named.get(text) ?? ABSENT) : ABSENT;
    const keys = this.keys;
    const mask = this.mask;
    for (let i = slotOf(key, mask); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === key) return this.vals[i]!;
      if (k === EMPTY) return ABSENT;
    }
  }

  /** Adds the token with value v, or replaces its value. v must not be ABSENT. */
  set(key: number, text: string, v: number): void {
    if (key <= 0) {
      if (key === NO_KEY) this.named.set(text, v);
      return;
    }
    const keys = this.keys;
    const mask = this.mask;
    let i = slotOf(key, mask);
    for (;;) {
      const k = keys[i]!;
      if (k === key) {
        this.vals[i] = v;
        return;
      }
      if (k === EMPTY) break;
      i = (i + 1) & mask;
    }
    keys[i] = key;
    this.vals[i] = v;
    if (++this.keyed * 2 > mask) this.grow();
  }

  /**
   * Adds the token with value v unless it is in the set already. Returns ABSENT when it was
   * added, or the value it has (unchanged): one probe for both the check and the insertion.
   */
  add(key: number, text: string, v: number): number {
    if (key <= 0) {
      if (key !== NO_KEY) return ABSENT;
      const old = this.named.get(text);
      if (old !== undefined) return old;
      this.named.set(text, v);
      return ABSENT;
    }
    const keys = this.keys;
    const mask = this.mask;
    let i = slotOf(key, mask);
    for (;;) {
      const k = keys[i]!;
      if (k === key) return this.vals[i]!;
      if (k === EMPTY) break;
      i = (i + 1) & mask;
    }
    keys[i] = key;
    this.vals[i] = v;
    if (++this.keyed * 2 > mask) this.grow();
    return ABSENT;
  }

  /** Removes the token; returns its value, or ABSENT when it was not in the set. */
  delete(key: number, text: string): number {
    if (key <= 0) {
      if (key !== NO_KEY) return ABSENT;
      const v = this.named.get(text);
      if (v === undefined) return ABSENT;
      this.named.delete(text);
      return v;
    }
    const keys = this.keys;
    const vals = this.vals;
    const mask = this.mask;
    let i = slotOf(key, mask);
    for (;;) {
      const k = keys[i]!;
      if (k === key) break;
      if (k === EMPTY) return ABSENT;
      i = (i + 1) & mask;
    }
    const v = vals[i]!;
    this.keyed--;
    // Backward shift: an entry further along the run moves into the hole unless its home slot
    // lies cyclically after the hole (then it would become unreachable).
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j]!;
      if (k === EMPTY) break;
      const home = slotOf(k, mask);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        keys[hole] = k;
        vals[hole] = vals[j]!;
        hole = j;
      }
    }
    keys[hole] = EMPTY;
    return v;
  }

  /** Calls f for every token in the set, keyed ones first (in no particular order). */
  forEach(f: (key: number, text: string, v: number) => void): void {
    const keys = this.keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) f(keys[i]!, '', this.vals[i]!);
    for (const [text, v] of this.named) f(NO_KEY, text, v);
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const n = oldKeys.length * 2;
    this.keys = new Float64Array(n);
    this.vals = new Float64Array(n);
    this.mask = n - 1;
    const keys = this.keys;
    const mask = this.mask;
    for (let j = 0; j < oldKeys.length; j++) {
      const k = oldKeys[j]!;
      if (k === EMPTY) continue;
      let i = slotOf(k, mask);
      while (keys[i] !== EMPTY) i = (i + 1) & mask;
      keys[i] = k;
      this.vals[i] = oldVals[j]!;
    }
  }
}

/**
 * The home slot of a key. Pointers are 16-byte aligned and clustered, so the low bits alone would
 * pile them up: the key's two 26-bit halves are mixed by a multiplicative hash.
 */
function slotOf(key: number, mask: number): number {
  const lo = key % 0x4000000 | 0;
  const hi = (key / 0x4000000) | 0;
  let h = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
  h ^= h >>> 15;
  return h & mask;
}
