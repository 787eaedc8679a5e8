/**
 * Every file a command writes (replay's --events and --timeline, report's page, convert's -o), and
 * standard output when a command streams to it, written the same way:
 *
 * - a file is written to a temporary file beside it (same directory, so the rename is atomic) and
 *   renamed over the target only when the command succeeds: a run that fails (a missing input, a
 *   mistake on the command line or in the trace) leaves an existing file as it was, and no run
 *   leaves a partial file that looks complete;
 * - an interrupted run (SIGINT, SIGTERM, SIGHUP) removes its temporary files and ends with status
 *   128 + the signal's number (130 for Ctrl-C); so does a process that exits any other way before
 *   committing them (with its own status);
 * - a path that cannot be written is one line (OutputError, exit status 2), found when the file is
 *   opened, before any long work;
 * - a target that exists and is not a regular file (/dev/null, /dev/stdout, a named pipe) is
 *   written directly: there is nothing to replace;
 * - standard output respects back-pressure: `ready()` gives a promise to wait for while the pipe
 *   is full, so memory stays bounded however slow the reader. A reader that goes away (EPIPE:
 *   `ptsim ... | head`) ends the command quietly with status 0 (see main.ts).
 */

import {
  accessSync,
  closeSync,
  constants as fsConstants,
  fchmodSync,
  openSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { constants as osConstants } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { whenDrained } from '../import/native-writer.js';
import { writeFailure } from '../trace/source.js';
import { OutputError } from './errors.js';

/** Characters gathered before a write. */
const BLOCK = 1 << 16;

/** The temporary files of this process not yet committed, removed if it ends before. */
const pending = new Set<string>();

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function removePending(): void {
  for (const p of pending) {
    try {
      unlinkSync(p);
    } catch {
      // gone already
    }
  }
  pending.clear();
}

/**
 * Removes the temporary files, then ends with the status a shell gives a program the signal
 * killed, 128 + its number (re-raising the signal is not enough: a process started in the
 * background by a shell ignores SIGINT once nothing listens for it).
 */
function onSignal(sig: NodeJS.Signals): void {
  removePending();
  process.exit(128 + (osConstants.signals[sig] ?? 0));
}

let watching = false;

function watch(): void {
  if (watching) return;
  watching = true;
  process.on('exit', removePending);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function unwatch(): void {
  if (!watching) return;
  watching = false;
  process.off('exit', removePending);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/**
 * A file being written: `fd` is open on a temporary file beside the target (or on the target
 * itself when it is not a regular file), until commit() puts it in place or discard() drops it.
 */
export class OutputFile {
  readonly fd: number;
  /** The file written to until commit: the temporary file, or the target itself. */
  readonly writePath: string;
  private done = false;

  private constructor(
    /** The target, as the user gave it. */
    readonly path: string,
    /** The option that named it, for messages (`--events`, `-o`). */
    readonly option: string,
    private readonly direct: boolean,
    writePath: string,
    fd: number,
  ) {
    this.writePath = writePath;
    this.fd = fd;
  }

  /**
   * Opens the output `path` named by `option`; throws an OutputError, one line, when it cannot
   * be written. An existing file is left as it is until commit().
   */
  static open(path: string, option: string): OutputFile {
    const fail = (why: string): never => {
      throw new OutputError(`${option} ${path}: cannot write it: ${why}`);
    };
    let st: Stats | undefined;
    try {
      st = statSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') fail(writeFailure(e));
    }
    if (st?.isDirectory()) fail('is a directory');
    if (st !== undefined && !st.isFile()) {
      // /dev/null, a named pipe, a terminal: written as it is.
      let fd = -1;
      try {
        fd = openSync(path, 'w');
      } catch (e) {
        fail(writeFailure(e));
      }
      return new OutputFile(path, option, true, path, fd);
    }
    if (st !== undefined) {
      try {
        accessSync(path, fsConstants.W_OK);
      } catch (e) {
        fail(writeFailure(e));
      }
    }
    const tmp = join(
      dirname(path),
      `.${basename(path)}.ptsim-${process.pid}-${randomBytes(4).toString('hex')}.tmp`,
    );
    let fd = -1;
    try {
      fd = openSync(tmp, 'wx', 0o666);
    } catch (e) {
      fail(writeFailure(e));
    }
    pending.add(tmp);
    watch();
    if (st !== undefined) {
      try {
        fchmodSync(fd, st.mode & 0o7777);
      } catch {
        // the file keeps the default mode
      }
    }
    return new OutputFile(path, option, false, tmp, fd);
  }

  /** Writes all of `data`. */
  write(data: string | Uint8Array): void {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(this.fd, buf, off);
    } catch (e) {
      throw new OutputError(`${this.option} ${this.path}: cannot write it: ${writeFailure(e)}`);
    }
  }

  /** Closes the file and puts it in place of the target. */
  commit(): void {
    if (this.done) return;
    this.done = true;
    closeSync(this.fd);
    if (this.direct) return;
    try {
      renameSync(this.writePath, this.path);
    } catch (e) {
      this.forget();
      throw new OutputError(`${this.option} ${this.path}: cannot write it: ${writeFailure(e)}`);
    }
    this.forget();
  }

  /** Closes and removes the temporary file; the target stays as it was. */
  discard(): void {
    if (this.done) return;
    this.done = true;
    try {
      closeSync(this.fd);
    } catch {
      // closed already
    }
    this.forget();
  }

  private forget(): void {
    if (this.direct) return;
    try {
      unlinkSync(this.writePath);
    } catch {
      // renamed, or gone
    }
    pending.delete(this.writePath);
    if (pending.size === 0) unwatch();
  }
}

/**
 * Text written as it is made (a log of every event): to an OutputFile, or to standard output for
 * `-`. Writes are gathered in blocks; a file is written synchronously (the disk sets the pace), and
 * standard output asynchronously, with `ready()` to wait on while its buffer is full.
 */
export class TextOutput {
  private buf = '';
  private readonly file: OutputFile | null;
  private readonly stdout: NodeJS.WriteStream | null;

  private constructor(file: OutputFile | null, stdout: NodeJS.WriteStream | null) {
    this.file = file;
    this.stdout = stdout;
  }

  /** `-` is standard output; anything else a file (see OutputFile.open). */
  static open(path: string, option: string): TextOutput {
    return path === '-'
      ? new TextOutput(null, process.stdout)
      : new TextOutput(OutputFile.open(path, option), null);
  }

  write(s: string): void {
    this.buf += s;
    if (this.buf.length >= BLOCK) this.flush();
  }

  /** A promise to wait for before writing more, while standard output's buffer is full; else undefined. */
  ready(): Promise<void> | undefined {
    return this.stdout === null ? undefined : whenDrained(this.stdout);
  }

  private flush(): void {
    if (this.buf.length === 0) return;
    const s = this.buf;
    this.buf = '';
    if (this.file !== null) this.file.write(s);
    else this.stdout!.write(s);
  }

  /** Writes the rest and puts the file in place. */
  async commit(): Promise<void> {
    this.flush();
    if (this.file !== null) this.file.commit();
    else await this.ready();
  }

  /** Drops what was written to a file (standard output cannot take it back). */
  discard(): void {
    this.buf = '';
    this.file?.discard();
  }
}
