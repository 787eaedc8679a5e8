/**
 * Arrays that grow in place (src/core/growable.ts): past the size from which they live in a
 * WebAssembly memory, growth keeps every value and zeroes the new elements, without a copy (the
 * old view is left detached); a copy of the owner (a checkpoint) grows into memories of its own;
 * a released array is emptied at once.
 */

import { describe, expect, it } from 'vitest';
import { ChunkStore, NIL } from '../../src/core/chunks.js';
import { checkpoint } from '../../src/analysis/checkpoint.js';
import { grownArray, release } from '../../src/core/growable.js';

describe('grownArray', () => {
  it('grows small arrays by copying, and big ones in place, keeping every value', () => {
    const owner = {};
    let a = new Float64Array(1 << 17);
    for (let i = 0; i < a.length; i++) a[i] = i * 1.5;
    const small = a;
    a = grownArray(owner, 'a', a, 1 << 18);
    // Copied, into the memory it grows in from here: the small one is left as it was.
    expect(small.length).toBe(1 << 17);
    const first = a;
    a = grownArray(owner, 'a', a, 1 << 20);
    // In place: the view before is detached, its bytes are the new view's.
    expect(first.length).toBe(0);
    expect(a.length).toBe(1 << 20);
    expect(a[(1 << 17) - 1]).toBe(((1 << 17) - 1) * 1.5);
    expect(a[12345]).toBe(12345 * 1.5);
    expect(a[1 << 17]).toBe(0);
    expect(a[(1 << 20) - 1]).toBe(0);
  });

  it('grows each array of an owner in its own memory', () => {
    const owner = {};
    let x = grownArray(owner, 'x', new Int32Array(4).fill(-1), 1 << 18);
    let y = grownArray(owner, 'y', new Uint8Array(4).fill(7), 1 << 18);
    x = grownArray(owner, 'x', x, 1 << 19);
    y = grownArray(owner, 'y', y, 1 << 19);
    expect([x[0], x[3], x[4], y[0], y[3], y[4]]).toEqual([-1, -1, 0, 7, 7, 0]);
  });

  it('grows a copy of a big chunk store apart from the store', () => {
    const ck = new ChunkStore();
    const n = (1 << 18) + 10;
    for (let k = 0; k < n; k++) ck.alloc(0x10000 + 32 * k);
    const copy = checkpoint(ck);
    // Both grow past what they hold now; neither sees the other's handles.
    const more = 1 << 18;
    for (let k = 0; k < more; k++) ck.alloc(0x9000000 + 32 * k);
    for (let k = 0; k < more; k++) copy.alloc(0x5000000 + 32 * k);
    expect([ck.addr[0], ck.addr[n - 1], ck.addr[n], ck.fd[n + more - 1]]).toEqual([
      0x10000,
      0x10000 + 32 * (n - 1),
      0x9000000,
      NIL,
    ]);
    expect([copy.addr[0], copy.addr[n - 1], copy.addr[n], copy.highWater]).toEqual([
      0x10000,
      0x10000 + 32 * (n - 1),
      0x5000000,
      n + more,
    ]);
  });
});

describe('release', () => {
  it('empties a big array at once, and leaves a small one to the collector', () => {
    const big = new Float64Array(1 << 17);
    const small = new Float64Array(16);
    release(big);
    release(small);
    expect(big.length).toBe(0);
    expect(small.length).toBe(16);
  });
});
