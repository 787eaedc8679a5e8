/**
 * The command-line options every command that reads a trace shares: --from, --strict and --pid,
 * checked here so that each command words its mistakes the same way.
 */

import { FORMATS, formatNamed, type TraceFormat } from '../import/index.js';
import { UsageError } from './errors.js';

/** The parseArgs declarations of the options. */
export const IMPORT_OPTIONS = {
  from: { type: 'string' },
  strict: { type: 'boolean', default: false },
  pid: { type: 'string' },
} as const;

/** The lines of --help that describe them. */
export const IMPORT_HELP = `  --from FORMAT        the trace's format: ${FORMATS.join(', ')}
                       (default: recognised from its first lines; see docs/importing.md)
  --strict             stop at the first oddity of a recorded log (a free of a pointer never
                       allocated, an address handed out twice) instead of reporting and skipping it
  --pid PID            logalloc logs: the process to read, as its pid is written in the log
                       (default: the first one in the log)`;

interface ImportArgs {
  from?: TraceFormat;
  strict: boolean;
  pid?: number;
}

/** The values of the options, checked. */
export function importArgs(values: { from?: string; strict?: boolean; pid?: string }): ImportArgs {
  let from: TraceFormat | undefined;
  if (values.from !== undefined) {
    from = formatNamed(values.from);
    if (from === undefined)
      throw new UsageError(
        `--from: unknown format '${values.from}' (known: ${FORMATS.join(', ')})`,
      );
  }
  let pid: number | undefined;
  if (values.pid !== undefined) {
    if (!/^\d+$/.test(values.pid.trim()))
      throw new UsageError(`--pid: '${values.pid}' is not a process id`);
    pid = Number(values.pid.trim());
  }
  return { from, strict: values.strict ?? false, pid };
}
