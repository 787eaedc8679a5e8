/**
 * mallopt, GLIBC_TUNABLES and MALLOC_*_ variables: glibc 2.36's parsing, ranges and return values.
 * Expected values are glibc's, measured on glibc 2.36 (Debian 2.36-9) by test/native/probes.test.ts
 * and listed in docs/glibc-facts.md#tunable-numbers, #tunable-ranges, #tunable-precedence,
 * #tcache-tunables, #dynamic-threshold-off, #top-pad, #mallopt-returns, #mallopt-mxfast,
 * #arena-limit.
 */

import { describe, expect, it } from 'vitest';
import { mallopt, ptmallocInit, libcMalloc } from '../../src/core/api.js';
import { Process } from '../../src/core/state.js';
import { Kernel } from '../../src/kernel/kernel.js';
import { M } from '../../src/core/constants.js';
import { dlStrtoul, resolveTunables } from '../../src/core/tunables.js';
import { profileFor } from '../../src/core/profile.js';

function proc(env: Array<[string, string]> = []): Process {
  const s = new Process(new Kernel());
  s.env = env;
  ptmallocInit(s);
  return s;
}

describe('_dl_strtoul', () => {
  it('reads decimal, hex and octal, with a sign, ignoring what follows', () => {
    expect(dlStrtoul('131072')).toBe(131072n);
    expect(dlStrtoul('0x20000')).toBe(131072n);
    expect(dlStrtoul('010')).toBe(8n);
    expect(dlStrtoul('08')).toBe(0n); // octal stops at 8
    expect(dlStrtoul('12abc')).toBe(12n);
    expect(dlStrtoul('  +7')).toBe(7n);
    expect(dlStrtoul('-1')).toBe(2n ** 64n - 1n);
    expect(dlStrtoul('abc')).toBe(0n);
  });

  it('stops at UINT64_MAX only past it (cutoff and cutlim, elf/dl-misc.c)', () => {
    // 2^64 - 6 and 2^64 - 1 fit; one more digit, or 2^64, does not.
    expect(dlStrtoul('18446744073709551610')).toBe(2n ** 64n - 6n);
    expect(dlStrtoul('18446744073709551615')).toBe(2n ** 64n - 1n);
    expect(dlStrtoul('18446744073709551616')).toBe(2n ** 64n - 1n);
    expect(dlStrtoul('0xffffffffffffffff0')).toBe(2n ** 64n - 1n);
  });
});

describe('a number with something after it', () => {
  it('is read up to it on 2.36, with a note saying what glibc took', () => {
    const r = resolveTunables([['GLIBC_TUNABLES', 'glibc.malloc.mmap_threshold=64K']]);
    expect(r.values.get('mmap_threshold')).toBe(64n);
    expect(r.notes).toEqual([
      {
        setting: 'glibc.malloc.mmap_threshold=64K',
        reason:
          "glibc 2.36 reads 64, the number before 'K' (suffixes such as K are not understood)",
      },
    ]);
  });
});

describe('tunables and environment variables (measured on glibc 2.36)', () => {
  it('ignores out-of-range values', () => {
    expect(resolveTunables([['MALLOC_ARENA_MAX', '0']]).values.has('arena_max')).toBe(false);
    expect(
      resolveTunables([['GLIBC_TUNABLES', 'glibc.malloc.perturb=256']]).values.has('perturb'),
    ).toBe(false);
    expect(resolveTunables([['MALLOC_PERTURB_', '0x101']]).values.has('perturb')).toBe(false);
    expect(resolveTunables([['MALLOC_MMAP_MAX_', '-1']]).values.has('mmap_max')).toBe(false);
    expect(
      resolveTunables([['GLIBC_TUNABLES', 'glibc.malloc.mmap_max=-1']]).values.has('mmap_max'),
    ).toBe(false);
  });

  it('applies in-range values, including a size_t -1 that wraps to "no limit"', () => {
    expect(resolveTunables([['MALLOC_MMAP_MAX_', '0']]).values.get('mmap_max')).toBe(0n);
    expect(
      resolveTunables([['GLIBC_TUNABLES', 'glibc.malloc.arena_max=0x2']]).values.get('arena_max'),
    ).toBe(2n);
    expect(resolveTunables([['MALLOC_ARENA_MAX', '-1']]).values.get('arena_max')).toBe(
      2n ** 64n - 1n,
    );
  });

  it('lets GLIBC_TUNABLES win over the alias, in either order', () => {
    for (const env of [
      [
        ['MALLOC_TOP_PAD_', '4096'],
        ['GLIBC_TUNABLES', 'glibc.malloc.top_pad=0'],
      ],
      [
        ['GLIBC_TUNABLES', 'glibc.malloc.top_pad=0'],
        ['MALLOC_TOP_PAD_', '4096'],
      ],
    ] as Array<Array<[string, string]>>) {
      expect(resolveTunables(env).values.get('top_pad')).toBe(0n);
    }
  });

  it('reports settings glibc ignores', () => {
    const notes = resolveTunables([
      ['GLIBC_TUNABLES', 'glibc.malloc.nosuch=1:glibc.malloc.perturb=999'],
      ['MALLOC_FOO_', '1'],
    ]).notes;
    expect(notes.map((n) => n.setting)).toEqual([
      'glibc.malloc.nosuch=1',
      'glibc.malloc.perturb=999',
      'MALLOC_FOO_=1',
    ]);
  });

  it('tcache_max: 0 still caches one bin, above 1032 is ignored', () => {
    expect(proc([['GLIBC_TUNABLES', 'glibc.malloc.tcache_max=0']]).mp.tcacheBins).toBe(1);
    expect(proc([['GLIBC_TUNABLES', 'glibc.malloc.tcache_max=2000']]).mp.tcacheBins).toBe(64);
  });

  it('setting top_pad, mmap_threshold, trim_threshold or mmap_max turns the dynamic threshold off', () => {
    for (const name of [
      'MALLOC_TOP_PAD_',
      'MALLOC_MMAP_THRESHOLD_',
      'MALLOC_TRIM_THRESHOLD_',
      'MALLOC_MMAP_MAX_',
    ]) {
      expect(
        proc([[name, name === 'MALLOC_TOP_PAD_' ? '131072' : '65536']]).mp.noDynThreshold,
      ).toBe(true);
    }
    expect(proc([['MALLOC_PERTURB_', '1']]).mp.noDynThreshold).toBe(false);
    expect(proc([['GLIBC_TUNABLES', 'glibc.malloc.mxfast=64']]).mp.noDynThreshold).toBe(false);
  });

  it('MALLOC_TOP_PAD_=0 makes the first heap growth a single page', () => {
    const s = proc([['MALLOC_TOP_PAD_', '0']]);
    libcMalloc(s, 24);
    expect(s.kernel.brkEnd - s.kernel.brkBase).toBe(0x1000);
  });
});

