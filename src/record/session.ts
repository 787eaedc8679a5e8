/**
 * One recording: runs a program with the recorder preloaded, waits for it, then turns the files
 * the recorder wrote (one per process image, PID.N.trace in a work directory next to the output)
 * into the traces the user asked for, as text or in the binary form, compressed or not: the
 * started program's trace under the requested name, every other process image's in a directory
 * beside it (FILE.d/PID.trace, or FILE.d/PID.ptb).
 */

import { spawn, type StdioOptions } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmSync,
  unlinkSync,
} from 'node:fs';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { NativeTraceWriter } from '../import/native-writer.js';
import { streamTraceFile } from '../trace/reader.js';
import { writeFailure } from '../trace/source.js';
import { TraceReadError, TraceSyntaxError } from '../trace/types.js';
import { buildRecorder } from './build.js';
import { symbolizeTrace, type SymbolizeResult } from './trace-symbols.js';

export interface RecordOptions {
  command: string;
  args: string[];
  /** The started program's trace. Other process images' traces go to sideDirectory(output). */
  output: string;
  gzip: boolean;
  /** Write the traces in the binary form (src/trace/binary.ts) instead of text (default false). */
  binary?: boolean;
  /** Record forked children and every descendant too (default true). */
  children?: boolean;
  /** The built recorder; built (or taken from the cache) when absent. */
  library?: string;
  /** The environment to run the program in (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Collect the program's standard output and error instead of passing them through. */
  capture?: boolean;
  /** Pass SIGTERM, SIGHUP and SIGQUIT on to the program, and ignore SIGINT (the terminal sends it to the program too). */
  forwardSignals?: boolean;
  /** How long to wait, after the program ends, for descendants that are still recording (ms). */
  settleMs?: number;
  /** Record the pages large blocks touched and samples of RSS (default true). */
  touches?: boolean;
  /** When to take RSS samples, as parseRssEvery returns it (default: the recorder's, 100ms,50000). */
  rssEvery?: string;
  /** Record the call stack of every allocating call, up to this many frames (default: none). */
  stacks?: number;
  /** With stacks, the stacks of free calls too. */
  freeStacks?: boolean;
}

/** The recorder's `# rss_peak` line: its first RSS sample, and the one with the most anonymous memory. */
export interface RssPeak {
  /** RssAnon at the peak, in bytes. */
  anon: number;
  /** The resident bytes of glibc's heaps and mmapped chunks at the peak, when the recorder could tell. */
  heap?: number;
  /** The events recorded before the peak's sample. */
  event: number;
  firstAnon: number;
  firstHeap?: number;
}

export interface RecordedTrace {
  /** Where the trace now is. */
  file: string;
  pid: number;
  /** The program image of that process: 0 for its first, 1 after its first exec, ... */
  image: number;
  /** Event lines in the file. */
  events: number;
  /** Of those, how many were copied from the parent's trace at a fork. */
  inherited: number;
  /** The parent, for a forked child whose file starts with its parent's trace. */
  forkedFrom?: number;
  /** The executable (from the trace's header). */
  exe: string;
  /** With call stacks: what symbolizing them found. */
  symbols?: SymbolizeResult;
  /** How the recording ended: exit, _exit, exec, signal N, or incomplete (killed by SIGKILL, or still running). */
  ending: string;
  /** The started program's (last) image: the trace under the requested name. */
  main: boolean;
  /** Its RSS samples' summary, when the recorder wrote one (touches on, and the image ended). */
  rss?: RssPeak;
}

export interface RecordResult {
  pid: number;
  /** The program's exit status, or null when a signal ended it. */
  status: number | null;
  signal: NodeJS.Signals | null;
  /** What a shell would report: the status, or 128 + the signal's number. */
  exitCode: number;
  /** The main trace first, then the others by pid and image. */
  traces: RecordedTrace[];
  stdout?: string;
  stderr?: string;
}

/** How much of the process's growth the verdict below needs before it says anything. */
const OUTSIDE_MIN = 8 << 20;

/** The process's growth in anonymous memory, and how much of it glibc's allocator held. */
export interface MallocShare {
  /** RssAnon at the peak sample minus RssAnon at the first. */
  growth: number;
  /** The growth of the resident memory of glibc's heaps and mmapped chunks, at the same samples. */
  heap: number;
  /** The rest: memory the program got without malloc (an allocator of its own, mmap, ...). */
  outside: number;
}

/**
 * Did most of the memory the process gained not go through malloc? From the recorder's first
 * sample and its peak: the anonymous memory's growth against the growth of glibc's own resident
 * memory. Undefined when it did go through malloc, when the growth outside malloc is under
 * OUTSIDE_MIN (a program's own data and stacks, a few MiB, are outside malloc too), or when the
 * recorder could not measure glibc's memory.
 */
