/**
 * Typed arrays that grow by doubling without a copy once they are big: from IN_PLACE_FROM elements
 * on, each lives in a WebAssembly memory of its own, which grows in place (the old view is
 * detached, and a new view over the same bytes has the room). Growth by copying holds the old array
 * and the new one at once, and the old one until the collector frees it: for the chunk store of
 * millions of live blocks, twice the store at the peak. Views over such a memory are plain typed
 * arrays, as fast as any (a growable ArrayBuffer's views are not, in Node 20). A memory reserves
 * address space, not memory: the pages of the part not yet written are never given.
 */

/** Elements from which arrays grow in place (a power of 2, so that every size is whole pages). */
const IN_PLACE_FROM = 1 << 18;
/** The unit a WebAssembly memory grows by, and the most units it can have. */
const WASM_PAGE = 65536;
const WASM_MAX_PAGES = 65536;

/** The part of WebAssembly's JS API used here (not in the ES library the core is typed against). */
interface GrowableMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
type MemoryConstructor = new (d: { initial: number; maximum: number }) => GrowableMemory;
const WasmMemory = (globalThis as { WebAssembly?: { Memory?: MemoryConstructor } }).WebAssembly
  ?.Memory;

export type Growable = Float64Array | Int32Array | Uint32Array | Uint8Array;

/**
 * The memories under an owner's arrays, by the array's name, kept apart from the owner: a copy of
 * it (a checkpoint) has arrays of its own, plain typed arrays, which grow into memories of their
 * own.
 */
const memories = new WeakMap<object, Map<string, GrowableMemory>>();

/**
 * Array `name` of `owner`, `a`, with room for `n` elements (a power of 2, at least twice its
 * length), the new elements zero: grown in place when it is a view over its memory, else copied
 * (into a memory of its own from IN_PLACE_FROM elements on, when one can be had). `a` must not be
 * used after.
 */
export function grownArray<A extends Growable>(owner: object, name: string, a: A, n: number): A {
  const Kind = a.constructor as {
    new (n: number): A;
    new (b: ArrayBuffer, at: number, n: number): A;
  };
  const bytes = n * a.BYTES_PER_ELEMENT;
  if (n >= IN_PLACE_FROM && WasmMemory !== undefined && bytes <= WASM_MAX_PAGES * WASM_PAGE) {
    let byName = memories.get(owner);
    const m = byName?.get(name);
    try {
      if (m !== undefined && m.buffer === a.buffer) {
        m.grow((bytes - m.buffer.byteLength) / WASM_PAGE);
        return new Kind(m.buffer, 0, n);
      }
      const fresh = new WasmMemory({ initial: bytes / WASM_PAGE, maximum: WASM_MAX_PAGES });
      const b = new Kind(fresh.buffer, 0, n);
      b.set(a);
      if (byName === undefined) memories.set(owner, (byName = new Map<string, GrowableMemory>()));
      byName.set(name, fresh);
      return b;
    } catch {
      // No address space for a memory (a limit on it, or none left): grow by copying.
    }
  }
  const b = new Kind(n);
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
 * Frees the memory of a typed array that is no longer used, now rather than at the collector's
 * next full collection, which a program that allocates little else may not have for a long time:
 * the buffer is moved into a message to a closed port, which drops it (and its memory) at once.
 * The array is left empty (detached). Does nothing to an array that cannot be moved (a view over a
 * shared or WebAssembly memory).
 */
export function release(a: Growable): void {
  if (MessageChannelKind === undefined || a.byteLength < RELEASE_FROM) return;
  try {
    const { port1, port2 } = new MessageChannelKind();
    port2.close();
    port1.postMessage(null, [a.buffer as ArrayBuffer]);
    port1.close();
  } catch {
    // Not movable: the collector frees it in its time.
  }
}

/** Smaller arrays are left to the collector. */
const RELEASE_FROM = 1 << 20;
