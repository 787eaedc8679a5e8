/**
 * Ground truth: real programs recorded with `ptsim record`, replayed with their touch records
 * (the `recorded` model), must have the resident memory the process measured itself. At each
 * point compared (the program's marks, or for a program without them the recorder's samples at
 * the peak and at the end), the replay's RSS growth since the baseline must be within 5% +
 * 512 KiB of the growth of the process's RssAnon since the same baseline, less the recorder's own
 * memory (`rec=`, docs/trace-format.md). The baseline is the sample of the mark `base`, or the
 * first sample (at the first allocator call). The figures are in docs/recording.md ("Replayed
 * against the real process").
 */

import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MeasuredSample } from '../../src/replay/measured.js';
import { Replayer } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { traceEnv } from '../diff/harness.js';
import { kernelZeroPage } from '../helpers/native.js';
import { program, record, scratch } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** One point compared: the measured and modelled growth since the baseline, in bytes. */
interface Point {
  name: string;
  measured: number;
  modelled: number;
}

/**
 * Replays a recording with its touch records and returns, for each mark (or, with `peak`, the
 * samples at the peak of RssAnon and at the end), the growth of RssAnon less the recorder's
 * memory and the growth of the replay's RSS, both since the baseline.
 */
function points(text: string, peak: boolean): Point[] {
  const r = new Replayer('ground.trace', {
    env: Object.entries(traceEnv(text)),
    cores: cpus().length,
  });
  readTraceText(text, 'ground.trace', r);
  const summary = r.finish();
  expect(summary.touch).toBe('recorded');
  const m = r.measured;
  const all = Array.from({ length: m.count }, (_, i) => m.get(i));
  const own = (s: MeasuredSample): number => {
    if (s.recorder === null) throw new Error(`the sample of line ${s.line} has no rec=`);
    return s.recorder;
  };
  const base = all.find((s) => s.mark === 'base') ?? all[0]!;
  const chosen = peak
    ? [
        { name: 'peak', s: m.get(m.peak()) },
        { name: 'end', s: all.at(-1)! },
      ]
    : all.filter((s) => s.mark !== null && s !== base).map((s) => ({ name: s.mark!, s }));
  return chosen.map(({ name, s }) => ({
    name,
    // The recorder writes anon= in every sample.
    measured: s.anon! - own(s) - (base.anon! - own(base)),
    modelled: s.modelled - base.modelled,
  }));
}

/** The criterion: the model within 5% + 512 KiB of the measurement. */
function expectClose(ps: Point[], names: string[]): void {
  expect(ps.map((p) => p.name)).toEqual(names);
  for (const p of ps) {
    const allowed = 0.05 * Math.abs(p.measured) + 512 * KiB;
    const what = `${p.name}: modelled ${(p.modelled / MiB).toFixed(2)} MiB, measured ${(p.measured / MiB).toFixed(2)} MiB`;
    expect(Math.abs(p.modelled - p.measured), what).toBeLessThanOrEqual(allowed);
  }
}

/** The growth measured at a point, for the checks that the program did what it says. */
const at = (ps: Point[], name: string): number => ps.find((p) => p.name === name)!.measured;

