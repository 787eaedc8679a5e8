/**
 * Hand-written traces, one per behaviour of glibc 2.36's malloc (each file's header says which),
 * replayed with ptsim and with the native replayer on this machine's glibc: every event, the
 * summary, malloc_stats and malloc_info must be identical.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { differential } from './harness.js';

const CASES = join(dirname(fileURLToPath(import.meta.url)), 'cases');
const BUNDLED = join(dirname(fileURLToPath(import.meta.url)), '../../traces');

describe('hand-written traces replay identically on ptsim and real glibc', () => {
  for (const file of readdirSync(CASES).filter((f) => f.endsWith('.trace')).sort()) {
    it(file, () => {
      const text = readFileSync(join(CASES, file), 'utf8');
      expect(differential(text, { name: file, stats: true, info: true })).toBeNull();
    });
  }
});

describe('the bundled example traces replay identically on ptsim and real glibc', () => {
  for (const file of readdirSync(BUNDLED).filter((f) => f.endsWith('.trace')).sort()) {
    it(file, () => {
      const text = readFileSync(join(BUNDLED, file), 'utf8');
      expect(differential(text, { name: file, stats: true, info: true })).toBeNull();
    });
  }
});
