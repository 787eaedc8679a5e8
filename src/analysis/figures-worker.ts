/** A worker thread that replays configurations for runMany (figures.ts), one job per message. */

import { parentPort } from 'node:worker_threads';
import { runFigures, type FiguresJob } from './figures.js';

parentPort!.on('message', (job: FiguresJob) => {
  runFigures(job).then(
    (figures) => parentPort!.postMessage({ ok: true, figures }),
    (e: unknown) => parentPort!.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
