/**
 * Big growing arrays (src/core/release.ts): a big array gets a buffer with room and grows within it;
 * freeing a replaced typed array early: a big array is emptied at once (its buffer moved away, to
 * be dropped), a small one is left to the collector.
 */

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
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
    'gives a big array a buffer of 32 MiB and a page, and grows it within that buffer (Linux)',
    () => {
      const a = bigArray(Float64Array, 1 << 17);
      expect(a.length).toBe(1 << 17);
      // No more: the fifteen columns of a chunk store hold that much address space each.
      expect(a.buffer.byteLength).toBe((32 << 20) + 4096);
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
    'gives a big array the size it asks for where the address space has no room left (Linux)',
    () => {
      // A process limited in address space, nearly all of it taken: the room of a big array does
      // not fit, the array itself does.
      // The built module (`npm test` builds first): a plain Node process of its own.
      const release = pathToFileURL(join(ROOT, 'dist/core/release.js')).href;
      const script = `
        const { bigArray } = await import(${JSON.stringify(release)});
        const taken = [];
        try { for (;;) taken.push(new ArrayBuffer(16 << 20)); } catch {}
        taken.pop();
        const a = bigArray(Float64Array, 1 << 17);
        a[(1 << 17) - 1] = 2;
        console.log(JSON.stringify([a.length, a.buffer.byteLength, a[(1 << 17) - 1]]));
      `;
      const r = spawnSync(
        'bash',
        [
          '-c',
          'ulimit -v 3000000 && exec "$0" --input-type=module -e "$1"',
          process.execPath,
          script,
        ],
        { encoding: 'utf8', cwd: ROOT },
      );
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual([1 << 17, 8 << 17, 2]);
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
