/**
 * Chunks, kept as a struct of arrays indexed by integer handles.
 *
 * glibc keeps its metadata inside the heap itself: each chunk starts with two words,
 *
 *     chunk -> +-------------------------------------------+
 *              | prev_size: size of the previous chunk,    |  (only meaningful when the previous
 *              |            if it is free                  |   chunk is free, or for an mmapped
 *              +-------------------------------------------+   chunk, its offset in its mapping)
 *              | size of this chunk              |A|M|P|   |
 *       mem -> +-------------------------------------------+
 *              | fd  (free: next in bin; tcache: next)     |
 *              | bk  (free: previous in bin; tcache: key)  |
 *              | fd_nextsize, bk_nextsize (large bins)     |
 *              | ... user data ...                         |
 *              +-------------------------------------------+
 *              | prev_size of the next chunk = our footer  |  (the "footer" of a free chunk)
 *
 * ptsim keeps the same fields per chunk, against the chunk's simulated address, but never a byte
 * image of the heap: memory grows with the number of chunks, not with the size of the heap. A
 * handle is stable for as long as its chunk exists; splitting creates a handle for the new part,
 * merging releases the absorbed one. Physical neighbours are linked (`next`/`prev`) so that
 * `chunk_at_offset(p, size)` is an array read; `addr[next[p]] === addr[p] + size[p]` always holds
 * inside a heap (check.ts verifies it).
 *
 * Bin headers are handles too (state BINHDR, address -1: none), so list code reads like glibc's.
 * Every write that glibc makes to heap memory goes through the helpers in mem.ts, which also
 * touch the page (the touch model).
 *
 * Memory: 51 bytes a handle. The columns grow by doubling, and the part of a column not yet used
 * is never written, so the system does not give it pages. The sizes, the prev_size words, the
 * request and the event that handed a chunk out are 32-bit until a value needs more (setSize,
 * setPrevSize and handOut widen the column, once); the free handles are chained through `fd`,
 * which a dead handle does not use.
 */

import { bigArray, grown, release } from './release.js';

export const NIL = -1;
/** What fd_nextsize reads in a bin header: some non-NULL word of the arena (see unlinkChunk). */
export const NOT_NULL = -2;

/** What currently holds a chunk. */
export const St = {
  /** Handed out to the program (or a fencepost / in-use chunk glibc keeps for itself). */
  INUSE: 0,
  TCACHE: 1,
  FAST: 2,
  /** In the unsorted bin or a small/large bin; `bin` says which. */
  BINNED: 3,
  TOP: 4,
  /** A bin header, not a chunk. */
  BINHDR: 5,
  /** A handle on the free list of handles. */
  DEAD: 6,
} as const;

export class ChunkStore {
  cap: number;
  addr: Float64Array;
  /** Chunk size without the flag bits (widened by setSize; written only through it). */
  size: Uint32Array | Float64Array;
  /** The P, M and A bits of the size word. */
  flags: Uint8Array;
  /** The prev_size word at the chunk's start (widened by setPrevSize; written only through it). */
  prevSize: Uint32Array | Float64Array;
  fd: Int32Array;
  bk: Int32Array;
  fdNext: Int32Array;
  bkNext: Int32Array;
  /** Physical neighbours in the same contiguous region (NIL at its ends). */
  next: Int32Array;
  prev: Int32Array;
  state: Uint8Array;
  /** Bin index while BINNED (1 = unsorted). */
  bin: Uint8Array;
  /** Bytes the program asked for, while the chunk is handed out (widened by handOut). */
  req: Uint32Array | Float64Array;
  /** Index of the event that handed the chunk out, -1 for none (widened by handOut). */
  born: Int32Array | Float64Array;

  /** The first free handle (NIL for none); each free handle's `fd` holds the next. */
  private freeHead = NIL;
  private used = 0;
  /** Handles currently in use (chunks and bin headers). */
  live = 0;

  constructor(cap = 1024) {
    this.cap = cap;
    this.addr = new Float64Array(cap);
    this.size = new Uint32Array(cap);
    this.flags = new Uint8Array(cap);
    this.prevSize = new Uint32Array(cap);
    this.fd = new Int32Array(cap);
    this.bk = new Int32Array(cap);
    this.fdNext = new Int32Array(cap);
    this.bkNext = new Int32Array(cap);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.state = new Uint8Array(cap);
    this.bin = new Uint8Array(cap);
    this.req = new Uint32Array(cap);
    this.born = new Int32Array(cap);
  }

