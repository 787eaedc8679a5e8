/**
 * Generated multi-thread traces that push thread arenas through whole heaps: a heap filled to
 * 64 MiB, a second and third heap started with the old top fenced off, heaps shrunk with madvise
 * and deleted with munmap when emptied. Each must replay identically on ptsim and on real glibc.
 * Each costs the native replayer most of a CPU-second (hundreds of MiB made resident and given
 * back), the most of any set: `npm test` runs every 4th, `npm run test:full` all 40
 * (test/helpers/suite.ts).
 */

import { describe, expect, it } from 'vitest';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { stride } from '../helpers/suite.js';
import { differential } from './harness.js';

describe('thread heaps grow, multiply, shrink and go away as on real glibc', () => {
  for (let n = 0; n < 40; n += stride(1, 4)) {
    const events = 400 + ((n * 7919) % 1200);
    it(`seed heaps-${n} (${events} events)`, () => {
      const text = generateThreadedTrace({ seed: `heaps-${n}`, events, heapStress: true });
      expect(
        differential(text, { name: `heaps-${n}.trace`, stats: n % 5 === 0, info: n % 5 === 0 }),
      ).toBeNull();
    });
  }
});
