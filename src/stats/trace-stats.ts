/**
 * Statistics of a trace, gathered as it streams by (a TraceSink): events by operation, threads,
 * requested sizes in power-of-two buckets, the peak of live requested bytes and when it happened,
 * allocation lifetimes in events and in time, and the blocks never freed.
 *
 * Built for traces of hundreds of millions of events: the per-event path allocates nothing and
 * never makes a token's text (tokens are indexed by their keys, token-key.ts). What is kept per
 * allocation lives only while the block does (its index, time and size, in typed arrays reused
 * through a free list); lifetimes go into fixed histograms (log-histogram.ts).
 *
 * What counts as what:
 *  - an allocation is any call that returns a block: malloc, calloc, the memalign family, and a
 *    realloc from NULL; its requested size is SIZE, NMEMB x SIZE for calloc;
 *  - a realloc that returns a block carries the allocation on: its lifetime runs from the call
 *    that created the block to the call that ends it, a free or a realloc to size 0;
 *  - the size histogram counts the size asked by every allocation call and every realloc that
 *    asks for a size (failed or not);
 *  - a call whose recording returned NULL (other than realloc(p, 0), which frees) failed.
 */

import { NO_KEY, keyedTokenText, tokenKey } from '../trace/token-key.js';
import { NONE, TokenTable } from '../trace/token-table.js';
import {
  OP_NAMES,
  Op,
  maxTouchPage,
  touchNotLive,
  touchPastEnd,
  type TouchRecord,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from '../trace/types.js';
import { LogHistogram, type Summary } from './log-histogram.js';

/** Size buckets: 0 for size 0, k for sizes in [2^(k-1), 2^k). */
const SIZE_BUCKETS = 66;

interface SizeBucket {
  /** Smallest and largest size of the bucket, in bytes. */
  min: number;
  max: number;
  count: number;
}

export interface TraceStatsReport {
  events: number;
  /** Events by operation name (only operations that occur). */
  operations: Record<string, number>;
  /** Calls whose recording returned NULL. */
  failed: number;
  /** Events per thread, by thread number, in order of appearance. */
  threads: Array<{ tid: number; events: number }>;
  /** Time of the first and last timed events (ns), when the trace has times. */
  time?: { first: number; last: number };
  /** Requested sizes, power-of-two buckets that are not empty. */
  sizes: SizeBucket[];
  /** Bytes requested by all calls that asked for a size. */
  requestedBytes: number;
  /** The same, exact, in decimal digits (requestedBytes is a double, exact up to 2^53). */
  requestedBytesExact: string;
  /** The most live requested bytes at once, and the event after which it was reached. */
  peak: { bytes: number; blocks: number; event: number; line: number; time?: number };
  lifetimes: {
    /** Blocks whose lifetime ended (freed, or reallocated to size 0). */
    count: number;
    /** In events: the index of the ending call minus the index of the allocating call. */
    events: Summary;
    /** In nanoseconds, when both calls have times. */
    ns?: Summary;
  };
  neverFreed: { blocks: number; bytes: number };
  /**
   * Oddities of the trace: frees of tokens that were not live and not freed lately (never
   * allocated, as far as the trace shows), tokens allocated while live, and frees of tokens freed
   * lately (double frees: what glibc makes of them is the replay's to say).
   */
  anomalies: { unknownFrees: number; reusedLive: number; doubleFrees: number };
  /**
   * The first of those oddities that a replay stops at as a mistake in the trace (a free of a
   * token never seen, a token allocated while live), as the replay words it.
   */
  mistake?: { line: number; detail: string };
}

/** How many freed tokens are remembered to tell a double free from a never-seen token (a power of 2). */
const FREED_MEMORY = 65536;

/** A size as the exact bigint it stands for: the double 2^64 stands for the largest size, 2^64 - 1. */
function exactSize(n: number): bigint {
  return n >= 2 ** 64 ? 2n ** 64n - 1n : BigInt(Math.round(n));
}

/**
 * Where a live block's record is: its allocating event's index and time, and its size, at a
 * "handle". Events that carry token numbers (TraceEvent.inId/outId, given by the native reader
 * and the importers) index the records by number, without hashing anything here: handle 2 x id.
 * The other tokens (events without numbers, and the token of a failed realloc, which gives its
 * number up while its block lives on) are found by key in a TokenTable, with records at odd handles
 * 2 x slot + 1 taken from a free list.
 */
export class TraceStats implements TraceSink {
  headerSeen: TraceHeader | null = null;
  private events = 0;
  private readonly ops = new Float64Array(OP_NAMES.length);
  private failed = 0;
  // Threads: tid -> index into tidCount, with the last one cached.
  private readonly tidIndex = new Map<number, number>();
  private tidList: number[] = [];
  private tidCount: Float64Array = new Float64Array(16);
  private lastTid = NaN;
  private lastTidSlot = 0;
  private firstTime = -1;
  private lastTime = -1;
  private readonly sizes = new Float64Array(SIZE_BUCKETS);
  private requested = 0;
  /**
   * Records of live blocks, four numbers per handle (index, time, size, unused) side by side, so
   * that a block's record is one cache line: traces free blocks in no particular order, and three
   * separate arrays cost three cache misses per free.
   */
  private rec: Float64Array = new Float64Array(4 << 12);
  /** Which token numbers name a live block. */
  private numbered: Uint8Array = new Uint8Array(1 << 11);
  /** Tokens without a number, by key: their handles. */
  private readonly unnumbered = new TokenTable(64);
  private freeSlots: Int32Array = new Int32Array(64);
  private freeCount = 0;
  private slotsUsed = 0;
  private liveBytes = 0;
  private liveBlocks = 0;
  private peakBytes = 0;
  private peakBlocks = 0;
  private peakEvent = -1;
  private peakLine = 0;
  private peakTime = -1;
  private readonly lifeEvents = new LogHistogram();
  private readonly lifeNs = new LogHistogram();
  private unknownFrees = 0;
  private reusedLive = 0;
  private doubleFrees = 0;
  private mistake: { line: number; detail: string } | undefined;
  /** Requested bytes beyond what a double sums exactly (requested holds the rest). */
  private requestedBig = 0n;
  /**
   * The tokens freed last, in a ring of FREED_MEMORY that drops the oldest: key, and text for a
   * token without one. Writing costs two stores per free; only a free of a token not live (rare:
   * a replay stops at the first) searches it, as the replay searches its own.
   */
  private readonly freedKey = new Float64Array(FREED_MEMORY);
  private readonly freedText = new Map<number, string>();
  private freedNext = 0;

  header(h: TraceHeader): void {
    this.headerSeen = h;
  }

  event(ev: TraceEvent): void {
    this.events++;
    const op = ev.op;
    this.ops[op]!++;
    const tid = ev.tid;
    if (tid === this.lastTid) this.tidCount[this.lastTidSlot]!++;
    else this.countThread(tid);
    const time = ev.time;
    if (time >= 0) {
      if (this.firstTime < 0) this.firstTime = time;
      this.lastTime = time;
    }
    switch (op) {
      case Op.malloc:
      case Op.valloc:
      case Op.pvalloc:
        this.allocation(ev, ev.n1, ev.exact1);
        break;
      case Op.calloc:
        this.allocation(
          ev,
          ev.n1 * ev.n2,
          // NMEMB x SIZE as the program asked it, even past 2^64 (glibc refuses it: calloc fails).
          ev.n1 * ev.n2 > Number.MAX_SAFE_INTEGER
            ? (ev.exact1 ?? BigInt(ev.n1)) * (ev.exact2 ?? BigInt(ev.n2))
            : undefined,
        );
        break;
      case Op.memalign:
        this.allocation(ev, ev.n2, ev.exact2);
        break;
      case Op.realloc:
        this.realloc(ev);
        break;
      case Op.free: {
        const h = this.take(ev);
        if (h >= 0) this.end(ev, h);
        break;
      }
      case Op.mallocTrim:
      case Op.mallopt:
      case Op.exit:
        // No block starts or ends.
        break;
    }
  }

  private countThread(tid: number): void {
    let slot = this.tidIndex.get(tid);
    if (slot === undefined) {
      slot = this.tidList.length;
      this.tidIndex.set(tid, slot);
      this.tidList.push(tid);
      if (slot >= this.tidCount.length) this.tidCount = grow64(this.tidCount, slot);
    }
    this.tidCount[slot]!++;
    this.lastTid = tid;
    this.lastTidSlot = slot;
  }

  /** A requested size, `exact` when the trace gave one above 2^53 (TraceEvent.exact1). */
  private sized(size: number, exact?: bigint): void {
    const total = this.requested + size;
    if (total <= Number.MAX_SAFE_INTEGER) this.requested = total;
    else {
      this.requestedBig += BigInt(this.requested) + (exact ?? exactSize(size));
      this.requested = 0;
    }
    const b =
      size < 1
        ? 0
        : size < 0x80000000
          ? 32 - Math.clz32(size)
          : Math.min(SIZE_BUCKETS - 1, Math.floor(Math.log2(size)) + 1);
    this.sizes[b]!++;
  }

  private allocation(ev: TraceEvent, size: number, exact?: bigint): void {
    this.sized(size, exact);
    if (outKeyOf(ev) === 0) {
      this.failed++;
      return;
    }
    this.born(ev, size);
  }

  /**
   * A `#:touch` record: it must name a live block, and pages that block can reach, or a replay
   * stops there (the first such record is the trace's mistake, worded as the replay words it).
   */
  touch(rec: TouchRecord): void {
    if (this.mistake !== undefined) return;
    const key = rec.key ?? tokenKey(rec.token);
    const id = rec.id ?? -1;
    let h = -1;
    if (id >= 0 && id < this.numbered.length && this.numbered[id] === 1) h = 2 * id;
    else if (this.unnumbered.size > 0) {
      const u = this.unnumbered.get(key, key === NO_KEY ? rec.token : '');
      if (u !== NONE) h = u;
    }
    if (h < 0) {
      this.mistake = { line: rec.line, detail: touchNotLive(rec.token) };
      return;
    }
    const size = this.rec[h * 4 + 2]!;
    if (rec.maxPage > maxTouchPage(size))
      this.mistake = { line: rec.line, detail: touchPastEnd(rec.token, rec.maxPage, size) };
  }

  /** A new live block: the one the event returns. */
  private born(ev: TraceEvent, size: number): void {
    const r = this.place(ev) * 4;
    this.rec[r] = ev.index;
    this.rec[r + 1] = ev.time;
    this.rec[r + 2] = size;
    this.liveBytes += size;
    this.liveBlocks++;
    this.checkPeak(ev);
  }

  private realloc(ev: TraceEvent): void {
    const size = ev.n1;
    if (inKeyOf(ev) === 0) {
      // realloc(NULL, n) is malloc(n)
      this.allocation(ev, size, ev.exact1);
      return;
    }
    if (size !== 0) this.sized(size, ev.exact1);
    const old = this.take(ev);
    if (old < 0) {
      // A realloc of a token not live (counted by take): the block it returned is known from now on.
      if (outKeyOf(ev) !== 0) this.born(ev, size);
      return;
    }
    if (outKeyOf(ev) === 0) {
      if (size === 0) {
        this.end(ev, old);
      } else {
        // A failed realloc: the block lives on under its token, which gave its number up.
        this.failed++;
        const key = inKeyOf(ev);
        const h = this.unnumberedHandle(key, key === NO_KEY ? ev.in : '');
        this.move(old, h);
      }
      return;
    }
    // The block lives on under its new token, with its new size.
    const h = this.place(ev);
    if (h !== old) this.move(old, h);
    const r = h * 4;
    this.liveBytes += size - this.rec[r + 2]!;
    this.rec[r + 2] = size;
    this.checkPeak(ev);
  }

  /**
   * The handle for the block the event returns (its `out` token, not NULL). A token that names
   * a live block already is an oddity: that block is dropped (its end is unknown).
   */
  private place(ev: TraceEvent): number {
    const id = ev.outId;
    const key = outKeyOf(ev);
    if (this.unnumbered.size > 0) {
      // The token may be an unnumbered one coming back (after a failed realloc, say).
      const old = this.unnumbered.delete(key, key === NO_KEY ? ev.out : '');
      if (old !== NONE) this.drop(old, ev);
    }
    if (id !== undefined && id >= 0) {
      if (id >= this.numbered.length) this.growNumbers(id);
      if (this.numbered[id] === 1) this.drop(2 * id, ev);
      this.numbered[id] = 1;
      return 2 * id;
    }
    return this.unnumberedHandle(key, key === NO_KEY ? ev.out : '');
  }

  /** A new odd handle for an unnumbered token, registered under its key. */
  private unnumberedHandle(key: number, text: string): number {
    const slot = this.freeCount > 0 ? this.freeSlots[--this.freeCount]! : this.slotsUsed++;
    const h = 2 * slot + 1;
    if (h * 4 >= this.rec.length) this.growRecords(h);
    this.unnumbered.set(key, text, h);
    return h;
  }

  /** The handle of the live block the event's `in` token names, unregistered; -1 when none. */
  private take(ev: TraceEvent): number {
    const key = inKeyOf(ev);
    if (key === 0) return -1;
    const id = ev.inId;
    if (id !== undefined && id >= 0 && id < this.numbered.length && this.numbered[id] === 1) {
      this.numbered[id] = 0;
      this.remember(key, ev);
      return 2 * id;
    }
    if (this.unnumbered.size > 0) {
      const h = this.unnumbered.delete(key, key === NO_KEY ? ev.in : '');
      if (h !== NONE) {
        this.freeOdd(h);
        this.remember(key, ev);
        return h;
      }
    }
    if (this.freedLately(key, ev)) {
      this.doubleFrees++;
      return -1;
    }
    this.unknownFrees++;
    if (this.mistake === undefined) {
      const name = key > 0 ? keyedTokenText(key) : ev.in;
      this.mistake = {
        line: ev.line,
        detail: `${OP_NAMES[ev.op]} of ${name}, which is not a live block (never allocated, or freed long ago)`,
      };
    }
    return -1;
  }

  /** Puts the token the event takes in the ring of recent frees, over the oldest. */
  private remember(key: number, ev: TraceEvent): void {
    const slot = this.freedNext;
    this.freedNext = (slot + 1) & (FREED_MEMORY - 1);
    this.freedKey[slot] = key;
    if (key === NO_KEY) this.freedText.set(slot, ev.in);
    else if (this.freedText.size > 0) this.freedText.delete(slot);
  }

  /** Whether the token the event takes is in the ring of recent frees. */
  private freedLately(key: number, ev: TraceEvent): boolean {
    const keys = this.freedKey;
    for (let i = 0; i < FREED_MEMORY; i++)
      if (keys[i] === key && (key !== NO_KEY || this.freedText.get(i) === ev.in)) return true;
    return false;
  }

  /** Moves a record from handle a to handle b (registered already). */
  private move(a: number, b: number): void {
    this.rec.copyWithin(b * 4, a * 4, a * 4 + 3);
  }

  /** A live block dropped without a known end (its token was handed out again). */
  private drop(h: number, ev: TraceEvent): void {
    this.reusedLive++;
    if (this.mistake === undefined) {
      const key = outKeyOf(ev);
      this.mistake = {
        line: ev.line,
        detail: `token ${key > 0 ? keyedTokenText(key) : ev.out} is reused while still live (it was never freed)`,
      };
    }
    this.liveBytes -= this.rec[h * 4 + 2]!;
    this.liveBlocks--;
    if ((h & 1) === 1) this.freeOdd(h);
  }

  /** The block at handle h ends (free, or realloc to 0): its lifetime is recorded. */
  private end(ev: TraceEvent, h: number): void {
    const r = h * 4;
    const rec = this.rec;
    this.lifeEvents.add(ev.index - rec[r]!);
    const born = rec[r + 1]!;
    if (born >= 0 && ev.time >= 0) this.lifeNs.add(ev.time - born);
    this.liveBytes -= rec[r + 2]!;
    this.liveBlocks--;
  }

  private freeOdd(h: number): void {
    if (this.freeCount === this.freeSlots.length) this.freeSlots = grow32(this.freeSlots);
    this.freeSlots[this.freeCount++] = (h - 1) / 2;
  }

  private growNumbers(id: number): void {
    let n = this.numbered.length * 2;
    while (n <= id) n *= 2;
    const bigger = new Uint8Array(n);
    bigger.set(this.numbered);
    this.numbered = bigger;
    this.growRecords(2 * n);
  }

  private growRecords(h: number): void {
    if (h * 4 < this.rec.length) return;
    this.rec = grow64(this.rec, h * 4 + 3);
  }

  private checkPeak(ev: TraceEvent): void {
    if (this.liveBytes > this.peakBytes) {
      this.peakBytes = this.liveBytes;
      this.peakBlocks = this.liveBlocks;
      this.peakEvent = ev.index;
      this.peakLine = ev.line;
      this.peakTime = ev.time;
    }
  }

  report(): TraceStatsReport {
    const operations: Record<string, number> = {};
    for (let op = 0; op < OP_NAMES.length; op++)
      if (this.ops[op]! > 0) operations[OP_NAMES[op]!] = this.ops[op]!;
    const sizes: SizeBucket[] = [];
    for (let b = 0; b < SIZE_BUCKETS; b++) {
      if (this.sizes[b]! === 0) continue;
      sizes.push(
        b === 0
          ? { min: 0, max: 0, count: this.sizes[b]! }
          : { min: 2 ** (b - 1), max: 2 ** b - 1, count: this.sizes[b]! },
      );
    }
    const r: TraceStatsReport = {
      events: this.events,
      operations,
      failed: this.failed,
      threads: this.tidList.map((tid, i) => ({ tid, events: this.tidCount[i]! })),
      sizes,
      requestedBytes: Number(this.requestedBig) + this.requested,
      requestedBytesExact: (this.requestedBig + BigInt(this.requested)).toString(),
      peak: {
        bytes: this.peakBytes,
        blocks: this.peakBlocks,
        event: this.peakEvent,
        line: this.peakLine,
      },
      lifetimes: { count: this.lifeEvents.count, events: this.lifeEvents.summary() },
      neverFreed: { blocks: this.liveBlocks, bytes: this.liveBytes },
      anomalies: {
        unknownFrees: this.unknownFrees,
        reusedLive: this.reusedLive,
        doubleFrees: this.doubleFrees,
      },
    };
    if (this.mistake !== undefined) r.mistake = { ...this.mistake };
    if (this.firstTime >= 0) {
      r.time = { first: this.firstTime, last: this.lastTime };
      if (this.peakTime >= 0) r.peak.time = this.peakTime;
      r.lifetimes.ns = this.lifeNs.summary();
    }
    return r;
  }
}

function inKeyOf(ev: TraceEvent): number {
  return ev.inKey !== undefined ? ev.inKey : tokenKey(ev.in);
}

function outKeyOf(ev: TraceEvent): number {
  return ev.outKey !== undefined ? ev.outKey : tokenKey(ev.out);
}

/** A copy of `a` with room for index `at` at least (doubling). */
function grow64(a: Float64Array, at: number): Float64Array {
  let n = a.length * 2;
  while (n <= at) n *= 2;
  const b = new Float64Array(n);
  b.set(a);
  return b;
}

function grow32(a: Int32Array): Int32Array {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}
