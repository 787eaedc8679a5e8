/**
 * The allocation sites of `ptsim explain` (src/analysis/explain-sites.ts) on hand-made traces with
 * call stacks and symbols: the site and call chain of a pin (a wrapper folded), the top sites of
 * the live data, the tcache, the fastbins and fragmentation, per arena, grouped by site, function
 * and file, more wrappers given; a moment replayed from the copy of the trace held in memory (which
 * keeps no stacks) attributed as a replay of the file to that event is; the text; and nothing
 * added for a trace without stacks (the docs' examples check that its text is unchanged).
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explain } from '../../src/analysis/explain.js';
import { attributeSitesAt } from '../../src/analysis/sites.js';
import { inProcess as ptsim } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-explain-sites-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, lines: string[]): string {
  const p = join(dir, name);
  writeFileSync(p, lines.join('\n') + '\n');
  return p;
}

const range = (n: number): number[] => [...Array(n).keys()];

/**
 * 20 blocks of 2000 bytes (churn_alloc), 7 of 40 (fill_tcache) and 13 of 40 (make_small), then
 * a 32-byte block through xmalloc (keep_config), last, at the top of the heap; then everything
 * but it is freed: the big ones merge below it, 7 small ones fill the tcache, 13 go to a fastbin.
 */
const EVENTS = [
  '#:stack 0 0x1010 0x9010',
  '#:stack 1 0x2010 0x3010 0x9020',
  '#:stack 2 0x4010 0x9030',
  '#:stack 3 0x5010 0x9040',
  ...range(20).map((i) => `1 malloc 2000 c${i} ^0`),
  ...range(7).map((i) => `1 malloc 40 t${i} ^2`),
  ...range(13).map((i) => `1 malloc 40 f${i} ^3`),
  '1 malloc 32 pin ^1',
  ...range(20).map((i) => `1 free c${i}`),
  ...range(7).map((i) => `1 free t${i}`),
  ...range(13).map((i) => `1 free f${i}`),
];
const SYMS = [
  '#:sym 0x1010 /src/churn.c:11 churn_alloc',
  '#:sym 0x2010 /src/util.c:5 xmalloc',
  '#:sym 0x3010 /src/config.c:42 keep_config',
  '#:sym 0x4010 /src/small.c:7 fill_tcache',
  '#:sym 0x5010 /src/small.c:19 make_small',
  '#:sym 0x9010 /src/main.c:3 main',
  '#:sym 0x9020 /src/main.c:4 main',
  '#:sym 0x9030 /src/main.c:5 main',
  '#:sym 0x9040 /src/main.c:6 main',
];

