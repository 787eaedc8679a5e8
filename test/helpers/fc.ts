/**
 * The settings every fast-check property runs with: `fc.assert(property, fcParams({ numRuns }))`.
 *
 * The seed is fixed, so every run tries the same cases and a failure reproduces. FC_SEED sets
 * another for every property (to explore, or to rerun a failure); FC_PATH, with the seed of a
 * failure, replays only its shrunk counterexample. A failure's message, as vitest prints it, is
 * fast-check's report (seed, path, counterexample; the error the property threw is its cause)
 * followed by the command line that runs the failing case again.
 */

import { relative } from 'node:path';
import fc from 'fast-check';
import { expect } from 'vitest';

const DEFAULT_SEED = 20261122;

function seedFromEnv(): number | undefined {
  const text = process.env['FC_SEED'];
  if (text === undefined || text === '') return undefined;
  const seed = Number(text);
  // fast-check's seeds are 32-bit integers; it prints them signed.
  if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 32) {
    throw new Error(`FC_SEED=${text}: not a 32-bit integer`);
  }
  return seed;
}

/** FC_SEED, when set: the seed of every property of this run. */
const FC_SEED = seedFromEnv();

const FC_PATH = process.env['FC_PATH'] ?? '';

/** Throws fast-check's report of a failure and the way to run it again (instead of fast-check). */
function report<T>(details: fc.RunDetails<T>): void {
  if (!details.failed) return;
  const again =
    details.counterexamplePath === null
      ? `FC_SEED=${details.seed}`
      : `FC_SEED=${details.seed} FC_PATH=${details.counterexamplePath}`;
  const { testPath, currentTestName } = expect.getState();
  const file = testPath === undefined ? 'FILE' : relative(process.cwd(), testPath);
  // The test's own title (vitest's -t takes a regular expression), quoted for the shell.
  const title = (currentTestName ?? '').split(' > ').pop() ?? '';
  const only =
    title === ''
      ? ''
      : ` -t '${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/'/g, "'\\''")}'`;
  const message = fc.defaultReportMessage(details) ?? 'Property failed';
  throw new Error(`${message}\n\nTo run it again: ${again} npx vitest run ${file}${only}`, {
    cause: details.errorInstance ?? undefined,
  });
}

/**
 * Parameters for fc.assert: the property's own settings with the run's seed (and FC_PATH's case).
 * A `seed` given here is the property's default, used when FC_SEED is not set.
 */
export function fcParams<T>(params: Omit<fc.Parameters<T>, 'path'> = {}): fc.Parameters<T> {
  return {
    ...params,
    seed: FC_SEED ?? params.seed ?? DEFAULT_SEED,
    ...(FC_PATH === '' ? {} : { path: FC_PATH, endOnFailure: true }),
    plugins: [...(params.plugins ?? []), () => ({ onAllRunsComplete: report })],
  };
}
