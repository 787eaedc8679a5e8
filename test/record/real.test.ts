/**
 * Recordings of real programs of this machine replay identically in ptsim and on the real glibc,
 * every block at the address the program really got.
 */

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { addressCheck, events, record } from './helpers.js';

const PYTHON = '/usr/bin/python3';
const TRACES = fileURLToPath(new URL('../../traces', import.meta.url));

describe('real programs', () => {
  it('ls -la /usr/lib', async () => {
    const r = await record('ls', ['-la', '/usr/lib']);
    expect(r.exitCode).toBe(0);
    expect(r.traces).toHaveLength(1);
    expect(events(r.main).length).toBeGreaterThan(300);
    expect(differential(r.main, { name: 'ls', stats: true, info: true })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });

  it.skipIf(!existsSync(PYTHON))('python3 building and dropping dicts', async () => {
    const script =
      'd = {}\nfor i in range(20000):\n    d[str(i)] = [i] * (i % 7)\nfor i in range(0, 20000, 2):\n    del d[str(i)]\nprint(len(d))';
    // PYTHONMALLOC=malloc: every object through malloc, not only those above pymalloc's 512 bytes.
    const r = await record(PYTHON, ['-c', script], {
      env: { ...process.env, PYTHONMALLOC: 'malloc' },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('10000\n');
    expect(events(r.main).length).toBeGreaterThan(10000);
    expect(differential(r.main, { name: 'python3' })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });
});

describe('the traces recorded with ptsim record in traces/', () => {
  for (const file of readdirSync(TRACES)
    .filter((f) => f.endsWith('.trace.gz'))
    .sort()) {
    it(`${file} replays identically, every block where the program had it`, () => {
      const text = gunzipSync(readFileSync(join(TRACES, file))).toString('utf8');
      expect(text).toMatch(/^# ptsim trace v1\n/);
      expect(differential(text, { name: file })).toBeNull();
      expect(addressCheck(text)).toBeNull();
    });
  }
});
