/**
 * Freeing a big typed array that a bigger one replaced (a table that grew) soon, rather than at the
 * collector's next full collection: a thread that allocates little else may not have one for a
 * long time, and until then the old array stays resident.
 */

type Growable = Float64Array | Int32Array | Uint32Array | Uint8Array;

/** The part of the MessageChannel API used here (a web and Node global the ES library lacks). */
interface Channel {
  port1: { postMessage(m: null, transfer: ArrayBuffer[]): void; close(): void };
  port2: { close(): void };
}
const MessageChannelKind = (globalThis as { MessageChannel?: new () => Channel }).MessageChannel;

/**
 * Frees the memory of a typed array that is no longer used: its buffer is moved into a message to
 * a closed port, which drops it (and its memory) at the event loop's next turn. The array is left
 * empty (detached). Does nothing to a small array, or to one that cannot be moved (a view over a
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
