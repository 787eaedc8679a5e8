/**
 * A recording replayed with its own touch records: at every `#:rss` sample the replay's RSS
 * (recorded model, docs/trace-format.md "Extensions") is the resident memory of glibc's heaps and
 * large mmapped chunks that the recorder measured there (`heap=`), to the byte, for each mode of
 * test/record/programs/touch.c that runs one thread at a time. The full model, which takes every
 * requested byte as written, overstates it wherever the program leaves a block partly unwritten.
 */

import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { Replayer, type TouchMode } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { traceEnv } from '../diff/harness.js';
import { program, record } from './helpers.js';

/** Each sample's heap= and the replay's RSS at the same point. */
function samples(
  text: string,
  touch: TouchMode,
): Array<{ line: number; heap: number | null; replay: number }> {
  const r = new Replayer('touch.trace', {
    env: Object.entries(traceEnv(text)),
    cores: cpus().length,
    touch,
  });
  readTraceText(text, 'touch.trace', r);
  const out = [];
  for (let i = 0; i < r.measured.count; i++) {
    const s = r.measured.get(i);
    out.push({ line: s.line, heap: s.heap, replay: s.modelled });
  }
  return out;
}

describe('a recording replayed with its touch records', () => {
  // Where the full model overstates: blocks the program writes only a part of.
  const partial = new Set(['live', 'marks', 'malloc_trim']);
  for (const mode of [
    'big',
    'calloc',
    'realloc',
    'small',
    'live',
    'marks',
    'slow',
    'trim',
    'malloc_trim',
  ]) {
    it(`${mode}: the replay's RSS is the measured heap= at every sample`, async () => {
      const r = await record(program('touch'), [mode], { env: process.env });
      expect(r.exitCode).toBe(0);
      expect(r.main).toMatch(/^# touches recorded$/m);
      const rec = samples(r.main, 'recorded');
      expect(rec.length).toBeGreaterThanOrEqual(2);
      for (const s of rec) expect(s.heap).not.toBeNull();
      expect(rec.map((s) => s.replay)).toEqual(rec.map((s) => s.heap));
      const full = samples(r.main, 'full');
      const over = full.filter((s, k) => s.replay > rec[k]!.replay).length;
      if (partial.has(mode)) expect(over).toBeGreaterThan(0);
      for (let k = 0; k < full.length; k++)
        expect(full[k]!.replay).toBeGreaterThanOrEqual(rec[k]!.replay);
    });
  }
});
