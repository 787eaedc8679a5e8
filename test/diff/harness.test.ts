/**
 * The differential harness itself: the comparison of the RSS after every event must be able to
 * fail, and say where.
 */

import { describe, expect, it } from 'vitest';
import { compareEvents, compareRuns, runSim, traceEnv, type SimRun } from './harness.js';
import { runNativeText, type NativeRun } from '../helpers/native.js';

const TRACE = [
  '# a few calls that move the RSS',
  '1 malloc 24 a',
  '1 malloc 20000 b',
  '1 malloc 300000 c',
  '1 free b',
  '1 malloc 8000 d',
  '1 free c',
  '1 free a',
  '',
].join('\n');

function bothRuns(): { sim: SimRun; nat: NativeRun } {
  const env = traceEnv(TRACE);
  return {
    sim: runSim(TRACE, env, 'rss.trace'),
    nat: runNativeText(TRACE, { env, name: 'rss.trace', rss: true }),
  };
}

/** A copy of the run with the RSS after event `i` off by `pages` pages. */
function withRss(sim: SimRun, i: number, pages: number): SimRun {
  const rss = [...sim.rss];
  rss[i] = rss[i]! + pages * 4096;
  return { ...sim, rss };
}

describe('the per-event RSS comparison', () => {
  it('agrees on the real runs, and every native record carries rss', () => {
    const { sim, nat } = bothRuns();
    expect(nat.events).toHaveLength(7);
    expect(nat.events.every((e) => typeof e['rss'] === 'number')).toBe(true);
    expect(sim.rss).toHaveLength(7);
    // The trace moves the RSS, so the comparison is not of constants.
    expect(new Set(sim.rss).size).toBeGreaterThan(2);
    expect(compareRuns(TRACE, sim, nat, { rss: true })).toBeNull();
  });

  it('names the first event whose RSS differs, with both figures and the trace lines before it', () => {
    const { sim, nat } = bothRuns();
    const report = compareRuns(TRACE, withRss(sim, 4, 3), nat, { rss: true });
    const glibc = nat.events[4]!['rss'] as number;
    expect(report).not.toBeNull();
    expect(report).toContain('first RSS difference after event 4 (ptsim +3 pages)');
    expect(report).toContain(`ptsim: ${glibc + 3 * 4096} bytes (${glibc / 4096 + 3} pages)`);
    expect(report).toContain(`glibc: ${glibc} bytes (${glibc / 4096} pages)`);
    expect(report).toContain('     6  1 malloc 8000 d');
    expect(report).not.toContain('1 free c');
    // Only the first difference is reported.
    const two = compareRuns(TRACE, withRss(withRss(sim, 4, 3), 2, -1), nat, { rss: true });
    expect(two).toContain('first RSS difference after event 2 (ptsim -1 pages)');
  });

  it('fails even when the summaries agree (a difference that heals by the end)', () => {
    const { sim, nat } = bothRuns();
    const bad = withRss(sim, 1, 1);
    expect(bad.summary).toEqual(sim.summary);
    expect(compareRuns(TRACE, bad, nat, { rss: true })).toMatch(
      /^first RSS difference after event 1 /,
    );
  });

  it('reports a record difference at an earlier event first', () => {
    const { sim, nat } = bothRuns();
    const events = sim.events.map((e, i) => (i === 2 ? { ...e, usable: e.usable! + 16 } : e));
    const report = compareRuns(TRACE, { ...withRss(sim, 4, 1), events }, nat, { rss: true });
    expect(report).toMatch(/^first difference at event 2:/);
  });

  it('fails when the native log lacks the RSS it was asked for, and compares without it otherwise', () => {
    const { sim, nat } = bothRuns();
    const events = nat.events.map((e, i) => {
      if (i !== 5) return e;
      const { rss: _, ...rest } = e;
      return rest;
    });
    expect(compareRuns(TRACE, sim, { ...nat, events }, { rss: true })).toContain(
      'first RSS difference after event 5',
    );
    const plain = runNativeText(TRACE, { env: traceEnv(TRACE), name: 'rss.trace' });
    expect(plain.events.some((e) => 'rss' in e)).toBe(false);
    expect(compareRuns(TRACE, sim, plain)).toBeNull();
    expect(compareRuns(TRACE, sim, plain, { rss: true })).toContain(
      'first RSS difference after event 0',
    );
  });

  it('compares only the first events when told to', () => {
    const { sim, nat } = bothRuns();
    expect(compareEvents(TRACE, withRss(sim, 5, 2), nat, { rss: true, upTo: 5 })).toBeNull();
    expect(compareEvents(TRACE, withRss(sim, 5, 2), nat, { rss: true, upTo: 6 })).toContain(
      'after event 5',
    );
  });
});
