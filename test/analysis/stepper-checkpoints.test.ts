/**
 * The stepper's checkpoints: going back restores a copy of the replay taken on the way and replays
 * forward from it. At any event reached that way, forwards or back, near or far, the state and the
 * step's sentence are those of a stepper without checkpoints, which replays from the start.
 */

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import seedrandom from 'seedrandom';
import { Stepper } from '../../src/analysis/stepper.js';
import { openTrace } from '../../src/import/index.js';
import { replayFile } from '../../src/replay/run-file.js';
import { fcParams } from '../helpers/fc.js';

const FULL = process.env['PTSIM_FULL'] === '1';

/**
 * A digest of the replay's whole state: every value it reaches, typed arrays byte by byte, in
 * order, with the classes of objects and objects reached twice; functions (the listeners, which
 * each replay has its own of) only as such. Equal states have equal digests (a deep toEqual of
 * the chunks' columns takes seconds). The ring of recent frees, which checkpoints leave out and
 * which only a stop's message reads, is not in it: the test of a stop after a restore checks it.
 */
function digest(r: object): string {
  const h = createHash('sha256');
  const seen = new Map<object, number>();
  let text = '';
  const put = (s: string): void => {
    text += s;
    if (text.length > 1 << 16) {
      h.update(text);
      text = '';
    }
  };
  const walk = (x: unknown): void => {
    if (typeof x === 'function') return put('f;');
    if (typeof x !== 'object' || x === null)
      return put(`${typeof x}:${Object.is(x, -0) ? '-0' : String(x)};`);
    const id = seen.get(x);
    if (id !== undefined) return put(`@${id};`);
    seen.set(x, seen.size);
    if (ArrayBuffer.isView(x)) {
      put(`${x.constructor.name}:${x.byteLength}:`);
      h.update(text);
      text = '';
      h.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
      return;
    }
    if (Array.isArray(x)) {
      put(`[${x.length}`);
      for (const y of x as unknown[]) walk(y);
      return put(']');
    }
    if (x instanceof Map) {
      put(`M${x.size}`);
      for (const [k, y] of x) {
        walk(k);
        walk(y);
      }
      return;
    }
    if (x instanceof Set) {
      put(`S${x.size}`);
      for (const y of x) walk(y);
      return;
    }
    put(
      `{${(Object.getPrototypeOf(x) as { constructor?: { name: string } } | null)?.constructor?.name ?? ''}`,
    );
    for (const k of Reflect.ownKeys(x)) {
      if (k === 'recentFrees') continue;
      put(`${String(k)}=`);
      walk((x as Record<PropertyKey, unknown>)[k]);
    }
    put('}');
  };
  walk(r);
  h.update(text);
  return h.digest('hex');
}

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

  it('stops at a double free met after a restore as a replay from the start does', async () => {
    // Checkpoints leave the ring of recent frees out: the abort must still be glibc's, not a
    // token never seen. Then the same with a token that no event returned.
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-stepper-'));
    try {
      const body = Array.from({ length: 40 }, (_, k) => `1 malloc 24 b${k}\n1 free b${k}\n`);
      for (const [name, first, last, kind] of [
        ['double.trace', '1 malloc 40 a\n1 free a\n', '1 free a\n', 'abort'],
        ['never.trace', '', '1 free nobody\n', 'mistake'],
      ] as const) {
        const path = join(dir, name);
        // The first free of a is long before the checkpoint the replay resumes from.
        writeFileSync(path, first + body.join('') + last);
        const straight = await load(path, 10);
        straight.goTo(straight.events - 1);
        expect(straight.stop?.kind).toBe(kind);
        const st = await load(path, 10);
        st.goTo(45);
        st.goTo(3);
        // From the checkpoint after event 69, which the replay had not reached yet.
        st.goTo(75);
        st.goTo(st.events - 1);
        expect(st.stop).toEqual(straight.stop);
        expect(st.position).toBe(straight.position);
        expect(digest(st.replayer)).toBe(digest(straight.replayer));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaves a mistake that changed the model in the state after the event before it', async () => {
    // A token reused while still live: the model allocates the block before it finds the token
    // bound. The state at the stop is that of the trace without the event.
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-stepper-'));
    try {
      const body = Array.from({ length: 30 }, (_, k) => `1 malloc ${24 + k} b${k}\n`).join('');
      const bad = join(dir, 'reused.trace');
      writeFileSync(bad, body + '1 malloc 4000 b3\n');
      const good = join(dir, 'before.trace');
      writeFileSync(good, body);
      const plain = await load(good, 0);
      plain.goTo(plain.last);
      for (const every of [0, 7]) {
        const st = await load(bad, every);
        st.goTo(st.events - 1);
        expect(st.stop?.kind).toBe('mistake');
        expect(st.stop?.message).toMatch(/token b3 is reused while still live/);
        expect(st.position).toBe(29);
        // The allocator and the kernel (the replayer also holds its file's name).
        expect(digest(st.replayer.process)).toBe(digest(plain.replayer.process));
        expect({ ...st.view(), trace: '' }).toEqual({ ...plain.view(), trace: '' });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
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

  // Jumps back and forth, near and far, each from wherever the one before left the stepper, with
  // checkpoints every `every` events: each lands in the state, and says the sentence, of a replay
  // from the start to that event.
  for (const trace of [
    'traces/load-test.trace',
    'test/diff/cases/touch-over-time.trace',
    ...(FULL ? ['traces/thread-arenas.trace', 'traces/pinned-top.trace'] : []),
  ])
    it(`jumps anywhere in ${trace} and back to the state of a replay from the start`, async () => {
      const fresh = await load(trace, 0);
      const last = fresh.last;
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 20, max: 400 }),
          fc.array(fc.integer({ min: -1, max: last }), { minLength: 1, maxLength: 5 }),
          async (every, targets) => {
            const st = await load(trace, every);
            for (const t of targets) {
              const from = st.position;
              const step = st.goTo(t);
              // Without checkpoints, forwards only: a replay from the start.
              if (t <= fresh.position) fresh.goTo(-1);
              const want = fresh.goTo(t);
              // A move to the event it is at replays nothing, and explains nothing.
              expect(step).toEqual(from === t ? null : want);
              expect(st.position).toBe(t);
              expect(digest(st.replayer)).toBe(digest(fresh.replayer));
              expect(st.view()).toEqual(fresh.view());
            }
            // The next steps go on from the state landed in.
            expect(st.next(2)).toEqual(fresh.next(2));
            expect(digest(st.replayer)).toBe(digest(fresh.replayer));
          },
        ),
        fcParams({ numRuns: FULL ? 50 : 4 }),
      );
    }, 120_000);
});
