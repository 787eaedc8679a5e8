/**
 * How much of the differential suite a run covers. `npm test` (and CI) runs every hand-written
 * case and bundled trace, and a sample of the generated sets (every 3rd single- and multi-thread
 * trace, every 4th heap-stress one) and of their variants (touch records, the other touch
 * models); `npm run test:full` (PTSIM_FULL=1) runs every trace and every variant of every trace.
 */

const FULL = process.env['PTSIM_FULL'] === '1';

/** Every `full`-th item in a full run, every `sample`-th otherwise. */
export function stride(full: number, sample: number): number {
  return FULL ? full : sample;
}

/** Whether this is a full run (`npm run test:full`): the checks too heavy or too timing-sensitive for CI. */
export const fullRun = FULL;
