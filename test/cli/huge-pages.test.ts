/**
 * Huge pages for ptsim's own process (src/cli/huge-pages.ts): when the executable runs itself
 * again with glibc's hugetlb tunable, and that the child it runs is the command as the user gave
 * it (same output, same status) and has the tunable and huge pages.
 */

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  HUGE_PAGES_TUNABLE,
  type LaunchFacts,
  relaunchEnv,
  thpMode,
} from '../../src/cli/huge-pages.js';
import { MAIN, ROOT, spawned } from '../helpers/cli.js';

const MiB = 1 << 20;

/** Facts of a Linux machine that gives huge pages on request, with files of the given sizes. */
function facts(
  sizes: Record<string, number> = {},
  env: Record<string, string> = {},
  more: Partial<LaunchFacts> = {},
): LaunchFacts {
  return {
    platform: 'linux',
    thp: 'always [madvise] never\n',
    env: { HOME: '/home/u', ...env },
    fileSize: (p) => sizes[p] ?? -1,
    peakLive: () => -1,
    ...more,
  };
}

describe('relaunchEnv', () => {
  it('relaunches explain, report, compare and sweep from 16 MiB of trace, with every variable kept', () => {
    for (const command of ['explain', 'report', 'compare', 'sweep']) {
      const env = relaunchEnv([command, 't.trace', '-o', 'r.html'], facts({ 't.trace': 16 * MiB }));
      expect(env).toEqual({ HOME: '/home/u', GLIBC_TUNABLES: HUGE_PAGES_TUNABLE });
      expect(relaunchEnv([command, 't.trace'], facts({ 't.trace': 16 * MiB - 1 }))).toBeNull();
    }
  });

  it('relaunches replay from 256 MiB, a compressed trace counted four times its size', () => {
    expect(relaunchEnv(['replay', 'a'], facts({ a: 256 * MiB }))).not.toBeNull();
    expect(relaunchEnv(['replay', 'a'], facts({ a: 256 * MiB - 1 }))).toBeNull();
    expect(relaunchEnv(['replay', 'a.gz'], facts({ 'a.gz': 64 * MiB }))).not.toBeNull();
    expect(relaunchEnv(['replay', 'a.zst'], facts({ 'a.zst': 64 * MiB }))).not.toBeNull();
    expect(relaunchEnv(['replay', 'a.gz'], facts({ 'a.gz': 64 * MiB - 1 }))).toBeNull();
    // The largest file named counts, wherever it is among the arguments.
    expect(
      relaunchEnv(['replay', '--json', 'small', 'big'], facts({ small: 10, big: 300 * MiB })),
    ).not.toBeNull();
  });

  it('relaunches on a binary trace whose end says a million blocks were live at once', () => {
    const live = (counts: Record<string, number>): Partial<LaunchFacts> => ({
      peakLive: (p) => counts[p] ?? -1,
    });
    for (const command of ['replay', 'explain', 'report', 'compare', 'sweep']) {
      expect(relaunchEnv([command, 'a'], facts({ a: 100 }, {}, live({ a: MiB })))).not.toBeNull();
      expect(relaunchEnv([command, 'a'], facts({ a: 100 }, {}, live({ a: MiB - 1 })))).toBeNull();
    }
    // Whichever file says it; not an output file, not a file that is not there.
    const sizes = { small: 10, big: 20, old: 30 };
    const counts = live({ big: 5 * MiB, old: 5 * MiB, gone: 5 * MiB });
    expect(relaunchEnv(['replay', 'small', 'big'], facts(sizes, {}, counts))).not.toBeNull();
    expect(relaunchEnv(['replay', 'small', '-o', 'old'], facts(sizes, {}, counts))).toBeNull();
    expect(relaunchEnv(['replay', 'gone'], facts(sizes, {}, counts))).toBeNull();
    expect(
      relaunchEnv(['replay', 'big'], facts(sizes, { PTSIM_HUGE_PAGES: '0' }, counts)),
    ).toBeNull();
    expect(relaunchEnv(['convert', 'big'], facts(sizes, {}, counts))).toBeNull();
  });

  it('never relaunches the other commands, help, or standard input unless asked', () => {
    const big = { t: 1 << 30 };
    for (const command of ['record', 'web', 'show', 'step', 'stats', 'convert', 'nonsense'])
      expect(relaunchEnv([command, 't'], facts(big))).toBeNull();
    expect(relaunchEnv([], facts(big))).toBeNull();
    expect(relaunchEnv(['explain', 't', '--help'], facts(big))).toBeNull();
    expect(relaunchEnv(['explain', '-h'], facts(big))).toBeNull();
    expect(relaunchEnv(['explain', '-'], facts(big))).toBeNull();
    // An option is not a file, even where a file of that name exists.
    expect(relaunchEnv(['explain', '--json'], facts({ '--json': 1 << 30 }))).toBeNull();
    // Nor is an output file that exists already, whatever its size.
    for (const out of ['-o', '--output', '--events', '--timeline'])
      expect(relaunchEnv(['report', 't', out, 'old'], facts({ t: 10, old: 1 << 30 }))).toBeNull();
    // A trace after an option without a value still counts.
    expect(relaunchEnv(['report', '--json', 't'], facts({ t: 1 << 30 }))).not.toBeNull();
  });

  it('PTSIM_HUGE_PAGES=1 relaunches those commands on any trace, 0 on none', () => {
    expect(relaunchEnv(['replay', '-'], facts({}, { PTSIM_HUGE_PAGES: '1' }))).not.toBeNull();
    expect(
      relaunchEnv(['explain', 'x'], facts({ x: 10 }, { PTSIM_HUGE_PAGES: '1' })),
    ).not.toBeNull();
    expect(relaunchEnv(['record', 'x'], facts({}, { PTSIM_HUGE_PAGES: '1' }))).toBeNull();
    expect(
      relaunchEnv(['explain', 'x'], facts({ x: 1 << 30 }, { PTSIM_HUGE_PAGES: '0' })),
    ).toBeNull();
  });

  it("adds the tunable to the user's GLIBC_TUNABLES, and leaves one that sets hugetlb alone", () => {
    const big = { t: 1 << 30 };
    const env = relaunchEnv(
      ['explain', 't'],
      facts(big, { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }),
    );
    expect(env?.['GLIBC_TUNABLES']).toBe(`glibc.malloc.arena_max=2:${HUGE_PAGES_TUNABLE}`);
    for (const t of [
      'glibc.malloc.hugetlb=0',
      'glibc.malloc.tcache_count=0:glibc.malloc.hugetlb=2',
    ])
      expect(relaunchEnv(['explain', 't'], facts(big, { GLIBC_TUNABLES: t }))).toBeNull();
    // A tunable that only ends in the same words is not the one.
    expect(
      relaunchEnv(['explain', 't'], facts(big, { GLIBC_TUNABLES: 'x.glibc.malloc.hugetlb=0' })),
    ).not.toBeNull();
  });

  it('relaunches only on Linux whose huge pages are given on request', () => {
    const big = { t: 1 << 30 };
    expect(
      relaunchEnv(['explain', 't'], facts(big, {}, { thp: '[always] madvise never' })),
    ).toBeNull();
    expect(
      relaunchEnv(['explain', 't'], facts(big, {}, { thp: 'always madvise [never]' })),
    ).toBeNull();
    expect(relaunchEnv(['explain', 't'], facts(big, {}, { thp: '' }))).toBeNull();
    expect(relaunchEnv(['explain', 't'], facts(big, {}, { platform: 'darwin' }))).toBeNull();
  });

  it('reads the kernel mode from its setting', () => {
    expect(thpMode('always [madvise] never\n')).toBe('madvise');
    expect(thpMode('[always] madvise never')).toBe('always');
    expect(thpMode('')).toBe('');
  });
});

