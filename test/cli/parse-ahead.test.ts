/**
 * Which files the parse worker reads (worthTheWorker, src/trace/worker-client.ts: readTraceFile's
 * choice), and the worker started ahead of need (src/cli/parse-ahead.ts): for which commands the
 * executable starts it before its modules load, and that a command that then does not take it
 * ends as it would have.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAheadWanted } from '../../src/cli/parse-ahead.js';
import { BINARY_MAGIC } from '../../src/trace/binary.js';
import {
  BINARY_WORKER_MIN_BYTES,
  WORKER_MIN_BYTES,
  worthTheWorker,
} from '../../src/trace/worker-client.js';
import { spawned } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-ahead-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A file that starts with `head` and is `size` bytes long (the rest a hole: no disk taken). */
function sized(name: string, head: Uint8Array, size: number): string {
  const p = join(dir, name);
  writeFileSync(p, head);
  truncateSync(p, size);
  return p;
}

describe('worthTheWorker', () => {
  const text = Buffer.from('1 malloc 10 0x10\n');
  const binary = Buffer.concat([Buffer.from(BINARY_MAGIC), Buffer.alloc(8)]);

  it('gives the worker a text trace of WORKER_MIN_BYTES or more', () => {
    expect(worthTheWorker(sized('t1', text, WORKER_MIN_BYTES - 1), 't', 2)).toBe(false);
    expect(worthTheWorker(sized('t2', text, WORKER_MIN_BYTES), 't', 2)).toBe(true);
  });

  it('a binary trace from BINARY_WORKER_MIN_BYTES, a compressed one counted four times', () => {
    expect(worthTheWorker(sized('b1', binary, BINARY_WORKER_MIN_BYTES - 1), 'b', 2)).toBe(false);
    expect(worthTheWorker(sized('b2', binary, BINARY_WORKER_MIN_BYTES), 'b', 2)).toBe(true);
    // Random bytes do not compress: the file is about as long as what it holds.
    const gz = (n: number): Buffer =>
      gzipSync(Buffer.concat([binary, randomBytes(n)]), { level: 1 });
    const small = join(dir, 'b3.gz');
    writeFileSync(small, gz(BINARY_WORKER_MIN_BYTES / 4 - (1 << 20)));
    expect(worthTheWorker(small, 'b', 2)).toBe(false);
    const big = join(dir, 'b4.gz');
    writeFileSync(big, gz(BINARY_WORKER_MIN_BYTES / 4));
    expect(worthTheWorker(big, 'b', 2)).toBe(true);
  });

  it('not on one CPU, nor for standard input or a file that is not there', () => {
    expect(worthTheWorker(sized('t3', text, WORKER_MIN_BYTES), 't', 1)).toBe(false);
    expect(worthTheWorker('-', '-', 2)).toBe(false);
    expect(worthTheWorker(join(dir, 'missing'), 'm', 2)).toBe(false);
  });
});

describe('parseAheadWanted', () => {
  /** readTraceFile's choice, as if these files were long enough for the worker. */
  const worth =
    (...files: string[]) =>
    (p: string): boolean =>
      files.includes(p);

  it('starts the worker for a command that reads a trace the worker will read', () => {
    for (const command of ['replay', 'explain', 'report', 'compare', 'sweep', 'stats', 'convert'])
      expect(parseAheadWanted([command, 't.trace'], worth('t.trace'))).toBe(true);
    // The trace anywhere among the arguments.
    expect(parseAheadWanted(['replay', '--json', 'a.gz', '--cores', '4'], worth('a.gz'))).toBe(
      true,
    );
    expect(parseAheadWanted(['replay', 't', '--from', 'native'], worth('t'))).toBe(true);
  });

  it('not where the worker will not read, nor for other commands', () => {
    expect(parseAheadWanted(['replay', 't'], worth())).toBe(false);
    expect(parseAheadWanted(['replay', 't', '--from', 'mtrace'], worth('t'))).toBe(false);
    expect(parseAheadWanted(['replay', 't', '--help'], worth('t'))).toBe(false);
    // An output file is not read, whatever it is.
    expect(parseAheadWanted(['replay', 'small', '-o', 'old'], worth('old'))).toBe(false);
    for (const command of ['record', 'web', 'nonsense'])
      expect(parseAheadWanted([command, 't'], worth('t'))).toBe(false);
    expect(parseAheadWanted([], worth())).toBe(false);
  });
});

describe('a worker started and not taken', () => {
  it('leaves a command that fails before reading to end as it would', () => {
    const big = join(dir, 'big.trace');
    writeFileSync(big, '1 malloc 10 0x10\n' + `# ${'x'.repeat(60)}\n`.repeat(70_000));
    const r = spawned(['replay', big, '--no-such-option']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/Unknown option '--no-such-option'/);
    const m = spawned(['replay', big, '--from', 'mtrace']);
    expect(m.code).toBe(2);
    // And one that reads it in the worker, as without.
    const ok = spawned(['replay', big, '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out)).toMatchObject({ events: 1, liveBlocks: 1 });
  });
});
