/**
 * `ptsim replay TRACE`: replays a trace through the model and reports what glibc would have done.
 */

import { createWriteStream, type WriteStream } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { openTrace } from '../import/index.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs, type ImportArgs } from './import-options.js';
import { MALLOPT_PARAMS, type TraceEvent, type TraceHeader, type TraceSink } from '../trace/types.js';
import { ReplayError, Replayer, type EventRecord, type ReplayOptions, type ReplaySummary } from '../replay/replay.js';
import { resolveTunables } from '../core/tunables.js';
import { arenaReports } from '../core/stats.js';
import { formatSummary } from './format.js';
import { UsageError } from './errors.js';

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
  --mallopt NAME=VALUE call mallopt(NAME, VALUE) before the trace's first event; NAME is
                       M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST,
                       M_PERTURB, M_ARENA_MAX, M_ARENA_TEST or glibc's number (repeatable)
  --tunables STRING    the GLIBC_TUNABLES value the program runs with, for example
                       glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_count=0
  --env NAME=VALUE     a MALLOC_*_ environment variable the program runs with, for example
                       MALLOC_TRIM_THRESHOLD_=0 or MALLOC_ARENA_MAX=2 (repeatable)
  --ignore-trace-env   ignore the trace's own '# env' header lines
  --brk-base ADDR      the initial program break to simulate (default: the trace's '# start_brk'
                       if page-aligned, else 0x555555559000); only alignments above 4096 depend on it
  --cores N            the number of CPUs glibc sees, which sets its arena limit (8 x N arenas);
                       default: the trace's '# nprocs', else this machine's online CPUs
  --max-brk BYTES      the program break cannot grow more than BYTES (as when a mapping sits above
                       the heap): glibc then falls back to mmap
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
  options: ReplayOptions;
  tunables?: string;
  envOverrides: Array<[string, string]>;
  ignoreTraceEnv: boolean;
  brkBase?: number;
  cores?: number;
}

function parseNumber(text: string, what: string): number {
  const t = text.trim();
  const v = /^-?0x[0-9a-f]+$/i.test(t) ? (t.startsWith('-') ? -parseInt(t.slice(1), 16) : parseInt(t, 16)) : /^-?\d+$/.test(t) ? Number(t) : NaN;
  if (!Number.isFinite(v)) throw new UsageError(`${what}: '${text}' is not a number`);
  return v;
}