export function mostlyOutsideMalloc(rss: RssPeak): MallocShare | undefined {
  if (rss.heap === undefined || rss.firstHeap === undefined) return undefined;
  const growth = rss.anon - rss.firstAnon;
  const heap = Math.max(0, rss.heap - rss.firstHeap);
  const outside = growth - heap;
  if (outside < OUTSIDE_MIN || outside <= growth / 2) return undefined;
  return { growth, heap, outside };
}

/** The program could not be started (not found, not executable). */
export class SpawnError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'SpawnError';
  }
}

/** A trace could not be written where it goes (nor converted to the binary form): one line. */
export class TraceWriteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceWriteError';
  }
}

/** Where the other process images' traces go: `out.trace` and `out.trace.gz` -> `out.trace.d`. */
export function sideDirectory(output: string): string {
  return `${output.endsWith('.gz') ? output.slice(0, -3) : output}.d`;
}

/** Names of the files this module writes in the side directory (and replaces on the next run). */
const SIDE_FILE = /^\d+(\.\d+)?\.(trace|ptb)(\.gz)?$/;

/**
 * Writes the recorded text trace `text` as the binary trace `target`: converted in the work
 * directory, beside the text, then renamed over the target. A conversion that fails keeps the
 * recording as text beside the target, and says so (a TraceWriteError).
 */
export async function recordedAsBinary(text: string, target: string, gzip: boolean): Promise<void> {
  const converted = `${text}.ptb`;
  try {
    await writeBinaryTrace(text, converted, gzip);
  } catch (e) {
    rmSync(converted, { force: true });
    throw keptAsText(e, text, target);
  }
  renameSync(converted, target);
  unlinkSync(text);
}

/**
 * The error of a conversion to the binary form that failed, once the recorded text is moved beside
 * the target (`NAME.trace` for `NAME.ptb`), so that the recording is not lost.
 */
function keptAsText(e: unknown, text: string, target: string): TraceWriteError {
  const kept = target.replace(/\.ptb(\.gz)?$/, '') + '.trace';
  let where: string;
  try {
    renameSync(text, kept);
    where = `; the recording is kept as text in ${kept}`;
  } catch (r) {
    where = `; the recording could not be kept either (${writeFailure(r)})`;
  }
  const why =
    e instanceof TraceSyntaxError || e instanceof TraceReadError ? e.message : writeFailure(e);
  return new TraceWriteError(`cannot write the trace ${target} in the binary form: ${why}${where}`);
}

/**
 * Writes the text trace at `text` in the binary form to `target` (gzip-compressed with `gzip`):
 * the same header, events and records, read back as the text reads.
 */
export async function writeBinaryTrace(text: string, target: string, gzip: boolean): Promise<void> {
  const writer = new NativeTraceWriter(target, gzip, true);
  let lines: number;
  try {
    lines = (await streamTraceFile(text, text, writer)).lines;
  } catch (e) {
    try {
      writer.close();
    } catch {
      // the error being reported matters more
    }
    throw e;
  }
  writer.close(lines);
}

interface RawFile {
  path: string;
  pid: number;
  image: number;
}

/** `# end N events (REASON)`, with `; pid C forked from pid P after its event K` for a forked child. */
const TRAILER =
  /^# end (\d+) events \(([^;)]*)(?:; pid \d+ forked from pid (\d+) after its event (\d+))?\)$/;

function readAt(fd: number, pos: number, n: number): string {
  const b = Buffer.alloc(n);
  const got = readSync(fd, b, 0, n, pos);
  return b.toString('latin1', 0, got);
}

/** Events in a file without its final `# end` line, counted line by line; a torn last line is cut off. */
function countAndRepair(path: string): number {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    const chunk = Buffer.alloc(1 << 20);
    let events = 0;
    let first = -1; // the first byte of the current line, -1 before it
    let lastNewline = -1;
    for (let pos = 0; pos < size;) {
      const n = readSync(fd, chunk, 0, chunk.length, pos);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) {
        const c = chunk[i]!;
        if (c === 0x0a) {
          if (first !== -1 && first !== 0x23) events++;
          first = -1;
          lastNewline = pos + i;
        } else if (first === -1) {
          first = c;
        }
      }
      pos += n;
    }
    // The process died in the middle of writing a line: drop the torn line.
    if (lastNewline + 1 < size) ftruncateSync(fd, lastNewline + 1);
    return events;
  } finally {
    closeSync(fd);
  }
}

interface FileFacts {
  exe: string;
  events: number;
  ending: string;
  inherited: number;
  forkedFrom?: number;
  rss?: RssPeak;
}

