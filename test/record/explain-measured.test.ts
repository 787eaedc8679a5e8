/**
 * ptsim explain on real recordings, beside what the process measured of itself: a program whose
 * memory all comes from malloc agrees with the replay at each moment; a program that maps 24 MiB
 * itself and writes them grows that much more than the replay, and explain says so.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { explain } from '../../src/analysis/explain.js';
import type { AnonComparison } from '../../src/analysis/measured-compare.js';
import { Replayer } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { program, record, scratch } from './helpers.js';

const MiB = 1024 * 1024;

/** The recording written to a file, and the event its sample marked `mark` follows. */
function saved(text: string, name: string, mark: string): { path: string; event: number } {
  const path = join(scratch('explain-measured'), `${name}.trace`);
  writeFileSync(path, text);
  const r = new Replayer(path, {});
  readTraceText(text, path, r);
  r.finish();
  const m = r.measured;
  const marked = Array.from({ length: m.count }, (_, i) => m.get(i)).find((s) => s.mark === mark);
  return { path, event: marked!.event };
}

describe('explain on real recordings, beside the process', () => {
  it('agrees with a program whose memory is all malloc: no note', async () => {
    // ground.c's worst case: 64 MiB asked for, 3 MiB written, marked "used", then freed.
    const r = await record(program('ground'), ['worst']);
    expect(r.exitCode).toBe(0);
    const { path, event } = saved(r.main, 'worst', 'used');
    const ex = await explain(path, { settings: {}, at: [event, 'end'], whatIfs: false });
    const [used, end] = ex.moments.map((m) => m.measured as AnonComparison);
    expect(used!.sample.mark).toBe('used');
    expect(used!.sample.event).toBe(event);
    expect(used!.measuredGrowth).toBeGreaterThan(2.9 * MiB);
    for (const c of [used!, end!]) {
      expect(Math.abs(c.measuredGrowth - c.modelledGrowth)).toBeLessThanOrEqual(c.allowed);
      expect(c.differs).toBe(false);
      expect(c.note).toBeUndefined();
    }
  });

  it('differs where the program mapped and wrote 24 MiB itself, and says why', async () => {
    const r = await record(program('touch'), ['own']);
    expect(r.exitCode).toBe(0);
    const { path, event } = saved(r.main, 'own', 'peak');
    const ex = await explain(path, { settings: {}, at: [event], whatIfs: false });
    const c = ex.moments[0]!.measured as AnonComparison;
    expect(c.sample.mark).toBe('peak');
    // The 24 MiB are in RssAnon, and not in the replay.
    const gap = c.measuredGrowth - c.modelledGrowth;
    expect(gap).toBeGreaterThan(23 * MiB);
    expect(gap).toBeLessThan(26 * MiB);
    expect(c.differs).toBe(true);
    expect(c.note).toMatch(
      /^the process's RssAnon grew 2[345]\.\d+ MiB more than the replay's RSS since the first sample .*the program's own mmaps/,
    );
  });
});
