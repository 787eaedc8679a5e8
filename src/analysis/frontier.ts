/**
 * The memory-versus-CPU trade-off of a set of configurations: the Pareto frontier of resident
 * memory against the work the kernel does for the allocator (system calls and page faults).
 */

import type { Figures } from './figures.js';

export type Objective = 'final' | 'peak' | 'mean';

export function memoryOf(f: Figures, objective: Objective): number {
  return objective === 'final' ? f.rss : objective === 'peak' ? f.peakRss : f.meanRss;
}

/** System calls plus page faults: what the configuration costs in kernel work. */
export function costOf(f: Figures): number {
  let n = f.pageFaults;
  for (const v of Object.values(f.syscalls)) n += v;
  return n;
}

/** Indexes of the configurations no other beats on both memory and cost. */
export function paretoFrontier(figs: Figures[], objective: Objective): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < figs.length; i++) {
    const mi = memoryOf(figs[i]!, objective);
    const ci = costOf(figs[i]!);
    let dominated = false;
    for (let j = 0; j < figs.length && !dominated; j++) {
      if (j === i) continue;
      const mj = memoryOf(figs[j]!, objective);
      const cj = costOf(figs[j]!);
      dominated = mj <= mi && cj <= ci && (mj < mi || cj < ci);
    }
    if (!dominated) out.add(i);
  }
  return out;
}
