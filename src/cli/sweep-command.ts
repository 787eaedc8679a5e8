/**
 * `ptsim sweep TRACE --param NAME=RANGE ...`: a grid of configurations, and its frontier.
 */

import { costOf, memoryOf, paretoFrontier, type Objective } from '../analysis/frontier.js';
import { parseConfig, replayConfigs } from './config.js';
import { defineCommand } from './command.js';
import { UsageError } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS } from './import-options.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, parseNumber } from './settings-options.js';

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
  -h, --help           show this help`;

function parseSize(text: string, what: string): number {
  const m = /^(-?[0-9a-fx]+)([kmg]?)$/i.exec(text.trim());
  if (m === null) throw new UsageError(`${what}: '${text}' is not a number`);
  const mult = { '': 1, k: 1024, m: 1 << 20, g: 1 << 30 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'
  ];
  return parseNumber(m[1]!, what) * mult;
}

/** The values of one --param. */
export function parseValues(name: string, text: string): number[] {
  const range = /^(.+)\.\.(.+)$/.exec(text);
  if (range !== null) {
    const a = parseSize(range[1]!, `--param ${name}`);
    const b = parseSize(range[2]!, `--param ${name}`);
    if (a <= 0 || b < a) throw new UsageError(`--param ${name}: a range A..B needs 0 < A <= B`);
    const out: number[] = [];
    for (let v = a; v <= b; v *= 2) out.push(v);
    if (out[out.length - 1] !== b) out.push(b);
    return out;
  }
  return text.split(',').map((v) => parseSize(v, `--param ${name}`));
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
  async run({ values, positionals }, { out, progress }) {
    if (positionals.length !== 1 || positionals[0] === '-')
      throw new UsageError('sweep needs one TRACE file');
    if (values.param.length === 0)
      throw new UsageError('sweep needs at least one --param NAME=VALUES');
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
    let grid: Array<Array<[string, number]>> = [[]];
    for (const ax of axes)
      grid = grid.flatMap((g) => ax.values.map((v) => [...g, [ax.name, v] as [string, number]]));
    const max = parseNumber(values.max, '--max');
    if (grid.length > max)
      throw new UsageError(`the grid has ${grid.length} configurations, more than --max ${max}`);
    const configs = grid.map((g) => parseConfig(g.map(([n, v]) => `${PARAMS[n]}=${v}`).join(' ')));
    const path = positionals[0]!;
    const figs = await replayConfigs(path, configs, values, (d, t) => progress(d, t));
    const frontier = paretoFrontier(figs, objective);
    const rows = figs.map((f, i) => ({
      params: Object.fromEntries(grid[i]!),
      memory: memoryOf(f, objective),
      cost: costOf(f),
      frontier: frontier.has(i),
      figures: f,
    }));
    if (values.json) {
      out(JSON.stringify({ trace: path, objective, rows }) + '\n');
      return 0;
    }
    const sorted = [...rows].sort((a, b) => a.memory - b.memory || a.cost - b.cost);
    const lines = [
      `${path}: ${rows.length} configurations, ${objective} RSS against system calls + page faults (* = frontier)`,
      '',
    ];
    for (const r of sorted) {
      const ps = Object.entries(r.params)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      lines.push(
        `${r.frontier ? '*' : ' '} ${(r.memory / (1 << 20)).toFixed(2).padStart(10)} MiB  ${String(r.cost).padStart(10)}  ${ps}${r.figures.failure !== undefined ? '  (stopped early: ' + r.figures.failure + ')' : ''}`,
      );
    }
    out(lines.join('\n') + '\n');
    return 0;
  },
});
