#!/usr/bin/env node
/**
 * The ptsim command: a thin dispatcher over the subcommands. User mistakes end in one clear line
 * and exit status 2; anything else that escapes is a bug and keeps its stack trace.
 */

import { readFileSync } from 'node:fs';
import { REPLAY_HELP, replayCommand } from './replay-command.js';
import { UsageError, isTraceMistake } from './errors.js';
import { CONVERT_HELP, convertCommand } from './convert-command.js';
import { STATS_HELP, statsCommand } from './stats-command.js';
import { RECORD_HELP, recordCommand } from './record-command.js';
import { EXPLAIN_HELP, explainCommand } from './explain-command.js';
import { COMPARE_HELP, compareCommand } from './compare-command.js';
import { SWEEP_HELP, sweepCommand } from './sweep-command.js';
import { REPORT_HELP, reportCommand } from './report-command.js';

const HELP = `Usage: ptsim COMMAND [options]

ptsim replays a recorded malloc trace through an exact model of glibc 2.36's allocator
(ptmalloc2, x86_64) and shows where every resident page is, and why.

Commands:
  replay TRACE       replay a trace; print RSS, heap, mmapped bytes, mallinfo2, system calls
  explain TRACE      why resident memory stays high: where it is, what pins it, what would help
  compare TRACE      the same trace under several settings, side by side
  sweep TRACE        a grid of settings and its memory/CPU frontier
  report TRACE -o F  one self-contained HTML page: explanation, RSS charts, thresholds, heap map
  record -- CMD ...  run a program and record its malloc calls as a trace
  stats TRACE        what a trace holds: operations, threads, sizes, peak live bytes, lifetimes
  convert IN -o OUT  write a trace of any format ptsim reads as a native trace
(ptsim COMMAND --help for each command's options)

Options:
  -h, --help       show this help
  --version        show ptsim's version

Traces are ptsim's text format (docs/trace-format.md) or other tools' logs: mtrace, logalloc,
ltrace, heaptrack --raw, malloclab (docs/importing.md); gzip/zstd/xz/bzip2 are read as is.`;

export async function main(argv: string[]): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const err = (s: string): void => void process.stderr.write(s);
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        out(HELP + '\n');
        return cmd === undefined ? 2 : 0;
      case '--version': {
        const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
        out(`ptsim ${pkg.version} (models glibc 2.36 malloc, x86_64)\n`);
        return 0;
      }
      case 'replay':
        return await replayCommand(rest, out, err);
      case 'explain':
        return await explainCommand(rest, out, err);
      case 'compare':
        return await compareCommand(rest, out, err);
      case 'sweep':
        return await sweepCommand(rest, out, err);
      case 'report':
        return await reportCommand(rest, out, err);
      case 'record':
        return await recordCommand(rest, out, err);
      case 'stats':
        return await statsCommand(rest, out, err);
      case 'convert':
        return await convertCommand(rest, out, err);
      default:
        throw new UsageError(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      err(`ptsim: ${e.message}\n`);
      err(`Try 'ptsim ${cmd !== undefined && ['replay', 'explain', 'compare', 'sweep', 'report', 'record', 'stats', 'convert'].includes(cmd) ? cmd + ' ' : ''}--help'.\n`);
      return 2;
    }
    // A trace mistake that a command did not report itself.
    if (isTraceMistake(e)) {
      err(`ptsim: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

export { REPLAY_HELP, STATS_HELP, CONVERT_HELP, RECORD_HELP, EXPLAIN_HELP, COMPARE_HELP, SWEEP_HELP, REPORT_HELP };

process.exitCode = await main(process.argv.slice(2));
