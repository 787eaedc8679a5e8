/**
 * `ptsim compare TRACE --config ...`: the same trace under several configurations, side by side.
 */

import type { Figures } from '../analysis/figures.js';
import { costOf } from '../analysis/frontier.js';
import {
  configGlibcNotes,
  configNotes,
  failureStatus,
  parseConfig,
  readConfigFile,
  replayConfigs,
  type Config,
} from './config.js';
import { defineCommand } from './command.js';
import { NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count, plural, scaledBytes } from './numbers.js';
import { IMPORT_HELP, IMPORT_OPTIONS } from './import-options.js';
import {
  SETTINGS_HELP,
  SETTINGS_OPTIONS,
  glibcRowName,
  parseGlibcList,
} from './settings-options.js';

const COMPARE_HELP = `Usage: ptsim compare TRACE --config SETTINGS [--config SETTINGS ...] [options]

Replays TRACE once per configuration (the default configuration always first) and prints one row
per configuration: peak, final and time-weighted mean RSS, heap and mmapped bytes, system calls by
kind and page faults: the memory-versus-CPU trade-off each setting makes. Configurations run in
parallel on worker threads; those that leave glibc in the same state once it has started (as
M_MMAP_THRESHOLD=131072 and M_TRIM_THRESHOLD=131072, which both fix the thresholds at 128 KiB)
share one replay, with the figures each would have on its own.

A configuration is one or more settings separated by spaces or commas:
  M_MMAP_THRESHOLD=131072         mallopt(M_MMAP_THRESHOLD, 131072) before the first event
  glibc.malloc.arena_max=2        a GLIBC_TUNABLES entry, added to the program's own
  MALLOC_TRIM_THRESHOLD_=0        an environment variable
  glibc=2.31                      the glibc release to model

Options:
  --config SETTINGS    a configuration (repeatable)
  --configs FILE       configurations from a JSON or YAML file: a list of strings, or of
                       { name, settings } objects
  --json               print the rows as JSON
  --jobs N             worker threads (default: the number of CPUs)
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

The settings options (--mallopt, --env, ...) apply to every configuration, the default included.
--glibc given more than once runs every configuration on each version, as in
  ptsim compare TRACE --glibc 2.31 --glibc 2.36
to see what an upgrade changes.
Memory is shown in the binary unit that suits each figure (B, KiB, MiB, GiB); --json gives bytes.

${exitStatusHelp({ replays: true })} The table is printed either way, each row covering the
events its replay reached.`;

interface CompareRow {
  name: string;
  figures: Figures;
}

function formatCompare(trace: string, rows: CompareRow[]): string {
  const head = [
    'configuration',
    'peak RSS',
    'final RSS',
    'mean RSS',
    'heap',
    'mmapped',
    'brk',
    'mmap',
    'munmap',
    'mremap',
    'mprot',
    'madvise',
    'faults',
  ];
  const body = rows.map((r) => {
    const f = r.figures;
    const sc = f.syscalls;
    return [
      r.name,
      scaledBytes(f.peakRss),
      scaledBytes(f.rss),
      scaledBytes(Math.round(f.meanRss)),
      scaledBytes(f.heapBytes),
      scaledBytes(f.mmappedBytes),
      count(sc.brk),
      count(sc.mmap),
      count(sc.munmap),
      count(sc.mremap),
      count(sc.mprotect),
      count(sc.madvise),
      count(f.pageFaults),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [
    `${trace}: ${plural(rows[0]?.figures.events ?? 0, 'event')}, ${plural(rows.length, 'configuration')}`,
    '',
    line(head),
    ...body.map(line),
  ];
  for (const r of rows) {
    const f = r.figures;
    if (f.failure !== undefined) out.push(`  ${r.name}: replay stopped early: ${f.failure}`);
    else if (f.abort !== undefined)
      out.push(
        `  ${r.name}: glibc would abort at event ${f.abort.event} (line ${f.abort.line}): ${f.abort.message}`,
      );
  }
  const best = [...rows].sort((a, b) => a.figures.rss - b.figures.rss)[0];
  if (best !== undefined && rows.length > 1) {
    out.push(
      '',
      `lowest final RSS: ${best.name} (${scaledBytes(best.figures.rss)}, ${plural(costOf(best.figures), 'system call and page fault', 'system calls and page faults')})`,
    );
  }
  return out.join('\n') + '\n';
}

export const compareCommand = defineCommand({
  name: 'compare',
  help: COMPARE_HELP,
  options: {
    config: { type: 'string', multiple: true, default: [] },
    configs: { type: 'string' },
    json: { type: 'boolean', default: false },
    jobs: { type: 'string' },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  progress: 'replaying configurations',
  async run({ values, positionals }, io) {
    const { out, warn, progress } = io;
    if (positionals.length !== 1 || positionals[0] === '-')
      throw new UsageError(
        'compare needs one TRACE file (not -: it is read once per configuration)',
      );
    let configs: Config[] = [{ name: 'default', settings: {} }];
    for (const c of values.config) configs.push(parseConfig(c));
    if (values.configs !== undefined) configs.push(...readConfigFile(values.configs));
    // Several --glibc: every configuration on each version, version by version.
    const versions = parseGlibcList(values.glibc);
    const base = { ...values, glibc: versions.length === 1 ? versions : [] };
    if (versions.length > 1)
      configs = versions.flatMap((v) =>
        configs.map((c) => ({
          name: c.name === 'default' ? glibcRowName(v) : `${glibcRowName(v)}: ${c.name}`,
          settings: { ...c.settings, glibc: c.settings.glibc ?? v },
        })),
      );
    const path = positionals[0]!;
    for (const n of configNotes(configs, base)) warn(n);
    for (const n of await configGlibcNotes(path, configs, base)) warn(n);
    const figs = await replayConfigs(path, configs, base, (d, t) => progress(d, t));
    const rows = configs.map((c, i) => ({ name: c.name, figures: figs[i]! }));
    if (figs.every((f) => f.events === 0 && f.failure === undefined)) warn(`${path}: ${NO_EVENTS}`);
    out(values.json ? JSON.stringify({ trace: path, rows }) + '\n' : formatCompare(path, rows));
    return failureStatus(rows, path, io);
  },
});
