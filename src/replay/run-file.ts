/**
 * Replaying a trace file with a set of settings: reads it (any format, through src/import) into the
 * replay sink (sink.ts), shared by every command that replays (replay, explain, compare, sweep,
 * report).
 */

import { cpus } from 'node:os';
import { openTrace } from '../import/index.js';
import type { TraceHeader } from '../trace/types.js';
import type { Replayer } from './replay.js';
import { isStopReplay, replaySink, type RunOptions } from './sink.js';

export type { ImportSettings, ReplaySettings, RunOptions } from './sink.js';

/** The result of replayFile. */
export interface RunResult {
  /** Null when the trace could not be opened or its header not read. */
  replayer: Replayer | null;
  header: TraceHeader | null;
  /** A mistake in the trace, or a state the model cannot follow, that ended the replay early. */
  failure: Error | null;
  /** The settings glibc ignores (out of range, unknown), one line each. */
  notes: string[];
}

/** Replays a trace file (any format ptsim reads) with the given settings. */
export async function replayFile(path: string, opts: RunOptions = {}): Promise<RunResult> {
  const displayName = opts.displayName ?? (path === '-' ? '<stdin>' : path);
  const rs = replaySink(displayName, {
    ...opts,
    fallbackCores: opts.fallbackCores ?? cpus().length,
  });
  const sink = rs.sink;
  let failure: Error | null = null;
  try {
    if (opts.source !== undefined) await opts.source(sink);
    else await openTrace(path, sink, { ...opts.import, displayName, onWarning: opts.onWarning });
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    if (!isStopReplay(e)) failure = e;
  }
  return { replayer: rs.replayer, header: rs.header, failure, notes: rs.notes };
}
