/**
 * Debian's real builds of other glibc versions, for running the native replayer on them: the
 * libc6 package (and, for a glibc too old for the system-built replayer, libc6-dev) of the Debian
 * suite that ships each version, downloaded with apt-get and unpacked into a cache outside the
 * repository, `$PTSIM_GLIBC_CACHE`, else `$XDG_CACHE_HOME/ptsim/glibc`, else
 * `~/.cache/ptsim/glibc`, one directory per version.
 *
 * apt-get runs with a private configuration (its own sources list naming the Debian archive of the
 * system's own sources, with the one suite needed, and its own state and cache directories), so
 * the system's apt state is never touched; its lists are thrown away once the packages are
 * unpacked. Fetching is idempotent and safe for concurrent test workers: one process holds a lock
 * directory while it works in a private directory, which it renames into place when complete; the
 * others wait for it, then find the version ready. When a version cannot be had (no apt-get, no
 * network, the suite no longer ships it) the reason is returned, for the tests to skip with, and
 * remembered for ten minutes so that a test run does not try again and again.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * The versions the project models besides 2.36, and the Debian suite that ships each. `dev`: the
 * replayer is built against this version's own headers and libraries (libc6-dev), because the
 * system-built one needs symbols that it does not have (GLIBC_2.33 mallinfo2, GLIBC_2.34
 * pthread_create and __libc_start_main).
 */
export const GLIBC_SUITES: Readonly<Record<string, { suite: string; dev: boolean }>> = {
  '2.31': { suite: 'bullseye', dev: true },
  '2.41': { suite: 'trixie', dev: false },
  '2.43': { suite: 'sid', dev: false },
  '2.44': { suite: 'experimental', dev: false },
};

export interface GlibcBuild {
  /** The upstream version, as gnu_get_libc_version() reports it: "2.41". */
  version: string;
  /** The Debian package version: "2.41-12+deb13u5". */
  debianVersion: string;
  suite: string;
  /** The unpacked packages: usr/... (and lib/... for the older, not yet merged layout). */
  root: string;
  /** The dynamic loader to run a program with: `LOADER --library-path LIBDIR PROGRAM ARGS`. */
  loader: string;
  libDir: string;
  /** Set when libc6-dev was unpacked too: the root to compile and link against (--sysroot). */
  sysroot?: string;
  /** When the packages were fetched, and how long it took (apt-get update, download, unpack). */
  fetchedAt: string;
  fetchSeconds: number;
  /** Each package file: its name, size and SHA-256. */
  packages: Array<{ file: string; bytes: number; sha256: string }>;
}

export type GlibcFetch = { ok: true; build: GlibcBuild } | { ok: false; reason: string };

/** Where the builds are kept. */
export function glibcCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const own = env['PTSIM_GLIBC_CACHE'];
  if (own !== undefined && own !== '') return resolve(own);
  const xdg = env['XDG_CACHE_HOME'];
  const base = xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache');
  return join(resolve(base), 'ptsim', 'glibc');
}

const DEFAULT_ARCHIVE = 'http://deb.debian.org/debian';

/**
 * The Debian archive the system's apt sources use for its main suite (not the security archive):
 * the first `URIs:` of a deb822 stanza of type deb, or the URI of a one-line `deb` entry, whose
 * suites do not end in -security and whose URI does not name debian-security.
 */
export function debianArchive(
  sources: Array<{ name: string; text: string }> = systemSources(),
): string | undefined {
  for (const { name, text } of sources) {
    if (name.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (key: string): string[] => {
          const m = new RegExp(`^${key}:[ \\t]*(.*)$`, 'mi').exec(stanza);
          return m === null ? [] : m[1]!.trim().split(/\s+/);
        };
        if (!field('Types').includes('deb')) continue;
        if (field('Suites').some((s) => s.endsWith('-security'))) continue;
        const uri = field('URIs').find((u) => /^https?:\/\//.test(u) && !/security/.test(u));
        if (uri !== undefined && /debian/.test(uri)) return uri.replace(/\/+$/, '');
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m === null) continue;
        const [, uri, suite] = m as unknown as [string, string, string];
        if (suite.endsWith('-security') || /security/.test(uri) || !/debian/.test(uri)) continue;
        if (/^https?:\/\//.test(uri)) return uri.replace(/\/+$/, '');
      }
    }
  }
  return undefined;
}

function systemSources(): Array<{ name: string; text: string }> {
  const out: Array<{ name: string; text: string }> = [];
  const read = (path: string): void => {
    try {
      out.push({ name: path, text: readFileSync(path, 'utf8') });
    } catch {
      // not there, or not readable: nothing to learn from it
    }
  };
  read('/etc/apt/sources.list');
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d').sort())
      if (f.endsWith('.list') || f.endsWith('.sources')) read(join('/etc/apt/sources.list.d', f));
  } catch {
    // no such directory
  }
  return out;
}

