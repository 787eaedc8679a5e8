/**
 * Jobs run on worker threads, for the commands that replay one trace under many settings (explain's
 * remedies, compare, sweep, the report's configurations). Each worker takes one job at a time; the
 * results come back in the jobs' order. When the compiled worker script is not there (the sources
 * run under a TypeScript runner) or one thread is asked for, the jobs run here, one after the other.
 */

import { access } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { parentPort, Worker } from 'node:worker_threads';

/** What a worker sends back for a job. */
type Reply<R> = { ok: true; result: R } | { ok: false; error: string; name: string };

export async function runPool<J, R>(
  workerUrl: URL,
  jobs: J[],
  runHere: (job: J) => Promise<R>,
  parallel = availableParallelism(),
  progress?: (done: number, total: number) => void,
): Promise<R[]> {
  const results = new Array<R>(jobs.length);
  let done = 0;
  const useWorkers =
    parallel > 1 &&
    jobs.length > 1 &&
    workerUrl.pathname.endsWith('.js') &&
    (await access(workerUrl).then(
      () => true,
      () => false,
    ));
  if (!useWorkers) {
    for (let i = 0; i < jobs.length; i++) {
      results[i] = await runHere(jobs[i]!);
      progress?.(++done, jobs.length);
    }
    return results;
  }
  let next = 0;
  const lane = async (): Promise<void> => {
    const worker = new Worker(workerUrl);
    try {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await new Promise<R>((resolve, reject) => {
          const onError = (e: Error): void => reject(e);
          worker.once('error', onError);
          worker.once('message', (m: Reply<R>) => {
            worker.off('error', onError);
            if (m.ok) resolve(m.result);
            else {
              // A trace mistake found in a worker keeps its name (ReplayError, TraceSyntaxError, ...).
              const e = new Error(m.error);
              e.name = m.name;
              reject(e);
            }
          });
          worker.postMessage(jobs[i]);
        });
        progress?.(++done, jobs.length);
      }
    } finally {
      await worker.terminate();
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, jobs.length) }, lane));
  return results;
}

/** The worker's side: runs each job it is sent and replies with its result or its error. */
export function serveJobs<J, R>(run: (job: J) => Promise<R>): void {
  parentPort!.on('message', (job: J) => {
    run(job).then(
      (result) => parentPort!.postMessage({ ok: true, result } satisfies Reply<R>),
      (e: unknown) =>
        parentPort!.postMessage({
          ok: false,
          error: e instanceof Error ? e.message : String(e),
          name: e instanceof Error ? e.name : 'Error',
        } satisfies Reply<R>),
    );
  });
}
