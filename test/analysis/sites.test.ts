/**
 * Attribution of a replay's chunks to allocation sites (src/analysis/sites.ts) on hand-made
 * traces with call stacks and symbols: folding of allocator wrappers (the default list and one
 * given), grouping by site, function and file, the freed chunks kept in the tcache, blocks without
 * a stack, and resident bytes and pages worked out by hand from glibc's rules.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  attributeSites,
  attributeSitesAt,
  bareName,
  DEFAULT_WRAPPERS,
  siteOfChunk,
} from '../../src/analysis/sites.js';
import { NIL } from '../../src/core/chunks.js';
import { Replayer } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { SiteTable } from '../../src/trace/site-table.js';

function replay(lines: string[]): { r: Replayer; table: SiteTable } {
  const r = new Replayer('sites.trace', { cores: cpus().length, touch: 'full' });
  const table = new SiteTable();
  readTraceText(lines.join('\n') + '\n', 'sites.trace', {
    header: (h) => r.header(h),
    event: (ev) => {
      table.noteEvent(ev);
      r.event(ev);
    },
    site: (s) => table.add(s),
  });
  return { r, table };
}

const TRACE = [
  '#:stack 0 0x1010 0x2010 0x3010',
  '#:stack 1 0x1010 0x2020 0x3010',
  '#:stack 2 0x4010 0x3020',
  '#:stack 3 0x5010',
  '1 malloc 24 a ^0',
  '1 malloc 40 b ^1',
  '1 malloc 40 c ^1',
  '1 malloc 200000 big ^2',
  '1 malloc 24 gone ^3',
  '1 free gone',
  '1 malloc 100 nostack',
  '#:sym 0x1010 /usr/include/c++/12/new:5 operator new(unsigned long)',
  '#:sym 0x2010 /src/parse.cc:12 parse_line(char const*) [clone .constprop.0] | /src/parse.cc:40 parse_file(char const*)',
  '#:sym 0x2020 /src/parse.cc:20 parse_word(char const*)',
  '#:sym 0x3010 /src/main.cc:7 main',
  '#:sym 0x3020 /src/main.cc:9 main',
  '#:sym 0x4010 /src/pool.c:3 my_alloc',
  '#:sym 0x5010 /src/cache.c:30 cache_put',
];

describe('allocation sites of a replay', () => {
  const { r, table } = replay(TRACE);

  it('skips the wrappers to the caller, inlined frames first, and names the call chain', () => {
    const g = attributeSites(r.process, table, { causes: ['live'] }).groups;
    const keys = g.map((x) => x.key);
    expect(keys).toEqual([
      'my_alloc (/src/pool.c:3)',
      'parse_word(char const*) (/src/parse.cc:20)',
      'parse_line(char const*) (/src/parse.cc:12)',
    ]);
    const line = g[2]!;
    expect(line).toMatchObject({ blocks: 1, requested: 24, fn: 'parse_line(char const*)' });
    expect(line.chain).toEqual([
      'parse_line(char const*) (/src/parse.cc:12)',
      'parse_file(char const*) (/src/parse.cc:40)',
      'main (/src/main.cc:7)',
    ]);
    expect(g[1]).toMatchObject({ blocks: 2, requested: 80 });
  });

  it('counts resident bytes and pages: a mmapped 200,000-byte block written whole', () => {
    const big = attributeSites(r.process, table, { causes: ['live'] }).groups[0]!;
    // request2size(200000) = 200016; an mmapped chunk is that plus SIZE_SZ, rounded up to pages:
    // 49 pages, all written (the program's bytes reach into the 49th).
    expect(big).toMatchObject({ bytes: 49 * 4096, pages: 49, blocks: 1, requested: 200000 });
    expect(big.byCause.live).toMatchObject({ bytes: 49 * 4096, pages: 49 });
  });

  it('attributes the freed chunks glibc keeps to the site that allocated them', () => {
    const all = attributeSites(r.process, table).groups;
    const cache = all.find((x) => x.fn === 'cache_put')!;
    expect(cache.byCause.tcache).toMatchObject({ blocks: 1, bytes: 32 });
    expect(cache.byCause.live.blocks).toBe(0);
    expect(cache.requested).toBe(0);
  });

  it('counts the blocks without a stack apart', () => {
    const { unknown } = attributeSites(r.process, table, { causes: ['live'] });
    expect(unknown).toMatchObject({ blocks: 1, requested: 100, bytes: 112 });
  });

  it('folds with the wrappers given instead, globs included', () => {
    const none = attributeSites(r.process, table, { causes: ['live'], wrappers: [] }).groups;
    expect(none.find((x) => x.fn === 'operator new(unsigned long)')?.blocks).toBe(3);
    const more = attributeSites(r.process, table, {
      causes: ['live'],
      wrappers: [...DEFAULT_WRAPPERS, 'parse_*', 'my_alloc'],
    }).groups;
    // parse_line, the inlined parse_file and parse_word all match parse_*: their blocks are main's.
    expect(more.map((x) => [x.key, x.blocks])).toEqual([
      ['main (/src/main.cc:9)', 1],
      ['main (/src/main.cc:7)', 3],
    ]);
  });

  it('groups by function and by file', () => {
    const byFn = attributeSites(r.process, table, { causes: ['live'], by: 'function' }).groups;
    expect(byFn.map((x) => [x.key, x.blocks])).toEqual([
      ['my_alloc', 1],
      ['parse_word(char const*)', 2],
      ['parse_line(char const*)', 1],
    ]);
    const byFile = attributeSites(r.process, table, { causes: ['live'], by: 'file' }).groups;
    expect(byFile.map((x) => [x.key, x.blocks])).toEqual([
      ['/src/pool.c', 1],
      ['/src/parse.cc', 3],
    ]);
  });

  it("names one chunk's site", () => {
    const ck = r.process.ck;
    let found = NIL;
    for (let h = 0; h < ck.highWater; h++) if (ck.req[h] === 24 && ck.state[h] === 0) found = h;
    expect(siteOfChunk(r.process, table, found)?.key).toBe(
      'parse_line(char const*) (/src/parse.cc:12)',
    );
    expect(siteOfChunk(r.process, table, NIL)).toBeNull();
  });
});

describe('bareName', () => {
  it('cuts the parameter list, not template arguments or operator()', () => {
    expect(bareName('operator new(unsigned long)')).toBe('operator new');
    expect(bareName('ns::f<int (*)(int)>(int) const')).toBe('ns::f<int (*)(int)>');
    expect(bareName('Foo::operator()(int)')).toBe('Foo::operator()');
    expect(bareName('main')).toBe('main');
  });
});

describe('attributeSitesAt', () => {
  it('replays a trace file to a moment and attributes its chunks there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ptsim-sites-at-'));
    try {
      const path = join(dir, 't.trace');
      writeFileSync(path, TRACE.join('\n') + '\n');
      // After event 1 (the second malloc): one block of parse_line, one of parse_word.
      const early = await attributeSitesAt(path, { at: 1, causes: ['live'], touch: 'full' });
      expect(early.event).toBe(1);
      expect(early.hasStacks).toBe(true);
      expect(
        early.groups.map((g) => `${g.fn} ${g.blocks}`).sort((a, b) => (a < b ? -1 : 1)),
      ).toEqual(['parse_line(char const*) 1', 'parse_word(char const*) 1']);
      const end = await attributeSitesAt(path, { by: 'file', causes: ['live'] });
      expect(end.event).toBe(6);
      expect(end.groups.map((g) => g.key)).toEqual(['/src/pool.c', '/src/parse.cc']);
      writeFileSync(path, '1 malloc 24 a\n1 free b\n');
      await expect(attributeSitesAt(path)).rejects.toThrow(/t\.trace:2: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