describe('the replay matches the process it recorded', () => {
  it('a worst-case buffer: 64 MiB of which 3 MiB are used', async () => {
    const r = await record(program('ground'), ['worst']);
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, false);
    expectClose(ps, ['used', 'freed']);
    // It is the 3 MiB, not the 64 (which the full model would take as written).
    expect(at(ps, 'used')).toBeGreaterThan(2.9 * MiB);
    expect(at(ps, 'used')).toBeLessThan(4 * MiB);
  });

  it('a sparse calloc table: 32 MiB, every tenth page written, every third read', async () => {
    const r = await record(program('ground'), ['calloc']);
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, false);
    expectClose(ps, ['written', 'freed']);
    // 820 pages written (3.2 MiB); where the kernel gives a page read a frame of its own (no zero
    // page), also the 2,731 pages read, 274 of them written too: 3,277 pages (12.8 MiB).
    const [low, high] = kernelZeroPage() ? [3 * MiB, 4 * MiB] : [12.8 * MiB, 13.8 * MiB];
    expect(at(ps, 'written')).toBeGreaterThan(low);
    expect(at(ps, 'written')).toBeLessThan(high);
  });

  it('a buffer grown by realloc to 48 MiB, then shrunk to 2 MiB', async () => {
    const r = await record(program('ground'), ['realloc']);
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, false);
    expectClose(ps, ['grown', 'shrunk', 'freed']);
    expect(at(ps, 'grown')).toBeGreaterThan(48 * MiB);
  });

  it('many small blocks: 100,000 of 16 to 256 bytes, half freed, then all', async () => {
    const r = await record(program('ground'), ['small']);
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, false);
    expectClose(ps, ['allocated', 'half-freed', 'freed']);
    expect(at(ps, 'allocated')).toBeGreaterThan(10 * MiB);
  });

  it('M_MMAP_THRESHOLD raised to 64 MiB: blocks of 4 MiB in the heap, partly written', async () => {
    const r = await record(program('ground'), ['threshold']);
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, false);
    expectClose(ps, ['allocated', 'half-freed', 'top-kept', 'freed']);
    // 256 KiB + 512 KiB + ... + 3 MiB written; the heap keeps them after the frees below the top.
    expect(at(ps, 'allocated')).toBeGreaterThan(19 * MiB);
    expect(at(ps, 'top-kept')).toBeGreaterThan(19 * MiB);
  });

  const SORT = ['/usr/bin/sort', '/bin/sort'].find((p) => existsSync(p));
  if (SORT === undefined)
    console.warn('skipped: sort of a generated file (no sort in /usr/bin or /bin)');
  it.skipIf(SORT === undefined)('sort of a generated 3 MB file', async () => {
    const dir = scratch('ground-sort');
    const input = join(dir, 'in.txt');
    const lines: string[] = [];
    let x = 12345;
    for (let i = 0; i < 100_000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      lines.push(`${x.toString(16).padStart(8, '0')} ${'x'.repeat(i % 40)}`);
    }
    writeFileSync(input, lines.join('\n') + '\n');
    // sort makes a few hundred calls in a few milliseconds: a sample after every call (as
    // often as the recorder's 1% budget allows) catches its peak.
    const r = await record(SORT!, [input, '-o', join(dir, 'out.txt')], {
      env: { ...process.env, LC_ALL: 'C' },
      rssEvery: '1',
    });
    expect(r.exitCode).toBe(0);
    const ps = points(r.main, true);
    expectClose(ps, ['peak', 'end']);
    expect(at(ps, 'peak')).toBeGreaterThan(3 * MiB);
    // The output is sorted: the program really did its work.
    const sorted = spawnSync(SORT!, ['-c', join(dir, 'out.txt')], { env: { LC_ALL: 'C' } });
    expect(sorted.status).toBe(0);
  });

  const PYTHON = '/usr/bin/python3';
  if (!existsSync(PYTHON)) console.warn(`skipped: CPython with PYTHONMALLOC=malloc (no ${PYTHON})`);
  it.skipIf(!existsSync(PYTHON))(
    'CPython with PYTHONMALLOC=malloc: a dict built and halved, a buffer',
    async () => {
      const script = [
        'import ctypes',
        "mark = getattr(ctypes.CDLL(None), 'ptsim_mark', None)",
        "if mark: mark(b'base')",
        'd = {}',
        'for i in range(20000):',
        '    d[str(i)] = [i] * (i % 7)',
        "if mark: mark(b'built')",
        'for i in range(0, 20000, 2):',
        '    del d[str(i)]',
        "if mark: mark(b'halved')",
        'b = bytearray(16 << 20)',
        "if mark: mark(b'buffer')",
        'del b, d',
        "if mark: mark(b'dropped')",
      ].join('\n');
      const r = await record(PYTHON, ['-c', script], {
        env: { ...process.env, PYTHONMALLOC: 'malloc' },
      });
      expect(r.exitCode).toBe(0);
      const ps = points(r.main, false);
      expectClose(ps, ['built', 'halved', 'buffer', 'dropped']);
      expect(at(ps, 'buffer') - at(ps, 'halved')).toBeGreaterThan(15 * MiB);
    },
  );
});
