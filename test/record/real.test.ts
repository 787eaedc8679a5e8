/**
 * Recordings of real programs of this machine replay identically in ptsim and on the real glibc,
 * every block at the address the program really got.
 */

import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { addressCheck, events, record } from './helpers.js';

const PYTHON = '/usr/bin/python3';

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
    const script = 'd = {}\nfor i in range(20000):\n    d[str(i)] = [i] * (i % 7)\nfor i in range(0, 20000, 2):\n    del d[str(i)]\nprint(len(d))';
    // PYTHONMALLOC=malloc: every object through malloc, not only those above pymalloc's 512 bytes.
    const r = await record(PYTHON, ['-c', script], { env: { ...process.env, PYTHONMALLOC: 'malloc' } });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('10000\n');
    expect(events(r.main).length).toBeGreaterThan(10000);
    expect(differential(r.main, { name: 'python3' })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });
});
