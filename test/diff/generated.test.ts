/**
 * Generated single-thread traces: seeded random mixes of every operation, sizes from 0 bytes to
 * tens of MiB crossing the mmap threshold both ways, phases that grow and shrink the heap,
 * malloc_trim and mallopt calls. Each must replay identically on ptsim and on real glibc; every
 * 4th also with touch records (the recorded model), every 10th without the program's writes
 * (none: only glibc's own writes make pages resident). `npm test` runs every 3rd trace, and every
 * 20th and every 40th of those variants; `npm run test:full` all of them (test/helpers/suite.ts).
 */

import { describe, expect, it } from 'vitest';
import { generateTrace } from '../gen/generate.js';
import { stride } from '../helpers/suite.js';
import { differential } from './harness.js';

/** Seeds diff-0 .. diff-499; every 25th trace is a long one. */
const TRACES = 500;

describe('generated traces replay identically on ptsim and real glibc', () => {
  // Every trace in a full run, every 3rd in npm test.
  for (let n = 0; n < TRACES; n += stride(1, 3)) {
    const events = n % 25 === 0 ? 6000 : 150 + ((n * 7919) % 1200);
    it(`seed diff-${n} (${events} events)`, () => {
      const text = generateTrace({ seed: `diff-${n}`, events });
      expect(
        differential(text, { name: `diff-${n}.trace`, stats: n % 10 === 0, info: n % 10 === 0 }),
      ).toBeNull();
    });
  }
});

/** The seeds of the generated traces, with their lengths. */
function seeds(every: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let n = 0; n < TRACES; n += every)
    out.push([n, n % 25 === 0 ? 6000 : 150 + ((n * 7919) % 1200)]);
  return out;
}

describe('generated traces with touch records replay identically (recorded model)', () => {
  for (const [n, events] of seeds(stride(4, 20))) {
    it(`seed diff-${n} (${events} events)`, () => {
      const text = generateTrace({ seed: `diff-${n}`, events, touches: true });
      expect(differential(text, { name: `diff-${n}-touches.trace` })).toBeNull();
    });
  }
});

describe("generated traces replay identically without the program's writes (none)", () => {
  for (const [n, events] of seeds(stride(10, 40))) {
    it(`seed diff-${n} (${events} events)`, () => {
      const text = generateTrace({ seed: `diff-${n}`, events });
      expect(differential(text, { name: `diff-${n}.trace`, touch: 'none' })).toBeNull();
    });
  }
});
