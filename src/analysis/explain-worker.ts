/**
 * A worker thread that runs explain's replays (what-if.ts), one job per message; the trace held in
 * memory comes once, as its workerData.
 */

import { workerData } from 'node:worker_threads';
import type { StoredTrace } from '../trace/event-store.js';
import { receivedJob, runExplainJob } from './what-if.js';
import { serveJobs } from './pool.js';

const store = (workerData ?? null) as StoredTrace | null;
serveJobs((job: Parameters<typeof runExplainJob>[0]) => runExplainJob(receivedJob(job, store)));
