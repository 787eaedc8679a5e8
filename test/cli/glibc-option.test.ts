/**
 * --glibc on the commands that replay: the release chosen shows where real glibc of that release
 * puts blocks (the expected offsets are Debian's builds', docs/glibc-versions.md), a version
 * without a profile of its own is replayed as the nearest with a note, a trace's `# glibc` line
 * chooses when the command line does not, and compare runs each configuration on each version.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const MAIN = join(ROOT, 'dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'ptsim-glibc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ptsim(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function trace(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The offsets of the blocks in a replay's fidelity log, event by event (null: no block). */
function offsets(out: string): Array<number | null> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{"i":'))
    .map((l) => (JSON.parse(l) as { off?: number }).off ?? null);
}

// calloc after a free of the same size: 2.41 takes the cached chunk (672), 2.31 and 2.36 carve
// a new one from the top (784).
const CALLOC = 'calloc.trace';
const callocText = '1 malloc 100 a\n1 free a\n1 calloc 1 100 b\n';
// A thread's first block: after heap_info (32 bytes up to 2.34, 48 since), malloc_state and the
// thread's tcache: 2912 on 2.31, 2928 on 2.36.
const THREAD = 'thread.trace';
const threadText = '1 malloc 24 a\n2 malloc 24 b\n';

describe('ptsim replay --glibc', () => {
  it('places blocks as the chosen release does', () => {
    const c = trace(CALLOC, callocText);
    const t = trace(THREAD, threadText);
    const at = (file: string, v?: string): Array<number | null> => {
      const r = ptsim(['replay', file, '--events', '-', ...(v ? ['--glibc', v] : [])]);
      expect(r.code).toBe(0);
      return offsets(r.out);
    };
    expect(at(c)).toEqual([672, null, 784]);
    expect(at(c, '2.36')).toEqual([672, null, 784]);
    expect(at(c, '2.31')).toEqual([672, null, 784]);
    expect(at(c, '2.41')).toEqual([672, null, 672]);
    expect(at(t)).toEqual([672, 2928]);
    expect(at(t, '2.31')).toEqual([672, 2912]);
    // 2.43 and 2.44: no tcache until the first free, so a comes first in the heap; the free then
    // allocates the tcache after it and caches a, which calloc takes back. A thread's first block
    // follows heap_info and a malloc_state of 2112 bytes: 2176.
    for (const v of ['2.43', '2.44']) {
      expect(at(c, v)).toEqual([16, null, 16]);
      expect(at(t, v)).toEqual([16, 2176]);
    }
  });

  it('caps the arenas as 2.44 does: one per CPU, at least arena_test', () => {
    // Eleven threads, one malloc each, on two CPUs: 2.43 gives each its own arena (the limit of 16
    // is fixed once 9 exist), 2.44 stops at 8 and reuses the main arena, then arena 1, ...
    const lines = Array.from({ length: 11 }, (_, i) => `${i + 2} malloc 24 a${i}`);
    const many = trace('arenas.trace', `1 malloc 24 m\n${lines.join('\n')}\n`);
    const arenas = (v: string): number[] => {
      const r = ptsim(['replay', many, '--events', '-', '--glibc', v, '--cores', '2']);
      expect(r.code).toBe(0);
      return r.out
        .split('\n')
        .filter((l) => l.startsWith('{"i":'))
        .map((l) => (JSON.parse(l) as { arena: number }).arena);
    };
    expect(arenas('2.43')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(arenas('2.44')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 0, 7, 6, 5]);
  });

  it('says which release it modelled, and replays another as the nearest, with a note', () => {
    const c = trace(CALLOC, callocText);
    const r = ptsim(['replay', c, '--glibc', '2.40']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('replayed on a model of glibc 2.41 malloc');
    expect(r.err).toContain(
      'glibc 2.40 has no profile of its own: replayed as glibc 2.41, the nearest modelled version',
    );
    const j = ptsim(['replay', c, '--glibc', '2.33', '--json']);
    expect((JSON.parse(j.out) as { glibc: string }).glibc).toBe('2.31');
  });

  it("takes the trace's # glibc line unless told otherwise", () => {
    const c = trace('header.trace', `# glibc 2.41\n${callocText}`);
    expect(offsets(ptsim(['replay', c, '--events', '-']).out)).toEqual([672, null, 672]);
    expect(offsets(ptsim(['replay', c, '--events', '-', '--glibc', '2.36']).out)).toEqual([
      672,
      null,
      784,
    ]);
  });

  it('refuses what is not a version, and more than one version where one replay is made', () => {
    const c = trace(CALLOC, callocText);
    const bad = ptsim(['replay', c, '--glibc', 'bookworm']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--glibc: 'bookworm' is not a glibc version");
    const two = ptsim(['explain', c, '--glibc', '2.31', '--glibc', '2.41']);
    expect(two.code).toBe(2);
    expect(two.err).toContain('--glibc is given 2 times');
  });
});

describe('ptsim compare --glibc A --glibc B', () => {
  it('runs every configuration on each version', () => {
    const t = trace(THREAD, threadText);
    const r = ptsim([
      'compare',
      t,
      '--glibc',
      '2.31',
      '--glibc',
      '2.41',
      '--config',
      'M_MMAP_THRESHOLD=65536',
      '--json',
      '--jobs',
      '1',
    ]);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows;
    expect(rows.map((x) => x.name)).toEqual([
      'glibc 2.31',
      'glibc 2.31: M_MMAP_THRESHOLD=65536',
      'glibc 2.41',
      'glibc 2.41: M_MMAP_THRESHOLD=65536',
    ]);
  });

  it('takes glibc=VERSION in a configuration', () => {
    const c = trace(CALLOC, callocText);
    const r = ptsim(['compare', c, '--config', 'glibc=2.41', '--json', '--jobs', '1']);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows;
    expect(rows.map((x) => x.name)).toEqual(['default', 'glibc=2.41']);
    const bad = ptsim(['compare', c, '--config', 'glibc=x']);
    expect(bad.code).toBe(2);
  });
});
