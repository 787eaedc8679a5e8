/**
 * The parse worker started ahead of need (src/cli/parse-ahead.ts): for which commands and files
 * the executable starts it before its modules load, and that a command that then does not take it
 * ends as it would have.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type AheadFacts, parseAheadWanted } from '../../src/cli/parse-ahead.js';
import { BINARY_WORKER_MIN_BYTES, WORKER_MIN_BYTES } from '../../src/trace/worker-client.js';
import { spawned } from '../helpers/cli.js';

const BIG = WORKER_MIN_BYTES;

/** Two CPUs, files of the given sizes, the binary ones named. */
function facts(sizes: Record<string, number>, binary: string[] = [], cpus = 2): AheadFacts {
  return { cpus, fileSize: (p) => sizes[p] ?? -1, binary: (p) => binary.includes(p) };
}

describe('parseAheadWanted', () => {
  it('starts the worker for a command that reads a large trace', () => {
    for (const command of ['replay', 'explain', 'report', 'compare', 'sweep', 'stats', 'convert'])
      expect(parseAheadWanted([command, 't.trace'], facts({ 't.trace': BIG }))).toBe(true);
    // The trace anywhere among the arguments, a compressed one too.
    expect(
      parseAheadWanted(['replay', '--json', 'a.gz', '--cores', '4'], facts({ 'a.gz': BIG })),
    ).toBe(true);
    expect(parseAheadWanted(['replay', 't', '--from', 'native'], facts({ t: BIG }))).toBe(true);
  });

  it('not where readTraceFile reads in the calling thread, nor for other commands', () => {
    expect(parseAheadWanted(['replay', 't'], facts({ t: BIG - 1 }))).toBe(false);
    // A binary trace from a larger size.
    expect(parseAheadWanted(['replay', 't'], facts({ t: BIG }, ['t']))).toBe(false);
    const binary = BINARY_WORKER_MIN_BYTES;
    expect(parseAheadWanted(['replay', 't'], facts({ t: binary - 1 }, ['t']))).toBe(false);
    expect(parseAheadWanted(['replay', 't'], facts({ t: binary }, ['t']))).toBe(true);
    expect(parseAheadWanted(['replay', 't'], facts({ t: BIG }, [], 1))).toBe(false);
    expect(parseAheadWanted(['replay', '-'], facts({}))).toBe(false);
    expect(parseAheadWanted(['replay', 't', '--from', 'mtrace'], facts({ t: BIG }))).toBe(false);
    expect(parseAheadWanted(['replay', 't', '--help'], facts({ t: BIG }))).toBe(false);
    // An output file that exists is not read.
    expect(parseAheadWanted(['replay', 'small', '-o', 'old'], facts({ small: 1, old: BIG }))).toBe(
      false,
    );
    for (const command of ['record', 'web', 'nonsense'])
      expect(parseAheadWanted([command, 't'], facts({ t: BIG }))).toBe(false);
    expect(parseAheadWanted([], facts({}))).toBe(false);
  });
});

describe('a worker started and not taken', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ptsim-ahead-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
