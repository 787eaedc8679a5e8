/**
 * The command-line options that set up a replay the way the program ran (mallopt calls, tunables,
 * environment variables, CPUs, the program break, what the program writes), shared by every
 * command that replays.
 */

import { MALLOPT_PARAMS } from '../core/constants.js';
import { GLIBC_PROFILES, glibcLabel, isUnverified, profileFor } from '../core/profile.js';
import { TOUCH_MODES, type TouchMode } from '../replay/replay.js';
import type { ReplaySettings } from '../replay/run-file.js';
import { UsageError } from './errors.js';

export const SETTINGS_OPTIONS = {
  mallopt: { type: 'string', multiple: true, default: [] as string[] },
  tunables: { type: 'string' },
  env: { type: 'string', multiple: true, default: [] as string[] },
  'ignore-trace-env': { type: 'boolean', default: false },
  'brk-base': { type: 'string' },
  'max-brk': { type: 'string' },
  'zero-page': { type: 'string' },
  cores: { type: 'string' },
  touch: { type: 'string' },
  glibc: { type: 'string', multiple: true, default: [] as string[] },
} as const;

export const SETTINGS_HELP = `  --mallopt NAME=VALUE call mallopt(NAME, VALUE) before the trace's first event; NAME is
                       M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX, M_MXFAST,
                       M_PERTURB, M_ARENA_MAX, M_ARENA_TEST or glibc's number (repeatable)
  --tunables STRING    the GLIBC_TUNABLES value the program runs with, for example
                       glibc.malloc.mmap_threshold=131072:glibc.malloc.tcache_count=0
  --env NAME=VALUE     a MALLOC_*_ environment variable the program runs with, for example
                       MALLOC_TRIM_THRESHOLD_=0 or MALLOC_ARENA_MAX=2 (repeatable)
  --ignore-trace-env   ignore the trace's own '# env' header lines
  --cores N            the number of CPUs glibc sees, which sets its arena limit (8 x N arenas;
                       on glibc 2.44, N and at least arena_test);
                       default: the trace's '# nprocs', else this machine's online CPUs
  --brk-base ADDR      the initial program break to simulate (default: the trace's '# start_brk'
                       if page-aligned, else 0x555555559000); only alignments above 4096 depend on it
  --max-brk BYTES      the program break cannot grow more than BYTES (as when a mapping sits above
                       the heap): glibc then falls back to mmap
  --zero-page yes|no   whether the kernel maps the shared zero page for a page read before it is
                       written (yes: it stays out of RSS) or gives it a frame of its own (no: the
                       pages glibc's realloc copies from become resident); default: the trace's
                       '# zero_page', else yes
  --touch MODEL        what the program writes into its blocks: recorded (blocks of 4096 bytes or
                       more only the pages of the trace's #:touch records, smaller ones whole; the
                       default for a trace with '# touches recorded'), full (every requested byte,
                       right after the call: an upper bound; the default otherwise) or none (only
                       glibc's own writes: a lower bound); see docs/trace-format.md
  --glibc VERSION      the glibc release to model: ${modelledVersions()}
                       (default: the trace's '# glibc' line, else 2.36); another version is
                       replayed as the newest of them before it, with a note`;

/** The modelled releases, the unverified ones marked: "2.28 (unverified), 2.31, ...". */
export function modelledVersions(): string {
  return GLIBC_PROFILES.map(glibcLabel).join(', ');
}

interface SettingsValues {
  mallopt: string[];
  tunables?: string;
  env: string[];
  'ignore-trace-env': boolean;
  'brk-base'?: string;
  'max-brk'?: string;
  'zero-page'?: string;
  cores?: string;
  touch?: string;
  glibc: string[];
}

/** A --glibc value, or a configuration's glibc=VERSION: refused unless it reads as a version. */
export function parseGlibcVersion(text: string, what = '--glibc'): string {
  if (profileFor(text) === undefined)
    throw new UsageError(
      `${what}: '${text}' is not a glibc version (modelled: ${modelledVersions()})`,
    );
  return text.trim();
}

/**
 * The versions of --glibc given several times or as a list (2.31,2.36,2.41), each checked, each
 * once, in the order given.
 */
