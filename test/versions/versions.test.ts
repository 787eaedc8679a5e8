/**
 * The native replayer on Debian's builds of other glibc versions (test/helpers/glibc-builds.ts):
 * each runs the replayer under its own loader, and facts that its source fixes, and 2.36's does
 * not, show in the logs, so the right libc is known to be the one running. A version that cannot
 * be fetched is skipped, with the reason.
 *
 * Facts (x86_64; malloc/malloc.c and malloc/arena.c of each version):
 * - tcache_perthread_struct: 64 bins of a uint16_t count and a pointer in 2.30 to 2.41 (0x280
 *   bytes, chunk 0x290); 2.42 added 12 bins for large chunks (76 bins: 760 bytes, chunk 0x300).
 * - Up to 2.42 the first malloc of a thread allocates its tcache (tcache_init in
 *   MAYBE_INIT_TCACHE), so it sits at the start of the heap; from 2.43 the tcache starts as a
 *   static dummy and is allocated at the thread's first free (tcache_free_init), or when a
 *   smallbin or unsorted chunk would be stashed into it.
 * - TCACHE_FILL_COUNT: 7, and 16 from 2.43; the fastbins are gone in 2.43 (a small chunk that
 *   the tcache does not take goes to the unsorted bin), so smblks and fsmblks stay 0.
 * - heap_info: 32 bytes up to 2.34, 48 from 2.35 (pagesize); struct malloc_state: 2200 bytes up
 *   to 2.42, 2112 from 2.43 (no fastbinsY, no have_fastchunks). A thread arena's first chunk is at
 *   heap + align16(sizeof heap_info + sizeof malloc_state).
 * - An mmapped chunk keeps 8 bytes more of its mapping for itself from 2.43 (same layout as a
 *   heap chunk: CHUNK_HDR_SZ at the end, not SIZE_SZ), so its usable size is 8 bytes less.
 * - mallinfo2 exists from 2.33: the 2.31 replayer reports mallinfo's figures.
 * - Up to 2.34 the dynamic loader copies the GLIBC_TUNABLES entry with __sbrk before main.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fetchGlibc, GLIBC_SUITES } from '../helpers/glibc-builds.js';
import {
  buildNativeReplayer,
  runNative,
  runNativeText,
  type NativeRun,
} from '../helpers/native.js';

const NATIVE = join(dirname(fileURLToPath(import.meta.url)), '../native');

interface Facts {
  /** The first block of a fresh process (malloc(24)): its offset from the initial break. */
  firstOff: number;
  /** The tcache's chunk size. */
  tcacheChunk: number;
  tcacheCount: number;
  fastbins: boolean;
  heapInfo: number;
  mallocState: number;
  /** Usable bytes of a 132 KiB mmapped chunk (a 0x22000-byte mapping). */
  mmappedUsable: number;
  mallinfo2: boolean;
}

const OLD: Facts = {
  firstOff: 0x2a0,
  tcacheChunk: 0x290,
  tcacheCount: 7,
  fastbins: true,
  heapInfo: 48,
  mallocState: 2200,
  mmappedUsable: 0x22000 - 16,
  mallinfo2: true,
};
const NEW: Facts = {
  firstOff: 0x10,
  tcacheChunk: 0x300,
  tcacheCount: 16,
  fastbins: false,
  heapInfo: 48,
  mallocState: 2112,
  mmappedUsable: 0x22000 - 24,
  mallinfo2: true,
};
const FACTS: Record<string, Facts> = {
  '2.31': { ...OLD, heapInfo: 32, mallinfo2: false },
  '2.41': OLD,
  '2.43': NEW,
  '2.44': NEW,
};

const align16 = (n: number): number => (n + 15) & ~15;
/** The offsets of the blocks the log's allocations returned, in order. */
const offs = (r: NativeRun): number[] =>
  r.events.filter((e) => e['off'] !== undefined).map((e) => e['off'] as number);
const mallinfo = (r: NativeRun): Record<string, number> =>
  r.summary!['mallinfo2'] as Record<string, number>;

function ok(r: NativeRun): void {
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  expect(r.summary).not.toBeNull();
}

