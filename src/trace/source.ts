/**
 * Where the bytes of every trace come from, for the native reader (reader.ts) and the importers
 * (src/import) alike: a file, or standard input for `-`, decompressed on the way when its first
 * bytes are a compressor's magic number (never judged by the file name): gzip in-process with
 * node:zlib; zstd, xz and bzip2 by their own programs (`zstd -dc` and so on), since Node 20's
 * zlib has none of them.
 *
 * What goes wrong while reading (a missing or unreadable file, corrupt compressed data, a missing
 * decompressor) becomes a TraceReadError naming the file; a mistake inside the text is the
 * reader's to report, with its line (TraceSyntaxError). Errors thrown by whoever receives the
 * data pass through unchanged.
 *
 * Three ways in:
 * - streamInput: the whole input, chunk by chunk; nothing is held beyond a chunk, and a chunk is
 *   its receiver's only until the promise it returns settles (a plain file's next chunks are read
 *   into the same memory). With a chooser
 *   (streamChosenInput), the first bytes are held until the chooser has seen them and named the
 *   reader that gets everything (how the importers recognise a format while streaming);
 * - peekInput: the first bytes of a file, decompressed, to recognise its format before choosing
 *   how to read it;
 * - decompressBytes: an input held in memory.
 */

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGunzip, gunzipSync } from 'node:zlib';
import { TraceReadError } from './types.js';

/** Bytes read from a file at a time, and the size of gunzip's output chunks. */
const CHUNK = 1 << 20;

/** Bytes looked at to recognise the compression. */
const MAGIC_BYTES = 6;

type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

/** The compressions decompressed by a program of their own, and its name. */
type ByProgram = Exclude<Compression, 'none' | 'gzip'>;
const PROGRAMS: Record<ByProgram, string> = { zstd: 'zstd', xz: 'xz', bzip2: 'bzip2' };

/** What the first bytes of an input say about its compression. */
function compressionOf(b: Uint8Array): Compression {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd)
    return 'zstd';
  if (
    b.length >= 6 &&
    b[0] === 0xfd &&
    b[1] === 0x37 &&
    b[2] === 0x7a &&
    b[3] === 0x58 &&
    b[4] === 0x5a &&
    b[5] === 0
  )
    return 'xz';
  const level = b[3];
  if (
    b.length >= 4 &&
    b[0] === 0x42 &&
    b[1] === 0x5a &&
    b[2] === 0x68 &&
    level !== undefined &&
    level >= 0x31 &&
    level <= 0x39
  )
    return 'bzip2';
  return 'none';
}

/** The name an input goes by in messages: the one given, or the path (`<stdin>` for `-`). */
export function inputName(path: string, displayName?: string): string {
  return displayName ?? (path === '-' ? '<stdin>' : path);
}

/** The error to report for an exception raised while reading (not parsing) an input. */
function readError(name: string, e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof TraceReadError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code !== 'string') return e;
  if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED')
    return new TraceReadError(name, `gzip data is corrupt or truncated (${e.message})`);
  switch (code) {
    case 'ENOENT':
      return new TraceReadError(name, 'no such file');
    case 'EISDIR':
      return new TraceReadError(name, 'is a directory, not a trace file');
    case 'EACCES':
    case 'EPERM':
      return new TraceReadError(name, 'permission denied');
    default:
      return code.startsWith('E') ? new TraceReadError(name, `cannot read: ${e.message}`) : e;
  }
}

/**
 * Why a file or directory could not be written, in words (readError's counterpart for outputs:
 * the command's output files, a recording's traces).
 */
