/**
 * `ptsim record [-o FILE] [--binary] [--gzip] -- COMMAND ARGS...`: runs a program under ptsim's malloc recorder
 * and writes its calls as a trace for `ptsim replay`.
 */

import { basename, isAbsolute, relative, resolve } from 'node:path';
import { buildRecorder, RecorderBuildError } from '../record/build.js';
import {
  mostlyOutsideMalloc,
  recordProgram,
  sideDirectory,
  SpawnError,
  TraceWriteError,
  type RecordedTrace,
} from '../record/session.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';
import { plural } from './numbers.js';

/** Frames of a call stack by default, and at most (the recorder's limit). */
const DEFAULT_STACK_DEPTH = 64;
const MAX_STACK_DEPTH = 256;

export const RECORD_HELP = `Usage: ptsim record [-o FILE] [--binary] [--gzip] [--no-children] [--no-touches] [--rss-every WHEN] [--stacks[=DEPTH]] [--free-stacks] [--] COMMAND [ARGS...]

Runs COMMAND with ptsim's recorder loaded (LD_PRELOAD) and writes every malloc, calloc, realloc,
free, memalign, aligned_alloc, posix_memalign, valloc, pvalloc, malloc_trim and mallopt call it
makes, from every thread, in the order glibc ran them, as a trace for 'ptsim replay'. The recorder
is a small C library built with the system's C compiler (cc, or $CC) on first use and cached in
$XDG_CACHE_HOME/ptsim (default ~/.cache/ptsim).

Options:
  -o, --output FILE   write the trace to FILE (default: COMMAND's name + .trace, or .trace.gz;
                      with --binary, .ptb or .ptb.gz)
  --binary            write the traces in ptsim's binary form: about half the size of the text,
                      read several times faster, and read by every ptsim command
  --gzip              compress the trace with gzip (implied by a FILE ending in .gz)
  --no-children       record only COMMAND's process (and the programs it execs), not its children
  --no-touches        record only the calls: not which pages of each block of 4096 bytes or more
                      the program made resident, nor samples of the process's resident memory
  --rss-every WHEN    when to sample the process's resident memory (and record the pages large
                      blocks gained since): a time (100ms, 2s), a number of allocator calls
                      (50000), both (100ms,50000: whichever comes first), or off (only at the
                      start, at the end and where the program calls ptsim_mark); default
                      100ms,50000, stretched so that sampling takes at most 1% of the time
  --stacks[=DEPTH]    record the call stack (up to DEPTH frames, default ${DEFAULT_STACK_DEPTH}, at most
                      ${MAX_STACK_DEPTH}) of every allocating call, and add the functions, files and
                      lines of its addresses to the trace at the end (with addr2line or
                      llvm-symbolizer); each distinct stack is written once
  --free-stacks       with --stacks, the call stacks of free calls too
  -q, --quiet         do not report what was recorded
  -h, --help          show this help

Processes: FILE is the trace of the last program COMMAND's process ran (a wrapper script that
execs the real program ends up with the real program's trace). Every other process image gets
a trace of its own in the directory FILE.d: a forked child's (FILE.d/PID.trace, or PID.ptb with
--binary) starts with its parent's trace up to the fork, so that it replays as the process it
is, and a child that makes no allocator call (fork, then exec) writes none; a program started
with exec has a fresh heap and a fresh trace (FILE.d/PID.N.trace for the N-th program of process
PID). Statically linked and setuid programs cannot be recorded.

When COMMAND ends, ptsim record reports the events recorded and the files written (on standard
error; COMMAND's own output passes through untouched), and says so when most of the memory the
process gained did not come from malloc (CPython's own allocator, say), which a trace cannot show.

Exit status: COMMAND's own, or 128+N when signal N killed it; 125 when ptsim record itself
failed (no C compiler, say), 126 when COMMAND cannot be run, 127 when it is not found; 2 for a
mistake on the command line.`;

/** Other process images listed by name in the report; the rest are counted. */
const MAX_LISTED = 12;

