/**
 * `ptsim compare TRACE --config ...`: the same trace under several configurations, side by side.
 */

import type { Figures } from '../analysis/figures.js';
import { costOf } from '../analysis/frontier.js';
import { parseConfig, readConfigFile, replayConfigs, type Config } from './config.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS } from './import-options.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS } from './settings-options.js';

const COMPARE_HELP = `Usage: ptsim compare TRACE --config SETTINGS [--config SETTINGS ...] [options]

Replays TRACE once per configuration (the default configuration always first) and prints one row
per configuration: peak, final and time-weighted mean RSS, heap and mmapped bytes, system calls by
kind and page faults: the memory-versus-CPU trade-off each setting makes. Configurations run in
parallel on worker threads.

A configuration is one or more settings separated by spaces or commas:
  M_MMAP_THRESHOLD=131072         mallopt(M_MMAP_THRESHOLD, 131072) before the first event
  glibc.malloc.arena_max=2        a GLIBC_TUNABLES entry, added to the program's own
  MALLOC_TRIM_THRESHOLD_=0        an environment variable

Options:
  --config SETTINGS    a configuration (repeatable)
  --configs FILE       configurations from a JSON or YAML file: a list of strings, or of
                       { name, settings } objects
  --json               print the rows as JSON
  --jobs N             worker threads (default: the number of CPUs)
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

The settings options (--mallopt, --env, ...) apply to every configuration, the default included.`;

interface CompareRow {
  name: string;
  figures: Figures;
}

function mib(n: number): string {
  return (n / (1 << 20)).toFixed(2);
}

function formatCompare(trace: string, rows: CompareRow[]): string {
  const head = [
    'configuration',
    'peak MiB',
    'final MiB',
    'mean MiB',
    'heap MiB',
    'mmap MiB',
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
      mib(f.peakRss),
      mib(f.rss),
      mib(f.meanRss),
      mib(f.heapBytes),
      mib(f.mmappedBytes),
      sc.brk,
      sc.mmap,
      sc.munmap,
      sc.mremap,
      sc.mprotect,
      sc.madvise,
      f.pageFaults,
    ].map(String);
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const out = [
    `${trace}: ${rows[0]?.figures.events.toLocaleString('en-US') ?? 0} events, ${rows.length} configurations`,
    '',
    line(head),
    ...body.map(line),
  ];
  const failed = rows.filter((r) => r.figures.failure !== undefined);
  for (const r of failed) out.push(`  ${r.name}: replay stopped early: ${r.figures.failure}`);
  const best = [...rows].sort((a, b) => a.figures.rss - b.figures.rss)[0];
  if (best !== undefined && rows.length > 1) {
    out.push(
      '',
      `lowest final RSS: ${best.name} (${mib(best.figures.rss)} MiB, ${costOf(best.figures)} system calls and page faults)`,
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
  async run({ values, positionals }, { out, progress }) {
    if (positionals.length !== 1 || positionals[0] === '-')
      throw new UsageError(
        'compare needs one TRACE file (not -: it is read once per configuration)',
      );
    const configs: Config[] = [{ name: 'default', settings: {} }];
    for (const c of values.config) configs.push(parseConfig(c));
    if (values.configs !== undefined) configs.push(...readConfigFile(values.configs));
    const path = positionals[0]!;
    const figs = await replayConfigs(path, configs, values, (d, t) => progress(d, t));
    const rows = configs.map((c, i) => ({ name: c.name, figures: figs[i]! }));
    out(values.json ? JSON.stringify({ trace: path, rows }) + '\n' : formatCompare(path, rows));
    return 0;
  },
});
