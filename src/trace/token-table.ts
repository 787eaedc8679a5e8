/**
 * The one map from trace tokens to small non-negative integers, for every reader and consumer
 * that indexes tokens: token numbers (token-numbers.ts, on the parser's hot path), the replay's
 * tokens that lost their number, the importers' live pointers with the line that allocated each
 * (import/core.ts), and the statistics' blocks without a token number.
 *
 * A token is given as its key (token-key.ts) and, for a token without a key, its text; NULL (key
 * 0) is never bound. Keyed tokens, nearly all the tokens of a recorded trace, live in an
 * open-addressing hash table: one Uint32Array of three words a slot (the key's low and high 32
 * bits, then the value, 0 to 2^31-1), so that a probe reads one cache line; linear probing,
 * deletion by backward shift (no tombstones, so a long replay of allocations and frees never
 * degrades it), doubling when more than three quarters full: 16 to 32 bytes a token. The rare
 * tokens without a key (names like `buf1`) live in a Map by their text.
 *
 * Why not a Map for all: a recorded log holds tens of millions of pointer tokens over its life,
 * and a Map of numbers costs an allocation per entry and far more time per operation than a
 * probe in typed arrays. Nothing here allocates per operation, apart from the Map's own work for
 * unkeyed tokens.
 */

/** What the table answers for a token it does not hold. */
export const NONE = -1;

/** 2^32, to split a key (below 2^52) into its 32-bit halves. */
const TWO32 = 4294967296;

export class TokenTable {
  /** Slot i: words 3i and 3i + 1 hold the key's low and high halves (both 0: empty), 3i + 2 the value. */
  private slots: Uint32Array;
  private mask: number;
  /** 32 - log2(slots): slotOf's shift. */
  private shift: number;
  /** Keyed tokens in the table. */
  private keyed = 0;
  /** Keyed tokens the table holds before it grows. */
  private limit: number;
  /** Tokens without a key, by text. */
  private readonly named = new Map<string, number>();

  constructor(capacity = 1024) {
    let n = 16;
    while (n * 3 < capacity * 4) n *= 2;
    this.slots = new Uint32Array(3 * n);
    this.mask = n - 1;
    this.shift = Math.clz32(n) + 1;
    this.limit = (n >>> 2) * 3;
  }

  /** Tokens bound. */
  get size(): number {
    return this.keyed + this.named.size;
  }

  /** The value bound to the token (key above 0, or NO_KEY and its text), or NONE. */
  get(key: number, text: string): number {
    if (key <= 0) return this.named.get(text) ?? NONE;
    const slots = this.slots;
    const mask = this.mask;
    const lo = key >>> 0;
    const hi = (key / TWO32) >>> 0;
    for (let i = slotOf(lo, hi, this.shift); ; i = (i + 1) & mask) {
      const w = 3 * i;
      const l = slots[w]!;
      const h = slots[w + 1]!;
      if (l === lo && h === hi) return slots[w + 2]!;
      if ((l | h) === 0) return NONE;
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
    const slots = this.slots;
    const mask = this.mask;
    const lo = key >>> 0;
    const hi = (key / TWO32) >>> 0;
    let i = slotOf(lo, hi, this.shift);
    for (;;) {
      const w = 3 * i;
      const l = slots[w]!;
      const k = slots[w + 1]!;
      if (l === lo && k === hi) {
        const old = slots[w + 2]!;
        if (replace) slots[w + 2] = h;
        return old;
      }
      if ((l | k) === 0) break;
      i = (i + 1) & mask;
    }
    const w = 3 * i;
    slots[w] = lo;
    slots[w + 1] = hi;
    slots[w + 2] = h;
    if (++this.keyed > this.limit) this.grow();
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
    const slots = this.slots;
    const mask = this.mask;
    const shift = this.shift;
    const lo = key >>> 0;
    const hi = (key / TWO32) >>> 0;
    let i = slotOf(lo, hi, shift);
    for (;;) {
      const w = 3 * i;
      const l = slots[w]!;
      const k = slots[w + 1]!;
      if (l === lo && k === hi) break;
      if ((l | k) === 0) return NONE;
      i = (i + 1) & mask;
    }
    const h = slots[3 * i + 2]!;
    this.keyed--;
    // Backward shift: move later entries of the probe run into the hole when their home slot
    // does not lie (cyclically) between the hole and them.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const w = 3 * j;
      const l = slots[w]!;
      const k = slots[w + 1]!;
      if ((l | k) === 0) break;
      const home = slotOf(l, k, shift);
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        const to = 3 * hole;
        slots[to] = l;
        slots[to + 1] = k;
        slots[to + 2] = slots[w + 2]!;
        hole = j;
      }
    }
    slots[3 * hole] = 0;
    slots[3 * hole + 1] = 0;
    return h;
  }

  /** Calls f with every bound value. */
  forEachValue(f: (h: number) => void): void {
    const slots = this.slots;
    for (let w = 0; w < slots.length; w += 3)
      if ((slots[w]! | slots[w + 1]!) !== 0) f(slots[w + 2]!);
    for (const h of this.named.values()) f(h);
  }

  private grow(): void {
    const old = this.slots;
    const n = (this.mask + 1) * 2;
    const mask = n - 1;
    const shift = Math.clz32(n) + 1;
    const slots = new Uint32Array(3 * n);
    for (let w = 0; w < old.length; w += 3) {
      const l = old[w]!;
      const k = old[w + 1]!;
      if ((l | k) === 0) continue;
      let i = slotOf(l, k, shift);
      while ((slots[3 * i]! | slots[3 * i + 1]!) !== 0) i = (i + 1) & mask;
      slots[3 * i] = l;
      slots[3 * i + 1] = k;
      slots[3 * i + 2] = old[w + 2]!;
    }
    this.slots = slots;
    this.mask = mask;
    this.shift = shift;
    this.limit = (n >>> 2) * 3;
  }
}

/**
 * The home slot of a key (its low and high 32-bit halves) in a table of 2^(32 - shift) slots:
 * Fibonacci hashing of the halves folded together, whose top bits mix all the key's bits
 * (pointers are multiples of 16 and differ mostly in their middle bits). Keys placed by their
 * address instead (nearby pointers in nearby slots) would walk the table in order, but runs of
 * neighbouring keys then pile up into long probe sequences at this load.
 */
function slotOf(lo: number, hi: number, shift: number): number {
  return Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1) >>> shift;
}
