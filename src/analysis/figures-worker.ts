/** A worker thread that replays configurations for runMany (figures.ts), one job per message. */

import { runFigures } from './figures.js';
import { serveJobs } from './pool.js';

serveJobs(runFigures);
