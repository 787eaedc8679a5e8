/**
 * vitest globalSetup of the versions runs: fetches every glibc build once, before the test files
 * (which would otherwise each wait on the lock of the first), and says how long each took or why
 * it could not be had; the tests then skip with that reason.
 */

import { fetchGlibc, GLIBC_SUITES } from '../helpers/glibc-builds.js';

export default function setup(): void {
  for (const v of Object.keys(GLIBC_SUITES)) {
    const t0 = performance.now();
    const f = fetchGlibc(v);
    const ms = performance.now() - t0;
    const line = f.ok
      ? `glibc ${v}: Debian ${f.build.debianVersion} (${f.build.suite}), ${
          ms < 50 ? 'cached' : `ready in ${(ms / 1000).toFixed(1)} s`
        }, ${f.build.root}`
      : `glibc ${v}: not available: ${f.reason}`;
    process.stderr.write(`ptsim versions: ${line}\n`);
  }
}
