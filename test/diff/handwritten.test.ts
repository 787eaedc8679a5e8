/**
 * Hand-written traces, one per behaviour of glibc 2.36's malloc (each file's header says which),
 * replayed with ptsim and with the native replayer on this machine's glibc: every event, the RSS
 * after it, the summary, malloc_stats and malloc_info must be identical (or, for a trace that
 * makes glibc abort, the message and the event). The traces of undetected/ hold a double free
 * that glibc does not notice: ptsim must stop there, saying so, and glibc carry on.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compareEvents, differential, runSim, traceEnv, traceTouch } from './harness.js';
import type { TouchMode } from '../../src/replay/replay.js';
import { runNativeText } from '../helpers/native.js';

const CASES = join(dirname(fileURLToPath(import.meta.url)), 'cases');
const UNDETECTED = join(dirname(fileURLToPath(import.meta.url)), 'undetected');
const BUNDLED = join(dirname(fileURLToPath(import.meta.url)), '../../traces');

describe('hand-written traces replay identically on ptsim and real glibc', () => {
  for (const file of readdirSync(CASES)
    .filter((f) => f.endsWith('.trace'))
    .sort()) {
    it(file, () => {
      const text = readFileSync(join(CASES, file), 'utf8');
      expect(differential(text, { name: file, stats: true, info: true })).toBeNull();
    });
  }
});

describe('hand-written traces replay identically with the other touch models', () => {
  // Without the program's writes (none), every resident page is one glibc wrote itself: the
  // headers, links, copies and clearing the model must place exactly.
  for (const file of readdirSync(CASES)
    .filter((f) => f.endsWith('.trace'))
    .sort()) {
    const text = readFileSync(join(CASES, file), 'utf8');
    const modes: TouchMode[] = traceTouch(text) === 'recorded' ? ['full', 'none'] : ['none'];
    for (const touch of modes) {
      it(`${file} --touch ${touch}`, () => {
        expect(differential(text, { name: file, touch })).toBeNull();
      });
    }
  }
});

describe('the bundled example traces replay identically on ptsim and real glibc', () => {
  for (const file of readdirSync(BUNDLED)
    .filter((f) => f.endsWith('.trace'))
    .sort()) {
    it(file, () => {
      const text = readFileSync(join(BUNDLED, file), 'utf8');
      expect(differential(text, { name: file, stats: true, info: true })).toBeNull();
    });
  }
});

describe('double frees glibc does not detect: ptsim stops there, glibc carries on', () => {
  for (const file of readdirSync(UNDETECTED)
    .filter((f) => f.endsWith('.trace'))
    .sort()) {
    it(file, () => {
      const text = readFileSync(join(UNDETECTED, file), 'utf8');
      const env = traceEnv(text);
      const sim = runSim(text, env, file);
      const nat = runNativeText(text, { env, name: file, rss: true });
      expect(sim.error).toMatch(
        /: glibc 2\.36 does not detect this here and its heap would now be corrupt, so the replay stops$/,
      );
      // The event ptsim stopped at (it records only the events it completed).
      const stop = sim.events.length;
      expect(nat.abort).toBeUndefined();
      expect(nat.exitCode).toBe(0);
      expect(nat.events.length).toBeGreaterThan(stop);
      // Every event before it agrees, RSS after each included.
      expect(compareEvents(text, sim, nat, { rss: true, upTo: stop })).toBeNull();
    });
  }
});
