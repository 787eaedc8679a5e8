/**
 * Page residency of one region of the simulated address space: one bit per 4 KiB page, set by the
 * first write to the page, cleared when the page is unmapped, given back by a shrinking program
 * break, or discarded with MADV_DONTNEED. A running count of set bits makes RSS an O(1) read.
 *
 * Memory is one bit per page of the region, so a 64 GiB heap costs 2 MiB here, whatever the number
 * of chunks in it.
 */

const WORD_BITS = 32;

/** Number of set bits in a 32-bit word. */
function popcount32(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export class PageSet {
  private words: Uint32Array;
  /** Pages currently set. */
  count = 0;

  constructor(pages = 0) {
    this.words = new Uint32Array(Math.max(1, Math.ceil(pages / WORD_BITS)));
  }

  /** Capacity in pages. */
  get capacity(): number {
    return this.words.length * WORD_BITS;
  }

  /** Makes room for at least `pages` pages; new pages start clear. */
  ensure(pages: number): void {
    if (pages <= this.capacity) return;
    let n = this.words.length;
    while (n * WORD_BITS < pages) n *= 2;
    const w = new Uint32Array(n);
    w.set(this.words);
    this.words = w;
  }

  has(page: number): boolean {
    const w = page >>> 5;
    return w < this.words.length && (this.words[w]! & (1 << (page & 31))) !== 0;
  }

  /** Sets one page; returns 1 if it was clear (a first touch), else 0. The page must be in capacity. */
  set(page: number): number {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    const old = this.words[w]!;
    if ((old & bit) !== 0) return 0;
    this.words[w] = old | bit;
    this.count++;
    return 1;
  }

  /** Sets pages [first, end); returns how many were clear. */
  setRange(first: number, end: number): number {
    if (end - first <= 2) {
      let n = 0;
      for (let p = first; p < end; p++) n += this.set(p);
      return n;
    }
    let added = 0;
    let p = first;
    const words = this.words;
    while (p < end) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(32, lo + (end - p));
      const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      const old = words[w]!;
      const fresh = mask & ~old;
      if (fresh !== 0) {
        added += popcount32(fresh);
        words[w] = old | mask;
      }
      p += hi - lo;
    }
    this.count += added;
    return added;
  }

  /** Clears pages [first, end); returns how many were set. */
  clearRange(first: number, end: number): number {
    end = Math.min(end, this.capacity);
    let removed = 0;
    let p = first;
    const words = this.words;
    while (p < end) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(32, lo + (end - p));
      const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      const old = words[w]!;
      const gone = mask & old;
      if (gone !== 0) {
        removed += popcount32(gone);
        words[w] = old & ~mask;
      }
      p += hi - lo;
    }
    this.count -= removed;
    return removed;
  }

  /** Number of set pages in [first, end). */
  countRange(first: number, end: number): number {
    end = Math.min(end, this.capacity);
    let n = 0;
    let p = first;
    const words = this.words;
    while (p < end) {
      const w = p >>> 5;
      const lo = p & 31;
      const hi = Math.min(32, lo + (end - p));
      const mask = hi - lo === 32 ? 0xffffffff : (((1 << (hi - lo)) - 1) << lo) >>> 0;
      n += popcount32(words[w]! & mask);
      p += hi - lo;
    }
    return n;
  }

  /** A copy of pages [first, end) as a new PageSet starting at page 0 (used by mremap). */
  slice(first: number, end: number): PageSet {
    const out = new PageSet(end - first);
    for (let p = first; p < end; p++) if (this.has(p)) out.set(p - first);
    return out;
  }

  /** Recount of all set bits (for invariant checks). */
  recount(): number {
    let n = 0;
    for (let i = 0; i < this.words.length; i++) n += popcount32(this.words[i]!);
    return n;
  }
}
