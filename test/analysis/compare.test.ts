/**
 * compare and sweep: each row's figures are those of a separate `ptsim replay` with the same
 * settings (through the built command, worker threads included, called in this process: see
 * test/helpers/cli.ts), and the frontier is right.
 */

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inProcess } from '../helpers/cli.js';
import { paretoFrontier } from '../../src/analysis/frontier.js';
import type { Figures } from '../../src/analysis/figures.js';
import { parseConfig } from '../../src/cli/config.js';
import { parseValues } from '../../src/cli/sweep-command.js';

const ptsim = inProcess;

describe('compare', () => {
  it('gives each configuration the figures of a separate replay', async () => {
    const trace = 'traces/thread-arenas.trace';
    const configs = [
      'M_MMAP_THRESHOLD=131072',
      'glibc.malloc.arena_max=2',
      'MALLOC_ARENA_MAX=1 M_TRIM_THRESHOLD=0',
    ];
    const r = await ptsim([
      'compare',
      trace,
      '--cores',
      '2',
      ...configs.flatMap((c) => ['--config', c]),
      '--json',
    ]);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string; figures: Figures }> }).rows;
    expect(rows.map((x) => x.name)).toEqual(['default', ...configs]);
    const single = [
      [],
      ['--mallopt', 'M_MMAP_THRESHOLD=131072'],
      ['--tunables', 'glibc.malloc.arena_max=2'],
      ['--env', 'MALLOC_ARENA_MAX=1', '--mallopt', 'M_TRIM_THRESHOLD=0'],
    ];
    for (const [i, args] of single.entries()) {
      const s = JSON.parse(
        (await ptsim(['replay', trace, '--cores', '2', '--json', ...args])).out,
      ) as {
        rss: number;
        peakRss: number;
        syscalls: object;
        pageFaults: number;
        mallinfo2: { arena: number };
      };
      const f = rows[i]!.figures;
      expect({
        rss: f.rss,
        peak: f.peakRss,
        syscalls: f.syscalls,
        faults: f.pageFaults,
        heap: f.heapBytes,
      }).toEqual({
        rss: s.rss,
        peak: s.peakRss,
        syscalls: s.syscalls,
        faults: s.pageFaults,
        heap: s.mallinfo2.arena,
      });
    }
  });

  it('reads configurations from YAML and JSON files', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-compare-'));
    writeFileSync(
      join(dir, 'c.yaml'),
      '- M_MMAP_THRESHOLD=131072\n- name: one arena\n  settings: M_ARENA_MAX=1\n',
    );
    writeFileSync(
      join(dir, 'c.json'),
      JSON.stringify(['M_MMAP_THRESHOLD=131072', { name: 'one arena', settings: 'M_ARENA_MAX=1' }]),
    );
    for (const f of ['c.yaml', 'c.json']) {
      const r = await ptsim([
        'compare',
        'traces/field-report.trace',
        '--configs',
        join(dir, f),
        '--json',
        '--jobs',
        '1',
      ]);
      expect(r.code).toBe(0);
      expect(
        (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows.map((x) => x.name),
      ).toEqual(['default', 'M_MMAP_THRESHOLD=131072', 'one arena']);
    }
  });

  it('reports a trace it cannot read in one line, from worker threads too', async () => {
    for (const args of [
      [
        'compare',
        'no-such.trace',
        '--config',
        'M_MMAP_THRESHOLD=131072',
        '--config',
        'M_TRIM_THRESHOLD=0',
      ],
      ['sweep', 'no-such.trace', '--param', 'mmap_threshold=64K..256K'],
    ]) {
      const r = await ptsim(args);
      expect(r.code).toBe(2);
      expect(r.err.trim()).toBe('ptsim: no-such.trace: no such file');
    }
  });

  it('rejects settings it does not know, in one line', async () => {
    const r = await ptsim(['compare', 'traces/field-report.trace', '--config', 'FOO=1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("'FOO=1'");
  });
});

describe('sweep', () => {
  it('covers the grid with the figures of separate replays and marks the frontier', async () => {
    const r = await ptsim([
      'sweep',
      'traces/thread-arenas.trace',
      '--cores',
      '2',
      '--param',
      'arena_max=1,2,8',
      '--param',
      'mmap_threshold=64K..256K',
      '--json',
    ]);
    expect(r.code).toBe(0);
    const rows = (
      JSON.parse(r.out) as {
        rows: Array<{
          params: Record<string, number>;
          memory: number;
          frontier: boolean;
          figures: Figures;
        }>;
      }
    ).rows;
    expect(rows).toHaveLength(9);
    const one = rows.find(
      (x) => x.params['arena_max'] === 1 && x.params['mmap_threshold'] === 131072,
    )!;
    const s = JSON.parse(
      (
        await ptsim([
          'replay',
          'traces/thread-arenas.trace',
          '--cores',
          '2',
          '--json',
          '--mallopt',
          'M_ARENA_MAX=1',
          '--mallopt',
          'M_MMAP_THRESHOLD=131072',
        ])
      ).out,
    ) as { rss: number };
    expect(one.memory).toBe(s.rss);
    expect(rows.filter((x) => x.frontier).length).toBeGreaterThan(0);
  });

  it('parses ranges and lists', () => {
    // Each value with its text as the user typed it: a suffix stays a suffix.
    const v = (value: number, text: string): { value: number; text: string } => ({ value, text });
    expect(parseValues('x', '64K..256K')).toEqual([
      v(65536, '64K'),
      v(131072, '128K'),
      v(262144, '256K'),
    ]);
    expect(parseValues('x', '100..300')).toEqual([v(100, '100'), v(200, '200'), v(300, '300')]);
    expect(parseValues('x', '1,2,4M')).toEqual([v(1, '1'), v(2, '2'), v(4 << 20, '4M')]);
    expect(parseValues('x', '1M..3M')).toEqual([
      v(1 << 20, '1M'),
      v(2 << 20, '2M'),
      v(3 << 20, '3M'),
    ]);
  });

  it('computes the Pareto frontier', () => {
    const f = (rss: number, faults: number): Figures => ({
      events: 1,
      rss,
      peakRss: rss,
      peakEvent: 0,
      meanRss: rss,
      heapBytes: 0,
      mmappedBytes: 0,
      syscalls: { brk: 0, mmap: 0, munmap: 0, mremap: 0, mprotect: 0, madvise: 0, getrandom: 0 },
      pageFaults: faults,
    });
    expect(
      [...paretoFrontier([f(10, 5), f(5, 10), f(10, 10), f(7, 7)], 'final')].sort((a, b) => a - b),
    ).toEqual([0, 1, 3]);
  });
});

describe('configuration strings', () => {
  it('sort settings into mallopt calls, tunables and environment variables', () => {
    expect(
      parseConfig('M_MMAP_THRESHOLD=131072, glibc.malloc.arena_max=2 MALLOC_TOP_PAD_=0').settings,
    ).toEqual({
      mallopts: [[-3, 131072]],
      env: [['MALLOC_TOP_PAD_', '0']],
      extraTunables: 'glibc.malloc.arena_max=2',
    });
  });
});
