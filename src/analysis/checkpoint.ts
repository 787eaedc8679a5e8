/**
 * Checkpoints: a copy of a replay's whole state (the model of glibc, the kernel's pages, the live
 * tokens), so that a what-if at a moment (a malloc_trim, a free the program did not make) runs on
 * the copy, and the replay as given is untouched, without replaying the trace up to that moment
 * again.
 *
 * The copy is deep and keeps every object's class: typed arrays are copied, arrays, maps, sets and
 * plain or class objects copied member by member, objects reached twice copied once (the arenas'
 * ring, heaps that point at their arena). Functions are shared (the replay's listeners).
 *
 * Snapshots are checkpoints kept by the hundred (the stepper's, every few thousand events of a
 * trace): most of a replay's state is in a few large typed arrays (the chunks' columns, the ring of
 * recent frees), of which a few thousand events change a small part. A snapshot keeps each typed
 * array, and each long array of plain values, in blocks, and a block that has not changed since
 * the snapshot before is that snapshot's block, not a copy of it.
 */

type Copy = (v: unknown) => unknown;

/** Makes the copy of an object itself (a typed array, a long array), or returns undefined. */
type Special = (v: object, copy: Copy) => unknown;

function copier(special?: Special): Copy {
  const seen = new Map<object, unknown>();
  const copy: Copy = (v) => {
    if (typeof v !== 'object' || v === null) return v;
    const done = seen.get(v);
    if (done !== undefined) return done;
    if (special !== undefined) {
      const c = special(v, copy);
      if (c !== undefined) {
        seen.set(v, c);
        return c;
      }
    }
    if (ArrayBuffer.isView(v)) {
      if (v instanceof DataView)
        throw new Error('ptsim internal error: a DataView in a checkpoint');
      // Each typed array of the model owns its buffer: a copy of the view is a copy of the data.
      const c = (v as unknown as { slice(): unknown }).slice();
      seen.set(v, c);
      return c;
    }
    if (Array.isArray(v)) {
      // Copied whole, then its objects one by one: most long arrays of the state hold plain
      // values (the ring of recent frees' texts: 65,536 strings).
      const c: unknown[] = v.slice();
      seen.set(v, c);
      for (let i = 0; i < c.length; i++) {
        const x = c[i];
        if (typeof x === 'object' && x !== null) c[i] = copy(x);
      }
      return c;
    }
    if (v instanceof Map) {
      const c = new Map<unknown, unknown>();
      seen.set(v, c);
      for (const [k, x] of v) c.set(copy(k), copy(x));
      return c;
    }
    if (v instanceof Set) {
      const c = new Set<unknown>();
      seen.set(v, c);
      for (const x of v) c.add(copy(x));
      return c;
    }
    const c = Object.create(Object.getPrototypeOf(v) as object | null) as Record<
      PropertyKey,
      unknown
    >;
    seen.set(v, c);
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k)!;
      if ('value' in d) d.value = copy(d.value);
      Object.defineProperty(c, k, d);
    }
    return c;
  };
  return copy;
}

/** A deep copy of `state` (a Replayer, with everything it holds). */
export function checkpoint<T extends object>(state: T): T {
  return copier()(state) as T;
}

/**
 * The bytes of the typed arrays a state holds (each counted once): nearly all of a checkpoint's
 * memory (the chunks' columns, the kernel's pages, the ring of recent frees).
 */
export function typedBytes(state: object): number {
  const seen = new Set<object>();
  let bytes = 0;
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (ArrayBuffer.isView(v)) {
      bytes += v.byteLength;
      return;
    }
    if (Array.isArray(v)) {
      for (const e of v) if (typeof e === 'object') walk(e);
      return;
    }
    if (v instanceof Map) {
      for (const e of v.values()) walk(e);
      return;
    }
    if (v instanceof Set) return;
    for (const k of Reflect.ownKeys(v)) {
      const d = Object.getOwnPropertyDescriptor(v, k)!;
      if ('value' in d) walk(d.value);
    }
  };
  walk(state);
  return bytes;
}

/**
 * Whether two states are the same, member by member, as checkpoint would copy them (typed arrays by
 * content, arrays, maps, sets and objects member by member and of one class, functions and symbols
 * by identity), leaving out the members `skip` names.
 */
