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

import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isBinaryTrace } from '../trace/binary-end.js';
import {
  BINARY_WORKER_MIN_BYTES,
  WORKER_MIN_BYTES,
  prestartParseWorker,
} from '../trace/worker-client.js';
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

/** What the choice looks at (given apart for the tests). */
export interface AheadFacts {
  cpus: number;
  /** The size of a regular file, or -1. */
  fileSize(path: string): number;
  /** Whether the file starts like a binary trace (uncompressed: a compressed one is not looked into). */
  binary(path: string): boolean;
}

/**
 * Whether `ptsim ARGV` will read a file in the parse worker, as readTraceFile decides: a command
 * that reads a trace, on a machine with more than one CPU, a file of WORKER_MIN_BYTES or more
 * (BINARY_WORKER_MIN_BYTES for a binary trace), and no other format named with --from.
 */
export function parseAheadWanted(argv: readonly string[], f: AheadFacts): boolean {
  const [command, ...rest] = argv;
  if (command === undefined || !READING_COMMANDS.has(command) || f.cpus < 2) return false;
  if (rest.includes('--help') || rest.includes('-h')) return false;
  const from = rest.indexOf('--from');
  if (from >= 0 && rest[from + 1] !== 'native') return false;
  return inputFiles(rest).some((a) => {
    const size = f.fileSize(a);
    return size >= (f.binary(a) ? BINARY_WORKER_MIN_BYTES : WORKER_MIN_BYTES);
  });
}

/** Starts the parse worker if `ptsim ARGV` will want it. */
export function startParseAhead(argv: readonly string[]): void {
  const facts: AheadFacts = {
    cpus: availableParallelism(),
    fileSize(path) {
      try {
        const st = statSync(path);
        return st.isFile() ? st.size : -1;
      } catch {
        return -1;
      }
    },
    binary(path) {
      let fd = -1;
      try {
        fd = openSync(path, 'r');
        const head = new Uint8Array(8);
        return readSync(fd, head, 0, 8, 0) === 8 && isBinaryTrace(head);
      } catch {
        return false;
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    },
  };
  if (parseAheadWanted(argv, facts)) prestartParseWorker();
}
