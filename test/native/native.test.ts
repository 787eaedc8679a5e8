/**
 * Tests of the native replayer itself (test/native/replay.c), against facts measured on this
 * machine's glibc 2.36 (Debian 2.36-9+deb12u14, x86_64), written up with their probes in
 * docs/glibc-facts.md.
 * Resident sizes are checked only where they follow exactly from the touch model; each such check
 * says how.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { fullRun } from '../helpers/suite.js';
import { traceEnv } from '../diff/harness.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { generateTrace } from '../gen/generate.js';
import { runNative, runNativeText, type NativeRun } from '../helpers/native.js';

const PAGE = 4096;
const trace = (name: string): string => fileURLToPath(new URL(`./${name}`, import.meta.url));

describe('the first calls of a fresh process (docs/glibc-facts.md#first-calls, #top-then-mmap)', () => {
  const run = runNative(trace('first-calls.trace'), { stats: true, info: true });

  it('places each block where glibc 2.36 was measured to', () => {
    expect(run.exitCode).toBe(0);
    expect(run.events).toEqual([
      { i: 0, op: 'malloc', tid: 1, arena: 0, heap: 0, off: 0x2a0, usable: 24, brk: 0x21000 },
      { i: 1, op: 'malloc', tid: 1, arena: 0, heap: 0, off: 0x2c0, usable: 24, brk: 0x21000 },
      { i: 2, op: 'malloc', tid: 1, arena: 0, heap: 0, off: 0x2e0, usable: 131080, brk: 0x21000 },
      // mmapped: the user pointer is 16 bytes into a 0x22000-byte mapping
      {
        i: 3,
        op: 'malloc',
        tid: 1,
        arena: -1,
        heap: 0,
        off: 16,
        usable: 0x22000 - 16,
        brk: 0x21000,
      },
    ]);
  });

  it('reports mallinfo2 as measured', () => {
    expect(run.summary).not.toBeNull();
    const s = run.summary!;
    expect(s['events']).toBe(4);
    expect(s['brk']).toBe(0x21000);
    expect(s['mallinfo2']).toEqual({
      arena: 135168,
      ordblks: 1,
      smblks: 0,
      hblks: 1,
      hblkhd: 139264,
      usmblks: 0,
      fsmblks: 0,
      uordblks: 131808,
      fordblks: 3360,
      keepcost: 3360,
    });
    expect(typeof s['seconds']).toBe('number');
    expect(s['foreignFrees']).toBeUndefined(); // libc and ld.so allocated from the private pool only
  });

  it('counts resident pages of the heap and the mapping', () => {
    // Main heap: 0x21000 bytes = 33 pages. The 128 KiB block is written from B0+0x2e0 up to
    // B0+0x2e0+131072 = B0+131808, i.e. into page 32: every page 0..32 is written. The mmapped
    // chunk's mapping is 0x22000 = 34 pages; writing 135168 bytes from offset 16 ends at 135184,
    // in page 33: all 34 are written. 33 + 34 = 67 pages, and RSS only grew along the way.
    expect(run.summary!['rss']).toBe(67 * PAGE);
    expect(run.summary!['peakRss']).toBe(67 * PAGE);
  });

  it('captures malloc_stats', () => {
    // Totals add the mmapped chunk (139264) to the arena's system bytes and in-use bytes.
    expect(run.stats).toBe(
      [
        'Arena 0:',
        'system bytes     =     135168',
        'in use bytes     =     131808',
        'Total (incl. mmap):',
        'system bytes     =     274432',
        'in use bytes     =     271072',
        'max mmap regions =          1',
        'max mmap bytes   =     139264',
        '',
      ].join('\n'),
    );
  });

  it('captures malloc_info', () => {
    const info = run.info!;
    expect(info.startsWith('<malloc version="1">\n<heap nr="0">\n<sizes>\n</sizes>\n')).toBe(true);
    expect(info).toContain('<total type="rest" count="1" size="3360"/>');
    expect(info).toContain('<total type="mmap" count="1" size="139264"/>');
    expect(info).toContain('<system type="current" size="135168"/>');
    expect(info.endsWith('</malloc>\n')).toBe(true);
  });
});

describe('threads', () => {
  it('gives a new thread arena 1 at heap+0xb70 and hands the arena on after an exit (docs/glibc-facts.md#thread-arena, #arena-free-list)', () => {
    const run = runNative(trace('threads.trace'));
    expect(run.exitCode).toBe(0);
    expect(run.events).toEqual([
      { i: 0, op: 'malloc', tid: 1, arena: 0, heap: 0, off: 0x2a0, usable: 24, brk: 0x21000 },
      { i: 1, op: 'malloc', tid: 2, arena: 1, heap: 0, off: 0xb70, usable: 24, brk: 0x21000 },
      { i: 2, op: 'free', tid: 2, brk: 0x21000 },
      { i: 3, op: 'exit', tid: 2, brk: 0x21000 },
      { i: 4, op: 'malloc', tid: 3, arena: 1, heap: 0, off: 0xb70, usable: 24, brk: 0x21000 },
      { i: 5, op: 'free', tid: 1, brk: 0x21000 },
      { i: 6, op: 'free', tid: 3, brk: 0x21000 },
      { i: 7, op: 'exit', tid: 3, brk: 0x21000 },
    ]);
    // Two arenas of 0x21000 each; no replayer allocation (a thread's DTV, say) reached them.
    expect((run.summary!['mallinfo2'] as Record<string, number>)['arena']).toBe(2 * 0x21000);
    expect(run.summary!['foreignFrees']).toBeUndefined();
  });

  it('numbers arenas in creation order, whatever the thread numbers', () => {
    const run = runNativeText(
      [
        '7 malloc 24 a',
        '2 malloc 24 b',
        '3 malloc 24 c',
        '2 malloc 24 d',
        '3 malloc 24 e',
        '',
      ].join('\n'),
    );
    expect(run.exitCode).toBe(0);
    const where = run.events.map((e) => [e['tid'], e['arena'], e['off']]);
    expect(where).toEqual([
      [7, 0, 0x2a0], // the first event's thread is the main thread, whatever its number
      [2, 1, 0xb70],
      [3, 2, 0xb70],
      [2, 1, 0xb90],
      [3, 2, 0xb90],
    ]);
  });

  it("keeps pthread_create's own allocations out of the heap (docs/glibc-facts.md#hidden-allocations)", () => {
    // Creating threads 2 and 3 callocs their DTVs (288-byte chunks) in the creating thread's arena
    // in a normal program; here they go to the replayer's pool, so the main arena holds only the
    // tcache (656) and a (32).
    const run = runNativeText('1 malloc 24 a\n2 malloc 24 b\n3 malloc 24 c\n', { stats: true });
    expect(run.stats).toMatch(/^Arena 0:\nsystem bytes {5}= {5}135168\nin use bytes {5}= {8}688\n/);
    expect(run.summary!['foreignFrees']).toBeUndefined();
  });

  it('treats a thread number used after its exit as a new thread', () => {
    // glibc 2.36 tears nothing down when the main thread exits (no __libc_thread_freeres), so the
    // main arena stays attached to it; the next thread 1 is a new thread and creates arena 1.
    const run = runNativeText('1 malloc 24 a\n1 exit\n1 malloc 24 b\n');
    expect(run.exitCode).toBe(0);
    expect(run.events[1]).toEqual({ i: 1, op: 'exit', tid: 1, brk: 0x21000 });
    expect(run.events[2]).toMatchObject({ tid: 1, arena: 1, off: 0xb70 });
  });
});

/** A small seeded generator of multi-threaded traces: every operation, exits, trims, mallopts. */
function mixedTrace(seed: number, events: number): string {
  let st = seed >>> 0;
  const rnd = (): number => {
    st = (st + 0x6d2b79f5) >>> 0;
    let t = st;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const sizes = [0, 8, 24, 40, 100, 500, 1000, 4000, 20000, 70000, 130000, 140000, 300000];
  const live: string[] = [];
  const threads = [1];
  let nextTid = 2;
  let serial = 0;
  const out: string[] = [];
  for (let n = 0; n < events; n++) {
    const r = rnd();
    const tid = pick(threads);
    if (r < 0.01 && threads.length < 5) {
      threads.push(nextTid);
      out.push(`${nextTid++} malloc 24 b${++serial}`);
      live.push(`b${serial}`);
    } else if (r < 0.02 && threads.length > 1) {
      const t = threads.splice(1 + Math.floor(rnd() * (threads.length - 1)), 1)[0]!;
      out.push(`${t} exit`);
    } else if (r < 0.025) {
      out.push(`${tid} malloc_trim ${pick([0, 0, 4096, 65536])}`);
    } else if (r < 0.03) {
      out.push(
        `${tid} mallopt ${pick(['M_TRIM_THRESHOLD', 'M_TOP_PAD', 'M_MMAP_THRESHOLD', 'M_MXFAST', 'M_PERTURB'])} ${pick([0, 64, 4096, 65536, 131072])}`,
      );
    } else if (live.length > 0 && r < 0.5) {
      const tok = live.splice(Math.floor(rnd() * live.length), 1)[0]!;
      if (rnd() < 0.2) {
        out.push(`${tid} realloc ${tok} ${pick(sizes)} b${++serial}`);
        live.push(`b${serial}`);
      } else {
        out.push(`${tid} free ${tok}`);
      }
    } else {
      const tok = `b${++serial}`;
      live.push(tok);
      const s = pick(sizes);
      const k = rnd();
      if (k < 0.6) out.push(`${tid} malloc ${s} ${tok}`);
      else if (k < 0.75) out.push(`${tid} calloc 3 ${Math.floor(s / 3)} ${tok}`);
      else if (k < 0.85) out.push(`${tid} memalign ${pick([16, 64, 256, 4096])} ${s} ${tok}`);
      else if (k < 0.92) out.push(`${tid} valloc ${s} ${tok}`);
      else out.push(`${tid} pvalloc ${s} ${tok}`);
    }
  }
  return out.join('\n') + '\n';
}

describe('a mixed multi-threaded trace', () => {
  const text = mixedTrace(42, 1500);

  it('replays deterministically: the same log every time', () => {
    const a = runNativeText(text);
    const b = runNativeText(text);
    expect(a.exitCode).toBe(0);
    expect(a.events).toHaveLength(1500);
    expect(b.events).toEqual(a.events);
    expect(a.summary!['foreignFrees']).toBeUndefined();
    expect(new Set(a.events.map((e) => e['arena'])).size).toBeGreaterThan(2); // several arenas, mmapped blocks
  });
});

/** Whether page-fault sampling was available to the replayer (else it said why not on stderr). */
const byFaults = (run: NativeRun): boolean => run.summary?.['rssBy'] === 'faults';

/**
 * The checks of a run made with --rss --verify-rss: the replayer compared every event's RSS with a
 * full page count, and the set of resident heap pages with a full scan, and would have died at the
 * first difference. Returns how often each way out of residency was seen.
 */
function expectExactRss(run: NativeRun): Record<string, number> {
  expect(run.stderr.replace(/^replay: note: perf_event_open.*\n/, '')).toBe('');
  expect(run.exitCode).toBe(0);
  const s = run.summary!;
  const rss = run.events.map((e) => e['rss'] as number);
  expect(rss.every((r) => Number.isInteger(r) && r >= 0 && r % PAGE === 0)).toBe(true);
  expect(rss.length).toBe(s['events']);
  for (const e of run.events) expect(Object.keys(e).slice(-2)).toEqual(['brk', 'rss']);
  expect(Math.max(...rss)).toBe(s['peakRss']);
  expect(rss[rss.length - 1]).toBe(s['rss']); // the final rss is a separate full count
  // On this machine perf_event_open works; elsewhere the fallback (rescans) is checked the same way.
  if (run.stderr === '') expect(s['rssBy']).toBe('faults');
  if (byFaults(run)) expect(s['unsampled']).toBe(0); // every page fault was sampled

  return (s['rssPaths'] ?? {}) as Record<string, number>;
}

describe('RSS after every event, from the sampled page faults', () => {
  it('matches a full count after every event of a mixed trace: calloc, memalign, valloc, realloc, trims, exits, mmapped chunks', () => {
    const run = runNativeText(mixedTrace(42, 1500), {
      rss: true,
      verifyRss: true,
      rssBy: 'faults',
    });
    const paths = expectExactRss(run);
    if (byFaults(run)) expect(run.summary!['sampledEvents']).toBe(1500);
    if (byFaults(run)) {
      expect(paths['munmap']).toBeGreaterThan(0);
      expect(paths['trim']).toBeGreaterThan(0);
      expect(paths['exit']).toBeGreaterThan(0);
    }
  });

  it('matches a full count while thread heaps grow, shrink and are deleted, and the break goes up and down', () => {
    // heaps-4 of the heap-stress suite (test/diff/threads-heaps.test.ts): 897 events.
    const text = generateThreadedTrace({ seed: 'heaps-4', events: 897, heapStress: true });
    const run = runNativeText(text, {
      env: traceEnv(text),
      rss: true,
      verifyRss: true,
      rssBy: 'faults',
    });
    const paths = expectExactRss(run);
    if (byFaults(run)) {
      expect(paths['brk']).toBeGreaterThan(0); // systrim
      expect(paths['shrink']).toBeGreaterThan(0); // shrink_heap
      expect(paths['delete']).toBeGreaterThan(0); // delete_heap
      expect(paths['trim']).toBeGreaterThan(0); // malloc_trim
      // Only malloc_trim needed a full scan: no fault went unsampled.
      expect(run.summary!['fullScans']).toBe(paths['trim']);
    }
  });

  it('switches between sampling and rescans as the heaps grow and shrink, exact either way', () => {
    // heaps-22: 621 events, the heaps from nothing to hundreds of MiB and back. Exact: the same
    // RSS after every event as by rescans alone (a full count of the heaps after each event that
    // could change them); --verify-rss on heaps this size costs half a minute (test:full).
    const text = generateThreadedTrace({ seed: 'heaps-22', events: 621, heapStress: true });
    const run = runNativeText(text, { env: traceEnv(text), rss: true, verifyRss: fullRun });
    expectExactRss(run);
    if (byFaults(run)) {
      const sampled = run.summary!['sampledEvents'] as number;
      expect(sampled).toBeGreaterThan(0); // big heaps: sampling
      expect(sampled).toBeLessThan(621); // the first events, small heaps: rescans
    }
    expect(run.events).toEqual(
      runNativeText(text, { env: traceEnv(text), rss: true, rssBy: 'rescans' }).events,
    );
  });

  it('matches a full count with many threads coming and going, cross-thread frees, calloc and memalign', () => {
    const text = generateThreadedTrace({ seed: 'threads-0', events: 1500 });
    expect(text).toMatch(/ calloc /);
    expect(text).toMatch(/ memalign /);
    const run = runNativeText(text, {
      env: traceEnv(text),
      rss: true,
      verifyRss: true,
      rssBy: 'faults',
    });
    const paths = expectExactRss(run);
    if (byFaults(run)) {
      expect(paths['exit']).toBeGreaterThan(0);
      expect(paths['brk']).toBeGreaterThan(0);
      expect(paths['munmap']).toBeGreaterThan(0);
    }
  });

  it('matches a full count when realloc moves mmapped chunks with mremap', () => {
    const text = generateTrace({ seed: 'diff-3', events: 1500, maxLiveBytes: 32 << 20 });
    const run = runNativeText(text, {
      env: traceEnv(text),
      rss: true,
      verifyRss: true,
      rssBy: 'faults',
    });
    const paths = expectExactRss(run);
    if (byFaults(run)) expect(paths['mremap']).toBeGreaterThan(0);
  });

  it('gives the same figures by samples, by rescans and by the automatic choice', () => {
    const text = generateThreadedTrace({ seed: 'threads-1', events: 1500 });
    const auto = runNativeText(text, { env: traceEnv(text), rss: true });
    const faults = runNativeText(text, { env: traceEnv(text), rss: true, rssBy: 'faults' });
    const rescans = runNativeText(text, {
      env: traceEnv(text),
      rss: true,
      rssBy: 'rescans',
      verifyRss: true,
    });
    expect(rescans.stderr).toBe('');
    expect(rescans.summary!['rssBy']).toBe('rescans');
    expect(faults.events).toEqual(auto.events);
    expect(rescans.events).toEqual(auto.events);
    expect(rescans.summary!['peakRss']).toBe(faults.summary!['peakRss']);
  });

  it('falls back to rescans, with a note, when perf_event_open fails', () => {
    // Seven open files: the standard streams, the log, the summary, pagemap, and the fault count;
    // the first ring's perf_event_open finds none left (what was opened is closed again).
    const text = generateThreadedTrace({ seed: 'threads-1', events: 1500 });
    const run = runNativeText(text, {
      env: traceEnv(text),
      rss: true,
      verifyRss: true,
      maxFiles: 7,
    });
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe(
      'replay: note: perf_event_open failed (Too many open files): RSS after each event by rescanning the heaps instead (slower)\n',
    );
    expect(run.summary!['rssBy']).toBe('rescans');
    expect(run.events).toEqual(
      runNativeText(text, { env: traceEnv(text), rss: true, rssBy: 'faults' }).events,
    );
  });

  it('needs per-event measurement for --rss and --verify-rss', () => {
    expect(runNativeText('1 malloc 24 a\n', { rss: true, peak: false }).exitCode).toBe(2);
    expect(runNativeText('1 malloc 24 a\n', { verifyRss: true, peak: false }).exitCode).toBe(2);
  });
});

describe('aborts', () => {
  it('lets glibc catch a double free and reports the event (docs/glibc-facts.md#abort-messages)', () => {
    const run = runNative(trace('double-free.trace'));
    expect(run.signal).toBe('SIGABRT');
    expect(run.abort).toEqual({ message: 'free(): double free detected in tcache 2', event: 2 });
    expect(run.events.map((e) => e['op'])).toEqual(['malloc', 'free']);
    expect(run.summary).toEqual({ events: 2, abort: true });
  });

  it('frees a freed token at its old address, even when that address was handed out again', () => {
    // a's chunk goes to the tcache and comes back as c; freeing a again really frees c's chunk,
    // which glibc cannot tell from a valid free; freeing c is then the double free it catches.
    const run = runNativeText(
      [
        '1 malloc 24 a',
        '1 malloc 24 b',
        '1 free a',
        '1 malloc 24 c',
        '1 free a',
        '1 free c',
        '',
      ].join('\n'),
    );
    expect(run.events[3]).toMatchObject({ op: 'malloc', off: 0x2a0 });
    expect(run.abort).toEqual({ message: 'free(): double free detected in tcache 2', event: 5 });
  });
});

describe('calls', () => {
  it('records realloc(p, 0) as a NULL result', () => {
    const run = runNativeText('1 realloc 0 100 a\n1 realloc a 0 0\n1 malloc 100 b\n');
    expect(run.events).toEqual([
      { i: 0, op: 'realloc', tid: 1, arena: 0, heap: 0, off: 0x2a0, usable: 104, brk: 0x21000 },
      { i: 1, op: 'realloc', tid: 1, ptr: null, brk: 0x21000 },
      // realloc(p, 0) freed a into the tcache, where malloc finds it
      { i: 2, op: 'malloc', tid: 1, arena: 0, heap: 0, off: 0x2a0, usable: 104, brk: 0x21000 },
    ]);
  });

  it('shows the dynamic mmap threshold (docs/glibc-facts.md#dynamic-threshold)', () => {
    const run = runNativeText(
      ['1 malloc 2097152 a', '1 free a', '1 malloc 2097152 b', '1 malloc 2101232 c', ''].join('\n'),
    );
    expect(run.events).toEqual([
      { i: 0, op: 'malloc', tid: 1, arena: -1, heap: 0, off: 16, usable: 2101232, brk: 0x21000 },
      { i: 1, op: 'free', tid: 1, brk: 0x21000 },
      // the free raised the threshold to 0x201000: chunk 0x200010 now comes from the heap, which
      // grows by nb + top_pad + MINSIZE - old top (0x20d70), rounded up to a page: to 0x221000
      {
        i: 2,
        op: 'malloc',
        tid: 1,
        arena: 0,
        heap: 0,
        off: 0x2a0,
        usable: 0x200010 - 8,
        brk: 0x221000,
      },
      // chunk 0x201000 is not below the threshold: mmapped again
      {
        i: 3,
        op: 'malloc',
        tid: 1,
        arena: -1,
        heap: 0,
        off: 16,
        usable: 0x202000 - 16,
        brk: 0x221000,
      },
    ]);
    // Main heap: b is written over [0x2a0, 0x2a0 + 2 MiB) = up to 0x2002a0, in page 512, and the
    // top chunk's header at 0x2002a0 + 8 is in page 512 too: pages 0..512 = 513 of 545. c: its
    // 0x202000-byte mapping (514 pages) is written over [16, 16 + 2101232) = up to 0x201000
    // exclusive, i.e. pages 0..512 = 513; its last page is never written. 513 + 513 = 1026.
    expect(run.summary!['rss']).toBe(1026 * PAGE);
  });

  it('counts an mmapped block while it lives, and peakRss keeps it', () => {
    // malloc(1000000): chunk 1000016 (request2size), mapping ALIGN_UP(1000016 + 8, 4096) = 245
    // pages; the program writes [16, 1000016), ending in page 244 (1000015 / 4096 = 244.1): all
    // 245 pages. The first malloc also ran tcache_init, whose 640-byte memset and the top header
    // write page 0 of the main heap: 1 page. After the free (munmap) only that page is left.
    const text = '1 malloc 1000000 a\n1 free a\n';
    const run = runNativeText(text, { rss: true });
    expect(run.events).toEqual([
      {
        i: 0,
        op: 'malloc',
        tid: 1,
        arena: -1,
        heap: 0,
        off: 16,
        usable: 245 * PAGE - 16,
        brk: 0x21000,
        rss: 246 * PAGE,
      },
      { i: 1, op: 'free', tid: 1, brk: 0x21000, rss: PAGE },
    ]);
    expect(run.summary!['rss']).toBe(PAGE);
    expect(run.summary!['peakRss']).toBe(246 * PAGE);
    // Without per-event measurement, peakRss is the final RSS.
    const noPeak = runNativeText(text, { peak: false });
    expect(noPeak.summary!['peakRss']).toBe(PAGE);
  });

  it('writes the grown part of a realloc (touch model)', () => {
    // 1000000 -> 2000000 bytes: mremap_chunk grows the mapping to ALIGN_UP(2000016 + 8, 4096) =
    // 489 pages, keeping the 245 written pages; the program then writes [16 + 1000000,
    // 16 + 2000000), ending in page 488 (2000015 / 4096 = 488.3). All 489 pages, plus page 0 of
    // the main heap: the peak is 490 pages, reached after the realloc.
    const run = runNativeText('1 malloc 1000000 a\n1 realloc a 2000000 a\n1 free a\n', {
      rss: true,
    });
    expect(run.events[1]).toEqual({
      i: 1,
      op: 'realloc',
      tid: 1,
      arena: -1,
      heap: 0,
      off: 16,
      usable: 489 * PAGE - 16,
      brk: 0x21000,
      rss: 490 * PAGE,
    });
    expect(run.events.map((e) => e['rss'])).toEqual([246 * PAGE, 490 * PAGE, PAGE]);
    expect(run.summary!['peakRss']).toBe(490 * PAGE);
    expect(run.summary!['rss']).toBe(PAGE);
  });

  it('makes mallopt lines real mallopt calls, by name or number', () => {
    const run = runNativeText(
      [
        '1 mallopt M_MMAP_THRESHOLD 1048576',
        '1 malloc 200000 a',
        '1 mallopt -3 131072',
        '1 malloc 200000 b',
        '',
      ].join('\n'),
    );
    expect(run.events[0]).toEqual({ i: 0, op: 'mallopt', tid: 1, brk: 0 });
    expect(run.events[1]).toMatchObject({ arena: 0 }); // below the raised threshold: from the heap
    expect(run.events[3]).toMatchObject({ arena: -1, off: 16 }); // above the restored one
  });

  it('keeps going when a call fails: the token names NULL and freeing it is a no-op', () => {
    const run = runNativeText('1 malloc 18446744073709551615 a\n1 free a\n1 malloc 24 0\n');
    expect(run.exitCode).toBe(0);
    // the failed call initialised malloc but took no memory
    expect(run.events[0]).toEqual({ i: 0, op: 'malloc', tid: 1, ptr: null, brk: 0 });
    expect(run.events[1]).toEqual({ i: 1, op: 'free', tid: 1, brk: 0 });
    // recorded as NULL, but it worked: the block stays live, unnamed (tcache 656 + 32 in use)
    expect(run.events[2]).toMatchObject({ off: 0x2a0 });
    expect((run.summary!['mallinfo2'] as Record<string, number>)['uordblks']).toBe(656 + 32);
  });

  it('lets OLD name the new block when a recorded realloc failure succeeds', () => {
    const run = runNativeText('1 malloc 24 a\n1 realloc a 100 0\n1 free a\n1 free a\n');
    expect(run.events[1]).toMatchObject({ op: 'realloc', arena: 0, usable: 104 });
    // the first free frees the grown block; the second is a real double free
    expect(run.abort).toEqual({ message: 'free(): double free detected in tcache 2', event: 3 });
  });
});

describe('touch models (--touch, #:touch records)', () => {
  // A 1 MiB block is mmapped: chunk 1048592, mapping ALIGN_UP(1048592 + 8, 4096) = 257 pages,
  // glibc's header in page 0; the first malloc also made page 0 of the main heap resident
  // (tcache_init). Its requested bytes [16, 1048592) end in page 256.
  const big =
    '1 malloc 1048576 a\n#:touch a 1-9,100\n1 malloc 10 b\n#:touch a 9-10,255\n1 free a\n';
  const rss = (run: NativeRun): unknown[] => run.events.map((e) => (e['rss'] as number) / PAGE);

  it('writes a big block only where its records say in recorded, all of it in full, none of it in none', () => {
    expect(rss(runNativeText(big, { rss: true, touch: 'recorded' }))).toEqual([12, 14, 1]);
    expect(rss(runNativeText(big, { rss: true, touch: 'full' }))).toEqual([258, 258, 1]);
    expect(rss(runNativeText(big, { rss: true, touch: 'none' }))).toEqual([2, 2, 1]);
  });

  it('takes recorded by default for a trace that says so, full otherwise', () => {
    expect(rss(runNativeText(big, { rss: true }))).toEqual([258, 258, 1]);
    expect(rss(runNativeText('# touches recorded\n' + big, { rss: true }))).toEqual([12, 14, 1]);
    // A page a block reaches in some recording but not here is skipped: 200000 bytes from offset
    // 16 end in page 48, the last of their 49-page mapping; a recording may have reached page 49.
    const edge = '# touches recorded\n1 malloc 200000 a\n#:touch a 49\n';
    expect(rss(runNativeText(edge, { rss: true }))).toEqual([2]);
  });

  it('keeps its per-event figures exact across touch records, by samples and by rescans', () => {
    for (const file of [
      'touch-over-time.trace',
      'touch-realloc.trace',
      'touch-live-at-end.trace',
    ]) {
      const text = readFileSync(
        fileURLToPath(new URL(`../diff/cases/${file}`, import.meta.url)),
        'utf8',
      );
      for (const rssBy of ['faults', 'rescans'] as const) {
        const run = runNativeText(text, { rss: true, verifyRss: true, rssBy, env: traceEnv(text) });
        expect(run.exitCode, run.stderr).toBe(0);
        expect(run.events.length).toBe(run.summary!['events']);
      }
    }
  });

  it.each([
    ['1 malloc 9000 a\n#:touch b 0\n', 'inline.trace:2: #:touch of b, which is not a live block'],
    [
      '1 malloc 9000 a\n1 free a\n#:touch a 0\n',
      'inline.trace:3: #:touch of a, which is not a live block',
    ],
    [
      '1 malloc 9000 a\n#:touch a 4\n',
      "inline.trace:2: #:touch of a: page 4 is past the block's last requested byte",
    ],
    ['1 malloc 9000 a\n#:touch a 1-x\n', "inline.trace:2: #:touch: malformed page list '1-x'"],
    ['1 malloc 9000 a\n#:touch a 2-1\n', 'inline.trace:2: #:touch: page range 2-1 runs backwards'],
    ['1 malloc 9000 a\n#:touch a\n', 'inline.trace:2: #:touch takes TOKEN PAGES, got 1 argument'],
    ['1 malloc 9000 a\n#:touch 0 1\n', "inline.trace:2: #:touch of NULL ('0')"],
    ['#:touch a 0\n1 malloc 9000 a\n', 'inline.trace:1: #:touch of a before the first event'],
    [
      '# touches everything\n1 malloc 9000 a\n',
      "inline.trace:1: malformed header line: expected '# touches recorded'",
    ],
  ])(
    'reports a mistake in a touch record with file and line, in every model: %j',
    (text, message) => {
      for (const touch of ['recorded', 'full', 'none'] as const) {
        const run = runNativeText(text, { touch });
        expect(run.exitCode).toBe(2);
        expect(run.stderr).toContain(message);
      }
    },
  );

  it('skips #:rss samples and other #: lines, and refuses an unknown model', () => {
    const run = runNativeText(
      '#:rss anon=1\n1 malloc 9000 a\n#:rss anon=x\n#:later 1 2\n1 free a\n',
      {
        touch: 'recorded',
      },
    );
    expect(run.exitCode).toBe(0);
    expect(run.events).toHaveLength(2);
    const bad = runNativeText('1 malloc 1 a\n', { touch: 'some' as 'none' });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('[--touch recorded|full|none]');
  });
});

describe('settings', () => {
  it('takes tunables from the given environment only', () => {
    const text = '1 malloc 24 a\n1 free a\n';
    const mi = (r: ReturnType<typeof runNativeText>): Record<string, number> =>
      r.summary!['mallinfo2'] as Record<string, number>;
    // tcache_count=0: the freed chunk goes to a fastbin (docs/glibc-facts.md#tcache-tunables)
    const tuned = runNativeText(text, { env: { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=0' } });
    expect(mi(tuned)).toMatchObject({ smblks: 1, fsmblks: 32 });
    // the test runner's own environment does not leak into the replay
    const saved = process.env['GLIBC_TUNABLES'];
    process.env['GLIBC_TUNABLES'] = 'glibc.malloc.tcache_count=0';
    try {
      expect(mi(runNativeText(text))).toMatchObject({ smblks: 0, fsmblks: 0 });
    } finally {
      if (saved === undefined) delete process.env['GLIBC_TUNABLES'];
      else process.env['GLIBC_TUNABLES'] = saved;
    }
  });
});

describe('the trace format', () => {
  it('accepts comments, blank lines, @TIME, tabs, CRLF and hex numbers', () => {
    const run = runNativeText(
      '# a comment\n\n  \t\n@100 1 malloc 0x18 a\r\n@200\t1\tfree\ta\r\n  # indented comment\n1 calloc 2 0x10 0x55d0c2a4f2a0\n1 free 0x55d0c2a4f2a0\n1 free 0\n1 malloc_trim 0',
    );
    expect(run.exitCode).toBe(0);
    expect(run.events.map((e) => e['op'])).toEqual([
      'malloc',
      'free',
      'calloc',
      'free',
      'free',
      'malloc_trim',
    ]);
    expect(run.events[0]).toMatchObject({ off: 0x2a0, usable: 24 });
    // 32 bytes: a 0x30 chunk, so not a's 0x20 one from the tcache; it comes from top, after a
    expect(run.events[2]).toMatchObject({ off: 0x2c0, usable: 40 });
  });

  it('reads gzip-compressed traces', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-native-test-'));
    try {
      const gz = join(dir, 'first-calls.trace.gz');
      writeFileSync(gz, gzipSync(readFileSync(trace('first-calls.trace'))));
      const run = runNative(gz);
      expect(run.events).toEqual(runNative(trace('first-calls.trace')).events);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('can skip the log', () => {
    const run = runNative(trace('first-calls.trace'), { events: false });
    expect(run.events).toEqual([]);
    expect(run.summary!['events']).toBe(4);
  });

  it.each([
    ['1 malloc 24 a\n1 free b\n', 'inline.trace:2: free of b, which was never allocated'],
    ['1 malloc 24 a\n1 malloc 32 a\n', 'inline.trace:2: token a is reused while still live'],
    [
      '1 malloc 24 a\n1 realloc c 10 d\n',
      'inline.trace:2: realloc of c, which was never allocated',
    ],
    ['1 malloc 24 a\n1 frob a\n', "inline.trace:2: unknown operation 'frob'"],
    ['1 malloc 24 a\n1 malloc 0x1g b\n', "inline.trace:2: malloc: bad SIZE '0x1g'"],
    ['1 malloc 24 a\n1 malloc 24\n', 'inline.trace:2: malloc: missing PTR'],
    ['1 malloc 24 a\n1 free a b\n', "inline.trace:2: unexpected field 'b'"],
    ['1 malloc 24 a\nx free a\n', "inline.trace:2: bad thread number 'x'"],
    ['1 malloc 24 a\n1 mallopt M_FOO 1\n', "inline.trace:2: mallopt: unknown parameter 'M_FOO'"],
  ])('reports a mistake with file and line: %j', (text, message) => {
    const run = runNativeText(text);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.summary).toBeNull();
    expect(run.events.length).toBeLessThanOrEqual(1); // what ran before the mistake is kept
  });
});
