/**
 * `ptsim record [-o FILE] [--gzip] -- COMMAND ARGS...`: runs a program under ptsim's malloc recorder
 * and writes its calls as a trace for `ptsim replay`.
 */

import { basename, isAbsolute, relative, resolve } from 'node:path';
import { buildRecorder, RecorderBuildError } from '../record/build.js';
import { recordProgram, sideDirectory, SpawnError, type RecordedTrace } from '../record/session.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';
import { plural } from './numbers.js';

export const RECORD_HELP = `Usage: ptsim record [-o FILE] [--gzip] [--no-children] [--] COMMAND [ARGS...]

Runs COMMAND with ptsim's recorder loaded (LD_PRELOAD) and writes every malloc, calloc, realloc,
free, memalign, aligned_alloc, posix_memalign, valloc, pvalloc, malloc_trim and mallopt call it
makes, from every thread, in the order glibc ran them, as a trace for 'ptsim replay'. The recorder
is a small C library built with the system's C compiler (cc, or $CC) on first use and cached in
$XDG_CACHE_HOME/ptsim (default ~/.cache/ptsim).

Options:
  -o, --output FILE   write the trace to FILE (default: COMMAND's name + .trace, or .trace.gz)
  --gzip              compress the trace with gzip (implied by a FILE ending in .gz)
  --no-children       record only COMMAND's process (and the programs it execs), not its children
  -q, --quiet         do not report what was recorded
  -h, --help          show this help

Processes: FILE is the trace of the last program COMMAND's process ran (a wrapper script that
execs the real program ends up with the real program's trace). Every other process image gets
a trace of its own in the directory FILE.d: a forked child's (FILE.d/PID.trace) starts with its
parent's trace up to the fork, so that it replays as the process it is, and a child that makes
no allocator call (fork, then exec) writes none; a program started with exec has a fresh heap
and a fresh trace (FILE.d/PID.N.trace for the N-th program of process PID). Statically linked
and setuid programs cannot be recorded.

When COMMAND ends, ptsim record reports the events recorded and the files written (on standard
error; COMMAND's own output passes through untouched).

Exit status: COMMAND's own, or 128+N when signal N killed it; 125 when ptsim record itself
failed (no C compiler, say), 126 when COMMAND cannot be run, 127 when it is not found; 2 for a
mistake on the command line.`;

/** Other process images listed by name in the report; the rest are counted. */
const MAX_LISTED = 12;

/** Options end at `--` or at the first argument that is not an option, as with env or time. */
function splitCommand(argv: string[]): { options: string[]; rest: string[] } {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { options: argv.slice(0, i), rest: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') return { options: argv.slice(0, i), rest: argv.slice(i) };
    if (a === '-o' || a === '--output') i++; // its value may look like anything
  }
  return { options: argv, rest: [] };
}

/** A path as the user would type it: relative to the current directory when below it. */
function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r !== '' && !r.startsWith('..') && !isAbsolute(r) ? r : path;
}

function describe(t: RecordedTrace): string {
  const parts = [`pid ${t.pid}`, t.exe];
  if (t.forkedFrom !== undefined)
    parts.push(
      `forked from pid ${t.forkedFrom}; its first ${plural(t.inherited, 'event')} are the parent's`,
    );
  if (t.ending === 'exec') parts.push('then exec');
  else if (t.ending.startsWith('signal')) parts.push(`killed by ${t.ending}`);
  else if (t.ending === 'incomplete')
    parts.push('incomplete: killed without a chance to flush, or still running');
  return parts.join(', ');
}

export const recordCommand = defineCommand({
  name: 'record',
  help: RECORD_HELP,
  options: {
    output: { type: 'string', short: 'o' },
    gzip: { type: 'boolean', default: false },
    'no-children': { type: 'boolean', default: false },
    quiet: { type: 'boolean', short: 'q', default: false },
  },
  positionals: false,
  split: splitCommand,
  async run({ values, rest }, { err }) {
    if (rest.length === 0)
      throw new UsageError(
        'record needs a COMMAND to run, for example: ptsim record -o out.trace -- ls -l',
      );
    if (values.output !== undefined && (values.output === '' || values.output === '-')) {
      throw new UsageError('record writes its trace to a file: give -o FILE');
    }
    const [command, ...commandArgs] = rest as [string, ...string[]];
    const gzip = values.gzip || (values.output?.endsWith('.gz') ?? false);
    const output = values.output ?? `${basename(command)}.trace${gzip ? '.gz' : ''}`;

    let library: string;
    try {
      library = buildRecorder();
    } catch (e) {
      if (!(e instanceof RecorderBuildError)) throw e;
      err(`ptsim: ${e.message}\n`);
      return 125;
    }
    let result;
    try {
      result = await recordProgram({
        command,
        args: commandArgs,
        output,
        gzip,
        children: !values['no-children'],
        library,
        forwardSignals: true,
      });
    } catch (e) {
      if (e instanceof SpawnError) {
        err(`ptsim: ${e.message}\n`);
        return e.code === 'ENOENT' ? 127 : 126;
      }
      const code = (e as NodeJS.ErrnoException).code;
      if (
        code === 'EACCES' ||
        code === 'ENOENT' ||
        code === 'EROFS' ||
        code === 'ENOSPC' ||
        code === 'ENOTDIR'
      ) {
        err(`ptsim: cannot write the trace ${output}: ${(e as Error).message}\n`);
        return 125;
      }
      throw e;
    }
    if (!values.quiet) {
      const main = result.traces.find((t) => t.main);
      const others = result.traces.filter((t) => !t.main);
      if (main !== undefined) {
        err(
          `ptsim record: ${plural(main.events, 'event')} recorded in ${shown(main.file)} (${describe(main)})\n`,
        );
      } else if (result.signal !== null) {
        err(
          `ptsim record: ${command} was killed by ${result.signal} before its recorder wrote any ` +
            `of its calls; no trace written to ${output}\n`,
        );
      } else {
        err(
          `ptsim record: ${command} made no allocator call that could be recorded ` +
            '(a statically linked or setuid program cannot be recorded with LD_PRELOAD); no trace written to ' +
            `${output}\n`,
        );
      }
      if (others.length > 0) {
        err(
          `ptsim record: ${plural(others.length, 'other process image')} recorded in ${shown(sideDirectory(resolve(output)))}:\n`,
        );
        const listed = others.slice(0, MAX_LISTED);
        const width = Math.max(...listed.map((t) => basename(t.file).length));
        for (const t of listed)
          err(
            `  ${basename(t.file).padEnd(width)}  ${plural(t.events, 'event').padStart(14)}  ${describe(t)}\n`,
          );
        if (others.length > listed.length) err(`  ... and ${others.length - listed.length} more\n`);
      }
    }
    return result.exitCode;
  },
});