  /** A fresh handle with every field reset. */
  alloc(addr: number): number {
    let h: number;
    if (this.freeHead !== NIL) {
      h = this.freeHead;
      this.freeHead = this.fd[h]!;
    } else {
      if (this.used === this.cap) this.grow();
      h = this.used++;
    }
    this.live++;
    this.addr[h] = addr;
    this.size[h] = 0;
    this.flags[h] = 0;
    this.prevSize[h] = 0;
    this.fd[h] = NIL;
    this.bk[h] = NIL;
    this.fdNext[h] = NIL;
    this.bkNext[h] = NIL;
    this.next[h] = NIL;
    this.prev[h] = NIL;
    this.state[h] = St.INUSE;
    this.bin[h] = 0;
    this.req[h] = 0;
    this.born[h] = -1;
    return h;
  }

  /**
   * n fresh handles with consecutive numbers (for an arena's bin headers, addressed as base + i),
   * taken past the high-water mark, never from the free list. Returns the first.
   */
  allocBlock(n: number): number {
    while (this.used + n > this.cap) this.grow();
    const base = this.used;
    this.used += n;
    this.live += n;
    for (let h = base; h < base + n; h++) {
      this.addr[h] = -1;
      this.fd[h] = NIL;
      this.bk[h] = NIL;
      this.fdNext[h] = NIL;
      this.bkNext[h] = NIL;
      this.next[h] = NIL;
      this.prev[h] = NIL;
      this.born[h] = -1;
    }
    return base;
  }

  release(h: number): void {
    this.state[h] = St.DEAD;
    this.fd[h] = this.freeHead;
    this.freeHead = h;
    this.live--;
  }

  /** Sets chunk h's size (without the flag bits). */
  setSize(h: number, size: number): void {
    if (size >>> 0 !== size && !(this.size instanceof Float64Array)) this.size = widened(this.size);
    this.size[h] = size;
  }

  /** Sets the prev_size word at chunk h's start. */
  setPrevSize(h: number, v: number): void {
    if (v >>> 0 !== v && !(this.prevSize instanceof Float64Array))
      this.prevSize = widened(this.prevSize);
    this.prevSize[h] = v;
  }

  /** Records that chunk h is handed out for `req` bytes at event `born`. */
  handOut(h: number, req: number, born: number): void {
    if (req > 0xffffffff && !(this.req instanceof Float64Array)) this.req = widened(this.req);
    if (born > 0x7fffffff && !(this.born instanceof Float64Array)) this.born = widened(this.born);
    this.req[h] = req;
    this.born[h] = born;
  }

  /** Number of handles ever created (the range to scan in a full walk). */
  get highWater(): number {
    return this.used;
  }

  /**
   * Creates the chunk that starts `offset` bytes into chunk p and links it physically after p.
   * Sizes and flags are the caller's to write.
   */
  splitAt(p: number, offset: number): number {
    const r = this.alloc(this.addr[p]! + offset);
    const n = this.next[p]!;
    this.prev[r] = p;
    this.next[r] = n;
    if (n !== NIL) this.prev[n] = r;
    this.next[p] = r;
    return r;
  }

  /** Removes chunk n from the physical chain (it has been absorbed by a neighbour) and frees its handle. */
  absorb(n: number): void {
    const p = this.prev[n]!;
    const q = this.next[n]!;
    if (p !== NIL) this.next[p] = q;
    if (q !== NIL) this.prev[q] = p;
    this.release(n);
  }

  /** Links b physically after a (both already exist). */
  linkPhys(a: number, b: number): void {
    this.next[a] = b;
    this.prev[b] = a;
  }

  private grow(): void {
    const cap = this.cap * 2;
    // A big column grows within its buffer, or is copied and its old array freed at once, before
    // the next is copied: a growth holds one old column at a time beside the new ones, not all.
    this.addr = grown(this.addr, cap);
    this.size = grown(this.size, cap);
    this.flags = grown(this.flags, cap);
    this.prevSize = grown(this.prevSize, cap);
    this.fd = grown(this.fd, cap);
    this.bk = grown(this.bk, cap);
    this.fdNext = grown(this.fdNext, cap);
    this.bkNext = grown(this.bkNext, cap);
    this.next = grown(this.next, cap);
    this.prev = grown(this.prev, cap);
    this.state = grown(this.state, cap);
    this.bin = grown(this.bin, cap);
    this.req = grown(this.req, cap);
    this.born = grown(this.born, cap);
    this.cap = cap;
  }
}

/** A 64-bit copy of a 32-bit column, for a value that does not fit (the old one is freed). */
function widened(a: Uint32Array | Int32Array): Float64Array {
  const b = bigArray(Float64Array, a.length);
  for (let i = 0; i < a.length; i++) b[i] = a[i]!;
  release(a);
  return b;
}
