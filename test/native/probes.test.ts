/**
 * Probes: small C programs (test/native/probes/) that measure, on this machine's real glibc 2.36,
 * the facts the unit tests of the simulator rely on but the native replayer cannot show: the
 * brk-failure fallback of sysmalloc, and what mallopt, GLIBC_TUNABLES and the MALLOC_*_ variables
 * do. Every expected value below was read from the probes' output on Debian's glibc
 * 2.36-9+deb12u14 (x86_64, 2 online CPUs); the figures that depend on the CPU count are written in
 * terms of it. Each describe names the entry of docs/glibc-facts.md it establishes, and the same
 * figures are what test/core/sysmalloc.test.ts and test/core/tunables.test.ts expect of ptsim.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCES = join(HERE, 'probes');
const BUILD = resolve(HERE, 'build/probes');

/** Compiles a probe with the system's cc unless the binary is newer than its source. */
function build(name: string): string {
  const source = join(SOURCES, `${name}.c`);
  const binary = join(BUILD, name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(BUILD, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const flags = ['-O2', '-pthread', '-Wall', '-Wextra', '-Werror', '-Wl,-z,now'];
  const r = spawnSync('cc', [...flags, '-o', tmp, source], { encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run cc to build the ${name} probe: ${r.error.message}`);
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`building the ${name} probe failed:\n${r.stderr}${r.stdout}`);
  }
  renameSync(tmp, binary);
  return binary;
}

/** Runs a probe with an empty environment; its standard output. */
function run(binary: string, args: string[]): string {
  const r = spawnSync(binary, args, {
    env: {},
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  if (r.status !== 0)
    throw new Error(
      `${binary} ${args.join(' ')}: status ${r.status} ${r.signal ?? ''}\n${r.stderr}`,
    );
  return r.stdout;
}

/**
 * Runs the settings probe with exactly these environment entries, in this order (duplicates
 * allowed), and returns each action's result, in order.
 */
function settings(env: string[], ...actions: string[]): string[] {
  const args = [...env.flatMap((e) => ['--env', e]), '--', ...actions.flatMap((a) => a.split(' '))];
  const out = run(build('settings'), args);
  return out
    .split('\n')
    .filter((l) => l.includes(' = '))
    .map((l) => l.slice(l.indexOf(' = ') + 3));
}

/** One action's result. */
const one = (env: string[], action: string): string => settings(env, action)[0]!;

const M_MXFAST = 1;
const M_TRIM_THRESHOLD = -1;
const M_TOP_PAD = -2;
const M_MMAP_THRESHOLD = -3;
const M_MMAP_MAX = -4;
const M_CHECK_ACTION = -5;
const M_PERTURB = -6;
const M_ARENA_TEST = -7;
const M_ARENA_MAX = -8;

describe('the brk-failure fallback (docs/glibc-facts.md#brk-fallback, #brk-fallback-later)', () => {
  // The break is blocked 0x21000 bytes above its start and M_MMAP_MAX is 0; then malloc(3 MiB)
  // twice. See test/native/probes/brk-fallback.c.
  const figures = new Map(
    run(build('brk-fallback'), [])
      .trim()
      .split('\n')
      .map((l) => l.split(' ') as [string, string]),
  );
  const fig = (name: string): number => {
    const v = figures.get(name);
    if (v === undefined) throw new Error(`the probe printed no ${name}`);
    return Number(v);
  };

  it('sets up: mallopt(M_MMAP_MAX, 0) works and the first heap is 0x21000 bytes of brk', () => {
    expect(fig('mallopt')).toBe(1);
    expect(fig('heap.brk')).toBe(0x21000);
    expect(fig('heap.arena')).toBe(0x21000);
  });

  it('maps 4 MiB for a 3 MiB request the first time (rounded to 1 MiB) and counts it as heap', () => {
    expect(fig('first.brk_moved')).toBe(0);
    expect(fig('first.mapped')).toBe(4 << 20);
    expect(fig('first.in_mapping')).toBe(1);
    expect(fig('first.usable')).toBe((3 << 20) + 8); // a heap chunk, not an mmapped one
    expect(fig('first.arena')).toBe(0x21000 + (4 << 20));
    expect(fig('first.hblks')).toBe(0);
    expect(fig('first.hblkhd')).toBe(0);
    // The old top was fenced off and freed: it and the new top are the two free chunks.
    expect(fig('first.ordblks')).toBe(2);
    expect(fig('first.keepcost')).toBe((4 << 20) - 0x300010);
  });

  it('maps a page-rounded 0x321000 the second time, with nothing subtracted for the old top', () => {
    expect(fig('second.brk_moved')).toBe(0);
    expect(fig('second.mapped')).toBe(0x321000); // ALIGN_UP(0x300010 + 0x20000 + 32, 4096)
    expect(fig('second.in_mapping')).toBe(1);
    expect(fig('second.arena')).toBe(0x21000 + (4 << 20) + 0x321000);
    expect(fig('second.ordblks')).toBe(3);
    expect(fig('second.keepcost')).toBe(135152);
  });
});

describe('mallopt (docs/glibc-facts.md#mallopt-returns, #mallopt-mxfast, #mallopt-consolidates, #perturb)', () => {
  it('returns 1, or 0 only for an M_MXFAST above 160 (a negative value wraps to a huge one)', () => {
    const calls: Array<[number, number, string]> = [
      [M_MXFAST, 160, '1'],
      [M_MXFAST, 161, '0'],
      [M_MXFAST, 200, '0'],
      [M_MXFAST, -1, '0'],
      [M_MXFAST, 0, '1'],
      [999, 1, '1'], // unknown
      [2, 1, '1'], // M_NLBLKS, M_GRAIN, M_KEEP: unused
      [3, 1, '1'],
      [4, 1, '1'],
      [M_MMAP_THRESHOLD, -1, '1'],
      [M_TRIM_THRESHOLD, -1, '1'],
      [M_TOP_PAD, 0, '1'],
      [M_MMAP_MAX, 0, '1'],
      [M_CHECK_ACTION, 1, '1'],
      [M_PERTURB, 256, '1'],
      [M_ARENA_MAX, 0, '1'],
      [M_ARENA_MAX, -1, '1'],
      [M_ARENA_TEST, 0, '1'],
      [M_ARENA_TEST, -3, '1'],
      [M_ARENA_MAX, 3, '1'],
    ];
    const results = settings([], ...calls.map(([p, v]) => `mallopt ${p} ${v}`));
    expect(results).toEqual(calls.map(([, , r]) => r));
  });

  it('M_MXFAST: 160 makes 160-byte chunks fastbin chunks, a rejected 200 changes nothing, 0 disables fastbins', () => {
    // The tcache is off (tcache_count=0) so that frees reach the fastbins.
    const env = ['GLIBC_TUNABLES=glibc.malloc.tcache_count=0'];
    expect(settings(env, 'where 120', 'where 136')).toEqual(['fastbin', 'bin']); // default: chunks up to 128
    expect(settings(env, `mallopt ${M_MXFAST} 160`, 'where 152', 'where 168')).toEqual([
      '1',
      'fastbin',
      'bin',
    ]);
    expect(
      settings(env, `mallopt ${M_MXFAST} 160`, `mallopt ${M_MXFAST} 200`, 'where 152'),
    ).toEqual(['1', '0', 'fastbin']);
    expect(settings(env, `mallopt ${M_MXFAST} -1`, 'where 120')).toEqual(['0', 'fastbin']);
    expect(settings(env, `mallopt ${M_MXFAST} 0`, 'where 24')).toEqual(['1', 'bin']);
  });

  it('consolidates the fastbins on every call, even with an unknown parameter', () => {
    expect(one(['GLIBC_TUNABLES=glibc.malloc.tcache_count=0'], 'consolidate')).toBe(
      'returned 1, fastbin chunks 2 -> 0, bin chunks 0 -> 1',
    );
  });

  it('M_MMAP_THRESHOLD -1 is accepted as "never mmap"', () => {
    expect(settings([], 'mmapped 2097152')).toEqual(['mmapped']);
    expect(
      settings([], `mallopt ${M_MMAP_THRESHOLD} -1`, 'mmapped 2097152', 'mmapped 100000000'),
    ).toEqual(['1', 'heap', 'heap']);
  });

  it('M_PERTURB 256 turns perturbing on: allocations are filled with 256 ^ 0xff, low byte 0xff', () => {
    expect(settings([], 'fill 64')).toEqual(['0x00']);
    expect(settings([], `mallopt ${M_PERTURB} 256`, 'fill 64')).toEqual(['1', '0xff']);
    expect(settings([], `mallopt ${M_PERTURB} 165`, 'fill 64')).toEqual(['1', '0x5a']);
  });
});

describe('settings that turn the dynamic mmap threshold off (docs/glibc-facts.md#dynamic-threshold-off)', () => {
  it('by default a freed 2 MiB mapping raises the threshold, so the next 2 MiB block comes from the heap', () => {
    expect(one([], 'dyn')).toBe('heap');
  });

  it.each([
    [M_TRIM_THRESHOLD, 131072, 'mmapped'],
    [M_TOP_PAD, 131072, 'mmapped'], // even the default value
    [M_MMAP_THRESHOLD, 131072, 'mmapped'],
    [M_MMAP_MAX, 65536, 'mmapped'],
    [M_PERTURB, 0, 'heap'],
    [M_MXFAST, 128, 'heap'],
    [M_ARENA_MAX, 4, 'heap'],
    [999, 1, 'heap'],
  ])('mallopt(%i, %i), then: %s', (p, v, where) => {
    expect(settings([], `mallopt ${p} ${v}`, 'dyn')).toEqual(['1', where]);
  });

  it.each([
    ['MALLOC_TOP_PAD_=131072', 'mmapped'],
    ['GLIBC_TUNABLES=glibc.malloc.top_pad=131072', 'mmapped'],
    ['MALLOC_MMAP_THRESHOLD_=65536', 'mmapped'],
    ['MALLOC_TRIM_THRESHOLD_=65536', 'mmapped'],
    ['MALLOC_MMAP_MAX_=65536', 'mmapped'],
    ['MALLOC_PERTURB_=1', 'heap'],
    ['GLIBC_TUNABLES=glibc.malloc.mxfast=64', 'heap'],
  ])('%s, then: %s', (env, where) => {
    expect(one([env], 'dyn')).toBe(where);
  });
});

describe('tunable and MALLOC_*_ ranges (docs/glibc-facts.md#tunable-ranges, #tcache-tunables)', () => {
  it('perturb takes 0..255 only: 256, 0x101, 999 and -1 are ignored', () => {
    for (const env of [
      'GLIBC_TUNABLES=glibc.malloc.perturb=256',
      'MALLOC_PERTURB_=0x101',
      'GLIBC_TUNABLES=glibc.malloc.perturb=999',
      'MALLOC_PERTURB_=-1',
    ]) {
      expect([env, one([env], 'fill 64')]).toEqual([env, '0x00']);
    }
    // Ignored, not set to 0: a later valid entry of the same name still applies (the first valid
    // one wins, see #tunable-precedence), which it would not after an accepted 0.
    expect(one(['MALLOC_PERTURB_=256', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0xfa');
    expect(one(['MALLOC_PERTURB_=-1', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0xfa');
    expect(one(['MALLOC_PERTURB_=0', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0x00');
  });

  it('mmap_max takes 0 and up: -1 is ignored (a 2 MiB block is still mmapped), 0 applies', () => {
    expect(one(['MALLOC_MMAP_MAX_=-1'], 'mmapped 2097152')).toBe('mmapped');
    expect(one(['GLIBC_TUNABLES=glibc.malloc.mmap_max=-1'], 'mmapped 2097152')).toBe('mmapped');
    expect(one(['MALLOC_MMAP_MAX_=0'], 'mmapped 2097152')).toBe('heap');
  });

  it('arena_max takes 1 and up: 0 is ignored, as the tunable and as MALLOC_ARENA_MAX', () => {
    // arena_max 1 sends a new thread to the main arena; 2 gives it an arena of its own.
    expect(one(['MALLOC_ARENA_MAX=1'], 'threads 1')).toBe('0 new arenas, 1 on the main arena');
    expect(one(['MALLOC_ARENA_MAX=2'], 'threads 1')).toBe('1 new arenas, 0 on the main arena');
    // A 0 would mean "no limit", like the default, so it shows only against a later valid entry:
    expect(one(['MALLOC_ARENA_MAX=0', 'MALLOC_ARENA_MAX=1'], 'threads 1')).toBe(
      '0 new arenas, 1 on the main arena',
    );
    expect(one(['MALLOC_ARENA_MAX=2', 'MALLOC_ARENA_MAX=1'], 'threads 1')).toBe(
      '1 new arenas, 0 on the main arena',
    );
    expect(
      one(['GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.arena_max=0'], 'threads 1'),
    ).toBe('0 new arenas, 1 on the main arena');
  });

  it('tcache_max: at most 1032; 0 still caches the 32-byte chunks, 2000 is ignored', () => {
    const sizes = ['where 24', 'where 40', 'where 104', 'where 105', 'where 1032', 'where 1033'];
    // chunks:      32          48          112          128          1040          1056
    const byDefault = ['tcache', 'tcache', 'tcache', 'tcache', 'tcache', 'bin'];
    expect(settings([], ...sizes)).toEqual(byDefault);
    expect(settings(['GLIBC_TUNABLES=glibc.malloc.tcache_max=0'], ...sizes)).toEqual([
      'tcache',
      'fastbin',
      'fastbin',
      'fastbin',
      'bin',
      'bin',
    ]);
    expect(settings(['GLIBC_TUNABLES=glibc.malloc.tcache_max=100'], ...sizes)).toEqual([
      'tcache',
      'tcache',
      'tcache',
      'fastbin',
      'bin',
      'bin',
    ]);
    expect(settings(['GLIBC_TUNABLES=glibc.malloc.tcache_max=2000'], ...sizes)).toEqual(byDefault);
  });

  it('tcache_count: 0 sends frees past the tcache', () => {
    expect(
      settings(['GLIBC_TUNABLES=glibc.malloc.tcache_count=0'], 'where 24', 'where 1032'),
    ).toEqual(['fastbin', 'bin']);
  });
});

describe('how tunable and MALLOC_*_ values are read (docs/glibc-facts.md#tunable-numbers, #top-pad)', () => {
  it.each([
    ['GLIBC_TUNABLES=glibc.malloc.perturb=0xa5', '0x5a'], // hex: 165
    ['MALLOC_PERTURB_=0245', '0x5a'], // octal: 165
    ['MALLOC_PERTURB_=010', '0xf7'], // octal: 8
    ['MALLOC_PERTURB_=12abc', '0xf3'], // 12, the rest ignored
    ['MALLOC_PERTURB_= +7', '0xf8'], // blanks and a sign
    ['MALLOC_PERTURB_=255', '0x00'], // 255 ^ 0xff
  ])('%s: allocations filled with %s', (env, fill) => {
    expect(one([env], 'fill 64')).toBe(fill);
  });

  it('reads "08" and "abc" as 0, a valid value that takes the place of a later one', () => {
    expect(one(['MALLOC_PERTURB_=08', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0x00');
    expect(one(['MALLOC_PERTURB_=abc', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0x00');
    expect(one(['MALLOC_PERTURB_=5'], 'fill 64')).toBe('0xfa');
  });

  it('reads -1 as the largest size_t: MALLOC_MMAP_THRESHOLD_=-1 means never mmap', () => {
    expect(one(['MALLOC_MMAP_THRESHOLD_=-1'], 'mmapped 2097152')).toBe('heap');
  });

  it('reads a top pad in hex, and MALLOC_TOP_PAD_=0 makes the first heap growth one page', () => {
    expect(one([], 'first-brk')).toBe('0x21000');
    expect(one(['MALLOC_TOP_PAD_=0'], 'first-brk')).toBe('0x1000');
    expect(one(['MALLOC_TOP_PAD_=4096'], 'first-brk')).toBe('0x2000');
    expect(one(['GLIBC_TUNABLES=glibc.malloc.top_pad=0x2000'], 'first-brk')).toBe('0x3000');
  });
});

describe('GLIBC_TUNABLES over MALLOC_*_ (docs/glibc-facts.md#tunable-precedence)', () => {
  it('the GLIBC_TUNABLES entry wins, in either order', () => {
    expect(
      one(['MALLOC_TOP_PAD_=4096', 'GLIBC_TUNABLES=glibc.malloc.top_pad=0'], 'first-brk'),
    ).toBe('0x1000');
    expect(
      one(['GLIBC_TUNABLES=glibc.malloc.top_pad=0', 'MALLOC_TOP_PAD_=4096'], 'first-brk'),
    ).toBe('0x1000');
  });

  it('but an ignored GLIBC_TUNABLES entry leaves the variable in force', () => {
    expect(one(['MALLOC_PERTURB_=7', 'GLIBC_TUNABLES=glibc.malloc.perturb=999'], 'fill 64')).toBe(
      '0xf8',
    );
    expect(one(['GLIBC_TUNABLES=glibc.malloc.perturb=999', 'MALLOC_PERTURB_=7'], 'fill 64')).toBe(
      '0xf8',
    );
  });

  it('among GLIBC_TUNABLES entries the last valid one wins; among variables, the first valid one', () => {
    expect(one(['GLIBC_TUNABLES=glibc.malloc.perturb=5:glibc.malloc.perturb=7'], 'fill 64')).toBe(
      '0xf8',
    );
    expect(
      one(
        ['GLIBC_TUNABLES=glibc.malloc.perturb=7', 'GLIBC_TUNABLES=glibc.malloc.perturb=5'],
        'fill 64',
      ),
    ).toBe('0xfa');
    expect(one(['MALLOC_PERTURB_=7', 'MALLOC_PERTURB_=5'], 'fill 64')).toBe('0xf8');
  });
});

describe('the arena limit (docs/glibc-facts.md#arena-limit)', () => {
  // Threads are started one at a time and all stay alive; each mallocs once. glibc 2.36 creates
  // arenas freely until there are more than arena_test (8), then limits them to 8 per online CPU,
  // main included, and hands out the existing ones round-robin from the main arena on. By default
  // that makes max(9, 8 x CPUs) arenas: 16 on the 2 CPUs the figures were measured with.
  const nprocs = Number(one([], 'nprocs'));
  const limit = 8 * nprocs;
  const arenas = Math.max(9, limit);
  const threads = arenas + 8;
  const run = (env: string[], ...actions: string[]): string =>
    settings(env, ...actions, `threads ${threads}`).at(-1)!;

  it.skipIf(threads > 1024)('by default: 8 per CPU (at least 9), main included', () => {
    expect(run([])).toBe(`${arenas - 1} new arenas, 1 on the main arena`); // 15 new on 2 CPUs
  });

  it.skipIf(threads > 1024)('MALLOC_ARENA_MAX=-1 is the largest size_t: no limit', () => {
    expect(run(['MALLOC_ARENA_MAX=-1'])).toBe(`${threads} new arenas, 0 on the main arena`);
  });

  it('M_ARENA_MAX 3 or MALLOC_ARENA_MAX=3: 3 arenas, main included', () => {
    expect(settings([], `mallopt ${M_ARENA_MAX} 3`, 'threads 3')).toEqual([
      '1',
      '2 new arenas, 1 on the main arena',
    ]);
    expect(one(['MALLOC_ARENA_MAX=3'], 'threads 3')).toBe('2 new arenas, 1 on the main arena');
    expect(one(['GLIBC_TUNABLES=glibc.malloc.arena_max=0x2'], 'threads 2')).toBe(
      '1 new arenas, 1 on the main arena',
    );
  });

  it('mallopt ignores M_ARENA_MAX and M_ARENA_TEST values <= 0', () => {
    expect(
      settings([], `mallopt ${M_ARENA_MAX} 1`, `mallopt ${M_ARENA_MAX} 0`, 'threads 1'),
    ).toEqual(['1', '1', '0 new arenas, 1 on the main arena']);
  });

  it.skipIf(threads > 1024)(
    'arena_test: the limit applies only once there are more arenas than it; M_ARENA_TEST -3 is ignored',
    () => {
      const test = limit + 4; // above the CPU limit, so that it decides
      expect(run([], `mallopt ${M_ARENA_TEST} ${test}`)).toBe(
        `${test} new arenas, 1 on the main arena`,
      );
      expect(run([], `mallopt ${M_ARENA_TEST} ${test}`, `mallopt ${M_ARENA_TEST} -3`)).toBe(
        `${test} new arenas, 1 on the main arena`,
      );
      // Had -3 been taken as a size_t, no limit would ever apply.
      expect(run([], `mallopt ${M_ARENA_TEST} -3`)).toBe(
        `${arenas - 1} new arenas, 1 on the main arena`,
      );
    },
  );
});

describe("allocations glibc makes on a program's behalf (docs/glibc-facts.md#hidden-allocations)", () => {
  it("pthread_create allocates the new thread's DTV in the creating thread's arena: a 288-byte chunk", () => {
    expect(one([], 'dtv')).toBe('288');
  });

  it('the first write through stdout, a pipe here, allocates its 4096-byte buffer: a 4112-byte chunk', () => {
    expect(one([], 'stdout')).toBe('4112');
  });
});

describe('the main thread owns the main arena (docs/glibc-facts.md#main-thread-arena)', () => {
  it("initialises malloc in the main thread at its first pthread_create, so the new thread's first malloc gets another arena", () => {
    // pthread_create alone moves the break by the main arena's first 0x21000 bytes (the DTV's
    // calloc); the thread's block is elsewhere, and after the thread's exit the main thread's own
    // first malloc is in the main arena.
    expect(one([], 'first-thread')).toBe('create 0x21000, thread other-arena, main main-arena');
  });
});
