/**
 * Generated multi-thread traces: 2 to 40 threads on real pthreads in the native replayer, run one
 * call at a time in trace order. Arena creation, the arena limit and round-robin reuse, the free
 * list of exited threads' arenas, cross-thread frees, heaps that grow, multiply, shrink and go
 * away. Each must replay identically on ptsim and on real glibc; every 6th also with touch records
 * (the recorded model), whose pages the thread that ran the event before them writes.
 */

import { describe, expect, it } from 'vitest';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { stride } from '../helpers/suite.js';
import { differential } from './harness.js';

/** Seeds threads-0 .. threads-299; every 30th trace is a long one. */
const TRACES = 300;

describe('generated multi-thread traces replay identically on ptsim and real glibc', () => {
  // Every trace in a full run, every 3rd in npm test (test/helpers/suite.ts).
  for (let n = 0; n < TRACES; n += stride(1, 3)) {
    const events = n % 30 === 0 ? 8000 : 300 + ((n * 7919) % 1500);
    it(`seed threads-${n} (${events} events)`, () => {
      const text = generateThreadedTrace({ seed: `threads-${n}`, events });
      expect(
        differential(text, { name: `threads-${n}.trace`, stats: n % 10 === 0, info: n % 10 === 0 }),
      ).toBeNull();
    });
  }
});

describe('generated multi-thread traces with touch records replay identically', () => {
  // Every 6th trace in a full run, every 30th in npm test (test/helpers/suite.ts).
  for (let n = 0; n < TRACES; n += stride(6, 30)) {
    const events = n % 30 === 0 ? 8000 : 300 + ((n * 7919) % 1500);
    it(`seed threads-${n} (${events} events)`, () => {
      const text = generateThreadedTrace({ seed: `threads-${n}`, events, touches: true });
      expect(differential(text, { name: `threads-${n}-touches.trace` })).toBeNull();
    });
  }
});
