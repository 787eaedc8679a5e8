/**
 * Freeing a replaced typed array early (src/core/release.ts): a big array is emptied at once (its
 * buffer moved away, to be dropped), a small one is left to the collector.
 */

import { describe, expect, it } from 'vitest';
import { release } from '../../src/core/release.js';

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
