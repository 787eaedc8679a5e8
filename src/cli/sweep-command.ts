/**
 * `ptsim sweep TRACE --param NAME=RANGE ...`: a grid of configurations, and its frontier.
 */

import { costOf, memoryOf, paretoFrontier, type Objective } from '../analysis/frontier.js';
import {
  configGlibcNotes,
  configNotes,
  failureStatus,
  parseConfig,
  replayConfigs,
} from './config.js';
import { count, plural, scaledBytes, sizeAsTyped } from './numbers.js';
import { defineCommand } from './command.js';
import { settingsNotes } from './settings-notes.js';
import { NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS } from './import-options.js';
import {
  SETTINGS_HELP,
  SETTINGS_OPTIONS,
  glibcRowName,
  parseGlibcList,
  parseNumber,
} from './settings-options.js';

/** Sweepable parameters and the setting each one is. */
const PARAMS: Record<string, string> = {
  mmap_threshold: 'M_MMAP_THRESHOLD',
  trim_threshold: 'M_TRIM_THRESHOLD',
  top_pad: 'M_TOP_PAD',
  mmap_max: 'M_MMAP_MAX',
  arena_max: 'M_ARENA_MAX',
  arena_test: 'M_ARENA_TEST',
  mxfast: 'M_MXFAST',
  tcache_count: 'glibc.malloc.tcache_count',
  tcache_max: 'glibc.malloc.tcache_max',
  tcache_unsorted_limit: 'glibc.malloc.tcache_unsorted_limit',
};

const SWEEP_HELP = `Usage: ptsim sweep TRACE --param NAME=VALUES [--param NAME=VALUES ...] [options]

Replays TRACE for every combination of the parameters' values and reports each configuration's
memory (final, peak or mean RSS) against its kernel work (system calls plus page faults), marking
the frontier: the configurations no other beats on both.

Parameters: ${Object.keys(PARAMS).join(', ')}.
Values: a list (1,2,4), or a range A..B that doubles from A up to B (64K..32M); sizes take
K, M and G suffixes (powers of 1024).

Options:
  --param NAME=VALUES  a parameter to sweep (repeatable)
  --objective WHICH    final, peak or mean RSS (default: final)
  --max N              refuse grids of more than N configurations (default 400)
  --json               print the grid as JSON
  --jobs N             worker threads (default: the number of CPUs)
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

The default configuration (none of the parameters set) is replayed too, as a row of its own
marked (default). Values are shown as typed: 64K..1M shows 64K, 128K, ..., 1M.

--glibc given more than once, or as a list (--glibc 2.31,2.36,2.41), replays the grid on each
version: one row per version and configuration, the frontier marked within each version (--json:
"versions", each with its "glibc", "default" and "rows"). With several versions the --param
options may be left out, for one row per version.

${exitStatusHelp({ replays: true })} The rows are printed either way, each covering the events
its replay reached.`;

/** One value of a parameter, and how it is shown: as typed (64K stays 64K). */
interface Value {
  value: number;
  text: string;
}

function parseSize(text: string, what: string): { value: number; suffixed: boolean } {
  const m = /^(-?[0-9a-fx]+)([kmg]?)$/i.exec(text.trim());
  if (m === null) throw new UsageError(`${what}: '${text}' is not a number`);
  const unit = m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g';
  const mult = { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 }[unit];
  return { value: parseNumber(m[1]!, what) * mult, suffixed: unit !== '' };
}

