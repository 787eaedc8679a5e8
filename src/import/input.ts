/**
 * The bytes of a log, streamed: a file or standard input, decompressed on the way when its first
 * bytes are a compressor's magic number (gzip in-process with node:zlib; zstd, xz and bzip2 by
 * their own programs, `zstd -dc` and so on, since Node 20's zlib has none of them), then cut into
 * lines for an importer. Nothing holds more than a chunk and the unfinished line at its end.
 */

import { spawn } from 'node:child_process';
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGunzip, gunzipSync } from 'node:zlib';
import { TraceReadError } from '../trace/reader.js';
import { TraceSyntaxError } from '../trace/types.js';

/** Bytes read at a time. */
const CHUNK = 1 << 20;
/** Longest line accepted: a binary file without newlines must not fill memory. */
const MAX_LINE = 16 << 20;

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

/** What the first bytes of a file say about its compression. */
export function compressionOf(b: Uint8Array): Compression {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.length >= 4 && b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return 'zstd';
  if (b.length >= 6 && b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a && b[5] === 0) return 'xz';
  if (b.length >= 4 && b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68 && b[3]! >= 0x31 && b[3]! <= 0x39) return 'bzip2';
  return 'none';
}

/** The program that decompresses each format handled outside the process. */
const PROGRAMS: Partial<Record<Compression, string>> = { zstd: 'zstd', xz: 'xz', bzip2: 'bzip2' };

/** The error to report for an exception raised while reading (not parsing) a log. */
export function readError(name: string, e: unknown): unknown {
  if (!(e instanceof Error) || e instanceof TraceReadError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code !== 'string') return e;
  if (code.startsWith('Z_') || code === 'ERR_ZLIB_INITIALIZATION_FAILED') return new TraceReadError(name, `gzip data is corrupt or truncated (${e.message})`);
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
 * The first bytes of a file, decompressed when they are gzip (up to `max` bytes of text), with the
 * file's compression. Used to recognise a format before choosing a reader; for compressions
 * handled by external programs the text is not available here (empty).
 */
export function peekFile(path: string, name: string, max = 64 << 10): { compression: Compression; text: Buffer } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw readError(name, e);
  }
  try {
    const raw = Buffer.allocUnsafe(max);
    let n = 0;
    for (;;) {
      const r = readSync(fd, raw, n, max - n, null);
      if (r === 0) break;
      n += r;
      if (n === max) break;
    }
    const head = raw.subarray(0, n);
    const compression = compressionOf(head);
    if (compression === 'none') return { compression, text: head };
    if (compression !== 'gzip') return { compression, text: Buffer.alloc(0) };
    try {
      // A gzip stream cut short: inflate what is there without complaining about the rest.
      const text = gunzipSync(head, { finishFlush: zlibConstants.Z_SYNC_FLUSH });
      return { compression, text: text.subarray(0, max) };
    } catch (e) {
      throw readError(name, e);
    }
  } catch (e) {
    throw readError(name, e);
  } finally {
    closeSync(fd);
  }
}

/**
 * Streams a file (`-`: standard input) to `onChunk`, decompressed. Resolves when all of it has been
 * delivered. Errors thrown by onChunk pass through unchanged; I/O and decompression errors become
 * TraceReadErrors naming the file.
 */
export async function streamInput(path: string, name: string, onChunk: (chunk: Buffer) => void): Promise<void> {
  let passThrough: unknown = undefined;
  const feed = (chunk: Buffer): void => {
    try {
      onChunk(chunk);
    } catch (e) {
      passThrough = e;
      throw e;
    }
  };
  const source = path === '-' ? process.stdin.iterator({ destroyOnReturn: false }) : createReadStream(path, { highWaterMark: CHUNK })[Symbol.asyncIterator]();
  try {
    // The first bytes (a pipe may deliver them a few at a time) say how the data is compressed.
    const head: Buffer[] = [];
    let headLen = 0;
    let done = false;
    while (headLen < 6) {
      const r = await source.next();
      if (r.done === true) {
        done = true;
        break;
      }
      head.push(r.value as Buffer);
      headLen += (r.value as Buffer).length;
    }
    const first = head.length === 1 ? head[0]! : Buffer.concat(head);
    async function* all(): AsyncGenerator<Buffer> {
      yield first;
      if (done) return;
      for (;;) {
        const r = await source.next();
        if (r.done === true) return;
        yield r.value as Buffer;
      }
    }
    const compression = compressionOf(first);
    const consume = async (out: AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of out) feed(chunk);
    };
    if (compression === 'none') {
      await consume(all());
    } else if (compression === 'gzip') {
      await pipeline(all, createGunzip({ chunkSize: CHUNK }), consume);
    } else {
      await throughProgram(PROGRAMS[compression]!, compression, name, all(), consume);
    }
  } catch (e) {
    if (e === passThrough) throw e;
    throw readError(name, e);
  } finally {
    await source.return?.();
  }
}