/**
 * Options end at `--` or at the first argument that is not an option, as with env or time.
 * `--stacks` without a value takes the default depth (its value can only be given with `=`).
 */
function splitCommand(argv: string[]): { options: string[]; rest: string[] } {
  const options = (o: string[]): string[] =>
    o.map((a) => (a === '--stacks' ? `--stacks=${DEFAULT_STACK_DEPTH}` : a));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { options: options(argv.slice(0, i)), rest: argv.slice(i + 1) };
    if (!a.startsWith('-') || a === '-')
      return { options: options(argv.slice(0, i)), rest: argv.slice(i) };
    if (a === '-o' || a === '--output' || a === '--rss-every') i++; // its value may look like anything
  }
  return { options: options(argv), rest: [] };
}

/** --stacks=DEPTH: a depth from 1 to MAX_STACK_DEPTH. */
function parseStackDepth(spec: string): number {
  if (!/^[0-9]+$/.test(spec) || Number(spec) < 1 || Number(spec) > MAX_STACK_DEPTH)
    throw new UsageError(
      `--stacks=${spec}: the depth must be a number of frames from 1 to ${MAX_STACK_DEPTH}`,
    );
  return Number(spec);
}

/** The largest settings --rss-every takes: a day, and 10^12 calls. */
const MAX_EVERY_MS = 86_400_000;
const MAX_EVERY_CALLS = 1e12;

/**
 * --rss-every: `100ms`, `2s`, `50000` (allocator calls), both separated by a comma, or `off`. Returns
 * the recorder's form, `MSms,CALLS` (either part may be missing) or `off`.
 */
function parseRssEvery(spec: string): string {
  const parts = spec.split(',').map((p) => p.trim());
  if (parts.length === 1 && parts[0] === 'off') return 'off';
  let ms: number | undefined;
  let calls: number | undefined;
  for (const part of parts) {
    const time = /^(\d+)(ms|s)$/.exec(part);
    if (time !== null) {
      if (ms !== undefined) throw new UsageError(`--rss-every ${spec}: two times`);
      ms = Number(time[1]) * (time[2] === 's' ? 1000 : 1);
      if (ms < 1 || ms > MAX_EVERY_MS)
        throw new UsageError(`--rss-every ${spec}: the time must be from 1ms to 24 hours`);
    } else if (/^\d+$/.test(part)) {
      if (calls !== undefined) throw new UsageError(`--rss-every ${spec}: two numbers of calls`);
      calls = Number(part);
      if (calls < 1 || calls > MAX_EVERY_CALLS)
        throw new UsageError(`--rss-every ${spec}: the number of calls must be from 1 to 10^12`);
    } else {
      throw new UsageError(
        `--rss-every ${spec}: '${part}' is neither a time (100ms, 2s) nor a number of allocator calls (50000)` +
          (parts.length === 1 ? ', nor off' : ''),
      );
    }
  }
  return [ms !== undefined ? `${ms}ms` : '', calls !== undefined ? String(calls) : '']
    .filter((p) => p !== '')
    .join(',');
}

function mib(n: number): string {
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

/**
 * Most of what the process gained did not go through malloc: says so, and how to send it there
 * when the program is one whose switch we know.
 */
function outsideMallocNote(t: RecordedTrace, env: NodeJS.ProcessEnv): string | undefined {
  const share = t.rss === undefined ? undefined : mostlyOutsideMalloc(t.rss);
  if (share === undefined) return undefined;
  const name = basename(t.exe);
  let note =
    `ptsim record: ${name}'s anonymous memory grew by ${mib(share.growth)} to its peak, of which glibc's ` +
    `heaps and mmapped chunks held ${mib(share.heap)}: most of it did not come from malloc, so the trace ` +
    'explains only a part of the process.\n';
  if (/^python[0-9.]*$/.test(name) && env['PYTHONMALLOC'] !== 'malloc') {
    note +=
      '  CPython keeps objects of up to 512 bytes in its own allocator (pymalloc); record it with ' +
      'PYTHONMALLOC=malloc to send every object through malloc.\n';
  } else {
    note +=
      '  The program gets its memory some other way: an allocator of its own or linked in statically ' +
      '(jemalloc, tcmalloc, mimalloc, a pool), or mmap. If it has a switch that sends its allocations to ' +
      'malloc (an environment variable or a build option), record it with that.\n';
  }
  return note;
}

/** A path as the user would type it: relative to the current directory when below it. */
function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r !== '' && !r.startsWith('..') && !isAbsolute(r) ? r : path;
}