/** The values of one --param, each shown in the units the user typed. */
export function parseValues(name: string, text: string): Value[] {
  const what = `--param ${name}`;
  const range = /^(.+)\.\.(.+)$/.exec(text);
  if (range !== null) {
    const a = parseSize(range[1]!, what);
    const b = parseSize(range[2]!, what);
    if (a.value <= 0 || b.value < a.value)
      throw new UsageError(`${what}: a range A..B needs 0 < A <= B`);
    const suffixed = a.suffixed || b.suffixed;
    const out: Value[] = [];
    for (let v = a.value; v <= b.value; v *= 2)
      out.push({ value: v, text: sizeAsTyped(v, suffixed) });
    if (out[out.length - 1]!.value !== b.value)
      out.push({ value: b.value, text: sizeAsTyped(b.value, suffixed) });
    return out;
  }
  return text.split(',').map((v) => {
    const p = parseSize(v, what);
    return { value: p.value, text: sizeAsTyped(p.value, p.suffixed) };
  });
}

export const sweepCommand = defineCommand({
  name: 'sweep',
  help: SWEEP_HELP,
  options: {
    param: { type: 'string', multiple: true, default: [] },
    objective: { type: 'string', default: 'final' },
    max: { type: 'string', default: '400' },
    json: { type: 'boolean', default: false },
    jobs: { type: 'string' },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  progress: 'sweeping',
  async run({ values, positionals }, io) {
    const { out, warn, progress } = io;
    if (positionals.length !== 1 || positionals[0] === '-')
      throw new UsageError('sweep needs one TRACE file');
    const versions = parseGlibcList(values.glibc);
    const several = versions.length > 1;
    const base = { ...values, glibc: several ? [] : versions };
    if (values.param.length === 0 && !several)
      throw new UsageError(
        'sweep needs at least one --param NAME=VALUES (or several versions: --glibc 2.31,2.36)',
      );
    const objective = values.objective as Objective;
    if (!['final', 'peak', 'mean'].includes(objective))
      throw new UsageError('--objective is final, peak or mean');
    const axes = values.param.map((p) => {
      const eq = p.indexOf('=');
      const name = eq > 0 ? p.slice(0, eq) : p;
      if (!(name in PARAMS))
        throw new UsageError(
          `--param: unknown parameter '${name}' (known: ${Object.keys(PARAMS).join(', ')})`,
        );
      if (eq < 0)
        throw new UsageError(`--param ${name} needs values: ${name}=A..B or ${name}=a,b,c`);
      return { name, values: parseValues(name, p.slice(eq + 1)) };
    });
    let grid: Array<Array<[string, Value]>> = [[]];
    for (const ax of axes)
      grid = grid.flatMap((g) => ax.values.map((v) => [...g, [ax.name, v] as [string, Value]]));
    const max = parseNumber(values.max, '--max');
    if (grid.length > max)
      throw new UsageError(`the grid has ${grid.length} configurations, more than --max ${max}`);
    if (grid.length * Math.max(1, versions.length) > max)
      throw new UsageError(
        `the grid on ${versions.length} versions has ${grid.length * versions.length} configurations, more than --max ${max}`,
      );
    // The default configuration first: what the grid's settings are measured against.
    const one = [
      { name: 'default', settings: {} },
      ...(values.param.length === 0 ? [] : grid).map((g) =>
        parseConfig(g.map(([n, v]) => `${PARAMS[n]}=${v.value}`).join(' ')),
      ),
    ];
    const perVersion = one.length;
    // Several versions: the whole grid on each, version by version.
    const configs = several
      ? versions.flatMap((v) => one.map((c) => ({ ...c, settings: { ...c.settings, glibc: v } })))
      : one;
    const path = positionals[0]!;
    for (const n of configNotes(one, base)) warn(n);
    for (const v of several ? versions : [])
      for (const n of settingsNotes({ glibc: v }, true)) warn(n);
    for (const n of await configGlibcNotes(path, configs, base)) warn(n);
    const figs = await replayConfigs(path, configs, base, (d, t) => progress(d, t));
    // The frontier within each version: a release is not a setting one picks for its memory.
    const frontier = new Set<number>();
    for (let from = 0; from < figs.length; from += perVersion)
      for (const k of paretoFrontier(figs.slice(from, from + perVersion), objective))
        frontier.add(from + k);
    const rows = figs.map((f, i) => {
      const k = i % perVersion;
      return {
        glibc: several ? versions[Math.floor(i / perVersion)]! : undefined,
        default: k === 0,
        params: k === 0 ? {} : Object.fromEntries(grid[k - 1]!.map(([n, v]) => [n, v.value])),
        shown: k === 0 ? null : grid[k - 1]!.map(([, v]) => v.text),
        memory: memoryOf(f, objective),
        cost: costOf(f),
        frontier: frontier.has(i),
        figures: f,
      };
    });
    if (figs.every((f) => f.events === 0 && f.failure === undefined)) warn(`${path}: ${NO_EVENTS}`);
    const named = rows.map((r) => {
      const setting = r.default
        ? 'default'
        : Object.entries(r.params)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ');
      return {
        name: r.glibc === undefined ? setting : `${glibcRowName(r.glibc)}: ${setting}`,
        figures: r.figures,
      };
    });
    if (values.json) {
      const json = rows.map((r) => ({
        params: r.params,
        memory: r.memory,
        cost: r.cost,
        frontier: r.frontier,
        figures: r.figures,
      }));
      const doc = several
        ? {
            trace: path,
            objective,
            versions: versions.map((v, k) => ({
              glibc: v,
              default: json[k * perVersion],
              rows: json.slice(k * perVersion + 1, (k + 1) * perVersion),
            })),
          }
        : { trace: path, objective, default: json[0], rows: json.slice(1) };
      out(JSON.stringify(doc) + '\n');
      return failureStatus(named, path, io);
    }
    // Version by version (in the order given), each sorted by memory, then cost.
    const sorted = [...rows].sort(
      (a, b) =>
        (a.glibc === undefined ? 0 : versions.indexOf(a.glibc)) -
          (b.glibc === undefined ? 0 : versions.indexOf(b.glibc)) ||
        a.memory - b.memory ||
        a.cost - b.cost,
    );
    const head = [
      '',
      ...(several ? ['glibc'] : []),
      `${objective} RSS`,
      'syscalls + faults',
      ...axes.map((a) => a.name),
    ];
    const body = sorted.map((r) => {
      const note =
        r.figures.failure !== undefined
          ? `  (stopped early: ${r.figures.failure})`
          : r.figures.abort !== undefined
            ? `  (glibc would abort at event ${r.figures.abort.event}: ${r.figures.abort.message})`
            : '';
      return {
        cells: [
          r.frontier ? '*' : ' ',
          ...(r.glibc !== undefined ? [glibcRowName(r.glibc).slice('glibc '.length)] : []),
          scaledBytes(r.memory),
          count(r.cost),
          ...(r.shown ??
            (axes.length === 0 ? ['(default)'] : axes.map((_, k) => (k === 0 ? '(default)' : '')))),
        ],
        note,
      };
    });
    if (axes.length === 0) head.push('');
    const widths = head.map((h, i) =>
      Math.max(h.length, ...body.map((b) => (b.cells[i] ?? '').length)),
    );
    // The figures' columns are right-aligned.
    const first = several ? 2 : 1;
    const line = (cells: string[]): string =>
      cells
        .map((c, i) =>
          i === first || i === first + 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
        )
        .join('  ')
        .trimEnd();
    const grids =
      values.param.length === 0
        ? 'the default'
        : `the default and ${plural(grid.length, 'from the grid', 'from the grid')}`;
    const lines = [
      several
        ? `${path}: ${plural(perVersion, 'configuration')} (${grids}) on each of ${versions.map(glibcRowName).join(', ')}, ${objective} RSS against system calls + page faults (* = frontier of its version)`
        : `${path}: ${plural(rows.length, 'configuration')} (${grids}), ${objective} RSS against system calls + page faults (* = frontier)`,
      '',
      line(head),
      ...body.map((b) => line(b.cells) + b.note),
    ];
    out(lines.join('\n') + '\n');
    return failureStatus(named, path, io);
  },
});
