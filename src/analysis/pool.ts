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

/**
 * Worker threads kept for jobs handed in one at a time, over several rounds (explain's replays,
 * whose later jobs are chosen from the earlier ones' results): each job starts as soon as a worker
 * is free, and the workers stay until close(). As runPool, jobs run here, one after the other,
 * when there is no compiled worker script or one thread is asked for.
 */
export class JobPool<J, R> {
  private readonly queue: Array<{ job: J; resolve: (r: R) => void; reject: (e: Error) => void }> =
    [];
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private here: Promise<unknown> = Promise.resolve();
  private readonly useWorkers: Promise<boolean>;

  constructor(
    private readonly workerUrl: URL,
    private readonly runHere: (job: J) => Promise<R>,
    private readonly parallel = availableParallelism(),
    /**
     * What every job needs, sent once to each worker (its workerData) rather than with each job,
     * and `send`, which makes a job into what a worker is sent without it.
     */
    private readonly shared?: { data: unknown; send: (job: J) => unknown },
  ) {
    this.useWorkers =
      parallel > 1 && workerUrl.pathname.endsWith('.js')
        ? access(workerUrl).then(
            () => true,
            () => false,
          )
        : Promise.resolve(false);
  }

  /** Runs a job on the first worker free (or here, after the jobs before it). */
  async run(job: J): Promise<R> {
    if (!(await this.useWorkers)) {
      const r = this.here.then(() => this.runHere(job));
      this.here = r.catch(() => {});
      return r;
    }
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.next();
    });
  }

  /** Hands the next queued job to a free worker, starting one while fewer than `parallel` run. */
  private next(): void {
    if (this.queue.length === 0) return;
    let worker = this.idle.pop();
    if (worker === undefined) {
      if (this.all.size >= this.parallel) return;
      worker = new Worker(this.workerUrl, { workerData: this.shared?.data });
      this.all.add(worker);
    }
    const w = worker;
    const { job, resolve, reject } = this.queue.shift()!;
    const onError = (e: Error): void => {
      w.off('message', onMessage);
      // A worker that failed is not used again.
      this.all.delete(w);
      void w.terminate();
      reject(e);
      this.next();
    };
    const onMessage = (m: Reply<R>): void => {
      w.off('error', onError);
      this.idle.push(w);
      if (m.ok) resolve(m.result);
      else {
        // A trace mistake found in a worker keeps its name (ReplayError, TraceSyntaxError, ...).
        const e = new Error(m.error);
        e.name = m.name;
        reject(e);
      }
      this.next();
    };
    w.once('error', onError);
    w.once('message', onMessage);
    w.postMessage(this.shared !== undefined ? this.shared.send(job) : job);
  }

  /** Stops the workers (the jobs still queued are not run). */
  async close(): Promise<void> {
    const workers = [...this.all];
    this.all.clear();
    this.idle.length = 0;
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