export function writeFailure(e: unknown): string {
  switch ((e as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'no such directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EISDIR':
      return 'is a directory';
    case 'EEXIST':
      return 'a file of that name is in the way';
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

function programMissing(name: string, kind: ByProgram): TraceReadError {
  const program = PROGRAMS[kind];
  return new TraceReadError(
    name,
    `is ${kind}-compressed, and reading it needs the '${program}' program, which is not installed (install ${program}, or decompress the file first)`,
  );
}

function programFailed(name: string, kind: ByProgram, detail: string): TraceReadError {
  return new TraceReadError(
    name,
    `${kind} data is corrupt or truncated (${PROGRAMS[kind]} -dc: ${detail})`,
  );
}

/**
 * The first bytes of a file (up to `max`) and its compression. `head` is the decompressed text
 * for a plain or gzip file, and undefined for the compressions that need a program.
 */
export function peekInput(
  path: string,
  name: string,
  max: number,
): { compression: Compression; head?: Buffer } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw readError(name, e);
  }
  try {
    const raw = Buffer.allocUnsafe(max);
    let n = 0;
    while (n < max) {
      const r = readSync(fd, raw, n, max - n, null);
      if (r === 0) break;
      n += r;
    }
    const start = raw.subarray(0, n);
    const compression = compressionOf(start);
    if (compression === 'none') return { compression, head: start };
    if (compression !== 'gzip') return { compression };
    // A gzip stream cut short: inflate what is there without complaining about the rest.
    const text = gunzipSync(start, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
    return { compression, head: text.subarray(0, max) };
  } catch (e) {
    throw readError(name, e);
  } finally {
    closeSync(fd);
  }
}

/** An input held in memory, decompressed. `name` is the file name used in messages. */
export function decompressBytes(bytes: Uint8Array, name: string): Uint8Array {
  const compression = compressionOf(bytes);
  if (compression === 'none') return bytes;
  if (compression === 'gzip') {
    try {
      return gunzipSync(bytes);
    } catch (e) {
      throw readError(name, e);
    }
  }
  const r = spawnSync(PROGRAMS[compression], ['-dc'], {
    input: bytes,
    maxBuffer: Number.MAX_SAFE_INTEGER,
  });
  if (r.error !== undefined)
    throw (r.error as NodeJS.ErrnoException).code === 'ENOENT'
      ? programMissing(name, compression)
      : readError(name, r.error);
  if (r.status !== 0)
    throw programFailed(
      name,
      compression,
      r.stderr.toString('utf8').trim() || `exit status ${r.status}`,
    );
  return r.stdout;
}

/**
 * Streams the input at `path` (`-`: standard input) to `onChunk`, decompressed. Resolves when all
 * of it has been delivered. `name` is the file name used in messages.
 */
async function streamInput(
  path: string,
  name: string,
  onChunk: (chunk: Buffer) => void | Promise<void>,
): Promise<void> {
  // Errors raised by onChunk pass through as they are; only reading and decompression errors are
  // translated.
  let passThrough: unknown = undefined;
  // onChunk may return a promise (the receiver's back-pressure): the next chunk waits for it.
  const feed = async (chunk: Buffer): Promise<void> => {
    try {
      await onChunk(chunk);
    } catch (e) {
      passThrough = e;
      throw e;
    }
  };
  // A plain file is read into the same two buffers again and again once its receiver takes the
  // chunks itself (no decompression): the receiver is done with a chunk when its promise settles.
  let reuse = false;
  const source =
    path === '-'
      ? process.stdin.iterator({ destroyOnReturn: false })
      : fileChunks(path, () => reuse);
  try {
    // The first bytes (a pipe may deliver them a few at a time) say how the data is compressed.
    const head: Buffer[] = [];
    let headLen = 0;
    let done = false;
    while (headLen < MAGIC_BYTES) {
      const r = await source.next();
      if (r.done === true) {
        done = true;
        break;
      }
      const chunk = r.value as Buffer;
      head.push(chunk);
      headLen += chunk.length;
    }
    const first = head.length === 1 && head[0] !== undefined ? head[0] : Buffer.concat(head);
    async function* all(): AsyncGenerator<Buffer> {
      yield first;
      if (done) return;
      for (;;) {
        const r = await source.next();
        if (r.done === true) return;
        yield r.value as Buffer;
      }
    }
    const consume = async (out: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of out) await feed(chunk);
    };
    const compression = compressionOf(first);
    reuse = compression === 'none';
    if (compression === 'none') await consume(all());
    else if (compression === 'gzip')
      await pipeline(all, createGunzip({ chunkSize: CHUNK }), consume);
    else await throughProgram(compression, name, all(), consume);
  } catch (e) {
    if (e === passThrough) throw e;
    throw readError(name, e);
  } finally {
    // Closes the file (or releases standard input) if the reading stopped early.
    await source.return?.();
  }
}

/**
 * The bytes of a file, CHUNK at a time, the next chunk read while the receiver takes the last: in
 * a buffer of its own each, or, while `reuse()` says so, in two buffers taken in turn. A fresh
 * buffer per read costs a megabyte of fresh pages each time (the system's page faults were a
 * fifth of the time of reading a binary trace); the two are resident after their first reads.
 */
async function* fileChunks(path: string, reuse: () => boolean): AsyncGenerator<Buffer> {
  const file = await open(path, 'r');
  const kept: Buffer[] = [];
  let turn = 0;
  const buffer = (): Buffer => {
    if (!reuse()) return Buffer.allocUnsafeSlow(CHUNK);
    turn ^= 1;
    return (kept[turn] ??= Buffer.allocUnsafeSlow(CHUNK));
  };
  let next: Promise<{ bytesRead: number; buffer: Buffer }> | null = file.read(
    buffer(),
    0,
    CHUNK,
    null,
  );
  try {
    for (;;) {
      const done: { bytesRead: number; buffer: Buffer } = await next;
      next = null;
      if (done.bytesRead === 0) return;
      // The buffer read into next is not the one the receiver is given now.
      next = file.read(buffer(), 0, CHUNK, null);
      yield done.buffer.subarray(0, done.bytesRead);
    }
  } finally {
    // A read still under way finishes before the file is closed.
    if (next !== null) await next.catch(() => undefined);
    await file.close();
  }
}

/**
 * streamInput, to a receiver chosen from the data: the first `headBytes` of the decompressed data
 * (or all of it, when there is less; a little more when a chunk ends past them) are held and
 * shown to `choose`, which returns the function that then receives everything, those bytes first.
 * `choose` is called exactly once, also for an empty input.
 */
export async function streamChosenInput(
  path: string,
  name: string,
  headBytes: number,
  choose: (head: Buffer) => (chunk: Buffer) => void | Promise<void>,
): Promise<void> {
  let held: Buffer[] = [];
  let heldLen = 0;
  let onChunk: ((chunk: Buffer) => void | Promise<void>) | undefined;
  const start = (): void | Promise<void> => {
    const head = Buffer.concat(held);
    held = [];
    const f = choose(head);
    onChunk = f;
    if (head.length > 0) return f(head);
  };
  await streamInput(path, name, (chunk) => {
    if (onChunk !== undefined) return onChunk(chunk);
    // Until the receiver is known, chunks are copied: the stream may reuse their memory.
    held.push(Buffer.from(chunk));
    heldLen += chunk.length;
    if (heldLen >= headBytes) return start();
  });
  if (onChunk === undefined) await start();
}

/** Decompresses with an external program (`PROGRAM -dc`), input on its stdin, output streamed. */
async function throughProgram(
  kind: ByProgram,
  name: string,
  input: AsyncIterable<Buffer>,
  consume: (out: AsyncIterable<Buffer>) => Promise<void>,
): Promise<void> {
  const child = spawn(PROGRAMS[kind], ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 2000) stderr += s;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? programMissing(name, kind) : e),
    );
    child.on('close', (code) => resolve(code));
  });
  // Awaited below, after the output is consumed; until then a failure to start must not count as
  // an unhandled rejection.
  exited.catch(() => undefined);
  // Feeding stops quietly if the program goes away early; its exit status says why.
  const feeding = pipeline(Readable.from(input), child.stdin).catch(() => undefined);
  try {
    await consume(child.stdout);
  } catch (e) {
    child.kill();
    await feeding;
    await exited;
    throw e;
  }
  await feeding;
  const code = await exited;
  if (code !== 0) throw programFailed(name, kind, stderr.trim() || `exit status ${code}`);
}
