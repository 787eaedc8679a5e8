/**
 * Replaying a trace file with a set of settings: reads it (any format, through src/import) into the
 * replay sink (sink.ts), shared by every command that replays (replay, explain, compare, sweep,
 * report).
 */

import { availableParallelism, cpus } from 'node:os';
import { openTrace } from '../import/index.js';
import type { TraceHeader, TraceSink } from '../trace/types.js';
import type { Replayer } from './replay.js';
import { chooseProfile, isStopReplay, replaySink, type RunOptions } from './sink.js';

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
    // The affinity mask of this process (os.availableParallelism reads it).
    fallbackAllowedCores: opts.fallbackAllowedCores ?? availableParallelism(),
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

class HeaderRead extends Error {}

/**
 * The trace's header alone, read from the start of the file (null: standard input, which is read
 * once, or a trace that cannot be read, which says so when it is replayed).
 */
export async function readHeader(
  path: string,
  opts: Pick<RunOptions, 'import' | 'displayName'> = {},
): Promise<TraceHeader | null> {
  if (path === '-') return null;
  let header: TraceHeader | null = null;
  const sink: TraceSink = {
    header(h: TraceHeader): void {
      header = h;
      throw new HeaderRead();
    },
    event(): void {},
  };
  try {
    await openTrace(path, sink, { ...opts.import, displayName: opts.displayName ?? path });
  } catch (e) {
    if (!(e instanceof HeaderRead)) return null;
  }
  return header;
}

/**
 * What a replay of the trace with these settings would say about the glibc release it models
 * (the notes of chooseProfile), read from the trace's header alone: for the commands that replay
 * in ways that do not pass a replay's notes on. Nothing for standard input, which is read once.
 */
export async function glibcNotes(
  path: string,
  opts: Pick<RunOptions, 'glibc' | 'import' | 'displayName'>,
): Promise<string[]> {
  if (opts.glibc !== undefined) return chooseProfile(opts.glibc, null).notes;
  if (path === '-') return [];
  // A trace that cannot be read says so when it is replayed.
  const header = await readHeader(path, opts);
  return header === null ? [] : chooseProfile(undefined, header).notes;
}