describe('mallopt return values (measured on glibc 2.36)', () => {
  it('M_MXFAST accepts 0..160 only', () => {
    const s = proc();
    expect(mallopt(s, M.MXFAST, 200)).toBe(0);
    expect(mallopt(s, M.MXFAST, 161)).toBe(0);
    expect(mallopt(s, M.MXFAST, 160)).toBe(1);
    expect(mallopt(s, M.MXFAST, -1)).toBe(0);
    expect(s.globalMaxFast).toBe(160);
    expect(mallopt(s, M.MXFAST, 0)).toBe(1);
    expect(s.globalMaxFast).toBe(16);
  });

  it('unknown parameters and M_MMAP_THRESHOLD -1 return 1', () => {
    const s = proc();
    expect(mallopt(s, 999, 1)).toBe(1);
    expect(mallopt(s, M.MMAP_THRESHOLD, -1)).toBe(1);
    expect(s.mp.mmapThreshold).toBe(2 ** 64 - 1);
  });

  it('M_ARENA_MAX and M_ARENA_TEST ignore values <= 0 but still return 1', () => {
    const s = proc();
    expect(mallopt(s, M.ARENA_MAX, 0)).toBe(1);
    expect(s.mp.arenaMax).toBe(0);
    expect(mallopt(s, M.ARENA_TEST, -3)).toBe(1);
    expect(s.mp.arenaTest).toBe(8);
    expect(mallopt(s, M.ARENA_MAX, 3)).toBe(1);
    expect(s.mp.arenaMax).toBe(3);
  });
});

describe('tunables and mallopt from glibc 2.43 (as malloc/malloc.c and arena.c of 2.43 and 2.44 read them)', () => {
  const on = (v: string, env: Array<[string, string]> = []): Process => {
    const s = new Process(new Kernel(), profileFor(v)!.profile);
    s.env = env;
    ptmallocInit(s);
    return s;
  };
  it('M_MXFAST returns 1 for any value and sets nothing: there are no fastbins', () => {
    const s = on('2.43');
    expect(s.globalMaxFast).toBe(0);
    expect(mallopt(s, M.MXFAST, 0)).toBe(1);
    expect(mallopt(s, M.MXFAST, 1000)).toBe(1);
    expect(s.globalMaxFast).toBe(0);
  });
  it('glibc.malloc.mxfast is still a tunable, which ptmalloc_init no longer reads (with a note)', () => {
    const t = resolveTunables(
      [['GLIBC_TUNABLES', 'glibc.malloc.mxfast=0']],
      profileFor('2.43')!.profile,
    );
    expect(t.values.get('mxfast')).toBe(0n);
    expect(t.notes.map((n) => n.reason)).toEqual([
      'glibc 2.43 has no fastbins: it accepts the tunable and ignores it',
    ]);
  });
  it('tcache_max opens the large bins up to its chunk size; tcache_unsorted_limit is gone in 2.44', () => {
    // do_set_tcache_max: tcache_max_bytes is request2size (value) + 1; the small bins stay 64.
    // 4194280 asks for chunks of 4194288 bytes, in bin 64 + clz (1040) - clz (4194288) = 75.
    const s = on('2.43', [['GLIBC_TUNABLES', 'glibc.malloc.tcache_max=4194280']]);
    expect(s.mp.tcacheMaxBytes).toBe(4194288 + 1);
    expect(s.mp.tcacheBins).toBe(64);
    // 4 MiB asks for 4194320-byte chunks, whose bin would be the 77th: refused, as in glibc.
    const refused = on('2.43', [['GLIBC_TUNABLES', 'glibc.malloc.tcache_max=4194304']]);
    expect(refused.mp.tcacheMaxBytes).toBe(1041);
    // Below 1033 it bounds the small bins, as before: 100 asks for 112-byte chunks, bin 5.
    const small = on('2.43', [['GLIBC_TUNABLES', 'glibc.malloc.tcache_max=100']]);
    expect([small.mp.tcacheBins, small.mp.tcacheMaxBytes]).toEqual([6, 113]);
    const limit = 'glibc.malloc.tcache_unsorted_limit=1';
    expect(resolveTunables([['GLIBC_TUNABLES', limit]], profileFor('2.43')!.profile).notes).toEqual(
      [],
    );
    expect(resolveTunables([['GLIBC_TUNABLES', limit]], profileFor('2.44')!.profile).notes).toEqual(
      [
        {
          setting: limit,
          reason:
            'glibc.malloc.tcache_unsorted_limit is not a glibc 2.44 tunable: glibc ignores it',
        },
      ],
    );
  });
});
