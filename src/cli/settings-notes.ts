/**
 * The settings of a command line that glibc would take without effect, said before the replay
 * rather than dropped silently: a mallopt call that glibc refuses (mallopt returns 0) or accepts
 * and ignores, and environment or tunable settings glibc ignores.
 */

import { mallopt } from '../core/api.js';
import { M, MALLOPT_PARAMS, MAX_FAST_SIZE } from '../core/constants.js';
import { Process } from '../core/state.js';
import { resolveTunables } from '../core/tunables.js';
import {
  DEFAULT_PROFILE,
  isUnverified,
  profileFor,
  unverifiedNote,
  type GlibcProfile,
} from '../core/profile.js';
import { Kernel } from '../kernel/kernel.js';
import { glibcNotes, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';

const NAMES = new Map(Object.entries(MALLOPT_PARAMS).map(([name, n]) => [n, name]));

/** What the release's __libc_mallopt makes of mallopt(param, value), when it is not a change. */
function malloptNote(param: number, value: number, profile: GlibcProfile): string | null {
  const name = NAMES.get(param) ?? String(param);
  const call = `mallopt(${name}, ${value})`;
  // The model's own __libc_mallopt, on a process of its own: its return value is glibc's.
  const res = mallopt(new Process(new Kernel(), profile), param, value);
  if (res === 0) {
    const range = param === M.MXFAST ? ` (${name} takes 0 to ${MAX_FAST_SIZE})` : '';
    return `${call} returns 0: glibc refuses the value and ignores it${range}`;
  }
  if ((param === M.ARENA_MAX || param === M.ARENA_TEST) && value <= 0)
    return `${call} returns 1, but glibc ignores values below 1 for ${name}`;
  if (
    ![
      'M_MXFAST',
      'M_TRIM_THRESHOLD',
      'M_TOP_PAD',
      'M_MMAP_THRESHOLD',
      'M_MMAP_MAX',
      'M_CHECK_ACTION',
      'M_PERTURB',
      'M_ARENA_TEST',
      'M_ARENA_MAX',
    ].includes(name)
  )
    return `${call} returns 1, but glibc ${profile.version}'s malloc does nothing with ${name}`;
  return null;
}

/**
 * The warnings for `s`, each a line without the `ptsim: warning:` prefix. `env` also checks its
 * environment and tunables (a replay reports those itself, merged with the trace's own).
 */
export function settingsNotes(s: ReplaySettings, env = false, label = ''): string[] {
  const out: string[] = [];
  const prefix = label === '' ? '' : `${label}: `;
  const chosen = s.glibc === undefined ? undefined : profileFor(s.glibc);
  const profile = chosen?.profile ?? DEFAULT_PROFILE;
  // A replay says this itself (its notes); the other commands say it here.
  if (env && chosen?.note !== undefined) out.push(prefix + chosen.note);
  if (env && chosen !== undefined && isUnverified(chosen.profile))
    out.push(prefix + unverifiedNote(chosen.profile));
  for (const [param, value] of s.mallopts ?? []) {
    const n = malloptNote(param, value, profile);
    if (n !== null) out.push(prefix + n);
  }
  if (env) {
    const vars: Array<[string, string]> = [...(s.env ?? [])];
    const tunables = [s.tunables, s.extraTunables].filter((t) => t !== undefined && t !== '');
    if (tunables.length > 0) vars.push(['GLIBC_TUNABLES', tunables.join(':')]);
    for (const n of resolveTunables(vars, profile).notes)
      out.push(`${prefix}${n.setting}: ${n.reason}`);
  }
  return out;
}

/**
 * The notes on the glibc release the trace's own `# glibc` line picks (the one it has no profile
 * of, or an unverified one), for a command whose replays do not report them; nothing when every
 * replay names its version itself.
 */
export async function traceGlibcNotes(
  path: string,
  settings: readonly ReplaySettings[],
  imports?: ImportSettings,
): Promise<string[]> {
  if (settings.every((s) => s.glibc !== undefined)) return [];
  return glibcNotes(path, { import: imports });
}
