/**
 * `ptsim replay TRACE`: replays a trace through the model and reports what glibc would have done.
 */

import { createWriteStream, type WriteStream } from 'node:fs';
import { parseArgs } from 'node:util';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs, type ImportArgs } from './import-options.js';
import { ReplayError, type EventRecord, type ReplaySummary } from '../replay/replay.js';
import { replayFile, type ReplaySettings } from '../replay/run-file.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsArgs } from './settings-options.js';
import { arenaReports } from '../core/stats.js';
import { formatSummary } from './format.js';
import { UsageError } from './errors.js';
import { TIMELINE_HELP, TIMELINE_OPTIONS, replayWithTimeline, timelineArgs, type TimelineRequest } from './timeline-options.js';

export const REPLAY_HELP = `Usage: ptsim replay TRACE [options]

Replays TRACE (a ptsim trace or another tool's log, see docs/importing.md; plain or compressed;
- reads standard input) through a model of
glibc 2.36's malloc on x86_64 and reports where the memory went: resident memory at the end and at
its peak, the heap, mmapped chunks, mallinfo2, system calls and page faults.

Options:
  --events FILE        write the fidelity log to FILE: one JSON object per event (- for stdout)
  --json               print the summary as one JSON object instead of text
  --stats              also print what malloc_stats() would print at the end
  --info               also print what malloc_info() would print at the end
${TIMELINE_HELP}
${SETTINGS_HELP}
  --check              check the heap's invariants after every event (slow; for debugging ptsim)
${IMPORT_HELP}
  -h, --help           show this help

Settings apply in glibc's order: the environment (GLIBC_TUNABLES, MALLOC_*_) when malloc
initialises, then --mallopt calls, then the trace's own mallopt lines. The trace's '# env' lines
form the environment unless overridden: --tunables replaces GLIBC_TUNABLES, --env replaces a
variable of the same name.

Exit status: 0 when the trace replayed to the end; 2 for a mistake in the trace or the command
line; 3 when glibc would have aborted (the message and event are reported, with the summary up to
that point).`;

interface ReplayArgs {
  trace: string;
  import: ImportArgs;
  events?: string;
  json: boolean;
  stats: boolean;
  info: boolean;
  settings: ReplaySettings;
  checkLevel: 0 | 2;
  timeline: TimelineRequest | null;
}

function parseReplayArgs(argv: string[]): ReplayArgs | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      events: { type: 'string' },
      json: { type: 'boolean', default: false },
      stats: { type: 'boolean', default: false },
      info: { type: 'boolean', default: false },
      ...TIMELINE_OPTIONS,
      ...SETTINGS_OPTIONS,
      check: { type: 'boolean', default: false },
      ...IMPORT_OPTIONS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'replay needs a TRACE file (- for standard input)' : `replay takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`);
  }
  return {
    trace: positionals[0]!,
    import: importArgs(values),
    events: values.events,
    json: values.json,
    stats: values.stats,
    info: values.info,
    settings: settingsArgs(values),
    checkLevel: values.check ? 2 : 0,
    timeline: timelineArgs(values),
  };
}

/** Buffered writer of the fidelity log. */
class EventLogWriter {
  private buf = '';
  private readonly out: WriteStream | NodeJS.WriteStream;
  constructor(path: string) {
    this.out = path === '-' ? process.stdout : createWriteStream(path);
  }
  write(rec: EventRecord): void {
    let line = `{"i":${rec.i},"op":"${rec.op}","tid":${rec.tid}`;
    if (rec.ptr === null) line += ',"ptr":null';
    else if (rec.arena !== undefined) line += `,"arena":${rec.arena},"heap":${rec.heap},"off":${rec.off},"usable":${rec.usable}`;
    this.buf += `${line},"brk":${rec.brk}}\n`;
    if (this.buf.length > 1 << 20) this.flush();
  }
  flush(): void {
    if (this.buf.length > 0) this.out.write(this.buf);
    this.buf = '';
  }
  async close(): Promise<void> {
    this.flush();
    if (this.out === process.stdout) return;
    await new Promise<void>((resolve, reject) => (this.out as WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

export async function replayCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const args = parseReplayArgs(argv);
  if (args === 'help') {
    out(REPLAY_HELP + '\n');
    return 0;
  }
  const displayName = args.trace === '-' ? '<stdin>' : args.trace;
  const log = args.events !== undefined ? new EventLogWriter(args.events) : null;
  const warnings: string[] = [];
  const warn = (m: string): void => {
    if (warnings.length < 100) warnings.push(`ptsim: warning: ${m}`);
  };
  const run = await replayWithTimeline(args.timeline, (observe) =>
    replayFile(args.trace, {
      ...args.settings,
      import: args.import,
      displayName,
      checkLevel: args.checkLevel,
      onEvent: log === null ? undefined : (rec) => log.write(rec),
      onWarning: warn,
      observe,
    }),
  );
  for (const n of run.notes) warnings.unshift(`ptsim: warning: ${n}`);
  const header = run.header;
  const failure = run.failure;
  await log?.close();
  for (const w of warnings) err(w + '\n');
  const r = run.replayer;
  if (failure !== null) {
    const known = failure instanceof ReplayError || failure.name === 'TraceSyntaxError' || failure.name === 'TraceReadError';
    if (!known) throw failure;
    err(`ptsim: ${failure.message}\n`);
    if (r !== null) err(`ptsim: replay stopped; the summary below covers the ${r.finish().events} events before it\n`);
  }
  if (r === null) return failure !== null ? 2 : 0;
  const summary: ReplaySummary = r.finish();
  const arenas = arenaReports(r.process);
  const cores = r.process.ncores;
  if (args.json) out(JSON.stringify({ ...summary, cores, arenas }) + '\n');
  else out(formatSummary(displayName, summary, header, cores, arenas, r.process.mp.arenaMax, r.process.mp.arenaTest));
  if (args.stats) out(r.stats());
  if (args.info) out(r.info());
  if (summary.abort !== undefined) {
    err(`ptsim: glibc would abort at event ${summary.abort.event} (${displayName}:${summary.abort.line}): ${summary.abort.message}\n`);
    return 3;
  }
  return failure !== null ? 2 : 0;
}