/** The bracketed mode of this machine's transparent huge pages ('' where there are none). */
function machineThp(): string {
  try {
    return thpMode(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    return '';
  }
}

describe('the relaunched command', () => {
  it.runIf(machineThp() === 'madvise')(
    'prints and ends as the command run in one process (Linux, huge pages on request)',
    () => {
      const on = { ...process.env, PTSIM_HUGE_PAGES: '1' };
      const off = { ...process.env, PTSIM_HUGE_PAGES: '0' };
      for (const args of [
        ['replay', 'traces/pinned-top.trace', '--json'],
        ['replay', 'test/native/double-free.trace'],
        ['replay', 'traces/pinned-top.trace', '--no-such-option'],
        ['explain', 'no-such-file.trace'],
      ]) {
        const a = spawned(args, { env: on });
        const b = spawned(args, { env: off });
        expect({ args, ...a }).toEqual({ args, ...b });
      }
      const a = spawned(['replay', '-', '--json'], { env: on, input: '1 malloc 100 a\n' });
      expect(a.code).toBe(0);
      expect(a).toEqual(
        spawned(['replay', '-', '--json'], { env: off, input: '1 malloc 100 a\n' }),
      );
    },
  );

  it.runIf(machineThp() === 'madvise').each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const)(
    'passes %s on to the child and ends with its status, %i (Linux, huge pages on request)',
    async (signal, status) => {
      const parent = spawn(process.execPath, [MAIN, 'replay', '-'], {
        cwd: ROOT,
        env: { ...process.env, PTSIM_HUGE_PAGES: '1' },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      const exited = new Promise<number | null>((r) => parent.on('exit', (code) => r(code)));
      parent.stdin.write('1 malloc 100 a\n');
      let child = '';
      for (let tries = 0; tries < 300 && child === ''; tries++) {
        await new Promise((r) => setTimeout(r, 50));
        try {
          child = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim();
        } catch {
          // not started yet
        }
      }
      expect(child).toMatch(/^\d+$/);
      parent.kill(signal);
      // The child's status, as a shell gives it for a program ended by the signal.
      expect(await exited).toBe(status);
      expect(() => readFileSync(`/proc/${child}/stat`, 'utf8')).toThrow();
    },
    60_000,
  );

  it.runIf(machineThp() === 'madvise')(
    'runs with the tunable and has huge pages (Linux, huge pages on request)',
    async () => {
      // A replay of standard input, held open until the child is seen with huge pages.
      const parent = spawn(process.execPath, [MAIN, 'replay', '-'], {
        cwd: ROOT,
        env: { ...process.env, PTSIM_HUGE_PAGES: '1' },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      const exited = new Promise<number | null>((r) => parent.on('exit', (code) => r(code)));
      try {
        // 600,000 live blocks: some 50 MB of the replay's arrays.
        const lines: string[] = [];
        for (let i = 0; i < 600_000; i++) lines.push(`1 malloc 40 b${i}`);
        parent.stdin.write(lines.join('\n') + '\n');
        let child = '';
        let tunables = '';
        let huge = 0;
        for (let tries = 0; tries < 300 && huge === 0; tries++) {
          await new Promise((r) => setTimeout(r, 100));
          try {
            child ||= readFileSync(
              `/proc/${parent.pid}/task/${parent.pid}/children`,
              'utf8',
            ).trim();
            if (child === '') continue;
            tunables ||=
              readFileSync(`/proc/${child}/environ`, 'utf8')
                .split('\0')
                .find((v) => v.startsWith('GLIBC_TUNABLES=')) ?? '';
            const m = /AnonHugePages:\s+(\d+) kB/.exec(
              readFileSync(`/proc/${child}/smaps_rollup`, 'utf8'),
            );
            huge = m !== null ? Number(m[1]) : 0;
          } catch {
            // not started yet, or reading too early
          }
        }
        expect(child).toMatch(/^\d+$/);
        expect(tunables).toBe(`GLIBC_TUNABLES=${HUGE_PAGES_TUNABLE}`);
        expect(huge).toBeGreaterThan(0);
      } finally {
        parent.stdin.end();
      }
      expect(await exited).toBe(0);
    },
    60_000,
  );
});
