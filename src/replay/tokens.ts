/**
 * The live tokens of a replay: which block each trace token names (token -> chunk handle).
 *
 * A token is known by its number (token-numbers.ts), and by its key and text (token-key.ts) for
 * the rare cases the number cannot serve. Blocks are kept in an array indexed by token number: a
 * lookup is one array read, and the hashing was done by whoever numbered the tokens (the trace
 * reader, on its own thread when it has one).
 *
 * Numbers follow the trace's syntax, not the model: a token gives its number up at every realloc
 * that takes it, even when the model keeps it bound (realloc returned NULL in the model, or the
 * recording says the realloc failed, so that OLD names the new block). Such a token is kept
 * ("orphaned") in a table by key and text, which lookups consult only while it is not empty.
 */

import { NIL } from '../core/chunks.js';
import { grown } from '../core/release.js';
import { NONE, TokenTable } from '../trace/token-table.js';

export class LiveTokens {
  /**
   * The block each token number names, plus one (0 for none: the part not yet used is never
   * written, so the system does not give it pages).
   */
  private handles = new Int32Array(1024);
  /** Numbered tokens bound. */
  private numbered = 0;
  /** Bound tokens that have no number. */
  private readonly orphans = new TokenTable(16);
  /** Whether `orphans` holds any token: the one test the common case pays. */
  private anyOrphans = false;

  /** Tokens bound. */
  get size(): number {
    return this.numbered + this.orphans.size;
  }

  /** The block a token names (number `id`, or -1; key and text), or NIL. */
  find(id: number, key: number, text: string): number {
    if (id >= 0 && id < this.handles.length) {
      const h = this.handles[id]! - 1;
      if (h !== NIL) return h;
    }
    if (!this.anyOrphans) return NIL;
    const h = this.orphans.get(key, text);
    return h === NONE ? NIL : h;
  }

  /**
   * Binds the token (number `id` >= 0, key, text) to block h, unless it is bound: returns the
   * block it names, or NIL when the binding is new.
   */
  bind(id: number, key: number, text: string, h: number): number {
    if (id >= this.handles.length) this.grow(id);
    const old = this.find(id, key, text);
    if (old !== NIL) return old;
    this.handles[id] = h + 1;
    this.numbered++;
    return NIL;
  }

  /** Unbinds the token (number `id` or -1, key, text) and returns the block it named, or NIL. */
  unbind(id: number, key: number, text: string): number {
    if (id >= 0 && id < this.handles.length) {
      const h = this.handles[id]! - 1;
      if (h !== NIL) {
        this.handles[id] = 0;
        this.numbered--;
        return h;
      }
    }
    if (!this.anyOrphans) return NIL;
    const h = this.orphans.delete(key, text);
    this.anyOrphans = this.orphans.size > 0;
    return h === NONE ? NIL : h;
  }

  /**
   * Keeps the token bound to block h after a realloc took its number (`id`, or -1): from now on
   * it is found by key and text.
   */
  keep(id: number, key: number, text: string, h: number): void {
    this.unbind(id, key, text);
    this.orphans.set(key, text, h);
    this.anyOrphans = true;
  }

  /** Whether every bound token has its number (none is kept by key and text). */
  get allNumbered(): boolean {
    return !this.anyOrphans;
  }

  /**
   * For a replay whose tokens all have their numbers (allNumbered): unbinds token number `id` and
   * returns the block it named, or NIL (and nothing changes) when it names none.
   */
  take(id: number): number {
    if (id < 0 || id >= this.handles.length) return NIL;
    const h = this.handles[id]! - 1;
    if (h !== NIL) {
      this.handles[id] = 0;
      this.numbered--;
    }
    return h;
  }

  /** For such a replay: whether token number `id` (>= 0) names no block. */
  unbound(id: number): boolean {
    return id >= 0 && (id >= this.handles.length || this.handles[id] === 0);
  }

  /** For such a replay: binds token number `id`, which names no block (unbound), to block h. */
  bindNumber(id: number, h: number): void {
    if (id >= this.handles.length) this.grow(id);
    this.handles[id] = h + 1;
    this.numbered++;
  }

  /** Calls f with the block of every bound token. */
  forEachHandle(f: (h: number) => void): void {
    for (let id = 0; id < this.handles.length; id++)
      if (this.handles[id] !== 0) f(this.handles[id]! - 1);
    this.orphans.forEachValue(f);
  }

  private grow(id: number): void {
    let n = this.handles.length * 2;
    while (n <= id) n *= 2;
    this.handles = grown(this.handles, n);
  }
}