const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const FAILURE_MEMORY_MS = 10 * 60_000;
const LOCK_WAIT_MS = 15 * 60_000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock directory `lock`; a lock whose holder has died is taken over. */
function lock(path: string): void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number(readFileSync(join(path, 'pid'), 'utf8'));
    } catch {
      // the holder has made the directory and not yet written its pid, or has just let go
    }
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      // Taken over by renaming, so that two waiters cannot both remove it and both think it theirs.
      const stale = `${path}.stale-${process.pid}`;
      try {
        renameSync(path, stale);
        rmSync(stale, { recursive: true, force: true });
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`waited too long for the lock ${path}`);
    sleep(200);
  }
}

function unlock(path: string): void {
  rmSync(path, { recursive: true, force: true });
}

function readBuild(dir: string): GlibcBuild | undefined {
  const file = join(dir, 'build.json');
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as GlibcBuild;
}

const memo = new Map<string, GlibcFetch>();

/**
 * The build of glibc `version` (a key of GLIBC_SUITES), from the cache or fetched now.
 * `PTSIM_GLIBC_OFFLINE=1` forbids fetching: a version not in the cache is then unavailable.
 */
export function fetchGlibc(version: string, cache = glibcCacheDir()): GlibcFetch {
  const key = `${cache}\0${version}`;
  const known = memo.get(key);
  if (known !== undefined) return known;
  const result = fetchUncached(version, cache);
  memo.set(key, result);
  return result;
}

