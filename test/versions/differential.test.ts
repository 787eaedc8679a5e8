/**
 * The differential suite on other glibc versions: each trace replayed by ptsim with the version's
 * profile (src/core/profile.ts) and by the native replayer on Debian's build of that version
 * (test/helpers/glibc-builds.ts), compared event by event, RSS after every event, the summary, and
 * malloc_stats and malloc_info where the trace's own test compares them. A version that cannot be
 * fetched is skipped, with the reason.
 *
 * VERSIONS_STEP=N takes every N-th generated trace (default 1: all of them, as their own tests);
 * PROVEN_VERSIONS=2.31 picks the versions (default: every proven one).
 */

import { describe, expect, it } from 'vitest';
import { fetchGlibc } from '../helpers/glibc-builds.js';
import { runNativeText } from '../helpers/native.js';
import { compareEvents, differential, runSim, traceEnv, traceTouch } from '../diff/harness.js';
import type { TouchMode } from '../../src/replay/replay.js';
import {
  fixedTraces,
  generatedTraces,
  pageTraces,
  touchVariants,
  undetectedTraces,
} from '../diff/version-sets.js';
import { PROVEN_VERSIONS } from '../diff/proven.js';

const STEP = Number(process.env['VERSIONS_STEP'] ?? 1);
const VERSIONS = (process.env['PROVEN_VERSIONS'] ?? PROVEN_VERSIONS.join(','))
  .split(',')
  .filter((v) => v !== '');

for (const version of VERSIONS) {
  const f = fetchGlibc(version);
  const why = f.ok ? '' : ` (skipped: ${f.reason})`;
  describe(`glibc ${version}: the differential suite replays identically${why}`, () => {
    for (const t of [...fixedTraces(true), ...pageTraces(), ...generatedTraces(STEP)]) {
      it.skipIf(!f.ok)(`${t.group} ${t.name}`, () => {
        const text = t.text();
        const report = differential(text, {
          name: t.name,
          glibc: version,
          stats: t.details,
          info: t.details,
        });
        // A free or realloc that this version does not detect (2.43's realloc of a block in the
        // thread's own tcache): ptsim must stop there, and glibc carry on, as for the undetected
        // double frees below.
        if (report !== null && UNDETECTED.test(report)) undetectedHere(text, t.name, version);
        else expect(report).toBeNull();
      });
    }
    // The variants of the trace's own tests: every 4th touch variant of what those run.
    for (const t of touchVariants(4 * STEP)) {
      it.skipIf(!f.ok)(`${t.group} ${t.name} --touch ${t.touch ?? 'recorded'}`, () => {
        const text = t.text();
        const opts = { name: t.name, glibc: version, ...(t.touch ? { touch: t.touch } : {}) };
        const report = differential(text, opts);
        if (report !== null && UNDETECTED.test(report))
          undetectedHere(text, t.name, version, t.touch);
        else expect(report).toBeNull();
      });
    }
    for (const t of undetectedTraces()) {
      it.skipIf(!f.ok)(
        `${t.name}: ptsim stops at the undetected double free, glibc carries on`,
        () => undetectedHere(t.text(), t.name, version),
      );
    }
  });
}

const UNDETECTED = /^ptsim stopped: .*: glibc [0-9.]+ does not detect this here/;

/** ptsim stops at a double free it says glibc does not detect; glibc indeed carries on. */
function undetectedHere(text: string, name: string, version: string, touch?: TouchMode): void {
  const env = traceEnv(text);
  const sim = runSim(text, env, name, touch ?? traceTouch(text), version);
  const nat = runNativeText(text, {
    env,
    name,
    rss: true,
    glibc: version,
    touch: touch ?? traceTouch(text),
  });
  expect(sim.error).toMatch(
    new RegExp(`: glibc ${version.replace('.', '\\.')} does not detect this here`),
  );
  const stop = sim.events.length;
  expect(nat.abort).toBeUndefined();
  expect(nat.exitCode).toBe(0);
  expect(nat.events.length).toBeGreaterThan(stop);
  expect(compareEvents(text, sim, nat, { rss: true, upTo: stop })).toBeNull();
}
