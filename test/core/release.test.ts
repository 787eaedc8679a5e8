/**
 * Big growing arrays (src/core/release.ts): a big array gets a buffer with room and grows within it;
 * freeing a replaced typed array early: a big array is emptied at once (its buffer moved away, to
 * be dropped), a small one is left to the collector.
 */

import { describe, expect, it } from 'vitest';
import { bigArray, grown, release } from '../../src/core/release.js';

describe('release', () => {
  it('empties a big array, and leaves a small one as it is', () => {
    const big = new Float64Array(1 << 17).fill(1);
    const small = new Int32Array(16).fill(3);
    release(big);
    release(small);
    expect(big.length).toBe(0);
    expect([small.length, small[15]]).toEqual([16, 3]);
  });

  it('leaves an array over shared memory, which cannot be moved, as it is', () => {
    const shared = new Int32Array(new SharedArrayBuffer(1 << 21));
    shared[7] = 9;
    release(shared);
    expect([shared.length, shared[7]]).toEqual([1 << 19, 9]);
  });
});

describe('bigArray and grown', () => {
  it('gives a small array a buffer of its own size, and grows it by a copy', () => {
    const a = bigArray(Int32Array, 1000);
    expect([a.length, a.buffer.byteLength]).toEqual([1000, 4000]);
    a[999] = 5;
    const b = grown(a, 2000);
    expect(b.buffer).not.toBe(a.buffer);
    expect([b.length, b[999], b[1000], b[1999]]).toEqual([2000, 5, 0, 0]);
  });

  it.runIf(process.platform === 'linux')(
    'gives a big array a buffer of 256 MiB at least, and grows it within that buffer (Linux)',
    () => {
      const a = bigArray(Float64Array, 1 << 17);
      expect(a.length).toBe(1 << 17);
      expect(a.buffer.byteLength).toBeGreaterThanOrEqual(256 << 20);
      a[5] = 1.5;
      a[(1 << 17) - 1] = 2.5;
      const b = grown(a, 1 << 18);
      expect(b.buffer).toBe(a.buffer);
      expect([b.length, b[5], b[(1 << 17) - 1], b[1 << 17], b[(1 << 18) - 1]]).toEqual([
        1 << 18,
        1.5,
        2.5,
        0,
        0,
      ]);
    },
  );

  it.runIf(process.platform === 'linux')(
    'grows the 32 million elements of a store of millions of chunks without a copy (Linux)',
    () => {
      // A chunk store's column of doubles, doubled from a million elements up to 32 million.
      let a = bigArray(Float64Array, 1 << 20);
      const buffer = a.buffer;
      a[12345] = 4.5;
      for (let n = 1 << 21; n <= 1 << 25; n *= 2) a = grown(a, n);
      expect(a.buffer).toBe(buffer);
      expect([a.length, a[12345]]).toEqual([1 << 25, 4.5]);
    },
  );

  it('copies a big array that outgrows its buffer, and frees the old one', () => {
    const a = bigArray(Uint8Array, 1 << 20);
    const room = a.buffer.byteLength;
    a[3] = 7;
    const b = grown(a, room + 1);
    expect([b.length, b[3], b[room]]).toEqual([room + 1, 7, 0]);
    expect(a.length).toBe(0);
  });
});
