/**
 * Transparent huge pages for ptsim's own memory, on a big trace: the executable runs itself again
 * with glibc's `glibc.malloc.hugetlb=1` tunable added to GLIBC_TUNABLES, so that glibc asks the
 * kernel for huge pages (madvise MADV_HUGEPAGE) for the memory it maps and for its heap's growth.
 *
 * Node serves array buffers with malloc, and a replay's state is array buffers: a trace that keeps
 * 5 million blocks live holds about 400 MB of them, written page by page as they grow. With 4 KiB
 * pages that is 100,000 page faults (about 11 to 26 microseconds each on our machines) and as many
 * TLB entries; with 2 MiB pages, a few hundred. Measured (docs/architecture.md, "Page faults"):
 * `ptsim replay` of the trace that only allocates 2.5 to 1.8 s, `ptsim explain` of it 13.8 to 11.4
 * s and of the 8-thread mix 14.3 to 12.4 s; 2 to 4 % on replays that keep few blocks live.
 *
 * glibc reads its tunables once, when the process starts, so the tunable cannot be set from inside
 * Node: the process runs ptsim again as its child, and that costs a second start of Node (about 0.1
 * s). So it is done where that pays: a command that replays the trace several times (explain,
 * report, compare, sweep) on a trace of 16 MiB or more, or `replay` on one of 256 MiB or more
 * (compressed files counted at four times their size), or on a binary trace that kept a million
 * blocks or more live at once (its end says how many), on a kernel whose huge pages are given on
 * request ("madvise", the default of most distributions; with "always" every process has them
 * already, with "never" none can). PTSIM_HUGE_PAGES=0 never does it, PTSIM_HUGE_PAGES=1 does it for
 * any trace of those commands; a GLIBC_TUNABLES that names glibc.malloc.hugetlb already is left as
 * it is (the user's choice, or the child's own start).
 *
 * Only ptsim's own process is concerned: the tunable changes where glibc's memory comes from, not
 * what the replayed allocator does (its settings come from the trace and the command line), and the
 * commands that run other programs (record) are never relaunched. This module is loaded before
 * anything else, and loads nothing but what it needs.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { type BinaryEnd, FILE_HEADER, endIn, isBinaryTrace } from '../trace/binary-end.js';

/** The tunable added: huge pages for glibc's mapped memory and heap (glibc 2.35 on). */
export const HUGE_PAGES_TUNABLE = 'glibc.malloc.hugetlb=1';

/** Bytes of trace from which each command is relaunched (an uncompressed trace's size). */
const MIN_TRACE_BYTES: Readonly<Record<string, number>> = {
  explain: 16 << 20,
  report: 16 << 20,
  compare: 16 << 20,
  sweep: 16 << 20,
  replay: 256 << 20,
};

/** How many times its size a compressed trace is counted. */
const COMPRESSED_FACTOR = 4;

/**
 * Blocks live at once from which a binary trace is relaunched whatever its size: its replay's
 * arrays then take 80 MB or more. Measured on traces that only allocate, `ptsim replay` with huge
 * pages against without: 0.5 million live blocks 0.98 times as long, 1 million 0.96, 2 million
 * 0.83, 5 million 0.80.
 */
const MIN_LIVE_BLOCKS = 1 << 20;

/** What the decision looks at, from the process and the machine (given apart for the tests). */
export interface LaunchFacts {
  platform: string;
  /** /sys/kernel/mm/transparent_hugepage/enabled, e.g. "always [madvise] never"; '' if unknown. */
  thp: string;
  env: Readonly<Record<string, string | undefined>>;
  /** The size of a regular file, or -1 (none, not a regular file, unreadable). */
  fileSize(path: string): number;
  /** The most blocks a binary trace kept live at once, as its end says; -1 if it does not. */
  peakLive(path: string): number;
}

/** The facts of this process and machine. */
export function processFacts(): LaunchFacts {
  let thp = '';
  try {
    thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
  } catch {
    // no such file: a kernel without transparent huge pages, or not Linux
  }
  return {
    platform: process.platform,
    thp,
    env: process.env,
    fileSize(path) {
      try {
        const st = statSync(path);
        return st.isFile() ? st.size : -1;
      } catch {
        return -1;
      }
    },
    peakLive: (path) => readBinaryEnd(path)?.peakLive ?? -1,
  };
}

/** The mode the kernel gives huge pages in: the bracketed word of its setting ('' if none). */
export function thpMode(setting: string): string {
  return /\[(\w+)\]/.exec(setting)?.[1] ?? '';
}

/**
 * The environment to run `ptsim ARGV` again with, huge pages asked for, or null to run it in this
 * process.
 */
