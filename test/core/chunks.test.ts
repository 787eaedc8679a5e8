/**
 * The chunk store's data layout (src/core/chunks.ts): handles given back are reused, and the
 * 32-bit columns (the size, the prev_size word, the request, the allocating event) widen when a
 * value needs more, keeping every value exact.
 */

import { describe, expect, it } from 'vitest';
import { ChunkStore, NIL, St } from '../../src/core/chunks.js';

describe('ChunkStore', () => {
  it('reuses released handles, the last released first, with every field reset', () => {
    const ck = new ChunkStore(4);
    const hs = [0, 1, 2, 3, 4, 5].map((k) => ck.alloc(0x1000 + 32 * k));
    expect(hs).toEqual([0, 1, 2, 3, 4, 5]);
    ck.handOut(2, 100, 7);
    ck.release(2);
    ck.release(4);
    expect(ck.state[2]).toBe(St.DEAD);
    expect(ck.live).toBe(4);
    expect(ck.alloc(0x9000)).toBe(4);
    const h = ck.alloc(0xa000);
    expect(h).toBe(2);
    expect([ck.addr[h], ck.req[h], ck.born[h], ck.fd[h], ck.state[h]]).toEqual([
      0xa000,
      0,
      -1,
      NIL,
      St.INUSE,
    ]);
    // The free list is empty again: the next handle is a new one.
    expect(ck.alloc(0xb000)).toBe(6);
    expect(ck.highWater).toBe(7);
  });

  it('keeps requests of 4 GiB and more, and event indexes past 2^31, exact', () => {
    const ck = new ChunkStore(2);
    const a = ck.alloc(0x1000);
    const b = ck.alloc(0x2000);
    ck.handOut(a, 4096, 12);
    ck.handOut(b, 2 ** 32 + 16, 2 ** 31 + 5);
    // Grown after widening: the wide columns stay wide.
    const c = ck.alloc(0x3000);
    ck.handOut(c, 2 ** 40, 2 ** 40 + 1);
    expect([ck.req[a], ck.born[a]]).toEqual([4096, 12]);
    expect([ck.req[b], ck.born[b]]).toEqual([2 ** 32 + 16, 2 ** 31 + 5]);
    expect([ck.req[c], ck.born[c]]).toEqual([2 ** 40, 2 ** 40 + 1]);
    expect(ck.born[ck.alloc(0x4000)]).toBe(-1);
  });

  it('keeps sizes and prev_size words of 4 GiB and more exact', () => {
    const ck = new ChunkStore(2);
    const a = ck.alloc(0x1000);
    const b = ck.alloc(0x2000);
    ck.setSize(a, 2 ** 32 - 16);
    ck.setPrevSize(a, 48);
    ck.setSize(b, 2 ** 32 + 4096);
    ck.setPrevSize(b, 2 ** 33 + 32);
    // Grown after widening: the wide columns stay wide.
    const c = ck.alloc(0x3000);
    ck.setSize(c, 2 ** 45 + 16);
    expect([ck.size[a], ck.prevSize[a]]).toEqual([2 ** 32 - 16, 48]);
    expect([ck.size[b], ck.prevSize[b]]).toEqual([2 ** 32 + 4096, 2 ** 33 + 32]);
    expect([ck.size[c], ck.prevSize[c]]).toEqual([2 ** 45 + 16, 0]);
    expect(ck.size[ck.alloc(0x4000)]).toBe(0);
  });
});