/** Decompresses with an external program (`PROGRAM -dc`), input on its stdin, output streamed. */
async function throughProgram(program: string, kind: string, name: string, input: AsyncIterable<Buffer>, consume: (out: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  const child = spawn(program, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s: string) => {
    if (stderr.length < 2000) stderr += s;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') reject(new TraceReadError(name, `is ${kind}-compressed, and reading it needs the '${program}' program, which is not installed (install ${program}, or decompress the file first)`));
      else reject(e);
    });
    child.on('close', (code) => resolve(code));
  });
  // Feeding stops quietly if the program goes away early; its exit status says why.
  const feeding = pipeline(Readable.from(input), child.stdin).catch(() => undefined);
  let consumeError: unknown = undefined;
  try {
    await consume(child.stdout);
  } catch (e) {
    consumeError = e;
    child.kill();
  }
  await feeding;
  const code = await exited;
  if (consumeError !== undefined) throw consumeError;
  if (code !== 0) throw new TraceReadError(name, `${kind} data is corrupt or truncated (${program} -dc: ${stderr.trim() || `exit status ${code}`})`);
}

/** Receives the lines of a log. */
export interface LineHandler {
  /**
   * One line, b[s, e), without its newline or a carriage return before it. `no` is its 1-based
   * number; `last` is set for a last line that has no newline (a log cut short, or a hand-made file).
   */
  line(b: Buffer, s: number, e: number, no: number, last: boolean): void;
}

/** Cuts chunks of bytes into lines, keeping only the unfinished line between chunks. */
export class LineSplitter {
  private carry: Buffer = Buffer.allocUnsafe(4096);
  private carryLen = 0;
  /** Lines delivered so far. */
  lines = 0;

  constructor(
    private readonly handler: LineHandler,
    private readonly name: string,
  ) {}

  push(b: Buffer): void {
    let from = 0;
    if (this.carryLen > 0) {
      const nl = b.indexOf(10);
      if (nl < 0) {
        this.keep(b, 0, b.length);
        return;
      }
      this.keep(b, 0, nl);
      this.deliver(this.carry, 0, this.carryLen, false);
      this.carryLen = 0;
      from = nl + 1;
    }
    const len = b.length;
    while (from < len) {
      const nl = b.indexOf(10, from);
      if (nl < 0) {
        this.keep(b, from, len);
        return;
      }
      this.deliver(b, from, nl, false);
      from = nl + 1;
    }
  }

  /** The end of the input: delivers a last line without newline. Returns the number of lines. */
  end(): number {
    if (this.carryLen > 0) {
      this.deliver(this.carry, 0, this.carryLen, true);
      this.carryLen = 0;
    }
    return this.lines;
  }

  private deliver(b: Buffer, s: number, e: number, last: boolean): void {
    if (e > s && b[e - 1] === 13) e--;
    this.handler.line(b, s, e, ++this.lines, last);
  }

  private keep(b: Buffer, s: number, e: number): void {
    const need = this.carryLen + (e - s);
    if (need > MAX_LINE) throw new TraceSyntaxError(this.name, this.lines + 1, `the line is longer than ${MAX_LINE >> 20} MiB: not a text log`);
    if (need > this.carry.length) {
      const bigger = Buffer.allocUnsafe(Math.max(need, this.carry.length * 2));
      this.carry.copy(bigger, 0, 0, this.carryLen);
      this.carry = bigger;
    }
    b.copy(this.carry, this.carryLen, s, e);
    this.carryLen = need;
  }
}
