/**
 * The profiles no real build has proven yet (2.28, 2.34, 2.35, 2.39; src/core/profile.ts): for
 * each, small traces whose outcome differs from a neighbouring release's for a reason in glibc's
 * source, the expected figures worked out by hand from that source (the function named with each).
 * Where one of those releases also has a Debian build here (2.31), the same trace is checked on it.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { differential, runSim, traceEnv } from '../diff/harness.js';
import { fetchGlibc } from '../helpers/glibc-builds.js';
import { profileFor } from '../../src/core/profile.js';
import { resolveTunables } from '../../src/core/tunables.js';

const CASES = join(dirname(fileURLToPath(import.meta.url)), '../diff/cases');

const trace = (lines: string[]): string => lines.join('\n') + '\n';

/** Each event's offset (of the block it returned) on a release. */
function offsets(text: string, glibc: string, env: Record<string, string> = {}): number[] {
  return runSim(text, env, 'unverified', 'none', glibc).events.map((e) => e.off ?? -1);
}

describe('glibc 2.28 against 2.31', () => {
  it('has a 576-byte tcache (char counts, uint16_t from 2.30): the first block is at 0x260, not 0x2a0', () => {
    // tcache_init: request2size (64 + 64 * 8) = 592 = 0x250 (2.31: 64 * 2 + 512 -> 0x290); the
    // first malloc's block follows it, its header after the tcache chunk's.
    const t = trace(['1 malloc 24 a', '1 malloc 24 b']);
    expect(offsets(t, '2.28')).toEqual([0x260, 0x280]);
    expect(offsets(t, '2.31')).toEqual([0x2a0, 0x2c0]);
  });

  it('does not look for a double free in the tcache (_int_free, 2.29 added the key check)', () => {
    const t = trace(['1 malloc 24 a', '1 free a', '1 free a']);
    const old = runSim(t, {}, 'df', 'none', '2.28');
    expect(old.summary.abort).toBeUndefined();
    expect(old.error).toMatch(/glibc 2\.28 does not detect this here/);
    const newer = runSim(t, {}, 'df', 'none', '2.31');
    expect(newer.summary.abort?.message).toBe('free(): double free detected in tcache 2');
  });

  it('caps a tcache bin at 128 chunks whatever tcache_count says (a signed char count)', () => {
    // tcache_put stops once (size_t) counts[i] is not below tcache_count: the char wraps to -128
    // after 128 puts. 2.31 takes tcache_count=200 (at most UINT16_MAX) and keeps all 130.
    const lines: string[] = [];
    for (let k = 0; k < 130; k++) lines.push(`1 malloc 24 p${k}`);
    for (let k = 0; k < 130; k++) lines.push(`1 free p${k}`);
    const env = { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=200' };
    const old = runSim(trace(lines), env, 'cap', 'none', '2.28').summary.mallinfo2;
    const newer = runSim(trace(lines), env, 'cap', 'none', '2.31').summary.mallinfo2;
    // The two left over go to the 0x20 fastbin.
    expect([old.smblks, old.fsmblks]).toEqual([2, 64]);
    expect([newer.smblks, newer.fsmblks]).toEqual([0, 0]);
  });

  it('does not know glibc.malloc.mxfast (2.30 added it)', () => {
    // Seven 0x20 chunks fill the tcache, the eighth goes to a fastbin unless mxfast=0 left none
    // (set_max_fast (0) is 16: no chunk is that small), when it goes to the unsorted bin.
    const lines: string[] = [];
    for (let k = 0; k < 8; k++) lines.push(`1 malloc 24 p${k}`);
    lines.push('1 malloc 24 guard');
    for (let k = 0; k < 8; k++) lines.push(`1 free p${k}`);
    const env = { GLIBC_TUNABLES: 'glibc.malloc.mxfast=0' };
    const old = runSim(trace(lines), env, 'mxfast', 'none', '2.28').summary.mallinfo2;
    const newer = runSim(trace(lines), env, 'mxfast', 'none', '2.31').summary.mallinfo2;
    expect([old.smblks, old.fsmblks, old.ordblks]).toEqual([1, 32, 1]);
    expect([newer.smblks, newer.fsmblks, newer.ordblks]).toEqual([0, 0, 2]);
  });

  it("leaves the top out of malloc_info's totals (2.31 counts it: BZ 24026)", () => {
    // After malloc (24): the first sysmalloc's 0x21000 bytes less the tcache chunk and a's 0x20.
    const t = trace(['1 malloc 24 a']);
    const rest = (glibc: string): string | undefined =>
      /<heap nr="0">[^]*?(<total type="rest"[^>]*>)/.exec(
        runSim(t, {}, 'info', 'none', glibc).info,
      )?.[1];
    expect(rest('2.28')).toBe('<total type="rest" count="0" size="0"/>');
    expect(rest('2.31')).toBe(`<total type="rest" count="1" size="${0x21000 - 0x290 - 0x20}"/>`);
  });
});

describe('a negative MALLOC_MMAP_MAX_ (dl-tunables.list: mmap_max has minval 0 from 2.34)', () => {
  // Taken up to 2.33: n_mmaps < n_mmaps_max never holds, so a large block comes from the heap.
  const t = trace(['1 malloc 200000 big']);
  const env = { MALLOC_MMAP_MAX_: '-1' };
  it('keeps a large block in the heap on 2.28 and 2.31, mmaps it on 2.34', () => {
    const arena = (glibc: string): number | undefined =>
      runSim(t, env, 'mmap-max', 'none', glibc).events[0]!.arena;
    expect(arena('2.28')).toBe(0);
    expect(arena('2.31')).toBe(0);
    expect(arena('2.34')).toBe(-1);
  });

  const build = fetchGlibc('2.31');
  it.skipIf(!build.ok)(
    `is taken by Debian's glibc 2.31 as the model of it says${build.ok ? '' : ` (skipped: ${build.reason})`}`,
    () => {
      expect(differential(t, { name: 'mmap-max-negative', env, glibc: '2.31' })).toBeNull();
      // And the first calloc of the hooks' test above, as Debian's 2.31 makes it resident.
      const calloc = trace(['1 calloc 1 200000 a']);
      expect(
        differential(calloc, { name: 'first-calloc', glibc: '2.31', touch: 'none' }),
      ).toBeNull();
    },
  );
});

describe('glibc 2.34 against 2.31 and 2.35', () => {
  it("has no __malloc_hook: a first calloc is not cleared whole by malloc_hook_ini's path", () => {
    // 2.31: the first call goes through malloc_hook_ini, and calloc memsets what it returns: all
    // 200000 bytes of the mmapped block (49 pages), and the tcache's page in the heap. 2.34's
    // __libc_calloc clears nothing of an mmapped chunk (fresh from the kernel): its header page
    // and the heap's first page are all that is written.
    const t = trace(['1 calloc 1 200000 a']);
    expect(runSim(t, {}, 'hooks', 'none', '2.31').summary.rss).toBe(50 * 4096);
    expect(runSim(t, {}, 'hooks', 'none', '2.34').summary.rss).toBe(2 * 4096);
  });

  it('asks getrandom for the tcache key (tcache_key_initialize, 2.34), as 2.31 does not', () => {
    const t = trace(['1 malloc 24 a']);
    expect(runSim(t, {}, 'key', 'none', '2.31').summary.syscalls.getrandom).toBe(0);
    expect(runSim(t, {}, 'key', 'none', '2.34').summary.syscalls.getrandom).toBe(1);
  });

  it("has 2.31's 32-byte heap_info: a thread's first block is at 2912, 2928 on 2.35", () => {
    // A thread arena's top starts at align (32 + 2200) so that its user data is 16-aligned:
    // 2240 (2.35: 48 + 2200 -> 2256); the thread's tcache chunk (0x290) comes first.
    const t = trace(['1 malloc 24 a', '2 malloc 24 b']);
    expect(offsets(t, '2.34')[1]).toBe(2240 + 0x290 + 16);
    expect(offsets(t, '2.35')[1]).toBe(2256 + 0x290 + 16);
  });

  it('copies GLIBC_TUNABLES with sbrk before main (tunables_strdup; 2.35 uses __minimal_malloc)', () => {
    // 43 bytes (the entry and its NUL) above the break at exec: the heap's first chunk is aligned
    // 5 bytes up from the break, so the first block is 5 bytes later than on 2.35.
    const env = { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' };
    const t = trace(['1 malloc 24 a']);
    expect(offsets(t, '2.34', env)).toEqual([0x2a0 + 5]);
    expect(offsets(t, '2.35', env)).toEqual([0x2a0]);
  });

  it('refuses an mmap threshold above 32 MiB (do_set_mmap_threshold; no limit from 2.35)', () => {
    const t = trace(['1 mallopt M_MMAP_THRESHOLD 67108864', '1 malloc 200000 big']);
    expect(runSim(t, {}, 'limit', 'none', '2.34').events[1]!.arena).toBe(-1);
    expect(runSim(t, {}, 'limit', 'none', '2.35').events[1]!.arena).toBe(0);
  });
});

describe('glibc 2.39 between 2.36 and 2.41', () => {
  it("calloc does not take from the tcache (__libc_calloc's tcache path is 2.41's)", () => {
    // 2.41 returns a's cached chunk; 2.39 and 2.36 carve b from the top, after a's 0x70 chunk.
    const t = trace(['1 malloc 100 a', '1 free a', '1 calloc 1 100 b']);
    expect(offsets(t, '2.36')[2]).toBe(0x2a0 + 0x70);
    expect(offsets(t, '2.39')[2]).toBe(0x2a0 + 0x70);
    expect(offsets(t, '2.41')[2]).toBe(0x2a0);
  });

  it("memalign merges and bins its lead as 2.41 does (_int_memalign, 2.39), not as 2.36's _int_free", () => {
    // memalign (64, 100): _int_malloc (112 + 64 + 32) from the top at 0x290; the aligned spot
    // leaves a 0x30 lead. 2.36 caches the lead in the tcache, and malloc (24) comes from the
    // top; 2.39 puts it in the unsorted bin, and malloc (24) takes it whole (usable 40).
    const t = trace(['1 memalign 64 100 b', '1 malloc 24 c']);
    const usable = (glibc: string): number | undefined =>
      runSim(t, {}, 'memalign', 'none', glibc).events[1]!.usable;
    expect(usable('2.36')).toBe(24);
    expect(usable('2.39')).toBe(40);
    expect(usable('2.41')).toBe(40);
  });

  it('sends a freed small chunk to the unsorted bin, not its small bin (2.41 changed _int_free_create_chunk)', () => {
    // test/diff/cases/unsorted-smallbins.trace (only malloc and free): 2.39's _int_free is 2.36's
    // split into _int_free_merge_chunk and _int_free_create_chunk, with the unsorted bin kept,
    // so the whole replay is 2.36's. Event 27, the fourth malloc (300) after eight frees, is at
    // 3328 on Debian's 2.36 and 1728 on its 2.41 (docs/glibc-versions.md).
    const t = readFileSync(join(CASES, 'unsorted-smallbins.trace'), 'utf8');
    const env = traceEnv(t);
    expect(offsets(t, '2.39', env)[27]).toBe(3328);
    expect(offsets(t, '2.41', env)[27]).toBe(1728);
    expect(offsets(t, '2.39', env)).toEqual(offsets(t, '2.36', env));
  });
});

describe('GLIBC_TUNABLES as 2.39 reads it (elf/dl-tunables.c: parse_tunables_string, tunable_initialize)', () => {
  // From 2.39 a value must be a number to its last character, and a string whose last name has no
  // '=' (a trailing ':' leaves an empty one) or that has a value with '=' is ignored whole; 2.36
  // reads a number up to its first other character and the string up to what does not parse.
  const cases: Array<{ env: Record<string, string>; old: string[]; strict: string[] }> = [
    {
      env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=2junk', MALLOC_TOP_PAD_: '1x' },
      old: ['tcache_count=2', 'top_pad=1'],
      strict: [],
    },
    {
      env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0:' },
      old: ['tcache_count=0'],
      strict: [],
    },
    {
      env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0=1' },
      old: ['tcache_count=0'],
      strict: [],
    },
    {
      env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0:glibc.malloc.tcache_count=5x' },
      old: ['tcache_count=5'],
      strict: [],
    },
    {
      env: { GLIBC_TUNABLES: ':foo:glibc.malloc.tcache_count=0' },
      old: ['tcache_count=0'],
      strict: ['tcache_count=0'],
    },
    // "0x" is all taken: a hexadecimal prefix and no digits.
    {
      env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0x' },
      old: ['tcache_count=0'],
      strict: ['tcache_count=0'],
    },
  ];
  const resolved = (env: Record<string, string>, glibc: string): string[] =>
    [...resolveTunables(Object.entries(env), profileFor(glibc)!.profile).values].map(
      ([k, v]) => `${k}=${v}`,
    );

  it('takes a value, or not, as each release parses it', () => {
    for (const c of cases) {
      expect(resolved(c.env, '2.36'), JSON.stringify(c.env)).toEqual(c.old);
      expect(resolved(c.env, '2.39'), JSON.stringify(c.env)).toEqual(c.strict);
      expect(resolved(c.env, '2.41'), JSON.stringify(c.env)).toEqual(c.strict);
    }
  });

  // Seven 0x20 chunks and one 200000-byte block: tcache_count decides how many chunks the
  // fastbins get, top_pad where the break goes.
  const lines = ['1 malloc 200000 big'];
  for (let k = 0; k < 9; k++) lines.push(`1 malloc 24 p${k}`);
  for (let k = 0; k < 9; k++) lines.push(`1 free p${k}`);
  const t = trace(lines);
  it("replays as this machine's glibc (2.36) does", () => {
    for (const c of cases)
      expect(
        differential(t, { name: 'tunables-2.36', env: c.env }),
        JSON.stringify(c.env),
      ).toBeNull();
  });
  const build = fetchGlibc('2.41');
  it.skipIf(!build.ok)(
    `replays as Debian's 2.41 does${build.ok ? '' : ` (skipped: ${build.reason})`}`,
    () => {
      for (const c of cases)
        expect(
          differential(t, { name: 'tunables-2.41', env: c.env, glibc: '2.41' }),
          JSON.stringify(c.env),
        ).toBeNull();
    },
  );
});
