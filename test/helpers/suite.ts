/**
 * How much of the differential suite a run covers. `npm test` (and CI) runs every trace of the
 * main sets but the thread-heap stress set, and a sample of that set and of the variants (touch
 * records, the other touch models); `npm run test:full` (PTSIM_FULL=1) runs every trace and every
 * variant of every trace.
 */

const FULL = process.env['PTSIM_FULL'] === '1';

/** Every `full`-th item in a full run, every `sample`-th otherwise. */
export function stride(full: number, sample: number): number {
  return FULL ? full : sample;
}

/** Whether this is a full run (`npm run test:full`): the checks too heavy or too timing-sensitive for CI. */
export const fullRun = FULL;
