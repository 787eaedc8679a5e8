/**
 * The ptsim command as a user meets it: help, the summary, and clear one-line errors with file
 * and line for mistakes (never a stack trace), with the documented exit statuses. The built command
 * runs in this process (test/helpers/cli.ts), but for standard input, which needs its own.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { generateTrace } from '../gen/generate.js';
import { inProcess, spawned } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Relative paths (traces/...) are the repository's: vitest runs in its root. */
const ptsim = inProcess;

function trace(name: string, text: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('ptsim', () => {
  it('explains itself', async () => {
    const top = await ptsim(['--help']);
    expect(top.code).toBe(0);
    expect(top.out).toContain('replay TRACE');
    expect(top.out).toContain('PTSIM_HUGE_PAGES');
    const help = await ptsim(['replay', '--help']);
    expect(help.code).toBe(0);
    for (const opt of [
      '--events',
      '--json',
      '--stats',
      '--info',
      '--mallopt',
      '--tunables',
      '--env',
      '--cores',
      '--brk-base',
      '--max-brk',
      '--touch',
      '--check',
    ]) {
      expect(help.out).toContain(opt);
    }
  });

  it('replays the bundled field report and prints a summary', async () => {
    const r = await ptsim(['replay', 'traces/field-report.trace']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('resident (RSS) at the end');
    expect(r.out).toContain('mallinfo2()');
  });

  it('prints the JSON summary the fidelity log contract names', async () => {
    const r = await ptsim(['replay', trace('a.trace', '1 malloc 24 a\n1 free a\n'), '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as Record<string, unknown>;
    for (const k of ['events', 'mallinfo2', 'rss', 'peakRss', 'brk']) expect(s).toHaveProperty(k);
    expect(s['events']).toBe(2);
  });

  it('reads gzip traces by their magic bytes and standard input as -', async () => {
    const gz = trace('z.bin', gzipSync('1 malloc 100 a\n'));
    expect(
      (JSON.parse((await ptsim(['replay', gz, '--json'])).out) as { events: number }).events,
    ).toBe(1);
    expect(
      (
        JSON.parse(
          spawned(['replay', '-', '--json'], { input: '1 malloc 100 a\n1 free a\n' }).out,
        ) as {
          events: number;
        }
      ).events,
    ).toBe(2);
  });

  it('writes the fidelity log', async () => {
    const log = join(dir, 'events.jsonl');
    const r = await ptsim([
      'replay',
      trace('b.trace', '1 malloc 24 a\n1 realloc a 0 0\n'),
      '--events',
      log,
    ]);
    expect(r.code).toBe(0);
    const lines = spawnSync('cat', [log], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect(lines).toEqual([
      '{"i":0,"op":"malloc","tid":1,"arena":0,"heap":0,"off":672,"usable":24,"brk":135168}',
      '{"i":1,"op":"realloc","tid":1,"ptr":null,"brk":135168}',
    ]);
  });

  it('names the file and line of a malformed line', async () => {
    const p = trace('bad.trace', '1 malloc 24 a\n1 malocc 24 b\n');
    const r = await ptsim(['replay', p]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${p}:2:`);
    expect(r.err).toContain('malocc');
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('names the token and line of a free of an unknown block', async () => {
    const p = trace('unknown.trace', '1 malloc 24 a\n1 free zz\n');
    const r = await ptsim(['replay', p]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${p}:2: free of zz`);
  });

  it("reports glibc's own abort message with the event that caused it", async () => {
    const p = trace('df.trace', '1 malloc 24 a\n1 free a\n1 free a\n');
    const r = await ptsim(['replay', p]);
    expect(r.code).toBe(3);
    expect(r.err).toContain('free(): double free detected in tcache 2');
    expect(r.err).toContain('event 2');
    expect(r.err).toContain(`${p}:3`);
  });

  it('reports a missing file and bad options in one line', async () => {
    const missing = await ptsim(['replay', join(dir, 'nope.trace')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no such file');
    const opt = await ptsim(['replay', 'traces/field-report.trace', '--frobnicate']);
    expect(opt.code).toBe(2);
    expect(opt.err).toContain("Try 'ptsim replay --help'");
    const mallopt = await ptsim(['replay', 'traces/field-report.trace', '--mallopt', 'M_NOPE=1']);
    expect(mallopt.code).toBe(2);
    expect(mallopt.err).toContain('unknown parameter');
  });

  it('states the arena limit glibc applies: arena_max when set, else 8 per CPU, never below arena_test + 1', async () => {
    // Eleven threads, each allocating once: each new thread gets an arena while the limit allows.
    const t = trace(
      'eleven.trace',
      Array.from({ length: 11 }, (_, i) => `${i + 1} malloc 10 b${i}`).join('\n') + '\n',
    );
    const line = async (args: string[]): Promise<string> =>
      (await ptsim(['replay', t, ...args])).out
        .split('\n')
        .find((l) => l.trimStart().startsWith('arenas '))!
        .trim();
    expect(await line(['--cores', '2'])).toBe(
      "arenas                      11 (glibc's limit: 16 with 2 CPUs)",
    );
    // arena_get2 fixes the limit only once there are more than arena_test (8) arenas: with one CPU, 9.
    expect(await line(['--cores', '1'])).toBe(
      "arenas                      9 (glibc's limit: 9, as arena_test is 8; 8 per CPU with 1 CPU would be 8)",
    );
    expect(await line(['--cores', '1', '--mallopt', 'M_ARENA_TEST=3'])).toBe(
      "arenas                      8 (glibc's limit: 8 with 1 CPU)",
    );
    expect(await line(['--cores', '2', '--env', 'MALLOC_ARENA_MAX=3'])).toBe(
      'arenas                      3 (limit: 3, set by arena_max)',
    );
  });

  it('applies settings: the field report stops pinning memory with a fixed mmap threshold', async () => {
    const base = JSON.parse(
      (await ptsim(['replay', 'traces/field-report.trace', '--json'])).out,
    ) as {
      rss: number;
    };
    const fixed = JSON.parse(
      (
        await ptsim([
          'replay',
          'traces/field-report.trace',
          '--json',
          '--mallopt',
          'M_MMAP_THRESHOLD=131072',
        ])
      ).out,
    ) as { rss: number };
    expect(base.rss).toBeGreaterThan(8 << 20);
    expect(fixed.rss).toBeLessThan(64 << 10);
    const env = JSON.parse(
      (
        await ptsim([
          'replay',
          'traces/field-report.trace',
          '--json',
          '--env',
          'MALLOC_MMAP_THRESHOLD_=131072',
        ])
      ).out,
    ) as { rss: number };
    expect(env.rss).toBe(fixed.rss);
  });

  it('replays with the touch model asked for, and shows the recording beside the replay', async () => {
    const p = trace(
      'touched.trace',
      [
        '# touches recorded',
        '1 malloc 4194304 buf',
        '#:touch buf 0-99',
        '#:rss @1000 anon=1000000 heap=450000 mark=loaded',
        '1 malloc 100 small',
        '#:rss anon=2000000 rec=65536',
      ].join('\n') + '\n',
    );
    const json = async (
      args: string[],
    ): Promise<{ rss: number; touch: string; measured?: unknown }> =>
      JSON.parse((await ptsim(['replay', p, '--json', '--cores', '2', ...args])).out) as {
        rss: number;
        touch: string;
      };
    const rec = await json([]);
    const none = await json(['--touch', 'none']);
    const full = await json(['--touch', 'full']);
    expect([rec.touch, none.touch, full.touch]).toEqual(['recorded', 'none', 'full']);
    expect(rec.rss - none.rss).toBe(99 * 4096);
    expect(full.rss - none.rss).toBe(1024 * 4096);
    expect(rec.measured).toEqual({
      samples: 2,
      last: {
        event: 1,
        line: 6,
        time: -1,
        anon: 2000000,
        heap: null,
        recorder: 65536,
        mark: null,
        modelled: rec.rss,
      },
      peak: {
        event: 1,
        line: 6,
        time: -1,
        anon: 2000000,
        heap: null,
        recorder: 65536,
        mark: null,
        modelled: rec.rss,
      },
    });
    const text = await ptsim(['replay', p, '--cores', '2']);
    expect(text.code).toBe(0);
    expect(text.out).toContain(
      "larger ones the pages of the trace's #:touch records (--touch recorded)",
    );
    expect(text.out).toContain('measured by the recording   2 #:rss samples');
    expect(text.out).toMatch(
      /last sample {15}after event 1: RssAnon 1\.91 MiB \(2,000,000 B\), of which the recorder's own 64\.00 KiB \(65,536 B\); replay /,
    );
    expect(text.err).toBe('');
    const bad = await ptsim(['replay', p, '--touch', 'some']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--touch takes recorded, full or none, got 'some'");
  });

  it("reports a heaptrack import's resident sizes as the whole RSS, anon unknown", async () => {
    const p = trace(
      'ht.raw',
      ['v 10400 3', 'I 1000 5e2922', 'R 100', '+ 18 0 10', 'c 5', 'R 3b8', ''].join('\n'),
    );
    const out = await ptsim(['replay', p, '--json', '--cores', '2']);
    expect(out.code).toBe(0);
    const rec = JSON.parse(out.out) as { rss: number; measured?: unknown };
    // 0x3b8 pages of 0x1000 bytes after the allocation, at `c 5`; 0x100 before any event.
    const last = {
      event: 0,
      line: 6,
      time: 5_000_000,
      anon: null,
      total: 0x3b8 * 4096,
      heap: null,
      recorder: null,
      mark: null,
      modelled: rec.rss,
    };
    expect(rec.measured).toEqual({ samples: 2, last, peak: last });
    const text = await ptsim(['replay', p, '--cores', '2']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(
      /last sample {15}after event 0: whole RSS 3\.72 MiB \(3,899,392 B\); replay .*, the rest of the process 3\.\d+ MiB/,
    );
    expect(text.out).toMatch(/ {4}highest whole RSS {9}after event 0: whole RSS 3\.72 MiB/);
    expect(text.out).toContain("the replay's RSS is the allocator's memory alone");
    expect(text.out).not.toContain('RssAnon');
  });

  it('notes that a trace with big blocks and no touch records gives an upper bound', async () => {
    const p = trace('untouched.trace', '1 malloc 2000000 a\n1 free a\n');
    const r = await ptsim(['replay', p]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `ptsim: note: ${p} has blocks of 1 MiB or more but no touch records, so its RSS is an upper bound (the replay takes every requested byte as written); \`ptsim record\` records the pages each large block really touches\n`,
    );
    expect((await ptsim(['replay', p, '--touch', 'none'])).err).toBe('');
    const ex = await ptsim(['explain', p, '--no-what-if', '--cores', '2']);
    expect(ex.code).toBe(0);
    expect(ex.out).toContain(`note: ${p} has blocks of 1 MiB or more but no touch records`);
  });

  it('names the file and line of a touch record of a block that is not live', async () => {
    const p = trace(
      'touch-dead.trace',
      '# touches recorded\n1 malloc 9000 a\n1 free a\n#:touch a 0\n',
    );
    const r = await ptsim(['replay', p]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${p}:4: #:touch of a, which is not a live block`);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('reports every kind of bad touch or rss record in one line, after the summary of the events before it', async () => {
    for (const [record, detail] of [
      ['#:touch a 0', '#:touch of a, which is not a live block'],
      ['#:touch b 4', "#:touch of b: page 4 is past the block's last requested byte"],
      ['#:touch b 1,', "#:touch: malformed page list '1,'"],
      ['#:touch b', '#:touch takes TOKEN PAGES, got 1 argument'],
      ['#:rss heap=4096', '#:rss without anon=BYTES'],
      ['#:rss anon=12k', "#:rss anon= '12k' is not a number"],
    ]) {
      const p = trace(
        'bad-record.trace',
        `# touches recorded\n1 malloc 9000 b\n1 malloc 9000 a\n1 free a\n${record}\n1 free b\n`,
      );
      const r = await ptsim(['replay', p, '--cores', '2']);
      expect(r.code, record).toBe(2);
      const lines = r.err.split('\n');
      expect(lines[0], record).toMatch(new RegExp(`^ptsim: ${p}:5: `));
      expect(lines[0], record).toContain(detail);
      expect(lines.slice(1)).toEqual([
        'ptsim: replay stopped; the summary below covers the 3 events before it',
        '',
      ]);
      // Nothing lost: the three events before it are in the summary.
      expect(r.out).toContain(`${p}: 3 events replayed`);
    }
  });
});

describe('ptsim explain on a file the parse worker reads', () => {
  it('explains as from a file read in the calling thread (the copy of the trace kept by the worker)', async () => {
    // Over 4 MiB plain: read by the parse worker, which keeps the copy the remedies replay; under
    // it gzipped: read in the calling thread, which keeps it. (Times make the lines longer, and
    // fewer events do.)
    let t = 1_000_000_000_000;
    const text = generateTrace({ seed: 'worker-copy', events: 130_000 })
      .split('\n')
      .map((line) => (line === '' || line.startsWith('#') ? line : `@${(t += 1013)} ${line}`))
      .join('\n');
    expect(text.length).toBeGreaterThan(4 << 20);
    const plain = trace('worker-copy.trace', text);
    const gz = trace('worker-copy.trace.gz', gzipSync(text, { level: 1 }));
    const run = async (path: string): Promise<unknown> => {
      const r = await ptsim(['explain', path, '--json', '--cores', '2']);
      expect(r.code, r.err).toBe(0);
      // The file's name, in the trace's field and the notes, is all that may differ.
      return JSON.parse(r.out.replaceAll(path, 'TRACE')) as unknown;
    };
    const there = (await run(plain)) as { moments: Array<{ remedies: Array<{ id: string }> }> };
    expect(there).toEqual(await run(gz));
    // Remedies that replay the copy edited were tried.
    const ids = there.moments.flatMap((m) => m.remedies.map((x) => x.id));
    expect(ids.some((id) => id === 'trim_every' || id === 'move_pin')).toBe(true);
  });
});
