/**
 * Helpers of the recorder's tests: build the recorder and the test programs, record a run, read
 * the traces back, and check a recording against the replay (addressCheck).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll } from 'vitest';
import { recordCommand } from '../../src/cli/record-command.js';
import { buildRecorder } from '../../src/record/build.js';
import { recordProgram, type RecordOptions, type RecordResult } from '../../src/record/session.js';
import { runSim, traceEnv } from '../diff/harness.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** Built programs and the recorder's cache live outside the repository. */
export const BUILD = join(tmpdir(), `ptsim-record-tests-${process.getuid?.() ?? 0}`);

function recorder(): string {
  return buildRecorder({ cacheDir: join(BUILD, 'cache') });
}

/** Compiles test/record/programs/NAME.c (unless the binary is newer) and returns its path. */
export function program(name: string): string {
  const src = join(HERE, 'programs', `${name}.c`);
  const bin = join(BUILD, 'bin', name);
  const newest = Math.max(statSync(src).mtimeMs, statSync(join(HERE, 'programs', 'log.h')).mtimeMs);
  if (existsSync(bin) && statSync(bin).mtimeMs >= newest) return bin;
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  // -fno-builtin: the compiler must not remove or merge the allocator calls the program logs.
  const r = spawnSync(
    'cc',
    ['-O1', '-fno-builtin', '-Wall', '-Wextra', '-Werror', '-pthread', '-o', tmp, src],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`cc ${src} failed:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

/** Compiles a program of programs/ -O2 -fomit-frame-pointer -g with `compiler` (unless the
 *  binary is newer): the optimised code without frame pointers that call stacks must unwind. */
export function buildOptimised(source: string, compiler: string): string {
  const src = join(HERE, 'programs', source);
  const bin = join(BUILD, 'bin', source.replace('.', '-'));
  if (existsSync(bin) && statSync(bin).mtimeMs >= statSync(src).mtimeMs) return bin;
  mkdirSync(dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const r = spawnSync(compiler, ['-O2', '-fomit-frame-pointer', '-g', '-Wall', '-o', tmp, src], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`${compiler} ${src} failed:\n${r.stderr}`);
  renameSync(tmp, bin);
  return bin;
}

/** The line of each `SITE name` marker in a source file of programs/, read from the source itself. */
export function markers(source: string): Map<string, number> {
  const out = new Map<string, number>();
  readFileSync(join(HERE, 'programs', source), 'utf8')
    .split('\n')
    .forEach((l, i) => {
      const m = /SITE (\w+)/.exec(l);
      if (m !== null) out.set(m[1]!, i + 1);
    });
  return out;
}

export function scratch(prefix: string): string {
  mkdirSync(BUILD, { recursive: true });
  return mkdtempSync(join(BUILD, `${prefix}-`));
}

export interface Recording extends RecordResult {
  dir: string;
  /** The text of each trace, by file. */
  text: Map<string, string>;
  /** The main trace's text. */
  main: string;
}

/** Records `command` into a fresh directory; the program's output is captured. */
export async function record(
  command: string,
  args: string[],
  opts: Partial<RecordOptions> = {},
): Promise<Recording> {
  const dir = opts.output !== undefined ? dirname(opts.output) : scratch('rec');
  const r = await recordProgram({
    command,
    args,
    output: opts.output ?? join(dir, 'out.trace'),
    gzip: false,
    library: recorder(),
    capture: true,
    ...opts,
  });
  const text = new Map<string, string>();
  for (const t of r.traces) {
    const raw = readFileSync(t.file);
    text.set(t.file, (raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw).toString('utf8'));
  }
  const main = r.traces.find((t) => t.main);
  return { ...r, dir, text, main: main !== undefined ? text.get(main.file)! : '' };
}

export interface Line {
  /** 1-based line number in the trace. */
  line: number;
  tid: number;
  /** `OP ARGS...` as the test programs log them (no time, no thread). */
  call: string;
  op: string;
  args: string[];
}

/** The event lines of a trace. */
export function events(text: string): Line[] {
  const out: Line[] = [];
  text.split('\n').forEach((l, k) => {
    if (l === '' || l.startsWith('#')) return;
    const f = l.split(' ');
    const at = f[0]!.startsWith('@') ? 1 : 0;
    out.push({
      line: k + 1,
      tid: Number(f[at]),
      call: f.slice(at + 1).join(' '),
      op: f[at + 1]!,
      args: f.slice(at + 2),
    });
  });
  return out;
}

/** The trace lines a program logged (comments dropped). */
export function logged(text: string): string[] {
  return text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
}

const RETURNS_BLOCK = new Set(['malloc', 'calloc', 'realloc', 'memalign', 'valloc', 'pvalloc']);
const HEAP_ALIGN = 64n << 20n; // HEAP_MAX_SIZE: non-main heaps are 64 MiB-aligned

/**
 * Replays the trace in ptsim and checks each returned block against the address the program
 * really got: a main-arena block must sit at the same offset from the heap's start (the break at
 * the first call), an mmapped chunk at the same offset in a page, a block of another arena's heap
 * at the same offset from a 64 MiB boundary, each simulated heap matching one real heap. Any call
 * missing from the recording, or recorded out of order, moves later blocks: the check fails at
 * the first one. Returns null when every block matches.
 */
export function addressCheck(text: string): string | null {
  const sim = runSim(text, traceEnv(text));
  if (sim.error !== undefined) return `ptsim stopped: ${sim.error}`;
  const fact = (k: string): bigint | undefined => {
    const m = new RegExp(`^# ${k} (0x[0-9a-f]+)$`, 'm').exec(text.slice(0, 1 << 16));
    return m === null ? undefined : BigInt(m[1]!);
  };
  const base = fact('brk_at_first_call') ?? fact('start_brk');
  if (base === undefined) return 'the trace has no # start_brk';
  const evs = events(text);
  // A replay that reproduces glibc's abort stops before the aborting call.
  const replayed = sim.summary.abort !== undefined ? sim.summary.abort.event : evs.length;
  if (sim.events.length !== replayed)
    return `${evs.length} event lines, ${sim.events.length} replayed`;
  const heapBase = new Map<string, bigint>();
  const heapOf = new Map<bigint, string>();
  for (let i = 0; i < replayed; i++) {
    const ev = evs[i]!;
    const rec = sim.events[i]!;
    if (!RETURNS_BLOCK.has(ev.op)) continue;
    const token = ev.args[ev.args.length - 1]!;
    const where = `line ${ev.line} (${ev.tid} ${ev.call}): ptsim ${JSON.stringify(rec)}`;
    if ((rec.ptr === null) !== (token === '0')) return `NULL in one run only at ${where}`;
    if (rec.off === undefined) continue;
    const ptr = BigInt(token);
    const off = BigInt(rec.off);
    if (rec.arena === 0) {
      if (ptr - base !== off) return `main-arena offset ${ptr - base} recorded at ${where}`;
    } else if (rec.arena === -1) {
      if ((ptr - off) % 4096n !== 0n)
        return `mmapped chunk at page offset ${ptr % 4096n} recorded at ${where}`;
    } else {
      const key = `${rec.arena}/${rec.heap}`;
      const real = ptr - off;
      if (real % HEAP_ALIGN !== 0n) return `heap offset ${ptr % HEAP_ALIGN} recorded at ${where}`;
      if ((heapBase.get(key) ?? real) !== real || (heapOf.get(real) ?? key) !== key) {
        return `simulated heap ${key} is at real ${real.toString(16)}, which is heap ${heapOf.get(real)} (or ${key} was at ${heapBase.get(key)?.toString(16)}): ${where}`;
      }
      heapBase.set(key, real);
      heapOf.set(real, key);
    }
  }
  return null;
}

/** `ptsim record ARGV` in this process: its exit status and what it printed. */
export async function runRecord(
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await recordCommand.run(
    argv,
    (s) => (out += s),
    (s) => (err += s),
  );
  return { code, out, err };
}

/**
 * The command builds into the per-user cache: for the calling file's tests it is kept out of the
 * user's home, in BUILD (and the variable is put back for the test files that run after it in the
 * same process).
 */
export function cacheInBuild(): void {
  const saved = process.env['XDG_CACHE_HOME'];
  beforeAll(() => {
    process.env['XDG_CACHE_HOME'] = join(BUILD, 'xdg');
  });
  afterAll(() => {
    if (saved === undefined) delete process.env['XDG_CACHE_HOME'];
    else process.env['XDG_CACHE_HOME'] = saved;
  });
}
