/**
 * The parse worker started ahead of need. A command that reads a large trace has it parsed (or, a
 * binary one, decoded) on a thread of its own (trace/worker-client.ts), whose start (a Node thread
 * that loads its modules: about 0.1 s) the replaying thread used to wait for once it had loaded
 * its own modules and read its options. Started first thing, before ptsim's modules load, the
 * worker loads in parallel and is ready when the command reaches the file: `ptsim replay` of cc1's
 * text trace had its first batch 95 ms after it asked for the worker. A worker started for a
 * command that then does not take it (an error in the options, a file read another way) ends with
 * the process.
 */

import { prestartParseWorker, worthTheWorker } from '../trace/worker-client.js';
import { inputFiles } from './huge-pages.js';

/** The commands that read a trace through the native reader (import/index.ts, openTrace). */
const READING_COMMANDS = new Set([
  'replay',
  'explain',
  'report',
  'compare',
  'sweep',
  'stats',
  'convert',
  'show',
  'step',
]);

/**
 * Whether `ptsim ARGV` will read a file in the parse worker: a command that reads a trace, no
 * other format named with --from, and a file readTraceFile gives the worker (`worth`: its rule,
 * worthTheWorker, given apart for the tests).
 */
export function parseAheadWanted(
  argv: readonly string[],
  worth: (path: string) => boolean,
): boolean {
  const [command, ...rest] = argv;
  if (command === undefined || !READING_COMMANDS.has(command)) return false;
  if (rest.includes('--help') || rest.includes('-h')) return false;
  const from = rest.indexOf('--from');
  if (from >= 0 && rest[from + 1] !== 'native') return false;
  return inputFiles(rest).some((a) => worth(a));
}

/** Starts the parse worker if `ptsim ARGV` will want it. */
export function startParseAhead(argv: readonly string[]): void {
  if (parseAheadWanted(argv, (path) => worthTheWorker(path))) prestartParseWorker();
}
