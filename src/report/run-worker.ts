/** A worker thread that replays a report's configurations (runs.ts), one job per message. */

import { serveJobs } from '../analysis/pool.js';
import { runConfig } from './runs.js';

serveJobs(runConfig);
