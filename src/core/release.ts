/**
 * Big typed arrays that grow (the chunk store's columns, the replay's blocks by token number, the
 * token table): where their memory comes from, and freeing a replaced one at once rather than at
 * the collector's next full collection (a thread that allocates little else may not have one for
 * a long time, and until then the old array stays resident).
 *
 * Where the memory comes from matters under glibc, which serves these buffers with malloc: a
 * buffer of 32 MiB or more always gets a mapping of its own (mmap), given back whole when it is
 * freed, but a smaller one comes from the heap as soon as glibc's mmap threshold has risen above
 * its size, which it does each time a mapped block is freed (up to 32 MiB), and a big block freed
 * inside the heap leaves a hole that stays resident. Arrays that grow by doubling leave such a hole
 * at each step: tens of MiB for a store of millions of chunks. So, in Node on Linux, a big array
 * gets a buffer of at least MAPPED_BYTES, of which it views only the elements it needs: the pages
 * never written are never given (they cost address space, not memory), and it grows within its
 * buffer without a copy until the buffer is full. Where the system will not give that much
 * address space (a limit on it, or strict overcommit), the buffer has the size of the array.
 * Elsewhere (a browser, whose allocator may write or commit a whole buffer) a buffer has the size
 * of its array.
 *
 * More room (256 MiB) saved a store of millions of chunks the copies of its doublings (a copy
 * writes every page of the new array, and a page written for the first time is dear: 6 % on a
 * replay of 5 million live blocks), but a chunk store's fifteen columns then held nearly 4 GiB of
 * address space, and a process limited to 3 GB of it (`ulimit -v`) failed where it had run.
 */

type Growable = Float64Array | Int32Array | Uint32Array | Uint8Array;
type Kind<A extends Growable> = new (b: ArrayBufferLike, at: number, n: number) => A;

/** Arrays of this many bytes or more get a buffer of MAPPED_BYTES at least. */
const BIG_BYTES = 1 << 20;
/**
 * glibc's largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit) and a page, in Node on
 * Linux; elsewhere 0 (no room).
 */
const MAPPED_BYTES =
  (globalThis as { process?: { platform?: string } }).process?.platform === 'linux'
    ? (32 << 20) + 4096
    : 0;

/** A typed array of kind `Kind` with n elements, all zero (a big one in a buffer with room). */
export function bigArray<A extends Growable>(
  Kind: Kind<A> & { BYTES_PER_ELEMENT: number },
  n: number,
): A {
  const bytes = n * Kind.BYTES_PER_ELEMENT;
  return new Kind(roomFor(bytes), 0, n);
}

/** A buffer of at least `bytes` bytes, all zero: with room to grow when it is big (bigArray). */
function roomFor(bytes: number): ArrayBuffer {
  if (bytes < BIG_BYTES || bytes >= MAPPED_BYTES) return new ArrayBuffer(bytes);
  try {
    return new ArrayBuffer(MAPPED_BYTES);
  } catch {
    // No address space for the room: the size asked for.
    return new ArrayBuffer(bytes);
  }
}

/**
 * Array `a` with room for n elements (n above its length), the new ones zero: a new view over its
 * buffer when the buffer has the room (its elements past `a` were never written: bigArray and
 * grown make the only views), else a copy, and then `a` is freed (release). `a` must not be used
 * after.
 */
export function grown<A extends Growable>(a: A, n: number): A {
  const Kind = a.constructor as Kind<A> & { BYTES_PER_ELEMENT: number };
  if (a.byteOffset === 0 && a.buffer.byteLength >= n * a.BYTES_PER_ELEMENT)
    return new Kind(a.buffer, 0, n);
  const b = bigArray(Kind, n);
  b.set(a);
  release(a);
  return b;
}

/** The part of the MessageChannel API used here (a web and Node global the ES library lacks). */
interface Channel {
  port1: { postMessage(m: null, transfer: ArrayBuffer[]): void; close(): void };
  port2: { close(): void };
}
const MessageChannelKind = (globalThis as { MessageChannel?: new () => Channel }).MessageChannel;

/**
 * Frees the memory of a typed array that is no longer used: its buffer is moved into a message
 * posted on a closed port, which drops the message (and the memory) there and then. (Posted on an
 * open port whose other end is closing, the message would wait in that end's queue until the
 * closing is done, a later turn of the event loop.) The array is left empty (detached). Does
 * nothing to a small array, or to one that cannot be moved (a view over a shared or WebAssembly
 * memory).
 */
export function release(a: Growable): void {
  if (MessageChannelKind === undefined || a.byteLength < RELEASE_FROM) return;
  try {
    const { port1, port2 } = new MessageChannelKind();
    port1.close();
    port2.close();
    port1.postMessage(null, [a.buffer as ArrayBuffer]);
  } catch {
    // Not movable: the collector frees it in its time.
  }
}

/** Smaller arrays are left to the collector. */
const RELEASE_FROM = 1 << 20;
