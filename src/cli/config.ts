/**
 * Configurations to compare: a set of settings written the way users know them, several to a
 * string separated by spaces or commas:
 *
 *   M_MMAP_THRESHOLD=131072            a mallopt call before the first event
 *   glibc.malloc.arena_max=2           a GLIBC_TUNABLES entry (added to the program's own)
 *   MALLOC_TRIM_THRESHOLD_=0           an environment variable
 *
 * A file of configurations is JSON or YAML: a list whose items are such strings, or objects
 * { name, settings } where settings is such a string.
 */

import { readFileSync } from 'node:fs';
import { YAMLError, parse as parseYaml } from 'yaml';
import { runMany, type Figures } from '../analysis/figures.js';
import type { ReplaySettings } from '../replay/run-file.js';
import { MALLOPT_PARAMS } from '../core/constants.js';
import type { CommandIO } from './command.js';
import { InputError, UsageError, isTraceMistake } from './errors.js';
import { settingsNotes, traceGlibcNotes } from './settings-notes.js';
import { resolveTunables } from '../core/tunables.js';
import { escapeControls } from '../trace/shown.js';
import { importArgs } from './import-options.js';
import {
  parseGlibcVersion,
  parseMallopt,
  parseNumber,
  settingsArgs,
  splitAssignment,
} from './settings-options.js';

export interface Config {
  name: string;
  settings: ReplaySettings;
}

/** One configuration from its text. */
export function parseConfig(text: string, name?: string): Config {
  const items = text.split(/[\s,]+/).filter((x) => x !== '');
  if (items.length === 0) throw new UsageError(`empty configuration '${text}'`);
  const mallopts: Array<[number, number]> = [];
  const env: Array<[string, string]> = [];
  const tunables: string[] = [];
  let glibc: string | undefined;
  for (const item of items) {
    const [key] = splitAssignment(item, 'a configuration');
    if (key === 'glibc')
      glibc = parseGlibcVersion(splitAssignment(item, 'a configuration')[1], item);
    else if (key in MALLOPT_PARAMS) mallopts.push(parseMallopt(item));
    else if (key.startsWith('M_'))
      throw new UsageError(
        `'${item}': unknown mallopt parameter '${key}' (known: ${Object.keys(MALLOPT_PARAMS).join(', ')})`,
      );
    else if (key.startsWith('glibc.')) {
      if (!key.startsWith('glibc.malloc.'))
        throw new UsageError(`'${item}': '${key}' is not a malloc tunable (glibc.malloc.*)`);
      unknownName(item, key, [['GLIBC_TUNABLES', item]]);
      tunables.push(item);
    } else if (key.startsWith('MALLOC_')) {
      const pair = splitAssignment(item, 'a configuration');
      unknownName(item, key, [pair]);
      env.push(pair);
    } else
      throw new UsageError(
        `'${item}': unknown setting '${key}': a configuration sets M_* (mallopt), glibc.malloc.* (tunables) or MALLOC_* (environment) parameters, or glibc=VERSION`,
      );
  }
  const settings: ReplaySettings = {};
  if (mallopts.length > 0) settings.mallopts = mallopts;
  if (env.length > 0) settings.env = env;
  if (tunables.length > 0) settings.extraTunables = tunables.join(':');
  if (glibc !== undefined) settings.glibc = glibc;
  return { name: name ?? items.join(' '), settings };
}

/** Refuses a tunable or environment variable glibc 2.36's malloc does not know, by its name. */
function unknownName(item: string, key: string, env: Array<[string, string]>): void {
  for (const n of resolveTunables(env).notes)
    if (n.reason.startsWith(`${key} is not`))
      throw new UsageError(`'${item}': unknown setting '${key}': ${n.reason}`);
}

/** The configurations of a JSON or YAML file. */
export function readConfigFile(path: string): Config[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `--configs ${path}: cannot read it: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String(e)}`,
    );
  }
  let data: unknown;
  const kind = path.endsWith('.json') ? 'JSON' : 'YAML';
  if (text.includes('\0'))
    throw new InputError(`${path}: not valid ${kind}: it holds binary data (NUL bytes), not text`);
  try {
    data = kind === 'JSON' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (e) {
    if (!(e instanceof SyntaxError || e instanceof YAMLError)) throw e;
    throw new InputError(`${path}: not valid ${kind}: ${shownMessage(e.message)}`);
  }
  if (!Array.isArray(data)) throw new InputError(`${path}: expected a list of configurations`);
  return data.map((item: unknown, i) => {
    if (typeof item === 'string') return parseConfig(item);
    if (
      item !== null &&
      typeof item === 'object' &&
      typeof (item as { settings?: unknown }).settings === 'string'
    ) {
      const o = item as { name?: unknown; settings: string };
      return parseConfig(o.settings, typeof o.name === 'string' ? o.name : undefined);
    }
    throw new InputError(
      `${path}: item ${i + 1} must be a string of settings or { name, settings }`,
    );
  });
}