export function relaunchEnv(
  argv: readonly string[],
  f: LaunchFacts,
): Record<string, string> | null {
  const choice = f.env['PTSIM_HUGE_PAGES'];
  if (choice === '0' || f.platform !== 'linux' || thpMode(f.thp) !== 'madvise') return null;
  const tunables = f.env['GLIBC_TUNABLES'] ?? '';
  if (/(^|:)glibc\.malloc\.hugetlb=/.test(tunables)) return null;
  const [command, ...rest] = argv;
  const min = command !== undefined ? MIN_TRACE_BYTES[command] : undefined;
  if (min === undefined || rest.includes('--help') || rest.includes('-h')) return null;
  if (choice !== '1' && largestTrace(rest, f) < min && mostLive(rest, f) < MIN_LIVE_BLOCKS)
    return null;
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.env)) if (v !== undefined) env[k] = v;
  env['GLIBC_TUNABLES'] =
    tunables === '' ? HUGE_PAGES_TUNABLE : `${tunables}:${HUGE_PAGES_TUNABLE}`;
  return env;
}

/** Options whose value is a file the command writes, not a trace it reads. */
const OUTPUT_OPTIONS = new Set(['-o', '--output', '--events', '--timeline']);

/**
 * The largest file the arguments name, compressed ones counted COMPRESSED_FACTOR times: any
 * argument that is a regular file (the trace, a file of configurations), but not the value of an
 * option that names an output (which may exist already, from an earlier run).
 */
function largestTrace(args: readonly string[], f: LaunchFacts): number {
  let largest = 0;
  for (const a of inputFiles(args)) {
    const size = f.fileSize(a);
    if (size < 0) continue;
    const counted = /\.(gz|zst|zstd|xz|bz2)$/i.test(a) ? size * COMPRESSED_FACTOR : size;
    if (counted > largest) largest = counted;
  }
  return largest;
}

/** The most blocks live at once in a binary trace the arguments name (largestTrace's files). */
function mostLive(args: readonly string[], f: LaunchFacts): number {
  let most = -1;
  for (const a of inputFiles(args)) if (f.fileSize(a) >= 0) most = Math.max(most, f.peakLive(a));
  return most;
}

/** The arguments that may name a file read: neither options nor the values of OUTPUT_OPTIONS. */
export function inputFiles(args: readonly string[]): string[] {
  const files: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (OUTPUT_OPTIONS.has(a)) i++;
    else if (!a.startsWith('-')) files.push(a);
  }
  return files;
}

/**
 * Runs this executable again as a child with `env`, on the same arguments and standard streams,
 * and resolves to the exit status to end with: the child's, or 128 + the number of the signal
 * that ended it; null if the child could not be started (the command then runs here). SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT sent to this process are passed on to the child, which ends as the
 * command would (a terminal's Ctrl-C reaches both: the child's first one ends it).
 */
export function relaunch(env: Record<string, string>): Promise<number | null> {
  // The handlers first: a signal that comes while the child starts is passed on once it has.
  let child: ChildProcess | null = null;
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const).map(
    (sig) => [sig, () => void child?.kill(sig)] as const,
  );
  for (const [sig, h] of handlers) process.on(sig, h);
  const c = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env,
  });
  child = c;
  return new Promise((resolve) => {
    let started = false;
    let settled = false;
    const done = (status: number | null): void => {
      if (settled) return;
      settled = true;
      for (const [sig, h] of handlers) process.off(sig, h);
      resolve(status);
    };
    c.on('spawn', () => (started = true));
    // Only a child that never started has the command run here; a later error (a signal that
    // could not be passed on) leaves it to the child, whose exit ends this process.
    c.on('error', () => {
      if (!started) done(null);
    });
    c.on('exit', (code, signal) =>
      done(code ?? 128 + (signal !== null ? (osConstants.signals[signal] ?? 0) : 0)),
    );
  });
}

/** The end block's JSON is far shorter than this: a tail this long holds it whole. */
const TAIL = 512;

/**
 * The end of the binary trace `path`, from its first and last bytes alone: null for a file that
 * is not a binary trace (a text, a compressed file), is unreadable, or does not end with an end
 * block (a file cut short).
 */
export function readBinaryEnd(path: string): BinaryEnd | null {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    const head = new Uint8Array(FILE_HEADER);
    if (readSync(fd, head, 0, FILE_HEADER, 0) < FILE_HEADER || !isBinaryTrace(head)) return null;
    const size = fstatSync(fd).size;
    const from = Math.max(FILE_HEADER, size - TAIL);
    const tail = new Uint8Array(size - from);
    const got = readSync(fd, tail, 0, tail.length, from);
    return endIn(tail.subarray(0, got));
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