function splitAssignment(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${flag} takes NAME=VALUE, got '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export function parseMallopt(text: string): [number, number] {
  const [name, value] = splitAssignment(text, '--mallopt');
  let param: number;
  if (name in MALLOPT_PARAMS) param = MALLOPT_PARAMS[name]!;
  else if (/^-?\d+$/.test(name)) param = Number(name);
  else throw new UsageError(`--mallopt: unknown parameter '${name}' (known: ${Object.keys(MALLOPT_PARAMS).join(', ')})`);
  const v = parseNumber(value, `--mallopt ${name}`);
  if (v < -(2 ** 31) || v >= 2 ** 32) throw new UsageError(`--mallopt ${name}: ${value} does not fit in an int`);
  return [param, v];
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
      mallopt: { type: 'string', multiple: true, default: [] },
      tunables: { type: 'string' },
      env: { type: 'string', multiple: true, default: [] },
      'ignore-trace-env': { type: 'boolean', default: false },
      'brk-base': { type: 'string' },
      'max-brk': { type: 'string' },
      cores: { type: 'string' },
      check: { type: 'boolean', default: false },
      ...IMPORT_OPTIONS,
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? 'replay needs a TRACE file (- for standard input)' : `replay takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`);
  }
  const envOverrides = values.env.map((e) => splitAssignment(e, '--env'));
  for (const [name] of envOverrides) {
    if (name === 'GLIBC_TUNABLES') throw new UsageError('use --tunables STRING for GLIBC_TUNABLES');
  }
  const kernel: ReplayOptions['kernel'] = {};
  let brkBase: number | undefined;
  if (values['brk-base'] !== undefined) {
    brkBase = parseNumber(values['brk-base'], '--brk-base');
    if (brkBase <= 0 || brkBase >= 2 ** 47 || brkBase % 16 !== 0) throw new UsageError('--brk-base must be a 16-byte aligned user-space address');
  }
  if (values['max-brk'] !== undefined) kernel.maxBrk = parseNumber(values['max-brk'], '--max-brk');
  let cores: number | undefined;
  if (values.cores !== undefined) {
    cores = parseNumber(values.cores, '--cores');
    if (cores < 1 || cores > 1 << 20) throw new UsageError('--cores must be between 1 and 1048576');
  }
  return {
    trace: positionals[0]!,
    import: importArgs(values),
    events: values.events,
    json: values.json,
    stats: values.stats,
    info: values.info,
    tunables: values.tunables,
    envOverrides,
    ignoreTraceEnv: values['ignore-trace-env'],
    brkBase,
    cores,
    options: {
      mallopts: values.mallopt.map(parseMallopt),
      kernel,
      checkLevel: values.check ? 2 : 0,
    },
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

/** The environment the replayed program sees: the trace's header, then the command line's overrides. */
export function mergeEnv(header: TraceHeader | null, ignoreTraceEnv: boolean, tunables: string | undefined, overrides: Array<[string, string]>): Array<[string, string]> {
  const env = new Map<string, string>();
  if (header !== null && !ignoreTraceEnv) for (const [k, v] of header.env) env.set(k, v);
  if (tunables !== undefined) env.set('GLIBC_TUNABLES', tunables);
  for (const [k, v] of overrides) env.set(k, v);
  return [...env];
}

export async function replayCommand(argv: string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const args = parseReplayArgs(argv);
  if (args === 'help') {
    out(REPLAY_HELP + '\n');
    return 0;
  }
  const displayName = args.trace === '-' ? '<stdin>' : args.trace;
  const log = args.events !== undefined ? new EventLogWriter(args.events) : null;
  let replayer: Replayer | null = null;
  let header: TraceHeader | null = null;
  const warnings: string[] = [];
  const sink: TraceSink = {
    header(h: TraceHeader): void {
      header = h;
      const env = mergeEnv(h, args.ignoreTraceEnv, args.tunables, args.envOverrides);
      for (const note of resolveTunables(env).notes) warnings.push(`ptsim: warning: ${note.setting}: ${note.reason}`);
      const kernel = { ...args.options.kernel };
      const startBrk = h.facts.get('start_brk');
      if (args.brkBase !== undefined) kernel.brkBase = args.brkBase;
      else if (startBrk !== undefined && /^0x[0-9a-f]+$/i.test(startBrk) && parseInt(startBrk, 16) % 4096 === 0) kernel.brkBase = parseInt(startBrk, 16);
      replayer = new Replayer(displayName, {
        ...args.options,
        cores: args.cores ?? h.nprocs ?? cpus().length,
        kernel,
        env,
        onEvent: log === null ? undefined : (rec) => log.write(rec),
        onWarning: (m) => {
          if (warnings.length < 100) warnings.push(`ptsim: warning: ${m}`);
        },
      });
      replayer.header(h);
    },
    event(ev: TraceEvent): void {
      replayer!.event(ev);
    },
  };
  let failure: Error | null = null;
  try {
    await openTrace(args.trace, sink, {
      ...args.import,
      displayName,
      onWarning: (m) => {
        if (warnings.length < 100) warnings.push(`ptsim: warning: ${m}`);
      },
    });
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    failure = e;
  }
  await log?.close();
  for (const w of warnings) err(w + '\n');
  const r = replayer as Replayer | null;
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
  else out(formatSummary(displayName, summary, header, cores, arenas));
  if (args.stats) out(r.stats());
  if (args.info) out(r.info());
  if (summary.abort !== undefined) {
    err(`ptsim: glibc would abort at event ${summary.abort.event} (${displayName}:${summary.abort.line}): ${summary.abort.message}\n`);
    return 3;
  }
  return failure !== null ? 2 : 0;
}