/**
 * A parser's message as an error line shows it: whole (YAML's points at the line and column, with
 * the line itself below), its lines indented under the first, control characters escaped, and a
 * long line shortened.
 */
function shownMessage(message: string): string {
  return message
    .trimEnd()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const t = escapeControls(l);
      return t.length > 200 ? `${t.slice(0, 200)}...` : t;
    })
    .join('\n    ');
}

/** The warnings for the configurations' own settings that glibc would ignore. */
export function configNotes(
  configs: readonly Config[],
  values: Parameters<typeof settingsArgs>[0],
): string[] {
  const out = settingsNotes(settingsArgs(values), true);
  for (const c of configs) out.push(...settingsNotes(c.settings, true, c.name));
  return out;
}

/**
 * The notes on the glibc release each configuration models when the trace's own `# glibc` line
 * picks it (settingsNotes says those of a version given on the command line).
 */
export async function configGlibcNotes(
  path: string,
  configs: readonly Config[],
  values: Parameters<typeof settingsArgs>[0] & Parameters<typeof importArgs>[0],
): Promise<string[]> {
  const base = settingsArgs(values).glibc;
  return traceGlibcNotes(
    path,
    configs.map((c) => ({ glibc: c.settings.glibc ?? base })),
    importArgs(values),
  );
}

/**
 * After the rows of several configurations are printed: each distinct trace mistake and glibc
 * abort in one line (naming the configurations when not all of them met it), and the exit status:
 * 2 when a replay stopped at a mistake, else 3 when one reproduced glibc's abort, else 0.
 */
export function failureStatus(
  rows: ReadonlyArray<{ name: string; figures: Figures }>,
  trace: string,
  io: Pick<CommandIO, 'err'>,
): number {
  const report = (byMessage: Map<string, string[]>): void => {
    for (const [message, names] of byMessage)
      io.err(`ptsim: ${names.length === rows.length ? '' : `${names.join(', ')}: `}${message}\n`);
  };
  const mistakes = new Map<string, string[]>();
  const aborts = new Map<string, string[]>();
  for (const r of rows) {
    const f = r.figures;
    let key: string | undefined;
    let into = mistakes;
    if (f.failure !== undefined) {
      // Anything but a trace mistake is a bug in ptsim, thrown on with its name.
      const failure = (): Error =>
        Object.assign(new Error(f.failure), { name: f.failureName ?? 'Error' });
      if (!isTraceMistake(failure())) throw failure();
      key = f.failure;
    } else if (f.abort !== undefined) {
      key = `glibc would abort at event ${f.abort.event} (${trace}:${f.abort.line}): ${f.abort.message}`;
      into = aborts;
    }
    if (key === undefined) continue;
    const names = into.get(key) ?? [];
    names.push(r.name);
    into.set(key, names);
  }
  report(aborts);
  report(mistakes);
  return mistakes.size > 0 ? 2 : aborts.size > 0 ? 3 : 0;
}

/** The base settings with a configuration's settings added on top. */
export function withConfig(base: ReplaySettings, c: ReplaySettings): ReplaySettings {
  const s: ReplaySettings = { ...base };
  s.mallopts = [...(base.mallopts ?? []), ...(c.mallopts ?? [])];
  s.env = [...(base.env ?? []), ...(c.env ?? [])];
  const extra = [base.extraTunables, c.extraTunables].filter(
    (x): x is string => x !== undefined && x !== '',
  );
  if (extra.length > 0) s.extraTunables = extra.join(':');
  if (c.glibc !== undefined) s.glibc = c.glibc;
  return s;
}

/**
 * Replays the trace once per configuration, on worker threads (--jobs of them), each configuration
 * on top of the settings of the command line; the figures come back in the configurations' order.
 * Configurations that leave glibc in the same state share one replay (runMany).
 */
export function replayConfigs(
  path: string,
  configs: readonly Config[],
  values: Parameters<typeof settingsArgs>[0] &
    Parameters<typeof importArgs>[0] & { jobs?: string | undefined },
  progress: (done: number, total: number) => void,
): Promise<Figures[]> {
  const base = settingsArgs(values);
  const jobs = configs.map((c) => ({
    path,
    import: importArgs(values),
    settings: withConfig(base, c.settings),
  }));
  const parallel = values.jobs !== undefined ? parseNumber(values.jobs, '--jobs') : undefined;
  return runMany(jobs, { parallel, progress });
}
