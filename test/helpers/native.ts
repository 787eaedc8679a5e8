/**
 * The native replayer (test/native/replay.c): builds it with the system's C compiler and runs a
 * trace through it on this machine's real glibc. Its fidelity log and summary have the same shape
 * as ptsim's (docs/fidelity-log.md), so the tests can compare the two event by event.
 */

import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { fetchGlibc, type GlibcBuild } from './glibc-builds.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = resolve(HERE, '../native/replay.c');
const BUILD_DIR = resolve(HERE, '../native/build');
const BINARY = join(BUILD_DIR, 'replay');

/** Dynamic, eager binding (no lazy PLT resolution in the middle of a replay), no warnings allowed. */
const CFLAGS = ['-O2', '-pthread', '-Wall', '-Wextra', '-Wl,-z,now'];

export interface NativeOptions {
  /** Extra environment for the child (GLIBC_TUNABLES, MALLOC_*_): the only variables besides PATH. */
  env?: Record<string, string>;
  /** Capture malloc_stats() after the last event. */
  stats?: boolean;
  /** Capture malloc_info(0, fp) after the last event. */
  info?: boolean;
  /** Measure RSS after every event for peakRss (default true; false: peakRss is the final RSS). */
  peak?: boolean;
  /** Also write each event's RSS on its log line: `rss`, bytes, after `brk` (needs `peak`). */
  rss?: boolean;
  /** Write and parse the fidelity log (default true). */
  events?: boolean;
  /** The file name used in trace error messages (default: the trace's path). */
  name?: string;
  /** Check the RSS measured after every event against a full page count, and the set of resident
   *  heap pages against a full scan; the replayer dies at the first difference (slow). */
  verifyRss?: boolean;
  /**
   * How the RSS after each event is kept: 'auto' (default) samples page faults while that is
   * cheaper than rescanning the heaps; 'faults' samples them from the first event to the last;
   * 'rescans' never does, as when perf_event_open is not available.
   */
  rssBy?: 'auto' | 'faults' | 'rescans';
  /** A limit on open files for the replayer (`ulimit -n`), say to keep perf_event_open from working. */
  maxFiles?: number;
  /** What the program writes (`--touch`); by default as the trace's header says, as in ptsim. */
  touch?: 'recorded' | 'full' | 'none';
  /**
   * Replay on Debian's build of another glibc version (a key of GLIBC_SUITES in glibc-builds.ts:
   * '2.31', '2.41', ...), run under that build's own dynamic loader; fetched first if need be.
   * Throws when it cannot be had: ask fetchGlibc first to skip with the reason.
   */
  glibc?: string;
}

export interface NativeRun {
  /** The fidelity log, one object per replayed event (with `rss` when asked for). */
  events: Array<Record<string, unknown>>;
  /**
   * The summary, or null when the replayer wrote none (a trace error, a crash). Besides the keys
   * of fidelity-log.md and `seconds`, when RSS is measured after every event: `rssBy` ("faults"
   * when page-fault sampling was available, else "rescans") and `fullScans` (events measured by a
   * full scan of the heaps); with sampling available, `sampledEvents` (events measured from the
   * samples), `unsampled` (of those, events after which not every page fault had been sampled:
   * each got a full scan) and `rssPaths` (how often each way out of residency was seen: brk,
   * shrink, delete, munmap, mremap, trim, exit).
   */
  summary: Record<string, unknown> | null;
  /** Set when glibc aborted: its message and the index of the event that aborted. */
  abort?: { message: string; event: number };
  stats?: string;
  info?: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
}

/**
 * Compiles the replayer unless the binary is newer than its source; returns the binary's path.
 * With a glibc build that comes with its headers and libraries (`sysroot`), a separate binary is
 * compiled and linked against them, for a glibc older than the system's; other builds run the
 * system-built binary, which asks only for symbol versions they have.
 */