/** `# rss_peak anon=N [heap=N] event=N first_anon=N [first_heap=N]`, the line before `# end`. */
function rssPeak(tail: string): RssPeak | undefined {
  const line = [...tail.matchAll(/^# rss_peak (.*)$/gm)].pop()?.[1];
  if (line === undefined) return undefined;
  const kv = new Map<string, number>();
  for (const m of line.matchAll(/(\w+)=(\d+)/g)) kv.set(m[1]!, Number(m[2]));
  const anon = kv.get('anon');
  const event = kv.get('event');
  const firstAnon = kv.get('first_anon');
  if (anon === undefined || event === undefined || firstAnon === undefined) return undefined;
  const peak: RssPeak = { anon, event, firstAnon };
  const heap = kv.get('heap');
  const firstHeap = kv.get('first_heap');
  if (heap !== undefined) peak.heap = heap;
  if (firstHeap !== undefined) peak.firstHeap = firstHeap;
  return peak;
}

function inspect(path: string): FileFacts {
  const fd = openSync(path, 'r');
  let head: string;
  let tail: string;
  try {
    const size = fstatSync(fd).size;
    head = readAt(fd, 0, Math.min(size, 1 << 16));
    tail = readAt(fd, Math.max(0, size - 4096), Math.min(size, 4096));
  } finally {
    closeSync(fd);
  }
  const exe = /^# exe (.*)$/m.exec(head)?.[1] ?? '?';
  const lines = tail.split('\n');
  const last = lines[lines.length - 1] === '' ? lines[lines.length - 2] : undefined;
  const t = last === undefined ? null : TRAILER.exec(last);
  if (t !== null) {
    const facts: FileFacts = { exe, events: Number(t[1]), ending: t[2]!, inherited: 0 };
    if (t[3] !== undefined) {
      facts.forkedFrom = Number(t[3]);
      facts.inherited = Number(t[4]);
    }
    const rss = rssPeak(tail);
    if (rss !== undefined) facts.rss = rss;
    return facts;
  }
  // No final `# end`: killed without a chance to flush (SIGKILL), or records written after the
  // exit flush (by threads still running while exit() ran).
  const earlier = [...tail.matchAll(/^# end \d+ events \(([^;)]*)[;)]/gm)].pop();
  return { exe, events: countAndRepair(path), ending: earlier?.[1] ?? 'incomplete', inherited: 0 };
}

function listFiles(work: string): RawFile[] {
  const files: RawFile[] = [];
  for (const name of readdirSync(work)) {
    const m = /^(\d+)\.(\d+)\.trace$/.exec(name);
    if (m !== null) files.push({ path: join(work, name), pid: Number(m[1]), image: Number(m[2]) });
  }
  return files.sort((a, b) => a.pid - b.pid || a.image - b.image);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (up to `ms`) for descendants whose files have no `# end` line yet and that still run. */
async function settle(work: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const running = listFiles(work).filter((f) => {
      if (!alive(f.pid)) return false;
      const fd = openSync(f.path, 'r');
      try {
        const size = fstatSync(fd).size;
        return !/# end \d+ events \([^)]*\)\n$/.test(
          readAt(fd, Math.max(0, size - 200), Math.min(size, 200)),
        );
      } finally {
        closeSync(fd);
      }
    });
    if (running.length === 0 || Date.now() >= deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Names, moves (and compresses) the recorder's files. */
async function finalize(
  work: string,
  output: string,
  topPid: number,
  gzip: boolean,
  binary: boolean,
  stacks: boolean,
): Promise<RecordedTrace[]> {
  const files = listFiles(work);
  const byPid = new Map<number, RawFile[]>();
  for (const f of files) byPid.set(f.pid, [...(byPid.get(f.pid) ?? []), f]);
  // The started program's trace: the last program its process ran (a wrapper execs the real one).
  const top = byPid.get(topPid);
  const mainFile = top !== undefined ? top[top.length - 1] : undefined;
  const side = sideDirectory(output);
  // Where a step that writes failed: the file it was writing.
  let writing = side;
  try {
    if (existsSync(side)) {
      for (const name of readdirSync(side))
        if (SIDE_FILE.test(name)) rmSync(join(side, name), { force: true });
    }
  } catch (e) {
    throw new TraceWriteError(`cannot write the traces in ${side}: ${writeFailure(e)}`);
  }
  const out: RecordedTrace[] = [];
  for (const f of files) {
    const facts = inspect(f.path);
    const main = f === mainFile;
    const siblings = byPid.get(f.pid)!;
    const ext = (binary ? '.ptb' : '.trace') + (gzip ? '.gz' : '');
    let target = output;
    try {
      if (!main) {
        writing = side;
        mkdirSync(side, { recursive: true });
        target = join(
          side,
          siblings.length === 1 ? `${f.pid}${ext}` : `${f.pid}.${siblings.indexOf(f) + 1}${ext}`,
        );
      }
      writing = target;
      // Symbolized once, here, while the program's files are still those it ran with.
      const symbols = stacks ? await symbolizeTrace(f.path) : undefined;
      if (binary) {
        await recordedAsBinary(f.path, target, gzip);
      } else if (gzip) {
        await pipeline(createReadStream(f.path), createGzip(), createWriteStream(target));
        unlinkSync(f.path);
      } else {
        renameSync(f.path, target);
      }
      out.push({
        file: target,
        pid: f.pid,
        image: f.image,
        main,
        ...facts,
        ...(symbols !== undefined ? { symbols } : {}),
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && (e as NodeJS.ErrnoException).syscall !== undefined)
        throw new TraceWriteError(`cannot write the trace ${writing}: ${writeFailure(e)}`);
      throw e;
    }
  }
  return out.sort((a, b) => Number(b.main) - Number(a.main));
}

function signalNumber(sig: NodeJS.Signals): number {
  return (osConstants.signals as Record<string, number>)[sig] ?? 0;
}

/** Runs the program under the recorder and returns what it recorded. */
export async function recordProgram(o: RecordOptions): Promise<RecordResult> {
  const library = o.library ?? buildRecorder();
  const output = resolve(o.output);
  // The work directory sits next to the output, so that the files are renamed, not copied.
  const work = mkdtempSync(join(dirname(output), `.${basename(output)}.ptsim-`));
  try {
    const env: NodeJS.ProcessEnv = { ...(o.env ?? process.env) };
    const preload = (env['LD_PRELOAD'] ?? '').trim();
    env['LD_PRELOAD'] = preload === '' ? library : `${library}:${preload}`;
    env['PTSIM_RECORD_DIR'] = work;
    if (o.children === false) env['PTSIM_RECORD_PPID'] = String(process.pid);
    else delete env['PTSIM_RECORD_PPID'];
    if (o.touches === false) env['PTSIM_RECORD_TOUCHES'] = '0';
    else delete env['PTSIM_RECORD_TOUCHES'];
    if (o.rssEvery !== undefined) env['PTSIM_RECORD_RSS_EVERY'] = o.rssEvery;
    else delete env['PTSIM_RECORD_RSS_EVERY'];
    if (o.stacks !== undefined && o.stacks > 0) env['PTSIM_RECORD_STACKS'] = String(o.stacks);
    else delete env['PTSIM_RECORD_STACKS'];
    if (o.freeStacks === true && o.stacks !== undefined) env['PTSIM_RECORD_FREE_STACKS'] = '1';
    else delete env['PTSIM_RECORD_FREE_STACKS'];

    const stdio: StdioOptions = o.capture ? ['inherit', 'pipe', 'pipe'] : 'inherit';
    const child = spawn(o.command, o.args, { stdio, env });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));

    const forwarded: Array<[NodeJS.Signals, () => void]> = [];
    if (o.forwardSignals) {
      forwarded.push(['SIGINT', () => {}]);
      for (const sig of ['SIGTERM', 'SIGHUP', 'SIGQUIT'] as const)
        forwarded.push([sig, () => void child.kill(sig)]);
      for (const [sig, h] of forwarded) process.on(sig, h);
    }
    let ended: { status: number | null; signal: NodeJS.Signals | null };
    try {
      ended = await new Promise((resolvePromise, reject) => {
        child.once('error', (e: NodeJS.ErrnoException) => {
          const what =
            e.code === 'ENOENT'
              ? 'command not found'
              : e.code === 'EACCES'
                ? 'permission denied'
                : e.message;
          reject(new SpawnError(`${o.command}: ${what}`, e.code));
        });
        // 'close', not 'exit': with pipes, the output must be complete too.
        child.once('close', (status, signal) => resolvePromise({ status, signal }));
      });
    } finally {
      for (const [sig, h] of forwarded) process.off(sig, h);
    }
    await settle(work, o.settleMs ?? 2000);
    const traces = await finalize(
      work,
      output,
      child.pid!,
      o.gzip,
      o.binary === true,
      o.stacks !== undefined && o.stacks > 0,
    );
    const result: RecordResult = {
      pid: child.pid!,
      status: ended.status,
      signal: ended.signal,
      exitCode: ended.signal !== null ? 128 + signalNumber(ended.signal) : (ended.status ?? 1),
      traces,
    };
    if (o.capture) {
      result.stdout = stdout;
      result.stderr = stderr;
    }
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
