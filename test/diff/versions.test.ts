/**
 * A sample of the differential suite on the other glibc versions whose profile is proven (the
 * whole suite: npm run test:versions, test/versions/differential.test.ts): for each, the
 * hand-written cases that show where the version differs from 2.36, the traces of
 * docs/learn/versions.md, and one short trace of each generator, replayed by ptsim with the version's profile and by the native replayer on Debian's
 * build of it. A version that cannot be fetched is skipped, with the reason.
 */

import { describe, expect, it } from 'vitest';
import { fetchGlibc } from '../helpers/glibc-builds.js';
import { differential } from './harness.js';
import { PROVEN_VERSIONS } from './proven.js';
import { fixedTraces, generatedTraces, pageTraces } from './version-sets.js';

/** The cases where a version's difference shows first (docs/glibc-versions.md). */
const CASES = new Set([
  'calloc.trace',
  'memalign.trace',
  'mallopt.trace',
  'touch-calloc.trace',
  'tunables-env.trace',
  'unsorted-smallbins.trace',
  'thread-main-arena-free-list.trace',
]);
/** One short trace of each generator: diff-7 (383 events), threads-7 (1733), heaps-7 (633). */
const GENERATED = new Set(['diff-7.trace', 'threads-7.trace', 'heaps-7.trace']);

const traces = [
  ...fixedTraces(false).filter((t) => CASES.has(t.name)),
  // The small traces of docs/learn/versions.md, one per difference the page shows.
  ...pageTraces(),
  ...generatedTraces(7).filter((t) => GENERATED.has(t.name)),
];

for (const version of PROVEN_VERSIONS) {
  const f = fetchGlibc(version);
  const why = f.ok ? '' : ` (skipped: ${f.reason})`;
  describe(`glibc ${version}: a sample of the differential suite replays identically${why}`, () => {
    for (const t of traces) {
      it.skipIf(!f.ok)(`${t.group} ${t.name}`, () => {
        expect(
          differential(t.text(), { name: t.name, glibc: version, stats: true, info: true }),
        ).toBeNull();
      });
    }
  });
}