export function buildNativeReplayer(glibc?: GlibcBuild): string {
  const sysroot = glibc?.sysroot;
  const binary = sysroot === undefined ? BINARY : `${BINARY}-glibc-${glibc!.version}`;
  // --sysroot alone still links the system's start files and libc (Debian's gcc searches its
  // own multiarch directory first): -B and -L put that glibc's ahead. The kernel's headers
  // (linux/perf_event.h, ...) are not part of libc6-dev: the system's serve, after glibc's.
  const flags =
    sysroot === undefined
      ? CFLAGS
      : [
          ...CFLAGS,
          `--sysroot=${sysroot}`,
          `-B${sysroot}/usr/lib/x86_64-linux-gnu/`,
          `-L${sysroot}/usr/lib/x86_64-linux-gnu`,
          `-L${sysroot}/lib/x86_64-linux-gnu`,
          '-idirafter',
          '/usr/include',
          '-idirafter',
          '/usr/include/x86_64-linux-gnu',
        ];
  const newer = (p: string): boolean => statSync(p).mtimeMs >= statSync(SOURCE).mtimeMs;
  if (existsSync(binary) && newer(binary) && (sysroot === undefined || !newer(sysroot)))
    return binary;
  mkdirSync(BUILD_DIR, { recursive: true });
  // Build under a private name, then rename: a concurrent caller never sees a half-written binary.
  const tmp = `${binary}.${process.pid}.tmp`;
  const r = spawnSync('cc', [...flags, '-o', tmp, SOURCE], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run cc to build the native replayer: ${r.error.message}`);
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(
      `building the native replayer failed (cc ${[...flags, '-o', tmp, SOURCE].join(' ')}):\n${r.stderr}${r.stdout}`,
    );
  }
  renameSync(tmp, binary);
  return binary;
}

function isGzip(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(2);
    return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x1f && b[1] === 0x8b;
  } finally {
    closeSync(fd);
  }
}

function readIfExists(path: string): string | undefined {
  return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
}

function parseLog(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of text.split('\n'))
    if (line !== '') out.push(JSON.parse(line) as Record<string, unknown>);
  return out;
}

/** glibc's abort message: the last line on stderr that the replayer did not write itself. */
function abortMessage(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('replay:'));
  return lines.length > 0 ? lines[lines.length - 1]!.trim() : '';
}

/** Replays a trace file (plain or gzip) on the real glibc. */
let zeroPage: boolean | undefined;

/**
 * Whether this machine's kernel maps the shared zero page for a read of an untouched anonymous
 * page (the native replayer's --zero-page probe): replays compared with it model the same kernel
 * (KernelOptions.zeroPage).
 */
export function kernelZeroPage(): boolean {
  if (zeroPage === undefined) {
    const r = spawnSync(buildNativeReplayer(), ['--zero-page'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`the zero-page probe failed: ${r.stderr}`);
    zeroPage = r.stdout.trim() !== 'no';
  }
  return zeroPage;
}

export function runNative(tracePath: string, opts: NativeOptions = {}): NativeRun {
  let glibc: GlibcBuild | undefined;
  if (opts.glibc !== undefined) {
    const f = fetchGlibc(opts.glibc);
    if (!f.ok) throw new Error(`glibc ${opts.glibc} is not available: ${f.reason}`);
    glibc = f.build;
  }
  const binary = buildNativeReplayer(glibc);
  const dir = mkdtempSync(join(tmpdir(), 'ptsim-native-'));
  try {
    let trace = tracePath;
    if (isGzip(tracePath)) {
      trace = join(dir, 'trace.txt');
      writeFileSync(trace, gunzipSync(readFileSync(tracePath)));
    }
    const files = {
      events: join(dir, 'events.jsonl'),
      summary: join(dir, 'summary.json'),
      stats: join(dir, 'stats.txt'),
      info: join(dir, 'info.xml'),
    };
    const args = [trace, '--summary', files.summary, '--name', opts.name ?? tracePath];
    const wantEvents = opts.events !== false;
    args.push(...(wantEvents ? ['--events', files.events] : ['--no-events']));
    if (opts.peak === false) args.push('--no-peak');
    if (opts.rss) args.push('--rss');
    if (opts.verifyRss) args.push('--verify-rss');
    if (opts.rssBy !== undefined) args.push('--rss-by', opts.rssBy);
    if (opts.touch !== undefined) args.push('--touch', opts.touch);
    if (opts.stats) args.push('--stats', files.stats);
    if (opts.info) args.push('--info', files.info);

    // A clean environment: glibc reads GLIBC_TUNABLES and MALLOC_*_ at start-up, so nothing may
    // leak in from the test runner's own environment.
    const env: Record<string, string> = {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      ...opts.env,
    };
    let cmd = binary;
    let argv = args;
    if (glibc !== undefined) {
      // Run under that glibc's loader, which loads its libc and nothing of the system's.
      cmd = glibc.loader;
      argv = ['--library-path', glibc.libDir, binary, ...args];
    }
    if (opts.maxFiles !== undefined) {
      argv = ['-c', `ulimit -n ${opts.maxFiles} && exec "$0" "$@"`, cmd, ...argv];
      cmd = '/bin/sh';
    }
    const r = spawnSync(cmd, argv, {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
    if (r.error) throw new Error(`cannot run the native replayer: ${r.error.message}`);

    const events = wantEvents ? parseLog(readIfExists(files.events) ?? '') : [];
    const summaryText = readIfExists(files.summary)?.trim() ?? '';
    const summary =
      summaryText === '' ? null : (JSON.parse(summaryText) as Record<string, unknown>);
    const run: NativeRun = {
      events,
      summary,
      stderr: r.stderr,
      exitCode: r.status,
      signal: r.signal,
    };
    if (summary?.['abort'] === true || r.signal === 'SIGABRT') {
      const n = summary?.['events'];
      run.abort = {
        message: abortMessage(r.stderr),
        event: typeof n === 'number' ? n : events.length,
      };
    }
    if (opts.stats) {
      const s = readIfExists(files.stats);
      if (s !== undefined) run.stats = s;
    }
    if (opts.info) {
      const s = readIfExists(files.info);
      if (s !== undefined) run.info = s;
    }
    return run;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Replays a trace given as text. */
export function runNativeText(traceText: string, opts: NativeOptions = {}): NativeRun {
  const dir = mkdtempSync(join(tmpdir(), 'ptsim-trace-'));
  try {
    const path = join(dir, 'inline.trace');
    writeFileSync(path, traceText);
    return runNative(path, { name: 'inline.trace', ...opts });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