export function parseGlibcList(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const v of values.flatMap((x) => x.split(',')))
    if (!out.includes(v.trim())) out.push(parseGlibcVersion(v));
  return out;
}

/** "glibc 2.35 (unverified)": a version as a row of compare or sweep names it. */
export function glibcRowName(version: string): string {
  const p = profileFor(version);
  return p !== undefined && isUnverified(p.profile)
    ? `glibc ${version} (unverified)`
    : `glibc ${version}`;
}

/** A number as the command line gives it: decimal or 0x hexadecimal, optionally negative. */
export function parseNumber(text: string, what: string): number {
  const t = text.trim();
  const v = /^-?0x[0-9a-f]+$/i.test(t)
    ? t.startsWith('-')
      ? -parseInt(t.slice(1), 16)
      : parseInt(t, 16)
    : /^-?\d+$/.test(t)
      ? Number(t)
      : NaN;
  if (!Number.isFinite(v)) throw new UsageError(`${what}: '${text}' is not a number`);
  return v;
}

export function splitAssignment(text: string, flag: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`${flag} takes NAME=VALUE, got '${text}'`);
  return [text.slice(0, eq), text.slice(eq + 1)];
}

/** NAME=VALUE of a mallopt call: glibc's parameter number and an int. */
export function parseMallopt(text: string): [number, number] {
  const [name, value] = splitAssignment(text, '--mallopt');
  let param: number;
  if (name in MALLOPT_PARAMS) param = MALLOPT_PARAMS[name]!;
  else if (/^-?\d+$/.test(name)) param = Number(name);
  else
    throw new UsageError(
      `--mallopt: unknown parameter '${name}' (known: ${Object.keys(MALLOPT_PARAMS).join(', ')})`,
    );
  const v = parseNumber(value, `--mallopt ${name}`);
  if (v < -(2 ** 31) || v >= 2 ** 32)
    throw new UsageError(`--mallopt ${name}: ${value} does not fit in an int`);
  return [param, v];
}

/** An environment assignment: NAME=VALUE, where GLIBC_TUNABLES has its own option. */
function parseEnv(text: string): [string, string] {
  const [name, value] = splitAssignment(text, '--env');
  if (name === 'GLIBC_TUNABLES') throw new UsageError('use --tunables STRING for GLIBC_TUNABLES');
  return [name, value];
}

export function settingsArgs(values: SettingsValues): ReplaySettings {
  const s: ReplaySettings = {
    mallopts: values.mallopt.map(parseMallopt),
    env: values.env.map(parseEnv),
    ignoreTraceEnv: values['ignore-trace-env'],
  };
  if (values.tunables !== undefined) s.tunables = values.tunables;
  if (values['brk-base'] !== undefined) {
    const b = parseNumber(values['brk-base'], '--brk-base');
    if (b <= 0 || b >= 2 ** 47 || b % 16 !== 0)
      throw new UsageError('--brk-base must be a 16-byte aligned user-space address');
    s.brkBase = b;
  }
  if (values['max-brk'] !== undefined) s.maxBrk = parseNumber(values['max-brk'], '--max-brk');
  const zeroPage = values['zero-page'];
  if (zeroPage !== undefined) {
    if (zeroPage !== 'yes' && zeroPage !== 'no')
      throw new UsageError(`--zero-page takes yes or no, got '${zeroPage}'`);
    s.zeroPage = zeroPage === 'yes';
  }
  if (values.cores !== undefined) {
    const c = parseNumber(values.cores, '--cores');
    if (c < 1 || c > 1 << 20) throw new UsageError('--cores must be between 1 and 1048576');
    s.cores = c;
  }
  if (values.touch !== undefined) {
    if (!(TOUCH_MODES as readonly string[]).includes(values.touch))
      throw new UsageError(`--touch takes recorded, full or none, got '${values.touch}'`);
    s.touch = values.touch as TouchMode;
  }
  if (values.glibc.length > 1 || values.glibc.some((v) => v.includes(',')))
    throw new UsageError(
      `--glibc is given ${values.glibc.join(', ')}: this command replays one version (compare and sweep take several)`,
    );
  if (values.glibc.length === 1) s.glibc = parseGlibcVersion(values.glibc[0]!);
  return s;
}
