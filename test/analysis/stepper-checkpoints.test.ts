/**
 * The stepper's checkpoints: going back restores a copy of the replay taken on the way and replays
 * forward from it. At any event reached that way, forwards or back, near or far, the state and the
 * step's sentence are those of a stepper without checkpoints, which replays from the start.
 */

import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { Stepper } from '../../src/analysis/stepper.js';
import { openTrace } from '../../src/import/index.js';
import { replayFile } from '../../src/replay/run-file.js';

function load(path: string, every: number): Promise<Stepper> {
  return Stepper.read(path, (sink) => openTrace(path, sink, { displayName: path }), {
    settings: { cores: 2 },
    checkpointEvery: every,
  });
}

describe('the stepper with checkpoints', () => {
  for (const trace of ['traces/load-test.trace', 'traces/thread-arenas.trace'])
    it(`goes anywhere in ${trace} as a replay from the start does`, async () => {
      const fast = await load(trace, 97);
      const plain = await load(trace, 0);
      expect(fast.checkpointInterval).toBe(97);
      const rng = seedrandom('ptsim-checkpoints');
      const last = fast.last;
      const targets = [last, 0, 96, 97, 95, -1, 500, 499, last - 1, 3];
      for (let k = 0; k < 8; k++) targets.push(Math.floor(rng() * (last + 2)) - 1);
      for (const t of targets) {
        const a = fast.goTo(t);
        const b = plain.goTo(t);
        expect(fast.position).toBe(t);
        expect(a).toEqual(b);
        expect(fast.view()).toEqual(plain.view());
        expect(fast.replayer.kernel.residentPages).toBe(plain.replayer.kernel.residentPages);
      }
      // A step after a restore goes on from the restored copy, and the checkpoint is left as it was.
      fast.goTo(200);
      plain.goTo(200);
      expect(fast.next(3)).toEqual(plain.next(3));
      fast.goTo(150);
      plain.goTo(150);
      expect(fast.view()).toEqual(plain.view());
    });

  it('replays the #:touch records after their events, from a checkpoint too', async () => {
    const trace = 'test/diff/cases/touch-heap-trim.trace';
    const st = await load(trace, 2);
    const run = await replayFile(trace, { cores: 2, onEvent: () => {} });
    const log: number[] = [];
    const again = await replayFile(trace, {
      cores: 2,
      observe: (_ev, r) => log.push(r.kernel.residentPages),
    });
    expect(again.failure).toBeNull();
    expect(run.failure).toBeNull();
    for (const t of [st.last, 1, st.last - 1, 0, 3]) {
      st.goTo(t);
      expect(st.replayer.kernel.residentPages).toBe(log[t]);
    }
  });

  it('keeps watching tokens after going back', async () => {
    const st = await load('traces/field-report.trace', 5);
    const plain = await load('traces/field-report.trace', 0);
    st.watch('buf2');
    plain.watch('buf2');
    for (const t of [st.last, 7, 2, st.last, 4, 9]) {
      st.goTo(t);
      plain.goTo(t);
      expect(st.whereIs('buf2')).toBe(plain.whereIs('buf2'));
    }
  });
});