describe('explain by allocation site', () => {
  const path = file('pin.trace', [...EVENTS, ...SYMS]);

  it('names the pin and its call chain, the wrapper folded', async () => {
    const ex = await explain(path, { settings: {}, at: ['end'], whatIfs: false });
    const pin = ex.moments[0]!.pins.find((p) => p.kind === 'live')!;
    expect(pin.token).toBe('pin');
    expect(pin.site).toEqual({
      site: 'keep_config (/src/config.c:42)',
      chain: ['keep_config (/src/config.c:42)', 'main (/src/main.c:4)'],
    });
  });

  it('lists the top sites of each cause with their bytes and pages', async () => {
    const ex = await explain(path, { settings: {}, at: ['end'], whatIfs: false });
    const s = ex.moments[0]!.sites!;
    expect(s.by).toBe('site');
    const byCause = new Map(s.causes.map((c) => [c.cause, c]));
    expect([...byCause.keys()]).toEqual(['live', 'tcache', 'fastbins', 'fragmentation']);
    // Resident bytes are whole chunks, headers included: 48-byte chunks for 40 and 32 bytes.
    expect(byCause.get('live')!.sites).toEqual([
      {
        key: 'keep_config (/src/config.c:42)',
        chain: ['keep_config (/src/config.c:42)', 'main (/src/main.c:4)'],
        bytes: 48,
        pages: 1,
        blocks: 1,
      },
    ]);
    expect(byCause.get('tcache')!.sites).toMatchObject([
      { key: 'fill_tcache (/src/small.c:7)', bytes: 7 * 48, blocks: 7, pages: 1 },
    ]);
    expect(byCause.get('fastbins')!.sites).toMatchObject([
      { key: 'make_small (/src/small.c:19)', bytes: 13 * 48, blocks: 13, pages: 1 },
    ]);
    // The pin shares its page with the free memory merged below it.
    expect(byCause.get('fragmentation')!.sites).toMatchObject([
      { key: 'keep_config (/src/config.c:42)', blocks: 1 },
    ]);
    expect(s.arenas).toEqual([]); // one arena: nothing per arena
  });

  it('groups by function and by file, and folds the wrappers given', async () => {
    const at = (by: 'function' | 'file', wrappers?: string[]) =>
      explain(path, {
        settings: {},
        at: ['end'],
        whatIfs: false,
        sites: wrappers !== undefined ? { by, wrappers } : { by },
      });
    const byFile = (await at('file')).moments[0]!.sites!;
    expect(byFile.causes.map((c) => c.sites.map((x) => x.key))).toEqual([
      ['/src/config.c'],
      ['/src/small.c'],
      ['/src/small.c'],
      ['/src/config.c'],
    ]);
    const byFn = (await at('function', ['xmalloc', 'keep_config'])).moments[0]!;
    expect(byFn.sites!.causes[0]!.sites[0]!.key).toBe('main');
    expect(byFn.pins.find((p) => p.kind === 'live')!.site!.site).toBe('main (/src/main.c:4)');
  });

  it('attributes a moment replayed from memory as a replay of the file to it does', async () => {
    // Event 19: the 20 big blocks live, before anything else. The copy in memory keeps no stacks:
    // the sites come from the first replay's table, by event index.
    for (const storeLimit of [undefined, 0]) {
      const ex = await explain(path, {
        settings: {},
        at: [19],
        whatIfs: false,
        ...(storeLimit !== undefined ? { storeLimit } : {}),
      });
      const live = ex.moments[0]!.sites!.causes.find((c) => c.cause === 'live')!;
      const ref = await attributeSitesAt(path, { at: 19, causes: ['live'], chainDepth: 4 });
      expect(live.sites).toEqual(
        ref.groups.map((g) => ({
          key: g.key,
          chain: g.chain,
          bytes: g.bytes,
          pages: g.pages,
          blocks: g.blocks,
        })),
      );
      expect(live.sites[0]).toMatchObject({ key: 'churn_alloc (/src/churn.c:11)', blocks: 20 });
    }
  });

  it('lists the top sites per arena when there are several', async () => {
    const p = file('arenas.trace', [
      '#:stack 0 0x1010',
      '#:stack 1 0x2010',
      '#:stack 2 0x3010',
      ...range(5).map((i) => `1 malloc 100 a${i} ^0`),
      ...range(5).map((i) => `2 malloc 200 b${i} ^1`),
      '1 malloc 300000 big ^2',
      '#:sym 0x1010 /src/a.c:1 worker_one',
      '#:sym 0x2010 /src/b.c:2 worker_two',
      '#:sym 0x3010 /src/c.c:3 big_buffer',
    ]);
    const ex = await explain(p, { settings: {}, at: ['end'], whatIfs: false });
    const arenas = ex.moments[0]!.sites!.arenas;
    expect(arenas.map((a) => [a.arena, a.sites.map((s) => [s.key, s.blocks])])).toEqual([
      [0, [['worker_one (/src/a.c:1)', 5]]],
      [1, [['worker_two (/src/b.c:2)', 5]]],
      [-1, [['big_buffer (/src/c.c:3)', 1]]],
    ]);
  });

  it("splits each arena's sites by cause", async () => {
    // Thread 2 (the first, in the main arena): 3 live blocks of its site and 7 freed into its
    // tcache; thread 3 (arena 1): 2 of its site freed into a fastbin (its tcache list full of 7
    // others) and 1 live.
    const p = file('arena-causes.trace', [
      '#:stack 0 0x1010',
      '#:stack 1 0x2010',
      '#:stack 2 0x3010',
      ...range(10).map((i) => `2 malloc 40 a${i} ^0`),
      ...range(7).map((i) => `2 free a${i}`),
      ...range(7).map((i) => `3 malloc 40 f${i} ^2`),
      ...range(3).map((i) => `3 malloc 40 b${i} ^1`),
      ...range(7).map((i) => `3 free f${i}`),
      ...range(2).map((i) => `3 free b${i}`),
      '#:sym 0x1010 /src/a.c:1 worker_one',
      '#:sym 0x2010 /src/b.c:2 worker_two',
      '#:sym 0x3010 /src/c.c:3 filler',
    ]);
    const ex = await explain(p, { settings: { cores: 2 }, at: ['end'], whatIfs: false });
    const arenas = ex.moments[0]!.sites!.arenas;
    // 48-byte chunks for 40 bytes.
    expect(arenas.map((a) => [a.arena, a.sites.map((s) => [s.key, s.bytes, s.causes])])).toEqual([
      [0, [['worker_one (/src/a.c:1)', 10 * 48, { live: 3 * 48, tcache: 7 * 48 }]]],
      [
        1,
        [
          ['filler (/src/c.c:3)', 7 * 48, { tcache: 7 * 48 }],
          ['worker_two (/src/b.c:2)', 3 * 48, { live: 48, fastbins: 2 * 48 }],
        ],
      ],
    ]);
    const r = await ptsim(['explain', p, '--at', 'end', '--no-what-if', '--cores', '2']);
    expect(r.out).toContain('worker_one (/src/a.c:1) (live 144 B, in the tcache 336 B)\n');
    expect(r.out).toContain('filler (/src/c.c:3) (in the tcache)\n');
  });

  it('names the sites of every live block that fragments a heap, not only the examples', async () => {
    // 12 small live blocks, each between two freed 4000-byte ones: every one shares pages with
    // free memory in the bins (and so does the last big one, above the last freed block). The
    // first 6 from one site, the other 6 from another.
    const p = file('scattered.trace', [
      '#:stack 0 0x1010',
      '#:stack 1 0x2010',
      '#:stack 2 0x3010',
      ...range(12).flatMap((i) => [
        `1 malloc 4000 f${i} ^0`,
        `1 malloc 100 k${i} ^${i < 6 ? 1 : 2}`,
      ]),
      '1 malloc 4000 last ^0',
      ...range(12).map((i) => `1 free f${i}`),
      '#:sym 0x1010 /src/a.c:1 buffers',
      '#:sym 0x2010 /src/b.c:2 early_keys',
      '#:sym 0x3010 /src/c.c:3 late_keys',
    ]);
    const ex = await explain(p, { settings: {}, at: ['end'], whatIfs: false });
    const m = ex.moments[0]!;
    const heaps = m.fragmentation;
    const blocks = heaps.reduce((n, f) => n + f.blocks, 0);
    expect(blocks).toBe(13);
    expect(heaps.reduce((n, f) => n + f.examples.length, 0)).toBeLessThan(blocks);
    const frag = m.sites!.causes.find((c) => c.cause === 'fragmentation')!;
    expect(
      frag.sites.map((s) => [s.key, s.blocks]).sort((x, y) => (x[0]! < y[0]! ? -1 : 1)),
    ).toEqual([
      ['buffers (/src/a.c:1)', 1],
      ['early_keys (/src/b.c:2)', 6],
      ['late_keys (/src/c.c:3)', 6],
    ]);
  });

  it('prints the sites in the text, and takes --by and --wrappers', async () => {
    const r = await ptsim(['explain', path, '--at', 'end', '--no-what-if']);
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      '      allocated in keep_config (/src/config.c:42) <- main (/src/main.c:4)\n',
    );
    expect(r.out).toContain('  which code holds it (by site)\n    live data\n');
    expect(r.out).toMatch(
      /\n {4}freed blocks in the fastbins\n +624 B +1 page +13 blocks +make_small \(\/src\/small\.c:19\) +<- main \(\/src\/main\.c:6\)\n/,
    );
    const f = await ptsim(['explain', path, '--at', 'end', '--no-what-if', '--by', 'function']);
    expect(f.out).toContain('  which code holds it (by function)\n');
    expect(f.out).toMatch(/13 blocks +make_small\n/);
    const w = await ptsim([
      'explain',
      path,
      '--at',
      'end',
      '--no-what-if',
      '--wrappers',
      'keep_config',
    ]);
    expect(w.out).toContain('      allocated in main (/src/main.c:4)\n');
    const bad = await ptsim(['explain', path, '--by', 'line']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--by takes site, function or file');
  });

  it('adds nothing for a trace without stacks', async () => {
    const plain = file(
      'plain.trace',
      EVENTS.filter((l) => !l.startsWith('#')).map((l) => l.replace(/ \^\d+$/, '')),
    );
    const ex = await explain(plain, { settings: {}, whatIfs: false });
    for (const m of ex.moments) {
      expect(m.sites).toBeUndefined();
      for (const p of m.pins) expect(p.site).toBeUndefined();
    }
    const r = await ptsim(['explain', plain, '--no-what-if']);
    expect(r.out).not.toContain('which code');
    expect(r.out).not.toContain('allocated in');
  });
});
