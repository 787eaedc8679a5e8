/**
 * `ptsim convert IN -o OUT`: writes a trace of any format ptsim reads as a native trace.
 */

import { resolve } from 'node:path';
import { openTrace } from '../import/index.js';
import { NativeTraceWriter } from '../import/native-writer.js';
import { symbolize } from '../import/symbolize.js';
import { SiteTable } from '../trace/site-table.js';
import { defineCommand } from './command.js';
import { NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count, plural } from './numbers.js';
import { OutputFile } from './output.js';
import { TraceStats } from '../stats/trace-stats.js';
import type { TraceSink } from '../trace/types.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';

export const CONVERT_HELP = `Usage: ptsim convert IN -o OUT [options]

Reads IN, a trace in any format ptsim reads (a native trace, text or binary, glibc's mtrace log,
Firefox's logalloc log, ltrace output, heaptrack raw data or a CS:APP malloclab trace; plain or
compressed with gzip, zstd, xz or bzip2; - reads standard input), and writes it as a native ptsim
trace (text, or binary with --binary). Reading OUT back gives exactly the events ptsim replays
from IN.

Options:
  -o, --output OUT     the native trace to write (- for standard output)
  --binary             write the binary form of the trace: about half the size of the text, and
                       read several times faster; every ptsim command reads it (line numbers in
                       its messages are IN's)
  --gzip               compress OUT with gzip
${IMPORT_HELP}
  -h, --help           show this help

Recorded logs have oddities (a free of a pointer the log never allocated, an address handed out
again before its free was logged by another thread); they are reported with their line and dealt
with as docs/importing.md describes, or stop the conversion with --strict.

A native trace is checked as a replay would read it: a free of a token the trace never allocated,
a token allocated again while live, or a #:touch record of a block that is not live or of a page
past its end, is a mistake (status 2), as it is for 'ptsim replay'.

${exitStatusHelp({ replays: false, outputs: '-o OUT' })}`;

export const convertCommand = defineCommand({
  name: 'convert',
  help: CONVERT_HELP,
  options: {
    output: { type: 'string', short: 'o' },
    gzip: { type: 'boolean', default: false },
    binary: { type: 'boolean', default: false },
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { err, warn, fail }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0
          ? 'convert needs an input trace IN (- for standard input)'
          : `convert takes one IN, got ${positionals.length}: ${positionals.join(' ')}`,
      );
    }
    if (values.output === undefined)
      throw new UsageError('convert needs -o OUT (- for standard output)');
    const input = positionals[0]!;
    const output = values.output;
    if (input !== '-' && output !== '-' && resolve(input) === resolve(output))
      throw new UsageError('convert cannot write over its input: give another -o OUT');
    const args = importArgs(values);
    const displayName = input === '-' ? '<stdin>' : input;

    // Options checked: a file is written beside its target and renamed into place at the end.
    const file = output === '-' ? null : OutputFile.open(output, '-o');
    const writer = new NativeTraceWriter(
      file === null ? process.stdout : file.fd,
      values.gzip,
      values.binary,
    );
    // The events a replay would stop at (a free of a token never allocated, ...) are found on the
    // way, as stats finds them.
    const check = new TraceStats();
    const sites = new SiteTable();
    const sink: TraceSink = {
      header: (h) => {
        writer.header(h);
        check.header(h);
      },
      event: (ev) => {
        writer.event(ev);
        check.event(ev);
      },
      // A recording's touch records and samples are kept in their places.
      touch: (rec) => {
        writer.touch(rec);
        check.touch(rec);
      },
      rss: (sample) => writer.rss(sample),
      // The reader waits while standard output is full.
      ready: () => writer.ready(),
      touchesIncomplete: (line, detail) => writer.touchesIncomplete(line, detail),
      recordsEnd: () => writer.recordsEnd(),
      // Call stacks, the mappings and the symbols are kept too.
      site: (rec) => {
        writer.site(rec);
        sites.add(rec);
      },
    };
    try {
      const r = await openTrace(input, sink, {
        ...args,
        displayName,
        onWarning: warn,
      });
      // Addresses the input left without symbols, in modules it listed (heaptrack's raw data):
      // looked up once, here, where the modules may be, and kept in the trace.
      const bare = sites.unsymbolized().filter((a) => sites.mappingOf(a) !== undefined);
      if (bare.length > 0) {
        const { symbols } = symbolize(bare, (a) => sites.mappingOf(a));
        for (const [addr, frames] of symbols) writer.site({ kind: 'sym', line: 0, addr, frames });
      }
      writer.close(r.lines);
      await writer.drained();
      const mistake = check.report().mistake;
      if (mistake !== undefined) {
        file?.discard();
        return fail(
          Object.assign(new Error(`${displayName}:${mistake.line}: ${mistake.detail}`), {
            name: 'ReplayError',
          }),
        );
      }
      file?.commit();
      const skipped = Object.entries(r.skipped).map(([what, n]) => `${count(n)} ${what}`);
      const target = output === '-' ? 'standard output' : output;
      if (r.events === 0) warn(`${displayName}: ${NO_EVENTS}`);
      err(
        `ptsim: converted ${plural(r.events, 'event')} from ${displayName} (${r.format}) to ${target}${values.binary ? ' (binary)' : ''}${values.gzip ? ' (gzip)' : ''}\n`,
      );
      if (skipped.length > 0) err(`ptsim: left out: ${skipped.join(', ')}\n`);
      return 0;
    } catch (e) {
      try {
        writer.close();
      } catch {
        // the error being reported matters more
      }
      file?.discard();
      const io = e as NodeJS.ErrnoException;
      // The reader of standard output went away (`ptsim convert ... -o - | head`): it has what it wanted.
      if (io.code === 'EPIPE' && output === '-') return 0;
      if (io.syscall === 'write') {
        err(`ptsim: cannot write ${output}: ${io.message}\n`);
        return 2;
      }
      throw e;
    }
  },
});
