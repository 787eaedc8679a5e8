/**
 * The recorder's `#:touch` records and `#:rss` samples (docs/trace-format.md, "Extensions"), on
 * test/record/programs/touch.c, which logs every byte it writes in its large blocks: the records
 * must name exactly the pages the program (and glibc's own header, copy and links) made resident,
 * stand between the event that returned the block and the one that ended it, and the samples must
 * follow the process's anonymous memory. A recording with them replays to the same blocks as
 * without them, and identically to glibc with the records applied on both sides.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordCommand } from '../../src/cli/record-command.js';
import { cpus } from 'node:os';
import { Replayer } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { differential, runSim, traceEnv } from '../diff/harness.js';
import { kernelZeroPage } from '../helpers/native.js';
import { BUILD, addressCheck, program, record, scratch } from './helpers.js';

const PAGE = 4096n;

/** A block as the trace sees it: from the event that returned it to the one that ended it. */
interface Life {
  token: string;
  size: number;
  /** Line of the event that returned it, and of the one that freed or reallocated it. */
  start: number;
  end?: number;
  /** The pages its records named, and the lines of those records. */
  pages: Set<number>;
  records: number[];
}

function pageList(spec: string): number[] {
  if (spec === '-') return [];
  const out: number[] = [];
  for (const part of spec.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (m === null) throw new Error(`malformed page list ${spec}`);
    const a = Number(m[1]);
    const z = m[2] === undefined ? a : Number(m[2]);
    if (z < a) throw new Error(`empty range in ${spec}`);
    for (let p = a; p <= z; p++) out.push(p);
  }
  return out;
}

/** The pages of bytes [off, off + len) of the block at `token`, counted from its first byte's. */
function pagesOf(token: string, off: number, len: number): number[] {
  const p = BigInt(token);
  const a = Number((p + BigInt(off)) / PAGE - p / PAGE);
  const z = Number((p + BigInt(off) + BigInt(len) - 1n) / PAGE - p / PAGE);
  return Array.from({ length: z - a + 1 }, (_, k) => a + k);
}

function lastPage(token: string, size: number): number {
  return pagesOf(token, size - 1, 1)[0]!;
}

/**
 * Every block of a trace with its records. Fails (throws) on a record of a token that is not
 * live or that names a page beyond the block's last requested byte.
 */
function lives(text: string): Life[] {
  const all: Life[] = [];
  const live = new Map<string, Life>();
  text.split('\n').forEach((l, k) => {
    const line = k + 1;
    if (l.startsWith('#:touch ')) {
      const [, token, spec] = l.split(' ');
      const b = live.get(token!);
      if (b === undefined) throw new Error(`line ${line}: #:touch of ${token}, which is not live`);
      for (const p of pageList(spec!)) {
        if (p > lastPage(b.token, b.size))
          throw new Error(`line ${line}: page ${p} is beyond the block of ${b.size} bytes`);
        b.pages.add(p);
      }
      b.records.push(line);
      return;
    }
    if (l === '' || l.startsWith('#')) return;
    const f = l.split(' ');
    const at = f[0]!.startsWith('@') ? 2 : 1;
    const op = f[at]!;
    const args = f.slice(at + 1);
    if (op === 'free' || op === 'realloc') {
      const b = live.get(args[0]!);
      if (b !== undefined) {
        b.end = line;
        live.delete(args[0]!);
      }
    }
    const sizes: Record<string, () => number> = {
      malloc: () => Number(args[0]),
      valloc: () => Number(args[0]),
      pvalloc: () => Number(args[0]),
      calloc: () => Number(args[0]) * Number(args[1]),
      realloc: () => Number(args[1]),
      memalign: () => Number(args[1]),
    };
    const size = sizes[op];
    const token = args.at(-1)!;
    if (size !== undefined && token !== '0') {
      const b: Life = { token, size: size(), start: line, pages: new Set(), records: [] };
      all.push(b);
      live.set(token, b);
    }
  });
  return all;
}

interface Logged {
  name: string;
  token: string;
  size: number;
  /** Pages the program wrote, or only read, counted from the page of the block's first byte. */
  wrote: Set<number>;
  read: Set<number>;
}

