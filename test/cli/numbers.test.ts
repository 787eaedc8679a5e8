/**
 * How the commands print numbers (src/cli/numbers.ts and its users): thousands separators, plurals,
 * exact integers beyond 2^53, units as the user typed them, tables that line up.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inProcess } from '../helpers/cli.js';
import { count, formatBytes, plural, scaledBytes, sizeAsTyped } from '../../src/cli/numbers.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-numbers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ptsim = inProcess;

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('the number formatter', () => {
  it('separates thousands and is exact beyond 2^53', () => {
    expect(count(0)).toBe('0');
    expect(count(1234567)).toBe('1,234,567');
    expect(count(999)).toBe('999');
    expect(count(1000)).toBe('1,000');
    expect(count(100000)).toBe('100,000');
    expect(count(-999999)).toBe('-999,999');
    // The separators as toLocaleString puts them, for every length.
    for (let n = 1, k = 1; k <= 16; k++, n = n * 10 + (k % 10))
      expect(count(n)).toBe(n.toLocaleString('en-US'));
    expect(count(-2048)).toBe('-2,048');
    expect(count(2 ** 53 + 2)).toBe('9,007,199,254,740,994');
    expect(count(2 ** 64)).toBe('18,446,744,073,709,551,616');
    expect(count(2n ** 64n - 1n)).toBe('18,446,744,073,709,551,615');
    expect(count(2.5)).toBe('2.5');
  });

  it('puts the right noun after a count', () => {
    expect(plural(1, 'page')).toBe('1 page');
    expect(plural(0, 'page')).toBe('0 pages');
    expect(plural(2048, 'page')).toBe('2,048 pages');
    expect(plural(1n, 'event')).toBe('1 event');
    expect(plural(3, 'free or realloc', 'frees or reallocs')).toBe('3 frees or reallocs');
  });

  it('gives bytes a unit that suits them, with the exact count beside', () => {
    expect(formatBytes(100)).toBe('100 B');
    expect(formatBytes(4096)).toBe('4.00 KiB (4,096 B)');
    expect(formatBytes(2101248)).toBe('2.00 MiB (2,101,248 B)');
    expect(formatBytes(2n ** 64n - 1n)).toBe('16.00 EiB (18,446,744,073,709,551,615 B)');
    expect(scaledBytes(4096)).toBe('4.00 KiB');
    expect(scaledBytes(0)).toBe('0 B');
    expect(scaledBytes(16630000)).toBe('15.86 MiB');
  });

  it('shows a size with the suffix it was typed with', () => {
    expect(sizeAsTyped(65536, true)).toBe('64K');
    expect(sizeAsTyped(65536, false)).toBe('65536');
    expect(sizeAsTyped(3 << 20, true)).toBe('3M');
    expect(sizeAsTyped(1 << 30, true)).toBe('1G');
    expect(sizeAsTyped(1000, true)).toBe('1000');
  });
});

describe('the commands print numbers', () => {
  it('replay: "1 event", "1 heap," and the arena table aligned', async () => {
    const one = await ptsim(['replay', file('one.trace', '1 malloc 24 a\n')]);
    expect(one.out).toContain(': 1 event replayed on a model');
    const t = file(
      'threads.trace',
      Array.from({ length: 3 }, (_, i) => `${i + 1} malloc 10 b${i}\n`).join(''),
    );
    const arenas = (await ptsim(['replay', t, '--cores', '2'])).out
      .split('\n')
      .filter((l) => / bytes in \d+ heaps?,/.test(l));
    expect(arenas.length).toBeGreaterThan(1);
    for (const l of arenas) expect(l).toMatch(/ bytes in 1 heap, +\d+ in use,/);
    // The columns line up: every row is as long as the others.
    expect(new Set(arenas.map((l) => l.indexOf(' in use')))).toHaveProperty('size', 1);
  });

  it('stats: totals exact beyond 2^53, and a histogram whose columns line up', async () => {
    const big = await ptsim([
      'stats',
      file('big.trace', '1 malloc 9007199254740992 a\n1 malloc 9007199254740992 b\n1 malloc 1 c\n'),
    ]);
    expect(big.out).toContain('total requested  16.00 PiB (18,014,398,509,481,985 B)');
    // Sizes between 2^53 and 2^64 exactly, as the trace spelled them (their doubles are rounded).
    const odd = await ptsim([
      'stats',
      file('odd.trace', '1 malloc 9007199254740993 0\n1 calloc 3 18446744073709551533 0\n'),
    ]);
    const oddTotal = (9007199254740993n + 3n * 18446744073709551533n).toLocaleString('en-US');
    expect(odd.out).toContain(`(${oddTotal} B)`);
    const max = await ptsim(['stats', file('max.trace', '1 malloc 18446744073709551615 0\n')]);
    expect(max.out).toContain('(18,446,744,073,709,551,615 B)');
    expect(max.out).not.toContain('18446744073709552000');

    const lines = (await ptsim(['stats', 'traces/load-test.trace'])).out.split('\n');
    const start = lines.indexOf('  requested sizes (bytes)');
    const rows = lines.slice(
      start + 1,
      lines.findIndex((l, i) => i > start && l === ''),
    );
    expect(rows.length).toBeGreaterThan(5);
    // Labels end in one column, counts in the next, bars start together.
    const labelEnd = rows.slice(0, -1).map((l) => l.search(/[)\d] +\d/) + 1);
    labelEnd.push(rows.at(-1)!.indexOf('requested') + 'requested'.length);
    expect(new Set(labelEnd).size).toBe(1);
    const bars = rows.slice(0, -1).map((l) => l.indexOf('#'));
    expect(new Set(bars).size).toBe(1);
    expect(rows.at(-1)).toMatch(/^ +total requested {2}277\.56 MiB \(291,037,568 B\)$/);
  });

  it('sweep: column headers, the default row, values as typed', async () => {
    const r = await ptsim([
      'sweep',
      'traces/field-report.trace',
      '--cores',
      '2',
      '--param',
      'mmap_threshold=64K..256K',
      '--param',
      'mmap_max=0,65536',
    ]);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe(
      'traces/field-report.trace: 7 configurations (the default and 6 from the grid), final RSS against system calls + page faults (* = frontier)',
    );
    expect(lines[2]).toMatch(/^ +final RSS {2}syscalls \+ faults {2}mmap_threshold {2}mmap_max$/);
    const rows = lines.slice(3).filter((l) => l !== '');
    expect(rows).toHaveLength(7);
    expect(rows.filter((l) => l.endsWith('(default)'))).toHaveLength(1);
    for (const typed of ['64K', '128K', '256K']) expect(r.out).toContain(`  ${typed}  `);
    // A value typed without a suffix stays as typed.
    expect(r.out).toContain(' 65536');
    expect(r.out).not.toContain('131072');
  });

  it('compare: small sizes readable, not 0.00', async () => {
    const r = await ptsim([
      'compare',
      'traces/field-report.trace',
      '--cores',
      '2',
      '--config',
      'M_MMAP_THRESHOLD=131072',
    ]);
    const row = r.out.split('\n').find((l) => l.startsWith('M_MMAP_THRESHOLD=131072'))!;
    expect(row).toMatch(
      /^M_MMAP_THRESHOLD=131072 +8\.02 MiB +4\.00 KiB +4\.21 MiB +132\.00 KiB +0 B /,
    );
    expect(r.out).toContain(
      'lowest final RSS: M_MMAP_THRESHOLD=131072 (4.00 KiB, 2,579 system calls and page faults)',
    );
  });
});
