/**
 * `ptsim report TRACE -o report.html`: the explanation, the timelines of several configurations,
 * the threshold history and the heap map, as one HTML file that opens without a network.
 */

import { DEFAULT_TIMELINE_SAMPLES } from '../analysis/timeline.js';
import { renderReport } from '../report/html.js';
import { buildReport, type ReportConfig } from '../report/report.js';
import { parseConfig, readConfigFile, withConfig } from './config.js';
import { defineCommand } from './command.js';
import { GlibcAborted, NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count } from './numbers.js';
import { OutputFile } from './output.js';
import { configGlibcNotes, configNotes } from './config.js';
import { freeAtEvents, parseMoment, siteView } from './explain-command.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import {
  SETTINGS_HELP,
  SETTINGS_OPTIONS,
  glibcRowName,
  parseGlibcList,
  parseNumber,
  settingsArgs,
} from './settings-options.js';

const REPORT_HELP = `Usage: ptsim report TRACE -o FILE.html [options]

Writes one self-contained HTML page about TRACE (it needs no network to open): the explanation of
ptsim explain at one moment, RSS over time for the default configuration and each --config, the
mmap and trim threshold history on the same time axis, and a map of the heap at that moment, with
each chunk coloured by its state and the chunks that pin each heap marked. For a trace with call
stacks, also a flame graph of the resident memory by allocation site and cause at the moment
explained, the end, the peak and moments along the timeline, and the top sites over time.

Options:
  -o, --output FILE    the HTML file to write (required)
  --config SETTINGS    a configuration to chart beside the default one (repeatable), for example
                       "M_MMAP_THRESHOLD=131072", "glibc.malloc.arena_max=2 MALLOC_TRIM_THRESHOLD_=0"
  --configs FILE       configurations from a JSON or YAML file (as for ptsim compare)
  --at WHEN            the moment explained and mapped: end (default), peak or an event index
  --samples K          samples per configuration's timeline (default ${DEFAULT_TIMELINE_SAMPLES}); the peak and the
                       last event are always among them
  --no-what-if         skip replaying the remedies (faster)
  --free-at EVENT      also try each pin freed right after event EVENT (repeatable), as explain does
  --wrappers LIST      more allocator wrappers to skip to their caller in a trace with call stacks,
                       comma-separated, as explain takes them
  --jobs N             worker threads for the configurations and remedies (default: the CPUs)
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

The settings options (--mallopt, --env, ...) apply to every configuration, the default included;
the explanation and the heap map are of the default configuration. --glibc given more than once,
or as a list (--glibc 2.31,2.41), charts every configuration on each version; the first version's
default configuration is the one explained and mapped.

${exitStatusHelp({ replays: true, outputs: '-o FILE.html' })}`;

/** The settings options as typed, for the page's header. */
function describeSettings(argv: string[]): string {
  const names = new Set(Object.keys(SETTINGS_OPTIONS).map((k) => `--${k}`));
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag] = a.split('=', 1);
    if (!names.has(flag!)) continue;
    const takesValue =
      (SETTINGS_OPTIONS as Record<string, { type: string }>)[flag!.slice(2)]!.type === 'string';
    if (a.includes('=') || !takesValue) out.push(a);
    else out.push(`${a} ${argv[++i] ?? ''}`);
  }
  return out.join(' ');
}

export const reportCommand = defineCommand({
  name: 'report',
  help: REPORT_HELP,
  options: {
    output: { type: 'string', short: 'o' },
    config: { type: 'string', multiple: true, default: [] },
    configs: { type: 'string' },
    at: { type: 'string' },
    samples: { type: 'string' },
    'no-what-if': { type: 'boolean', default: false },
    'free-at': { type: 'string', multiple: true, default: [] },
    wrappers: { type: 'string', multiple: true, default: [] },
    jobs: { type: 'string' },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  progress: 'replaying configurations',
  async run({ values, positionals, argv }, io) {
    if (positionals.length !== 1) throw new UsageError('report needs one TRACE file');
    const path = positionals[0]!;
    if (path === '-')
      throw new UsageError('report reads the trace several times: give a file, not -');
    if (values.output === undefined)
      throw new UsageError('report needs -o FILE.html, the page to write');
    let configs: ReportConfig[] = values.config.map((c) => parseConfig(c));
    if (values.configs !== undefined) configs.push(...readConfigFile(values.configs));
    // Several --glibc: every configuration on each version; the first version's default is the
    // one explained and mapped.
    const versions = parseGlibcList(values.glibc);
    const several = versions.length > 1;
    const onVersion = (v: string, withDefault: boolean): ReportConfig[] => [
      ...(withDefault ? [{ name: glibcRowName(v), settings: { glibc: v } }] : []),
      ...configs.map((c) => ({
        name: `${glibcRowName(v)}: ${c.name}`,
        settings: { ...c.settings, glibc: c.settings.glibc ?? v },
      })),
    ];
    if (several) configs = versions.flatMap((v, k) => onVersion(v, k > 0));
    const one = { ...values, glibc: versions.slice(0, 1) };
    const samples =
      values.samples !== undefined
        ? parseNumber(values.samples, '--samples')
        : DEFAULT_TIMELINE_SAMPLES;
    if (samples < 4) throw new UsageError('--samples must be at least 4');
    const jobs = values.jobs !== undefined ? parseNumber(values.jobs, '--jobs') : undefined;
    if (jobs !== undefined && jobs < 1) throw new UsageError('--jobs must be 1 or more');
    const settings = settingsArgs(one);
    const imports = importArgs(values);
    const at = values.at !== undefined ? parseMoment(values.at) : 'end';
    // Said on the page too: the settings glibc ignores, and what the versions modelled are.
    const notes = [...configNotes(configs, one), ...(await configGlibcNotes(path, configs, one))];
    for (const n of notes) io.warn(n);
    // Options checked: the page is written beside its target and renamed into place at the end,
    // so that a failed run leaves a file already there as it was.
    const page = OutputFile.open(values.output, '-o');
    let status = 0;
    try {
      const data = await buildReport(path, {
        import: imports,
        base: settings,
        configs,
        ...(several ? { defaultName: glibcRowName(versions[0]!) } : {}),
        combine: withConfig,
        at,
        timeline: { samples },
        whatIfs: !values['no-what-if'],
        freeAt: freeAtEvents(values['free-at']),
        wrappers: siteView(undefined, values.wrappers).wrappers,
        parallel: jobs,
        progress: (what, d, t) => io.progress(d, t, what),
        settingsNotes: notes,
      });
      for (const c of data.configs.slice(1))
        if (c.failure !== undefined) status = io.fail(traceMistake(c.failure, c.name));
      if (status === 0) {
        const html = renderReport(data, describeSettings(argv));
        page.write(html);
        page.commit();
        if (data.events === 0) io.warn(`${path}: ${NO_EVENTS}`);
        io.out(
          `${values.output}: report on ${path} written (${count(Math.round(html.length / 1024))} KiB)\n`,
        );
      }
      const abort = data.explanation.abort;
      if (status === 0 && abort !== undefined) throw new GlibcAborted(path, abort);
    } finally {
      page.discard();
    }
    return status;
  },
});

/** A configuration's trace mistake, as the skeleton reports one. */
function traceMistake(message: string, config: string): Error {
  return Object.assign(new Error(`${config}: ${message}`), { name: 'ReplayError' });
}
