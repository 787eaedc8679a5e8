/**
 * The ptsim command: its own --help and --version, and a thin dispatcher over the subcommands (each
 * declared with the skeleton of command.ts). A mistake on the command line ends in one line, a
 * pointer to the right --help, and exit status 2; anything else that escapes is a bug and keeps its
 * stack trace.
 */

import { readFileSync } from 'node:fs';
import type { Command, Print } from './command.js';
import { UsageError } from './errors.js';
import { modelledVersions } from './settings-options.js';

/**
 * The subcommands, each loaded when it is run: a command needs only its own part of ptsim, and
 * loading all of them would cost every command's start (a replay's among them) several times as
 * many modules.
 */
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  replay: async () => (await import('./replay-command.js')).replayCommand,
  explain: async () => (await import('./explain-command.js')).explainCommand,
  compare: async () => (await import('./compare-command.js')).compareCommand,
  sweep: async () => (await import('./sweep-command.js')).sweepCommand,
  report: async () => (await import('./report-command.js')).reportCommand,
  show: async () => (await import('./show-command.js')).showCommand,
  step: async () => (await import('./step-command.js')).stepCommand,
  web: async () => (await import('./web-command.js')).webCommand,
  record: async () => (await import('./record-command.js')).recordCommand,
  stats: async () => (await import('./stats-command.js')).statsCommand,
  convert: async () => (await import('./convert-command.js')).convertCommand,
};

const HELP = `Usage: ptsim COMMAND [options]

ptsim replays a recorded malloc trace through an exact model of glibc 2.36's allocator
(ptmalloc2, x86_64; other releases with --glibc) and shows where every resident page is, and why.

Commands:
  replay TRACE       replay a trace; print RSS, heap, mmapped bytes, mallinfo2, system calls
  explain TRACE      why resident memory stays high: where it is, what pins it, what would help
  compare TRACE      the same trace under several settings, side by side
  sweep TRACE        a grid of settings and its memory/CPU frontier
  report TRACE -o F  one self-contained HTML page: explanation, RSS charts, thresholds, heap map
  show TRACE [VIEW]  the heap, bins, tcache, arenas or maps at an event, as pwndbg shows them
  step TRACE         step through a trace, forwards and back, each step explained in a sentence
  web TRACE          the time-travel visualizer in the browser (--export DIR: a static copy)
  record -- CMD ...  run a program and record its malloc calls as a trace
  stats TRACE        what a trace holds: operations, threads, sizes, peak live bytes, lifetimes
  convert IN -o OUT  write a trace of any format ptsim reads as a native trace
(ptsim COMMAND --help for each command's options)

Options:
  -h, --help       show this help
  --version        show ptsim's version

Traces are ptsim's text format (docs/trace-format.md) or other tools' logs: mtrace, logalloc,
ltrace, heaptrack --raw, malloclab (docs/importing.md); gzip/zstd/xz/bzip2 are read as is.

On Linux, explain, report, compare and sweep on a trace of 16 MiB or more, replay on one of
256 MiB or more, and any of them on a binary trace that kept a million blocks live at once, run in
a second process of ptsim's with glibc's huge pages for its own memory (PTSIM_HUGE_PAGES=1: on any
trace of those commands, 0: never; README, "Big traces").`;

/** Runs `ptsim ARGV...`; returns the exit status. */
export async function ptsim(argv: string[], out: Print, err: Print): Promise<number> {
  const [name, ...rest] = argv;
  const load = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  let command: Command | undefined;
  try {
    switch (name) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(HELP + '\n');
        return name === undefined ? 2 : 0;
      case '--version': {
        const pkg = JSON.parse(
          readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
        ) as { version: string };
        out(
          `ptsim ${pkg.version} (models glibc 2.36 malloc, x86_64; with --glibc: ${modelledVersions()})\n`,
        );
        return 0;
      }
    }
    if (load === undefined) throw new UsageError(`unknown command '${name}'`);
    command = await load();
    return await command.run(rest, out, err);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err(`ptsim: ${e.message}\n`);
    err(`Try 'ptsim ${command !== undefined ? command.name + ' ' : ''}--help'.\n`);
    return 2;
  }
}