function fetchUncached(version: string, cache: string): GlibcFetch {
  const spec = GLIBC_SUITES[version];
  if (spec === undefined)
    return {
      ok: false,
      reason: `glibc ${version} is not one of ${Object.keys(GLIBC_SUITES).join(', ')}`,
    };
  const dir = join(cache, version);
  const ready = readBuild(dir);
  if (ready !== undefined) return { ok: true, build: ready };
  if (process.env['PTSIM_GLIBC_OFFLINE'] === '1')
    return { ok: false, reason: `glibc ${version} is not in ${cache} and PTSIM_GLIBC_OFFLINE=1` };
  const failed = join(cache, `${version}.failed.json`);
  const recent = (): string | undefined => {
    if (!existsSync(failed)) return undefined;
    const f = JSON.parse(readFileSync(failed, 'utf8')) as { at: number; reason: string };
    return Date.now() - f.at < FAILURE_MEMORY_MS ? f.reason : undefined;
  };
  const before = recent();
  if (before !== undefined) return { ok: false, reason: `${before} (an attempt under 10 min ago)` };
  mkdirSync(cache, { recursive: true });
  const lockDir = join(cache, `${version}.lock`);
  lock(lockDir);
  try {
    // Another process may have finished, or failed, while we waited.
    const done = readBuild(dir);
    if (done !== undefined) return { ok: true, build: done };
    const failedMeanwhile = recent();
    if (failedMeanwhile !== undefined) return { ok: false, reason: failedMeanwhile };
    const work = join(cache, `${version}.tmp-${process.pid}`);
    rmSync(work, { recursive: true, force: true });
    try {
      const r = download(version, spec, work);
      if (!r.ok) {
        writeFileSync(failed, JSON.stringify({ at: Date.now(), reason: r.reason }));
        return r;
      }
      // The build's paths name its final directory: rewrite them, then move it there at once.
      const build = relocate(r.build, work, dir);
      writeFileSync(join(work, 'build.json'), `${JSON.stringify(build, null, 2)}\n`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(work, dir);
      rmSync(failed, { force: true });
      return { ok: true, build };
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  } finally {
    unlock(lockDir);
  }
}

function relocate(b: GlibcBuild, from: string, to: string): GlibcBuild {
  const move = (p: string): string => join(to, relative(from, p));
  const out: GlibcBuild = {
    ...b,
    root: move(b.root),
    loader: move(b.loader),
    libDir: move(b.libDir),
  };
  if (b.sysroot !== undefined) out.sysroot = move(b.sysroot);
  return out;
}

function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}

function download(
  version: string,
  spec: { suite: string; dev: boolean },
  work: string,
): GlibcFetch {
  const t0 = performance.now();
  if (!existsSync('/usr/bin/apt-get') || !existsSync('/usr/bin/dpkg-deb'))
    return { ok: false, reason: 'no apt-get and dpkg-deb on this machine (not Debian-like)' };
  if (!existsSync(KEYRING))
    return { ok: false, reason: `no Debian archive keyring (${KEYRING}) to check the packages` };
  const archive = debianArchive() ?? DEFAULT_ARCHIVE;
  const apt = join(work, 'apt');
  for (const d of ['state/lists/partial', 'cache/archives/partial', 'etc', 'debs'])
    mkdirSync(join(apt, d), { recursive: true });
  writeFileSync(join(apt, 'state/status'), '');
  const sourceList = join(apt, 'etc/sources.list');
  writeFileSync(sourceList, `deb [signed-by=${KEYRING}] ${archive} ${spec.suite} main\n`);
  const options = [
    `Dir::State=${join(apt, 'state')}`,
    `Dir::State::status=${join(apt, 'state/status')}`,
    `Dir::Cache=${join(apt, 'cache')}`,
    `Dir::Etc::SourceList=${sourceList}`,
    'Dir::Etc::SourceParts=/dev/null',
    'Dir::Etc::Preferences=/dev/null',
    'Dir::Etc::PreferencesParts=/dev/null',
    'APT::Architecture=amd64',
    'APT::Architectures=amd64',
    'Acquire::Languages=none',
    'Acquire::Retries=1',
    'Acquire::http::Timeout=30',
    // Download into the private directories as the calling user, not the _apt sandbox user.
    'APT::Sandbox::User=root',
    'Debug::NoLocking=1',
  ].flatMap((o) => ['-o', o]);
  const run = (
    cmd: string,
    args: string[],
    cwd?: string,
  ): { ok: boolean; out: string; err: string } => {
    const r = spawnSync(cmd, [...options, ...args], {
      cwd,
      encoding: 'utf8',
      timeout: 600_000,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LC_ALL: 'C', HOME: apt },
    });
    if (r.error) return { ok: false, out: '', err: r.error.message };
    return { ok: r.status === 0, out: r.stdout, err: r.stderr };
  };
  const update = run('apt-get', ['-q', 'update']);
  // apt-get update exits 0 even when a source failed; a missing Packages list shows it.
  if (!update.ok || /^(W|E): /m.test(update.err))
    return {
      ok: false,
      reason: `apt-get update of ${archive} ${spec.suite} failed: ${lastLines(update.err || update.out)}`,
    };
  const madison = run('apt-cache', ['madison', 'libc6']);
  const versions = madison.out
    .split('\n')
    .map((l) => l.split('|').map((f) => f.trim()))
    .filter((f) => f[0] === 'libc6' && f[1]!.startsWith(`${version}-`))
    .map((f) => f[1]!);
  if (versions.length === 0)
    return {
      ok: false,
      reason: `Debian ${spec.suite} (${archive}) no longer ships libc6 ${version}: it has ${
        madison.out
          .split('\n')
          .map((l) => l.split('|')[1]?.trim())
          .filter(Boolean)
          .join(', ') || 'none'
      }`,
    };
  // madison lists the newest first.
  const debianVersion = versions[0]!;
  const names = ['libc6', ...(spec.dev ? ['libc6-dev'] : [])];
  const debs = join(apt, 'debs');
  const got = run(
    'apt-get',
    ['-q', 'download', ...names.map((n) => `${n}=${debianVersion}`)],
    debs,
  );
  if (!got.ok)
    return { ok: false, reason: `apt-get download failed: ${lastLines(got.err || got.out)}` };
  const root = join(work, 'root');
  mkdirSync(root);
  const packages: GlibcBuild['packages'] = [];
  for (const file of readdirSync(debs).sort()) {
    if (!file.endsWith('.deb')) continue;
    const path = join(debs, file);
    const bytes = readFileSync(path);
    packages.push({
      file,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    const x = spawnSync('dpkg-deb', ['-x', path, root], { encoding: 'utf8' });
    if (x.status !== 0)
      return { ok: false, reason: `dpkg-deb -x ${file} failed: ${lastLines(x.stderr)}` };
  }
  if (packages.length !== names.length)
    return {
      ok: false,
      reason: `apt-get download left ${packages.length} of ${names.length} packages`,
    };
  rmSync(apt, { recursive: true, force: true });
  internaliseSymlinks(root);
  // Merged /usr (Debian 12 on) or not (Debian 11: /lib/x86_64-linux-gnu).
  const libDir = ['usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu']
    .map((d) => join(root, d))
    .find((d) => existsSync(join(d, 'libc.so.6')));
  if (libDir === undefined)
    return { ok: false, reason: `libc6 ${debianVersion} has no x86_64 libc.so.6` };
  const loader = join(libDir, 'ld-linux-x86-64.so.2');
  if (!existsSync(loader))
    return { ok: false, reason: `libc6 ${debianVersion} has no ld-linux-x86-64.so.2` };
  const build: GlibcBuild = {
    version,
    debianVersion,
    suite: spec.suite,
    root,
    loader,
    libDir,
    fetchedAt: new Date().toISOString(),
    fetchSeconds: Math.round((performance.now() - t0) / 10) / 100,
    packages,
  };
  if (spec.dev) build.sysroot = root;
  return { ok: true, build };
}

/**
 * Debian's packages hold absolute symbolic links (libc6-dev's libpthread.so points at
 * /lib/x86_64-linux-gnu/libpthread.so.0): unpacked elsewhere they would name the system's own
 * files. Each is made relative, to the same path inside the unpacked tree.
 */
function internaliseSymlinks(root: string): void {
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isSymbolicLink()) {
        const target = readlinkSync(path);
        if (!target.startsWith('/')) continue;
        unlinkSync(path);
        symlinkSync(relative(dirname(path), join(root, target)) || '.', path);
      }
    }
  };
  walk(root);
}