/** The program's log: its blocks and what it wrote and read in them. */
function blocks(log: string): Map<string, Logged> {
  const out = new Map<string, Logged>();
  for (const l of log.split('\n')) {
    const f = l.split(' ');
    if (f[0] === 'block') {
      out.set(f[1]!, {
        name: f[1]!,
        token: f[2]!,
        size: Number(f[3]),
        wrote: new Set(),
        read: new Set(),
      });
    } else if (f[0] === 'wrote' || f[0] === 'read') {
      const b = out.get(f[1]!)!;
      for (const k of pagesOf(b.token, Number(f[2]), Number(f[3])))
        (f[0] === 'wrote' ? b.wrote : b.read).add(k);
    }
  }
  return out;
}

/** The life of a logged block: the k-th block of that token and size is the k-th such life. */
function lifeOf(all: Life[], logged: Map<string, Logged>, name: string): Life {
  const b = logged.get(name)!;
  const same = [...logged.values()].filter((x) => x.token === b.token && x.size === b.size);
  const lifes = all.filter((x) => x.token === b.token && x.size === b.size);
  const life = lifes[same.indexOf(b)];
  if (life === undefined) throw new Error(`no block ${b.token} of ${b.size} bytes in the trace`);
  return life;
}

const range = (a: number, z: number): number[] =>
  Array.from({ length: z - a + 1 }, (_, k) => a + k);
const sorted = (s: Set<number>): number[] => [...s].sort((a, b) => a - b);

interface Sample {
  line: number;
  anon: number;
  heap?: number;
  mark?: string;
}