for (const version of Object.keys(GLIBC_SUITES)) {
  const f = fetchGlibc(version);
  const facts = FACTS[version]!;
  describe(`glibc ${version}${f.ok ? ` (Debian ${f.build.debianVersion})` : ''}`, () => {
    it.skipIf(!f.ok)(
      `is Debian's build, run by its own loader${f.ok ? '' : ` (skipped: ${f.reason})`}`,
      () => {
        if (!f.ok) return;
        expect(f.build.debianVersion.startsWith(`${version}-`)).toBe(true);
        expect(existsSync(f.build.loader)).toBe(true);
        expect(existsSync(join(f.build.libDir, 'libc.so.6'))).toBe(true);
        expect(f.build.sysroot !== undefined).toBe(GLIBC_SUITES[version]!.dev);
        const r = runNative(join(NATIVE, 'first-calls.trace'), { glibc: version, rss: true });
        ok(r);
        expect(r.summary!['glibc']).toBe(version);
        expect(r.summary!['mallinfoBy']).toBe(facts.mallinfo2 ? undefined : 'mallinfo');
        expect(r.events).toHaveLength(4);
        expect(r.events[0]!['off']).toBe(facts.firstOff);
        expect(r.events[3]).toMatchObject({ arena: -1, off: 16, usable: facts.mmappedUsable });
        expect(r.summary!['rss']).toBe(r.events[3]!['rss']);
      },
    );

    it.skipIf(!f.ok)(
      `the tcache: chunk 0x${facts.tcacheChunk.toString(16)}, allocated ${
        facts.firstOff === 0x10 ? 'at the first free' : 'by the first malloc'
      }, ${facts.tcacheCount} chunks a bin${f.ok ? '' : ` (skipped: ${f.reason})`}`,
      () => {
        if (!f.ok) return;
        const lazy = runNativeText('1 malloc 24 a\n1 free a\n1 malloc 24 b\n1 malloc 24 c\n', {
          glibc: version,
        });
        ok(lazy);
        const [a, b, c] = offs(lazy) as [number, number, number, number];
        expect(b).toBe(a); // the tcache gave a back
        if (facts.firstOff === 0x10) {
          // a at the start of the heap; the tcache chunk right after it, made by the free.
          expect(a).toBe(0x10);
          expect(c).toBe(0x10 + 0x20 + facts.tcacheChunk);
        } else {
          expect(a).toBe(facts.tcacheChunk + 0x10);
          expect(c).toBe(a + 0x20);
        }
        expect(mallinfo(lazy)['uordblks']).toBe(facts.tcacheChunk + 2 * 0x20);

        // 17 chunks of 0x20 freed behind a guard: the tcache keeps its count, the rest go to
        // fastbins, or (without fastbins) to one free chunk in the unsorted bin.
        const n = 17;
        const lines = [
          ...Array.from({ length: n }, (_, i) => `1 malloc 24 p${i}`),
          '1 malloc 24 guard',
          ...Array.from({ length: n }, (_, i) => `1 free p${i}`),
        ];
        const fast = runNativeText(`${lines.join('\n')}\n`, { glibc: version });
        ok(fast);
        const mi = mallinfo(fast);
        const rest = n - facts.tcacheCount;
        if (facts.fastbins) {
          expect(mi['smblks']).toBe(rest);
          expect(mi['fsmblks']).toBe(rest * 0x20);
        } else {
          expect(mi['smblks']).toBe(0);
          expect(mi['fsmblks']).toBe(0);
          expect(mi['ordblks']).toBe(2); // top, and the one free chunk
          expect(mi['fordblks']! - mi['keepcost']!).toBe(rest * 0x20);
        }
        expect(mi['uordblks']).toBe(facts.tcacheChunk + (facts.tcacheCount + 1) * 0x20);
      },
    );

    it.skipIf(!f.ok)(
      `GLIBC_TUNABLES set: ${
        version === '2.31'
          ? 'the loader copies it with sbrk, the heap starts after'
          : 'the break stays'
      }${f.ok ? '' : ` (skipped: ${f.reason})`}`,
      () => {
        if (!f.ok) return;
        // tunables_strdup in elf/dl-tunables.c used __sbrk up to 2.34: the whole entry and its NUL.
        const entry = 'GLIBC_TUNABLES=glibc.malloc.tcache_count=0';
        const r = runNativeText(`# env ${entry}\n1 malloc 24 a\n`, {
          glibc: version,
          env: { GLIBC_TUNABLES: entry.slice('GLIBC_TUNABLES='.length) },
        });
        ok(r);
        // The offsets are from the break before the first call; the first chunk is aligned.
        const lead = version === '2.31' ? (16 - ((entry.length + 1) % 16)) % 16 : 0;
        expect(r.events[0]!['off']).toBe(facts.firstOff + lead);
      },
    );

    it.skipIf(!f.ok)(
      `threads: the first block of a thread arena is at heap + ${facts.heapInfo} + ${facts.mallocState}${
        f.ok ? '' : ` (skipped: ${f.reason})`
      }`,
      () => {
        if (!f.ok) return;
        const r = runNative(join(NATIVE, 'threads.trace'), { glibc: version, rss: true });
        ok(r);
        expect(r.events.map((e) => e['arena'])).toEqual([
          0,
          1,
          undefined,
          undefined,
          1,
          undefined,
          undefined,
          undefined,
        ]);
        const first = align16(facts.heapInfo + facts.mallocState) + 0x10;
        // Up to 2.42 the thread's tcache comes first; from 2.43 it waits for the first free.
        expect(r.events[1]!['off']).toBe(first + (facts.firstOff === 0x10 ? 0 : facts.tcacheChunk));
        // Thread 3 takes arena 1 from the free list and gets b's chunk back (from 2.43 through
        // the unsorted bin, up to 2.42 from the fastbin its exit left it in).
        expect(r.events[4]!['off']).toBe(r.events[1]!['off']);
      },
    );
  });
}

describe('running a program under a loader named on the command line', () => {
  it("changes nothing on this machine's glibc 2.36: the same logs as a direct run", () => {
    const binary = buildNativeReplayer();
    const loader = '/lib64/ld-linux-x86-64.so.2';
    if (!existsSync(loader)) throw new Error(`no ${loader}`);
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-loader-'));
    try {
      for (const trace of ['first-calls.trace', 'threads.trace']) {
        const logs = [[], [loader]].map((prefix, k) => {
          const events = join(dir, `e${k}.jsonl`);
          const args = [
            join(NATIVE, trace),
            '--events',
            events,
            '--summary',
            join(dir, 's'),
            '--rss',
          ];
          const r = spawnSync(
            prefix[0] ?? binary,
            [...prefix.slice(1), ...(prefix.length ? [binary] : []), ...args],
            {
              encoding: 'utf8',
              env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
            },
          );
          expect(r.status).toBe(0);
          return readFileSync(events, 'utf8');
        });
        expect(logs[0]!.split('\n').length).toBeGreaterThan(4);
        expect(logs[1]).toBe(logs[0]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