/** What the call stacks of a trace came to. */
function stackSummary(s: NonNullable<RecordedTrace['symbols']>): string {
  const what = `${plural(s.stacks, 'call stack')}, ${plural(s.addresses, 'address', 'addresses')}`;
  if (s.stacks === 0) return 'no call stack';
  if (s.symbolizer === null)
    return `${what} not symbolized: neither addr2line (binutils) nor llvm-symbolizer is installed`;
  return s.unknown === 0 ? `${what} symbolized` : `${what} (${s.unknown} without symbols)`;
}

function describe(t: RecordedTrace): string {
  const parts = [`pid ${t.pid}`, t.exe];
  if (t.forkedFrom !== undefined)
    parts.push(
      `forked from pid ${t.forkedFrom}; its first ${plural(t.inherited, 'event')} are the parent's`,
    );
  if (t.symbols !== undefined) parts.push(stackSummary(t.symbols));
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
    binary: { type: 'boolean', default: false },
    'no-children': { type: 'boolean', default: false },
    'no-touches': { type: 'boolean', default: false },
    'rss-every': { type: 'string' },
    stacks: { type: 'string' },
    'free-stacks': { type: 'boolean', default: false },
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
    const rssEvery =
      values['rss-every'] === undefined ? undefined : parseRssEvery(values['rss-every']);
    if (rssEvery !== undefined && values['no-touches'])
      throw new UsageError(
        '--rss-every and --no-touches do not go together: --no-touches takes no samples',
      );
    const stacks = values.stacks === undefined ? undefined : parseStackDepth(values.stacks);
    if (values['free-stacks'] && stacks === undefined)
      throw new UsageError('--free-stacks goes with --stacks: it adds the stacks of free calls');
    const [command, ...commandArgs] = rest as [string, ...string[]];
    const gzip = values.gzip || (values.output?.endsWith('.gz') ?? false);
    const output =
      values.output ??
      `${basename(command)}.${values.binary ? 'ptb' : 'trace'}${gzip ? '.gz' : ''}`;

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
        binary: values.binary,
        children: !values['no-children'],
        touches: !values['no-touches'],
        ...(rssEvery !== undefined ? { rssEvery } : {}),
        ...(stacks !== undefined ? { stacks, freeStacks: values['free-stacks'] } : {}),
        library,
        forwardSignals: true,
      });
    } catch (e) {
      if (e instanceof SpawnError) {
        err(`ptsim: ${e.message}\n`);
        return e.code === 'ENOENT' ? 127 : 126;
      }
      if (e instanceof TraceWriteError) {
        err(`ptsim: ${e.message}\n`);
        return 125;
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
        const note = outsideMallocNote(main, process.env);
        if (note !== undefined) err(note);
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
        for (const t of listed) {
          const share = t.rss === undefined ? undefined : mostlyOutsideMalloc(t.rss);
          const outside =
            share === undefined
              ? ''
              : `; ${mib(share.outside)} of its ${mib(share.growth)} of growth did not come from malloc`;
          err(
            `  ${basename(t.file).padEnd(width)}  ${plural(t.events, 'event').padStart(14)}  ${describe(t)}${outside}\n`,
          );
        }
        if (others.length > listed.length) err(`  ... and ${others.length - listed.length} more\n`);
      }
    }
    return result.exitCode;
  },
});