function samples(text: string): Sample[] {
  const out: Sample[] = [];
  text.split('\n').forEach((l, k) => {
    if (!l.startsWith('#:rss ')) return;
    const kv = new Map([...l.matchAll(/ (\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    const s: Sample = { line: k + 1, anon: Number(kv.get('anon')) };
    if (kv.has('heap')) s.heap = Number(kv.get('heap'));
    if (kv.has('mark')) s.mark = kv.get('mark')!;
    out.push(s);
  });
  return out;
}

/** The trace without the extension records: what a reader that skips them sees. */
function stripped(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#:'))
    .join('\n');
}

/**
 * Records a mode of the touch program. `entries`: have the recorder read /proc/self/pagemap's
 * entries, as it does on kernels without PAGEMAP_SCAN (before 6.7).
 */
async function touch(mode: string, args: string[] = [], entries = false) {
  const env = { ...process.env, ...(entries ? { PTSIM_RECORD_PAGEMAP: 'entries' } : {}) };
  const r = await record(program('touch'), [mode, ...args], { env });
  expect(r.exitCode).toBe(0);
  return { ...r, lives: lives(r.main), logged: blocks(r.stdout!) };
}

/** A mmapped chunk's page 0 also holds glibc's header (16 bytes before the block). */
const withHeader = (s: Set<number>): number[] => sorted(new Set([0, ...s]));

for (const entries of [false, true]) {
  describe(`#:touch records, ${entries ? "with pagemap's entries (kernels before 6.7)" : 'with PAGEMAP_SCAN where the kernel has it'}`, () => {
    it('64 MiB of which 1 MiB is written: exactly those pages (partial ones too), just before the free', async () => {
      const r = await touch('big', [], entries);
      const b = r.logged.get('big')!;
      const life = lifeOf(r.lives, r.logged, 'big');
      // 1 MiB + 100 bytes from byte 10000 (10016 bytes into its first page): 257 pages, the first
      // and the last of them written only in part.
      expect(b.wrote.size).toBe(257);
      expect(sorted(life.pages)).toEqual(withHeader(b.wrote));
      // Nothing happened between the malloc and the free: one record, on the line before the free.
      expect(life.records).toEqual([life.end! - 1]);
      expect(r.main).toMatch(/^# touches recorded$/m);
      expect(r.main).toMatch(/^# rss_sampling 100ms,50000events$/m);
    });

    it('a sparse calloc table: the pages written, not those only read (where they map the zero page)', async () => {
      const r = await touch('calloc', [], entries);
      const t = r.logged.get('table')!;
      const life = lifeOf(r.lives, r.logged, 'table');
      expect(t.wrote.size).toBe(82);
      expect(t.read.size).toBe(1171);
      // A kernel without a zero page gives each page read a frame of its own: resident too.
      const resident = kernelZeroPage() ? t.wrote : new Set([...t.wrote, ...t.read]);
      expect(sorted(life.pages)).toEqual(withHeader(resident));
    });

    it('realloc: the old block before the call, the new one from the call on, grown and shrunk', async () => {
      const r = await touch('realloc', [], entries);
      const life = (n: string) => lifeOf(r.lives, r.logged, n);
      const all = (n: string) => range(0, lastPage(r.logged.get(n)!.token, r.logged.get(n)!.size));
      // a and d are heap blocks the program filled, e what it shrank d to and filled again.
      for (const n of ['a', 'd', 'e']) expect(sorted(life(n).pages)).toEqual(all(n));
      // b, mmapped: glibc's copy of a's 20000 bytes and the program's write; c, b shrunk in place
      // (mremap): the copied pages and the new write, not b's write beyond c's end.
      for (const n of ['b', 'c'])
        expect(sorted(life(n).pages)).toEqual(withHeader(r.logged.get(n)!.wrote));
      expect(r.logged.get('c')!.token).toBe(r.logged.get('b')!.token);
      for (const n of ['a', 'b', 'd']) {
        // The old block's last record is before the realloc line that ends it.
        expect(life(n).records.at(-1)!).toBeLessThan(life(n).end!);
        expect(r.main.split('\n')[life(n).end! - 1]).toMatch(/ realloc /);
      }
    });

    it('blocks under 4096 bytes have none; 4096 bytes is a large block', async () => {
      const r = await touch('small', [], entries);
      expect([...r.logged.values()].filter((b) => b.size < 4096).length).toBe(601);
      // None of the small blocks, the program's or the libraries', has a record.
      for (const b of r.lives) if (b.size < 4096) expect(b.records).toEqual([]);
      expect(sorted(lifeOf(r.lives, r.logged, 'first').pages)).toEqual(
        range(0, lastPage(r.logged.get('first')!.token, 4096)),
      );
    });

    it('a block live at the end gets its records before the last sample and # end', async () => {
      const r = await touch('live', [], entries);
      const kept = lifeOf(r.lives, r.logged, 'kept');
      expect(kept.end).toBeUndefined();
      expect(sorted(kept.pages)).toEqual(withHeader(r.logged.get('kept')!.wrote));
      expect(sorted(lifeOf(r.lives, r.logged, 'freed').pages)).toEqual(
        withHeader(r.logged.get('freed')!.wrote),
      );
      const lines = r.main.trimEnd().split('\n');
      const lastEvent = Math.max(...lines.map((l, k) => (l.startsWith('@') ? k : -1)));
      expect(kept.records.at(-1)! - 1).toBeGreaterThan(lastEvent);
      expect(lines.at(-3)).toMatch(/^#:rss @\d+ anon=\d+ heap=\d+ rec=\d+$/);
      expect(lines.at(-2)).toMatch(
        /^# rss_peak anon=\d+ heap=\d+ event=\d+ first_anon=\d+ first_heap=\d+$/,
      );
      expect(lines.at(-1)).toMatch(/^# end \d+ events \(exit\)$/);
    });

    it('threads: blocks of other arenas, freed by another thread; the heaps count in heap=', async () => {
      const r = await touch('threads', [], entries);
      for (let t = 0; t < 4; t++) {
        const b = r.logged.get(`t${t}`)!;
        const life = lifeOf(r.lives, r.logged, b.name);
        // Fresh arena memory: the pages of the hole that no write reached are not resident; the
        // first and last pages may be, for glibc's headers of the neighbours.
        const last = lastPage(b.token, b.size);
        const expected = new Set(b.wrote);
        for (const p of life.pages) if (p === 0 || p === last) expected.add(p);
        expect(sorted(life.pages)).toEqual(sorted(expected));
        expect(range(0, last).filter((p) => !b.wrote.has(p)).length).toBeGreaterThanOrEqual(6);
      }
      const s = samples(r.main);
      const done = s.find((x) => x.mark === 'threads-done')!;
      const start = s.find((x) => x.mark === 'threads-start')!;
      const written = 4 * (100 * 1024 - 8 * 4096);
      expect(done.heap! - start.heap!).toBeGreaterThanOrEqual(written);
      expect(done.heap! - start.heap!).toBeLessThan(written + 4 * 64 * 1024);
      expect(differential(r.main, { name: 'touch-threads' })).toBeNull();
    });

    for (const mode of ['trim', 'malloc_trim']) {
      it(`${mode}: pages glibc gave back and a later block got again count only once written`, async () => {
        const r = await touch(mode, [], entries);
        const a = r.logged.get('a')!;
        const b = r.logged.get('b')!;
        expect(b.token).toBe(a.token);
        const last = lastPage(a.token, a.size);
        expect(sorted(lifeOf(r.lives, r.logged, 'a').pages)).toEqual(range(0, last));
        const pages = lifeOf(r.lives, r.logged, 'b').pages;
        for (const p of b.wrote) expect(pages.has(p)).toBe(true);
        // The last page holds the header of the chunk after it; the ones between were given back.
        expect(sorted(pages).filter((p) => !b.wrote.has(p) && p !== last)).toEqual([]);
      });
    }

    it('a forked child: its records add its own writes to what it inherited, the parent keeps its own', async () => {
      const dir = scratch('touch-fork');
      const r = await touch('fork', [dir], entries);
      expect(r.traces).toHaveLength(2);
      const p = r.logged.get('shared')!;
      // The parent: its writes before and after the fork, not the child's.
      expect(sorted(lifeOf(r.lives, r.logged, 'shared').pages)).toEqual(withHeader(p.wrote));
      // The child: what it inherited (the parent's first write) and its own write.
      const childText = r.text.get(r.traces.find((t) => !t.main)!.file)!;
      const inChild = lives(childText).filter((b) => b.token === p.token && b.size === p.size);
      expect(inChild).toHaveLength(1);
      const own = readFileSync(join(dir, 'child.log'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('wrote shared '))
        .flatMap((l) => pagesOf(p.token, Number(l.split(' ')[2]), Number(l.split(' ')[3])));
      expect(own).toHaveLength(11);
      const first = r
        .stdout!.split('\n')
        .find((l) => l.startsWith('wrote shared '))!
        .split(' ');
      const inherited = pagesOf(p.token, Number(first[2]), Number(first[3]));
      expect(sorted(inChild[0]!.pages)).toEqual(sorted(new Set([...inherited, ...own])));
      expect(differential(childText, { name: 'touch-fork-child' })).toBeNull();
    });
  });
}

describe('when the pages cannot be read any more', () => {
  it('the trace and the recorder say so, once', async () => {
    const r = await touch('sandbox');
    const notes = r.main.match(/^# touches incomplete from here: .*$/gm) ?? [];
    expect(notes).toEqual(['# touches incomplete from here: /proc/self/pagemap could not be read']);
    // Before the free it could not measure.
    const boxed = lifeOf(r.lives, r.logged, 'boxed');
    expect(r.main.split('\n').indexOf(notes[0]!) + 1).toBeLessThan(boxed.end!);
    expect(r.stderr).toBe(
      'ptsim recorder: cannot read /proc/self/pagemap any more; the #:touch records are incomplete\n',
    );
    // The replay says so, and takes the blocks after it as written whole.
    const warnings: string[] = [];
    const rp = new Replayer('sandbox.trace', {
      env: Object.entries(traceEnv(r.main)),
      cores: cpus().length,
      onWarning: (w) => warnings.push(w),
    });
    readTraceText(r.main, 'sandbox.trace', rp);
    expect(warnings).toEqual([
      `sandbox.trace:${r.main.split('\n').indexOf(notes[0]!) + 1}: the recording's touch records are incomplete from here (/proc/self/pagemap could not be read); from this point the replay takes blocks of 4096 bytes or more as written whole, an upper bound (--touch full)`,
    ]);
    const full = runSim(r.main, traceEnv(r.main), 'sandbox.trace', 'full');
    expect(rp.finish().peakRss).toBe(full.summary.peakRss);
  });
});

describe('#:rss samples', () => {
  it('at the start, at each mark and at the end; anon and heap= grow by what the program wrote', async () => {
    const r = await touch('marks');
    const s = samples(r.main);
    const firstEvent = r.main.split('\n').findIndex((l) => l.startsWith('@')) + 1;
    expect(s[0]!.line).toBe(firstEvent + 1);
    expect(s.map((x) => x.mark).filter((m) => m !== undefined)).toEqual([
      'm0',
      'm1__8_MiB_written_',
      'm2',
    ]);
    const [m0, m1, m2] = ['m0', 'm1__8_MiB_written_', 'm2'].map((m) =>
      s.find((x) => x.mark === m)!,
    );
    const written = 8 << 20;
    for (const key of ['anon', 'heap'] as const) {
      const grew = m1![key]! - m0![key]!;
      expect(Math.abs(grew - written)).toBeLessThanOrEqual(0.05 * written + 512 * 1024);
      // The 64 MiB block was an mmapped chunk: its free unmapped it.
      expect(Math.abs(m1![key]! - m2![key]! - written)).toBeLessThanOrEqual(
        0.05 * written + 512 * 1024,
      );
    }
    expect(s.at(-1)!.line).toBe(r.main.trimEnd().split('\n').length - 2);
    for (const x of s) {
      expect(x.anon).toBeGreaterThan(0);
      expect(x.anon % 4096).toBe(0);
      expect(x.heap! % 4096).toBe(0);
      expect(x.heap!).toBeLessThanOrEqual(x.anon);
    }
  });

  it('--rss-every: by number of calls, by time, or off (start, marks and end only)', async () => {
    // 102 events over 500 ms or more.
    const calls = await record(program('touch'), ['slow'], { rssEvery: '10' });
    expect(calls.main).toMatch(/^# rss_sampling 10events$/m);
    const lines = calls.main.split('\n');
    const s = samples(calls.main);
    // The first event's sample, one after every 10 events after it, the end's.
    const n = lines.filter((l) => l.startsWith('@')).length;
    expect(n).toBeGreaterThan(100);
    expect(s).toHaveLength(2 + Math.floor((n - 1) / 10));
    let last = s[0]!.line;
    for (const x of s.slice(1, -1)) {
      expect(lines.slice(last, x.line - 1).filter((l) => l.startsWith('@'))).toHaveLength(10);
      last = x.line;
    }
    const timed = await record(program('touch'), ['slow'], { rssEvery: '20ms' });
    expect(timed.main).toMatch(/^# rss_sampling 20ms$/m);
    const at = samples(timed.main).map((x) =>
      Number(/ @(\d+) /.exec(timed.main.split('\n')[x.line - 1]!)![1]),
    );
    expect(at.length).toBeGreaterThanOrEqual(2 + 2);
    expect(at.length).toBeLessThanOrEqual(2 + 1 + (at.at(-1)! - at[0]!) / 20e6);
    for (let k = 2; k < at.length - 1; k++)
      expect(at[k]! - at[k - 1]!).toBeGreaterThanOrEqual(20e6);
    const off = await record(program('touch'), ['marks'], { rssEvery: 'off' });
    expect(off.main).toMatch(/^# rss_sampling off$/m);
    expect(samples(off.main).map((x) => x.mark ?? '')).toEqual([
      '',
      'm0',
      'm1__8_MiB_written_',
      'm2',
      '',
    ]);
  });

  it('--no-touches: a trace as before, without records, samples or their header facts', async () => {
    const r = await record(program('touch'), ['marks'], { touches: false });
    expect(r.exitCode).toBe(0);
    expect(r.main).not.toMatch(/^#:/m);
    expect(r.main).not.toMatch(/^# (touches|rss_sampling|rss_peak)/m);
    expect(r.traces[0]!.rss).toBeUndefined();
  });
});

describe('a recording replayed with its extension records', () => {
  for (const mode of ['big', 'calloc', 'realloc', 'live', 'marks']) {
    it(`${mode}: gives the blocks of the trace without them, identically to glibc, at the real addresses`, async () => {
      const r = await touch(mode);
      expect(r.main).toMatch(/^#:touch /m);
      const plain = stripped(r.main);
      const a = runSim(r.main, traceEnv(r.main));
      const b = runSim(plain, traceEnv(plain));
      expect(a.error).toBeUndefined();
      expect(a.events).toEqual(b.events);
      expect(a.summary.events).toBe(b.summary.events);
      expect(differential(r.main, { name: `touch-${mode}` })).toBeNull();
      expect(addressCheck(r.main)).toBeNull();
      // The header facts are facts like any other.
      let facts = new Map<string, string>();
      readTraceText(r.main, 'touch', { header: (h) => (facts = h.facts), event: () => {} });
      expect(facts.get('touches')).toBe('recorded');
      expect(facts.get('rss_sampling')).toBe('100ms,50000events');
    });
  }
});

const PYTHON = '/usr/bin/python3';

/** Runs `ptsim record` with these environment variables set (or, undefined, unset). */
async function run(argv: string[], env: Record<string, string | undefined>) {
  const vars = { ...env, XDG_CACHE_HOME: join(BUILD, 'xdg') };
  const saved = new Map(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (k: string, v: string | undefined): void => {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  };
  for (const [k, v] of Object.entries(vars)) set(k, v);
  let err = '';
  try {
    const code = await recordCommand.run(
      argv,
      () => {},
      (s) => (err += s),
    );
    return { code, err };
  } finally {
    for (const [k, v] of saved) set(k, v);
  }
}

describe('memory that did not go through malloc', () => {
  it('a program that maps its memory itself: the report says so, for it and for a child', async () => {
    const dir = scratch('own');
    const r = await run(['-o', join(dir, 'own.trace'), '--', program('touch'), 'own'], {});
    expect(r.code).toBe(0);
    expect(r.err).toMatch(
      /^ptsim record: touch's anonymous memory grew by 2[45]\.\d MiB to its peak, of which glibc's heaps and mmapped chunks held 0\.\d MiB: most of it did not come from malloc, so the trace explains only a part of the process\.\n {2}The program gets its memory some other way: .* If it has a switch that sends its allocations to malloc \(an environment variable or a build option\), record it with that\.\n$/m,
    );
    const child = await run(
      ['-o', join(dir, 'child.trace'), '--', program('touch'), 'own-child'],
      {},
    );
    expect(child.code).toBe(0);
    const lines = child.err.split('\n');
    expect(lines[0]).toMatch(/^ptsim record: [\d,]+ events recorded in /);
    expect(lines[1]).toMatch(/^ptsim record: 1 other process image recorded in /);
    expect(lines[2]).toMatch(
      /forked from pid \d+; .*; 2[45]\.\d MiB of its 2[45]\.\d MiB of growth did not come from malloc$/,
    );
    expect(lines.slice(3)).toEqual(['']);
  });

  // 100,000 strings of 400 characters (about 45 MiB), each small enough for pymalloc; a mark
  // while they are all alive.
  const script = [
    'import ctypes',
    "mark = getattr(ctypes.CDLL(None), 'ptsim_mark', None)",
    "objs = ['%0400d' % i for i in range(100000)]",
    "if mark: mark(b'peak')",
    'print(len(objs))',
  ].join('\n');

  it.skipIf(!existsSync(PYTHON))(
    'python3 with pymalloc: ptsim record says so, and what to do',
    async () => {
      const dir = scratch('pymalloc');
      const r = await run(['-o', join(dir, 'py.trace'), '--', PYTHON, '-c', script], {
        PYTHONMALLOC: undefined,
      });
      expect(r.code).toBe(0);
      expect(r.err).toMatch(
        /^ptsim record: python3[.\d]*'s anonymous memory grew by [\d.]+ MiB to its peak, of which glibc's heaps and mmapped chunks held [\d.]+ MiB: most of it did not come from malloc/m,
      );
      expect(r.err).toContain('PYTHONMALLOC=malloc');
      expect(readFileSync(join(dir, 'py.trace'), 'utf8')).toMatch(
        /^#:rss @\d+ anon=\d+ heap=\d+ rec=\d+ mark=peak$/m,
      );
    },
  );

  it.skipIf(!existsSync(PYTHON))('python3 with PYTHONMALLOC=malloc: nothing to say', async () => {
    const dir = scratch('pymalloc');
    const r = await run(['-o', join(dir, 'py.trace'), '--', PYTHON, '-c', script], {
      PYTHONMALLOC: 'malloc',
    });
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^ptsim record: [\d,]+ events recorded in .*\n$/);
    const peak =
      /^# rss_peak anon=(\d+) heap=(\d+) event=\d+ first_anon=(\d+) first_heap=(\d+)$/m.exec(
        readFileSync(join(dir, 'py.trace'), 'utf8'),
      )!;
    const [anon, heap, firstAnon, firstHeap] = peak.slice(1).map(Number);
    // Nearly all of the growth is glibc's.
    expect(heap! - firstHeap!).toBeGreaterThan(0.8 * (anon! - firstAnon!));
  });
});
