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
import { parse as parseYaml } from 'yaml';
import { runMany, type Figures } from '../analysis/figures.js';
import type { ReplaySettings } from '../replay/run-file.js';
import { MALLOPT_PARAMS } from '../core/constants.js';
import { UsageError } from './errors.js';
import { importArgs } from './import-options.js';
import { parseMallopt, parseNumber, settingsArgs, splitAssignment } from './settings-options.js';

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
  for (const item of items) {
    const [key] = splitAssignment(item, 'a configuration');
    if (key in MALLOPT_PARAMS) mallopts.push(parseMallopt(item));
    else if (key.startsWith('glibc.')) tunables.push(item);
    else if (key.startsWith('MALLOC_')) env.push(splitAssignment(item, 'a configuration'));
    else
      throw new UsageError(
        `'${item}': a configuration sets M_* (mallopt), glibc.malloc.* (tunables) or MALLOC_* (environment) parameters`,
      );
  }
  const settings: ReplaySettings = {};
  if (mallopts.length > 0) settings.mallopts = mallopts;
  if (env.length > 0) settings.env = env;
  if (tunables.length > 0) settings.extraTunables = tunables.join(':');
  return { name: name ?? items.join(' '), settings };
}

/** The configurations of a JSON or YAML file. */
export function readConfigFile(path: string): Config[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new UsageError(`${path}: cannot read the configuration file`);
  }
  let data: unknown;
  try {
    data = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new UsageError(
      `${path}: not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`,
    );
  }
  if (!Array.isArray(data)) throw new UsageError(`${path}: expected a list of configurations`);
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
    throw new UsageError(
      `${path}: item ${i + 1} must be a string of settings or { name, settings }`,
    );
  });
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
  return s;
}

/**
 * Replays the trace once per configuration, on worker threads (--jobs of them), each configuration
 * on top of the settings of the command line; the figures come back in the configurations' order.
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
  return runMany(jobs, parallel, progress);
}
