/**
 * --glibc on the commands that replay: the release chosen shows where real glibc of that release
 * puts blocks (the expected offsets are Debian's builds', docs/glibc-versions.md), a version
 * without a profile of its own is replayed as the newest profile before it with a note, a trace's
 * `# glibc` line chooses when the command line does not, compare and sweep run each configuration
 * on each version, the report names each, and an unverified profile is said to be so.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inProcess } from '../helpers/cli.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const MAIN = join(ROOT, 'dist/bin/main.js');
const dir = mkdtempSync(join(tmpdir(), 'ptsim-glibc-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ptsim(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function trace(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The offsets of the blocks in a replay's fidelity log, event by event (null: no block). */
function offsets(out: string): Array<number | null> {
  return out
    .split('\n')
    .filter((l) => l.startsWith('{"i":'))
    .map((l) => (JSON.parse(l) as { off?: number }).off ?? null);
}

// calloc after a free of the same size: 2.41 takes the cached chunk (672), 2.31 and 2.36 carve
// a new one from the top (784).
const CALLOC = 'calloc.trace';
const callocText = '1 malloc 100 a\n1 free a\n1 calloc 1 100 b\n';
// A thread's first block: after heap_info (32 bytes up to 2.34, 48 since), malloc_state and the
// thread's tcache: 2912 on 2.31, 2928 on 2.36.
const THREAD = 'thread.trace';
const threadText = '1 malloc 24 a\n2 malloc 24 b\n';

