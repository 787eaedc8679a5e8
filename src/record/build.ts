/**
 * Builds the recorder (recorder.c, shipped as source) with the system's C compiler on first use,
 * into a per-user cache keyed by a hash of the source and the flags, so an upgrade of ptsim
 * rebuilds it and two versions never share a library.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The C source: src/record/recorder.c, next to this file in the source tree and two levels up from dist/. */
const RECORDER_SOURCE = fileURLToPath(new URL('../../src/record/recorder.c', import.meta.url));

/**
 * -fvisibility=hidden: only the interposed functions are exported. -fno-builtin: the compiler must
 * not turn our own code into calls of the functions we define. -z now: every symbol is bound at
 * load time, so no lazy binding runs inside a recorded call. -static-libgcc with --exclude-libs:
 * libgcc's unwinder (for call stacks) is linked in with its symbols kept private, so the recorder
 * adds no library to the program and interposes none of libgcc_s's functions.
 */
const CFLAGS = [
  '-O2',
  '-fPIC',
  '-shared',
  '-pthread',
  '-fvisibility=hidden',
  '-fno-builtin',
  '-Wall',
  '-Wl,-z,now',
  '-static-libgcc',
  '-Wl,--exclude-libs,ALL',
];
const LIBS = ['-ldl'];

/** The recorder cannot be built: no compiler, or the compiler failed. */
export class RecorderBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecorderBuildError';
  }
}

/**
 * $XDG_CACHE_HOME/ptsim, else ~/.cache/ptsim. LD_PRELOAD splits its value at spaces and colons, so
 * a cache path containing either falls back to a per-user directory under the system's tmpdir.
 */
function recorderCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  const base =
    xdg !== undefined && xdg.startsWith('/') ? xdg : join(env['HOME'] ?? homedir(), '.cache');
  const dir = join(base, 'ptsim');
  if (!/[\s:]/.test(dir)) return dir;
  return join(tmpdir(), `ptsim-${userInfo().uid}`);
}

/** The compiler command: $CC (which may carry flags) or cc. */
function compiler(env: NodeJS.ProcessEnv): string[] {
  const cc = (env['CC'] ?? '').trim();
  return cc === '' ? ['cc'] : cc.split(/\s+/);
}

/** Returns the path of the built recorder library, building it if the cache does not have it. */
export function buildRecorder(opts: { cacheDir?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const env = opts.env ?? process.env;
  let source: Buffer;
  try {
    source = readFileSync(RECORDER_SOURCE);
  } catch {
    throw new RecorderBuildError(
      `the recorder's source is missing (${RECORDER_SOURCE}): this ptsim installation is incomplete`,
    );
  }
  const hash = createHash('sha256')
    .update(source)
    .update(CFLAGS.join(' '))
    .update(LIBS.join(' '))
    .digest('hex')
    .slice(0, 16);
  const dir = opts.cacheDir ?? recorderCacheDir(env);
  const lib = join(dir, `recorder-${hash}.so`);
  if (existsSync(lib)) return lib;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new RecorderBuildError(
      `cannot create the cache directory ${dir} for the recorder: ${(e as Error).message}`,
    );
  }
  // Built under a private name, then renamed: a concurrent ptsim never loads a half-written file.
  const tmp = `${lib}.${process.pid}.tmp`;
  const [cc, ...ccFlags] = compiler(env);
  const args = [...ccFlags, ...CFLAGS, '-o', tmp, RECORDER_SOURCE, ...LIBS];
  const r = spawnSync(cc!, args, { encoding: 'utf8', env });
  if (r.error !== undefined) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new RecorderBuildError(
        `ptsim record builds its recorder with a C compiler on first use, and there is none here ('${cc}' was not found). ` +
          'Install one (Debian/Ubuntu: apt install gcc; Fedora: dnf install gcc; Alpine: apk add build-base) or point CC at it.',
      );
    }
    throw new RecorderBuildError(`cannot run the C compiler '${cc}': ${r.error.message}`);
  }
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new RecorderBuildError(
      `building the recorder failed (${[cc, ...args].join(' ')}):\n${r.stderr}${r.stdout}`,
    );
  }
  renameSync(tmp, lib);
  return lib;
}