export function sameState(
  a: unknown,
  b: unknown,
  skip: (owner: object, key: PropertyKey) => boolean = () => false,
): boolean {
  const paired = new Map<object, unknown>();
  const same = (x: unknown, y: unknown): boolean => {
    if (typeof x !== 'object' || x === null || typeof y !== 'object' || y === null)
      return Object.is(x, y);
    if (x === y) return true;
    if (paired.has(x)) return paired.get(x) === y;
    paired.set(x, y);
    if (Object.getPrototypeOf(x) !== Object.getPrototypeOf(y)) return false;
    if (ArrayBuffer.isView(x)) {
      const u = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
      const w = y as ArrayBufferView;
      const v = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
      return u.length === v.length && Buffer.compare(u, v) === 0;
    }
    if (Array.isArray(x)) {
      const ys = y as unknown[];
      return x.length === ys.length && x.every((e, i) => same(e, ys[i]));
    }
    if (x instanceof Map) {
      const ym = y as Map<unknown, unknown>;
      if (x.size !== ym.size) return false;
      // Keys of plain values, as the model's maps have.
      for (const [k, e] of x) if (!ym.has(k) || !same(e, ym.get(k))) return false;
      return true;
    }
    if (x instanceof Set) {
      const ys = y as Set<unknown>;
      return x.size === ys.size && [...x].every((e) => ys.has(e));
    }
    const keys = Reflect.ownKeys(x).filter((k) => !skip(x, k));
    const others = Reflect.ownKeys(y).filter((k) => !skip(y, k));
    if (keys.length !== others.length) return false;
    const xs = x as Record<PropertyKey, unknown>;
    const ys = y as Record<PropertyKey, unknown>;
    return keys.every((k) => Object.prototype.hasOwnProperty.call(y, k) && same(xs[k], ys[k]));
  };
  return same(a, b);
}

/** Bytes of a typed array's block in a snapshot. */
const BLOCK_BYTES = 16384;
/** Elements of an array's block; arrays of plain values this long or longer are kept in blocks. */
const BLOCK_ITEMS = 4096;

type TypedArray = Exclude<ArrayBufferView, DataView>;
type TypedArrayKind = new (b: ArrayBuffer) => TypedArray;

/** A typed array in a snapshot: its kind and its bytes, in blocks. */
class TypedBlocks {
  constructor(
    readonly kind: TypedArrayKind,
    readonly byteLength: number,
    readonly blocks: ArrayBuffer[],
  ) {}
}

/** An array of plain values (no objects) in a snapshot, in blocks. */
class ItemBlocks {
  constructor(
    readonly length: number,
    readonly blocks: unknown[][],
  ) {}
}

/** An object a snapshot leaves out: a restore makes a new one. */
class Fresh {
  constructor(readonly make: () => object) {}
}