describe('ptsim replay --glibc', () => {
  it('places blocks as the chosen release does', () => {
    const c = trace(CALLOC, callocText);
    const t = trace(THREAD, threadText);
    const at = (file: string, v?: string): Array<number | null> => {
      const r = ptsim(['replay', file, '--events', '-', ...(v ? ['--glibc', v] : [])]);
      expect(r.code).toBe(0);
      return offsets(r.out);
    };
    expect(at(c)).toEqual([672, null, 784]);
    expect(at(c, '2.36')).toEqual([672, null, 784]);
    expect(at(c, '2.31')).toEqual([672, null, 784]);
    expect(at(c, '2.41')).toEqual([672, null, 672]);
    expect(at(t)).toEqual([672, 2928]);
    expect(at(t, '2.31')).toEqual([672, 2912]);
    // 2.43 and 2.44: no tcache until the first free, so a comes first in the heap; the free then
    // allocates the tcache after it and caches a, which calloc takes back. A thread's first block
    // follows heap_info and a malloc_state of 2112 bytes: 2176.
    for (const v of ['2.43', '2.44']) {
      expect(at(c, v)).toEqual([16, null, 16]);
      expect(at(t, v)).toEqual([16, 2176]);
    }
  });

  it('caps the arenas as 2.44 does: one per CPU, at least arena_test', () => {
    // Eleven threads, one malloc each, on two CPUs: 2.43 gives each its own arena (the limit of 16
    // is fixed once 9 exist), 2.44 stops at 8 and reuses the main arena, then arena 1, ...
    const lines = Array.from({ length: 11 }, (_, i) => `${i + 2} malloc 24 a${i}`);
    const many = trace('arenas.trace', `1 malloc 24 m\n${lines.join('\n')}\n`);
    const arenas = (v: string): number[] => {
      const r = ptsim(['replay', many, '--events', '-', '--glibc', v, '--cores', '2']);
      expect(r.code).toBe(0);
      return r.out
        .split('\n')
        .filter((l) => l.startsWith('{"i":'))
        .map((l) => (JSON.parse(l) as { arena: number }).arena);
    };
    expect(arenas('2.43')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(arenas('2.44')).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 0, 7, 6, 5]);
  });

  it('says which release it modelled, and replays another as the newest before it, with a note', () => {
    const c = trace(CALLOC, callocText);
    const r = ptsim(['replay', c, '--glibc', '2.42']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('replayed on a model of glibc 2.41 malloc');
    expect(r.err).toContain(
      'glibc 2.42 has no profile of its own: replayed as glibc 2.41, the newest modelled version before it',
    );
    expect(r.err).not.toContain('unverified');
    const j = ptsim(['replay', c, '--glibc', '2.33', '--json']);
    expect((JSON.parse(j.out) as { glibc: string }).glibc).toBe('2.31');
    // 2.40 keeps 2.39's rules, and 2.39's profile is not proven: both are said.
    const u = ptsim(['replay', c, '--glibc', '2.40']);
    expect(u.out).toContain('replayed on a model of glibc 2.39 (unverified) malloc');
    expect(u.err).toContain('replayed as glibc 2.39 (unverified), the newest modelled version');
    expect(u.err).toContain(
      "glibc 2.39 is modelled from glibc's source history and not yet proven against a real build of it (unverified)",
    );
    const uj = JSON.parse(ptsim(['replay', c, '--glibc', '2.39', '--json']).out) as {
      glibc: string;
      glibcUnverified?: boolean;
    };
    expect([uj.glibc, uj.glibcUnverified]).toEqual(['2.39', true]);
    expect(JSON.parse(j.out)).not.toHaveProperty('glibcUnverified');
  });

  it("takes the trace's # glibc line unless told otherwise", () => {
    const c = trace('header.trace', `# glibc 2.41\n${callocText}`);
    expect(offsets(ptsim(['replay', c, '--events', '-']).out)).toEqual([672, null, 672]);
    // A comment that starts with the word is prose, not a version: 2.36, and nothing said.
    const prose = trace(
      'prose-version.trace',
      `# glibc 2.41 serves this from the tcache\n${callocText}`,
    );
    const p = ptsim(['replay', prose, '--events', '-']);
    expect(offsets(p.out)).toEqual([672, null, 784]);
    expect(p.err).toBe('');
    const bad = ptsim(['replay', trace('bad.trace', `# glibc bookworm\n${callocText}`)]);
    expect(bad.err).toContain("the trace's '# glibc bookworm' is not a glibc version");
    expect(offsets(ptsim(['replay', c, '--events', '-', '--glibc', '2.36']).out)).toEqual([
      672,
      null,
      784,
    ]);
  });

  it('takes a header comment that starts with the word glibc for prose, not a # glibc line', () => {
    const c = trace('prose.trace', `# glibc can only give memory back from the top\n${callocText}`);
    const r = ptsim(['replay', c, '--events', '-']);
    expect(r.err).toBe('');
    // As glibc 2.36 places them (not 2.41's 672 for the last).
    expect(offsets(r.out)).toEqual([672, null, 784]);
  });

  it('refuses what is not a version, and more than one version where one replay is made', () => {
    const c = trace(CALLOC, callocText);
    const bad = ptsim(['replay', c, '--glibc', 'bookworm']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("--glibc: 'bookworm' is not a glibc version");
    const two = ptsim(['explain', c, '--glibc', '2.31', '--glibc', '2.41']);
    expect(two.code).toBe(2);
    expect(two.err).toContain('--glibc is given 2.31, 2.41: this command replays one version');
  });
});

describe('ptsim compare --glibc A --glibc B', () => {
  it('runs every configuration on each version', () => {
    const t = trace(THREAD, threadText);
    const r = ptsim([
      'compare',
      t,
      '--glibc',
      '2.31',
      '--glibc',
      '2.41',
      '--config',
      'M_MMAP_THRESHOLD=65536',
      '--json',
      '--jobs',
      '1',
    ]);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows;
    expect(rows.map((x) => x.name)).toEqual([
      'glibc 2.31',
      'glibc 2.31: M_MMAP_THRESHOLD=65536',
      'glibc 2.41',
      'glibc 2.41: M_MMAP_THRESHOLD=65536',
    ]);
  });

  it('takes glibc=VERSION in a configuration', () => {
    const c = trace(CALLOC, callocText);
    const r = ptsim(['compare', c, '--config', 'glibc=2.41', '--json', '--jobs', '1']);
    expect(r.code).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows;
    expect(rows.map((x) => x.name)).toEqual(['default', 'glibc=2.41']);
    const bad = ptsim(['compare', c, '--config', 'glibc=x']);
    expect(bad.code).toBe(2);
  });
});

describe('several versions in sweep and report, and unverified profiles in every output', () => {
  it('sweep --glibc A,B replays the grid on each version, a row per version and setting', async () => {
    const c = trace(CALLOC, callocText);
    const r = await inProcess([
      'sweep',
      c,
      '--glibc',
      '2.31,2.41',
      '--glibc',
      '2.35',
      '--param',
      'mmap_threshold=64K',
      '--json',
      '--jobs',
      '1',
    ]);
    expect(r.code, r.err).toBe(0);
    const doc = JSON.parse(r.out) as {
      versions: Array<{ glibc: string; default: { figures: { rss: number } }; rows: unknown[] }>;
    };
    expect(doc.versions.map((v) => [v.glibc, v.rows.length])).toEqual([
      ['2.31', 1],
      ['2.41', 1],
      ['2.35', 1],
    ]);
    // Each version's default row is what a replay on that version gives.
    for (const v of doc.versions) {
      const one = await inProcess(['replay', c, '--glibc', v.glibc, '--json']);
      expect(v.default.figures.rss).toBe((JSON.parse(one.out) as { rss: number }).rss);
    }
    expect(r.err).toContain('glibc 2.35 is modelled from glibc');
    const text = await inProcess(['sweep', c, '--glibc', '2.36,2.39', '--jobs', '1']);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toContain('on each of glibc 2.36, glibc 2.39 (unverified)');
    expect(text.out).toMatch(/^\*\s+2\.39 \(unverified\)\s/m);
    // One version and no --param is a mistake, as before.
    expect((await inProcess(['sweep', c, '--glibc', '2.36'])).code).toBe(2);
  });

  it('compare names an unverified version so', async () => {
    const c = trace(CALLOC, callocText);
    const r = await inProcess(['compare', c, '--glibc', '2.34,2.36', '--json', '--jobs', '1']);
    expect(r.code, r.err).toBe(0);
    const rows = (JSON.parse(r.out) as { rows: Array<{ name: string }> }).rows;
    expect(rows.map((x) => x.name)).toEqual(['glibc 2.34 (unverified)', 'glibc 2.36']);
  });

  it("the report names the modelled version, and each version's run with several", async () => {
    const c = trace(CALLOC, callocText);
    const page = join(dir, 'r.html');
    const sub = (): string => /<p class="sub">([^<]*)/.exec(readFileSync(page, 'utf8'))![1]!;
    const one = await inProcess(['report', c, '-o', page, '--no-what-if', '--glibc', '2.41']);
    expect(one.code, one.err).toBe(0);
    expect(sub()).toBe(
      'A replay on a model of glibc 2.41&#39;s malloc (x86_64): where the resident memory is, why glibc keeps it, and what each setting would change.',
    );
    const two = await inProcess([
      'report',
      c,
      '-o',
      page,
      '--no-what-if',
      '--glibc',
      '2.35,2.41',
      '--config',
      'M_MMAP_THRESHOLD=65536',
    ]);
    expect(two.code, two.err).toBe(0);
    expect(sub()).toContain(
      'Replays on models of glibc 2.35 (unverified), 2.41&#39;s malloc (x86_64), the explanation and the heap map on glibc 2.35 (unverified)',
    );
    const html = readFileSync(page, 'utf8');
    for (const name of [
      'glibc 2.35 (unverified): M_MMAP_THRESHOLD=65536',
      'glibc 2.41',
      'glibc 2.41: M_MMAP_THRESHOLD=65536',
    ])
      expect(html).toContain(JSON.stringify(name).slice(1, -1));
    expect(two.err).toContain('glibc 2.35 is modelled from glibc');
    // The page says it too, once.
    expect(html.split('<p class="note warn">Note: glibc 2.35 is modelled').length - 1).toBe(1);
  });

  it("explain's notes name a release other than the default, and an unverified one so", async () => {
    const c = trace(CALLOC, callocText);
    const notes = async (args: string[]): Promise<string[]> => {
      const r = await inProcess(['explain', c, '--no-what-if', ...args]);
      expect(r.code, r.err).toBe(0);
      // Each moment explained (the end, and here the peak) repeats the notes.
      return [...new Set(r.out.split('\n').filter((l) => l.startsWith('  note: ')))];
    };
    expect(await notes([])).toEqual([]);
    expect(await notes(['--glibc', '2.41'])).toEqual([
      "  note: replayed on a model of glibc 2.41's malloc",
    ]);
    expect(await notes(['--glibc', '2.34'])).toEqual([
      "  note: glibc 2.34 is modelled from glibc's source history and not yet proven against a real build of it (unverified)",
    ]);
  });

  it("explain's malloc_trim consolidates the fastbins only in a release that has them", async () => {
    const why = async (args: string[]): Promise<string> => {
      const r = await inProcess([
        'explain',
        join(ROOT, 'traces/field-report.trace'),
        '--at',
        'end',
        '--json',
        '--jobs',
        '1',
        ...args,
      ]);
      expect(r.code, r.err).toBe(0);
      type Remedy = { id: string; why: string };
      const m = (JSON.parse(r.out) as { moments: Array<{ remedies: Remedy[]; tried: Remedy[] }> })
        .moments[0]!;
      return [...m.remedies, ...m.tried].find((x) => x.id === 'trim_now')!.why;
    };
    expect(await why([])).toMatch(/^consolidates and returns every whole free page/);
    expect(await why(['--glibc', '2.43'])).toMatch(/^returns every whole free page/);
  });

  it("show's first line names a release other than the default", async () => {
    const c = trace(CALLOC, callocText);
    const first = async (args: string[]): Promise<string> => {
      const r = await inProcess(['show', c, ...args]);
      expect(r.code, r.err).toBe(0);
      return r.out.split('\n')[0]!;
    };
    expect(await first([])).not.toContain('modelled on');
    expect(await first(['--glibc', '2.41'])).toMatch(/; modelled on glibc 2\.41$/);
    expect(await first(['--glibc', '2.28'])).toMatch(/; modelled on glibc 2\.28 \(unverified\)$/);
  });

  it("explain, show, compare and sweep say what the trace's own # glibc line picked", async () => {
    const old = trace('old.trace', `# glibc 2.38\n${callocText}`);
    const ubuntu = trace('jammy.trace', `# glibc 2.35\n${callocText}`);
    for (const cmd of [['explain'], ['show'], ['compare'], ['sweep', '--param', 'top_pad=0']]) {
      const r = await inProcess([cmd[0]!, old, ...cmd.slice(1)]);
      expect(r.code, `${cmd[0]}: ${r.err}`).toBe(0);
      expect(r.err, cmd[0]).toContain(
        'glibc 2.38 has no profile of its own: replayed as glibc 2.36, the newest modelled version before it',
      );
      const u = await inProcess([cmd[0]!, ubuntu, ...cmd.slice(1)]);
      expect(u.err, cmd[0]).toContain('glibc 2.35 is modelled from glibc');
    }
    // Told the version, they take it and say nothing of the trace's.
    const told = await inProcess(['explain', ubuntu, '--glibc', '2.36']);
    expect(told.err).not.toContain('2.35');
  });
});

describe('the CPUs of the arena limit', () => {
  // arena_get2: arenas are made freely until there are more than arena_test (8); the limit is
  // then 8 per CPU. Thirteen threads that each malloc once: with 1 CPU, the main arena and 8
  // more, the later threads sharing them; with 2 CPUs, one arena each.
  const lines = ['# nprocs 2', '# cpus_allowed 1'];
  for (let t = 1; t <= 13; t++) lines.push(`${t} malloc 24 a${t}`);
  const arenas = async (args: string[]): Promise<number> => {
    const r = await inProcess([
      'replay',
      trace('cpus.trace', lines.join('\n') + '\n'),
      '--events',
      '-',
      ...args,
    ]);
    expect(r.code, r.err).toBe(0);
    return new Set(
      r.out
        .split('\n')
        .filter((l) => l.startsWith('{"i":'))
        .map((l) => (JSON.parse(l) as { arena: number }).arena),
    ).size;
  };
  it("are the trace's # cpus_allowed on 2.34 and 2.35, its # nprocs on the others", async () => {
    expect(await arenas(['--glibc', '2.35'])).toBe(9);
    expect(await arenas(['--glibc', '2.34'])).toBe(9);
    expect(await arenas(['--glibc', '2.36'])).toBe(13);
    expect(await arenas(['--glibc', '2.31'])).toBe(13);
    expect(await arenas(['--glibc', '2.35', '--cores', '2'])).toBe(13);
  });
});
