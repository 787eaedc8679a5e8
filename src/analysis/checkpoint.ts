/**
 * Checkpoints: a copy of a replay's whole state (the model of glibc, the kernel's pages, the live
 * tokens), so that a what-if at a moment (a malloc_trim, a free the program did not make) runs on
 * the copy, and the replay as given is untouched, without replaying the trace up to that moment
 * again.
 *
 * The copy is deep and keeps every object's class: typed arrays are copied, arrays, maps, sets and
 * plain or class objects copied member by member, objects reached twice copied once (the arenas'
 * ring, heaps that point at their arena). Functions are shared (the replay's listeners).
 */

type Copy = (v: unknown) => unknown;

function copier(): Copy {
  const seen = new Map<object, unknown>();
  const copy: Copy = (v) => {
    if (typeof v !== 'object' || v === null) return v;
    const done = seen.get(v);
    if (done !== undefined) return done;
    if (ArrayBuffer.isView(v)) {
      if (v instanceof DataView)
        throw new Error('ptsim internal error: a DataView in a checkpoint');
      // Each typed array of the model owns its buffer: a copy of the view is a copy of the data.
      const c = (v as unknown as { slice(): unknown }).slice();
      seen.set(v, c);
      return c;
    }
    if (Array.isArray(v)) {
      const c: unknown[] = new Array<unknown>(v.length);
      seen.set(v, c);
      for (let i = 0; i < v.length; i++) c[i] = copy(v[i]);
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
