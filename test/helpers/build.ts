/**
 * The built command (`dist/`), which the tests that run `ptsim` as a user does need: built again by
 * `npm run build` only when a source or a compiler configuration is newer than it. `npm install`
 * and `npm ci` build it already (`prepare`), so that a fresh clone's `npm test` does not compile
 * everything a second time, while an edit to `src/` since the last build still gets a build (which
 * also type-checks the simulation core without Node's types).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);

/** What `npm run build` reads: the sources and the compiler configurations. */
const CONFIGS = ['tsconfig.json', 'tsconfig.core.json', 'src/report/client/tsconfig.json'];

/** What it writes last of each of its compilations (tsc writes every output of a run). */
const OUTPUTS = ['dist/cli/main.js', 'dist/report/client/page.js', 'dist/bin/main.js'];

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(p));
    else newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Whether `dist/` is missing or older than anything it is built from. */
function buildIsStale(): boolean {
  const outputs = OUTPUTS.map((p) => join(ROOT, p));
  if (!outputs.every((p) => existsSync(p))) return true;
  const built = Math.min(...outputs.map((p) => statSync(p).mtimeMs));
  const inputs = Math.max(
    newestSource(join(ROOT, 'src')),
    ...CONFIGS.map((p) => statSync(join(ROOT, p)).mtimeMs),
  );
  return inputs >= built;
}

/** Runs `npm run build` if `dist/` is stale; throws when the build fails. */
export function ensureBuilt(): void {
  if (!buildIsStale()) return;
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.error) throw new Error(`cannot run npm run build: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`npm run build failed (status ${r.status})`);
}
