/** A worker thread that runs explain's replays (what-if.ts), one job per message. */

import { runExplainJob } from './what-if.js';
import { serveJobs } from './pool.js';

serveJobs(runExplainJob);