/** Whether bytes [from, from + b.byteLength) of `a` are the bytes of b. */
function sameBytes(a: TypedArray, from: number, b: ArrayBuffer): boolean {
  const at = a.byteOffset + from;
  const n = b.byteLength;
  if (at % 4 === 0 && n % 4 === 0) {
    const x = new Int32Array(a.buffer, at, n / 4);
    const y = new Int32Array(b);
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  }
  const x = new Uint8Array(a.buffer, at, n);
  const y = new Uint8Array(b);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** A state as a snapshot holds it (Snapshots.take): only Snapshots.restore reads it. */
export interface Snapshot<T> {
  readonly packed: unknown;
  /** Bytes of the blocks it does not share with the snapshot before it. */
  readonly bytes: number;
  /** For the type only. */
  readonly state?: T;
}

/**
 * Snapshots of one replay's states, taken in turn as it goes (restored ones included): each shares
 * with the one before the blocks that have not changed. Blocks are compared byte by byte, so that
 * sharing never depends on knowing what the model wrote.
 */
export class Snapshots {
  /** The blocks of each typed array or long array as last taken or restored. */
  private readonly last = new WeakMap<object, TypedBlocks | ItemBlocks>();

  /**
   * A snapshot of `state`, which goes on unchanged; the objects of `fresh` are left out, and a
   * restore makes them anew with the function each is given.
   */
  take<T extends object>(state: T, fresh?: ReadonlyMap<object, () => object>): Snapshot<T> {
    let bytes = 0;
    const copy = copier((v, copyItem) => {
      const make = fresh?.get(v);
      if (make !== undefined) return new Fresh(make);
      if (ArrayBuffer.isView(v)) {
        if (v instanceof DataView)
          throw new Error('ptsim internal error: a DataView in a checkpoint');
        const prev = this.last.get(v);
        const kind = v.constructor as TypedArrayKind;
        const same = prev instanceof TypedBlocks && prev.kind === kind ? prev : null;
        const blocks: ArrayBuffer[] = [];
        for (let from = 0; from < v.byteLength; from += BLOCK_BYTES) {
          const n = Math.min(BLOCK_BYTES, v.byteLength - from);
          const old = same?.blocks[from / BLOCK_BYTES];
          if (old !== undefined && old.byteLength === n && sameBytes(v, from, old)) {
            blocks.push(old);
          } else {
            const at = v.byteOffset + from;
            blocks.push(new Uint8Array(v.buffer, at, n).slice().buffer);
            bytes += n;
          }
        }
        const packed = new TypedBlocks(kind, v.byteLength, blocks);
        this.last.set(v, packed);
        return packed;
      }
      if (!Array.isArray(v) || v.length < BLOCK_ITEMS) return undefined;
      for (const x of v as unknown[]) if (typeof x === 'object' && x !== null) return undefined;
      const prev = this.last.get(v);
      const same = prev instanceof ItemBlocks ? prev : null;
      const blocks: unknown[][] = [];
      for (let from = 0; from < v.length; from += BLOCK_ITEMS) {
        const n = Math.min(BLOCK_ITEMS, v.length - from);
        const old = same?.blocks[from / BLOCK_ITEMS];
        let shared = old !== undefined && old.length === n;
        for (let i = 0; shared && i < n; i++) shared = Object.is(old![i], v[from + i]);
        if (shared) blocks.push(old!);
        else {
          blocks.push((v as unknown[]).slice(from, from + n).map(copyItem));
          bytes += 8 * n;
        }
      }
      const packed = new ItemBlocks(v.length, blocks);
      this.last.set(v, packed);
      return packed;
    });
    const packed = copy(state);
    return { packed, bytes };
  }

  /** A new state, as snapshot s took it (s stays as it is, for later restores). */
  restore<T extends object>(s: Snapshot<T>): T {
    const copy = copier((v) => {
      if (v instanceof Fresh) return v.make();
      if (v instanceof TypedBlocks) {
        const buf = new ArrayBuffer(v.byteLength);
        const bytes = new Uint8Array(buf);
        let at = 0;
        for (const b of v.blocks) {
          bytes.set(new Uint8Array(b), at);
          at += b.byteLength;
        }
        const c = new v.kind(buf);
        this.last.set(c, v);
        return c;
      }
      if (v instanceof ItemBlocks) {
        const c = new Array<unknown>(v.length);
        let at = 0;
        for (const b of v.blocks) for (const x of b) c[at++] = x;
        this.last.set(c, v);
        return c;
      }
      return undefined;
    });
    return copy(s.packed) as T;
  }
}

/** Bytes of the blocks of the snapshots, each block counted once however many share it. */
export function snapshotBytes(snaps: Iterable<Snapshot<unknown>>): number {
  const seen = new Set<object>();
  let n = 0;
  const walk = (v: unknown): void => {
    if (typeof v !== 'object' || v === null || seen.has(v)) return;
    seen.add(v);
    if (v instanceof ArrayBuffer) n += v.byteLength;
    else if (v instanceof TypedBlocks) for (const b of v.blocks) walk(b);
    else if (v instanceof ItemBlocks)
      for (const b of v.blocks) {
        if (!seen.has(b)) n += 8 * b.length;
        seen.add(b);
      }
    else if (Array.isArray(v)) for (const x of v) walk(x);
    else if (v instanceof Map)
      for (const [k, x] of v) {
        walk(k);
        walk(x);
      }
    else if (v instanceof Set) for (const x of v) walk(x);
    else for (const k of Reflect.ownKeys(v)) walk((v as Record<PropertyKey, unknown>)[k]);
  };
  for (const s of snaps) walk(s.packed);
  return n;
}
