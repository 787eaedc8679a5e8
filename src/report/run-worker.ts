/** A worker thread that replays a report's configurations (runs.ts), one job per message. */

import { parentPort } from 'node:worker_threads';
import { runConfig, type ConfigRunJob } from './runs.js';

parentPort!.on('message', (job: ConfigRunJob) => {
  runConfig(job).then(
    (run) => parentPort!.postMessage({ ok: true, run }),
    (e: unknown) => parentPort!.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e), name: e instanceof Error ? e.name : 'Error' }),
  );
});
