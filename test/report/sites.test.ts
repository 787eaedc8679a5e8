/**
 * The report's allocation sites, for a trace with call stacks: the flame graph's moments hold, at
 * the moment explained, at the peak and at a sampled event, the bytes ptsim explain gives for each
 * site and each cause at that event (computed apart: explain attributes its own replay's chunks);
 * the boxes of memory no site holds are the breakdown's causes, and everything adds up to the
 * resident total; a few figures are derived by hand. In headless Chromium, the frames drawn have
 * the widths of those bytes.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Explanation } from '../../src/analysis/explain.js';
import type { ReportData } from '../../src/report/report.js';
import { dumpDom, findChromium } from '../helpers/browser.js';
import { inProcess as ptsim } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-report-sites-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const range = (n: number): number[] => [...Array(n).keys()];

/**
 * Two worker threads (arenas 1 and 2) read requests through xmalloc (a wrapper: the site is
 * read_request) and keep a session each, last; the main thread keeps a 300000-byte table (mmapped
 * on its own), caches 7 blocks of 40 bytes (the tcache) and frees 13 more (a fastbin).
 */
const TRACE = [
  '#:stack 0 0x1010 0x2010 0x8010',
  '#:stack 1 0x3010 0x8020',
  '#:stack 2 0x4010 0x9010',
  '#:stack 3 0x5010 0x9020',
  '#:stack 4 0x6010 0x9030',
  '1 malloc 300000 table ^2',
  ...range(20).map((i) => `2 malloc 2000 a${i} ^0`),
  '2 malloc 100 sessionA ^1',
  ...range(15).map((i) => `2 free a${i}`),
  ...range(10).map((i) => `3 malloc 3000 b${i} ^0`),
  '3 malloc 100 sessionB ^1',
  ...range(6).map((i) => `3 free b${i}`),
  ...range(7).map((i) => `1 malloc 40 c${i} ^3`),
  ...range(13).map((i) => `1 malloc 40 t${i} ^4`),
  ...range(7).map((i) => `1 free c${i}`),
  ...range(13).map((i) => `1 free t${i}`),
  '#:sym 0x1010 /src/util.c:5 xmalloc',
  '#:sym 0x2010 /src/request.c:31 read_request',
  '#:sym 0x3010 /src/session.c:12 make_session',
  '#:sym 0x4010 /src/table.c:8 load_table',
  '#:sym 0x5010 /src/cache.c:7 cache_put',
  '#:sym 0x6010 /src/lexer.c:19 lex',
  '#:sym 0x8010 /src/worker.c:40 worker',
  '#:sym 0x8020 /src/worker.c:44 worker',
  '#:sym 0x9010 /src/main.c:10 main',
  '#:sym 0x9020 /src/main.c:11 main',
  '#:sym 0x9030 /src/main.c:12 main',
];
const trace = join(dir, 'sites.trace');
writeFileSync(trace, TRACE.join('\n') + '\n');

type Flames = NonNullable<ReportData['sites']>;
type FlameMoment = Flames['moments'][number];

/** A moment's bytes by site name and kind (sites only). */
function bySite(f: Flames, m: FlameMoment): Map<string, Record<string, number>> {
  const out = new Map<string, Record<string, number>>();
  m.node.forEach((n, i) => {
    if (!f.site[n]) return;
    const name = f.names[f.name[n]!]!;
    const kind = f.kinds[m.what[i]!]!;
    const r = out.get(name) ?? {};
    r[kind] = (r[kind] ?? 0) + m.bytes[i]!;
    out.set(name, r);
  });
  return out;
}

/** A moment's bytes by box name (the memory no site holds), all arenas together. */
function boxes(f: Flames, m: FlameMoment): Map<string, number> {
  const out = new Map<string, number>();
  m.node.forEach((n, i) => {
    if (f.site[n]) return;
    const name = f.names[f.name[n]!]!;
    out.set(name, (out.get(name) ?? 0) + m.bytes[i]!);
  });
  return out;
}

/** explain's figures at one event: resident bytes, causes, and each cause's top sites. */
async function explainAt(at: string): Promise<Explanation['moments'][number]> {
  const r = await ptsim(['explain', trace, '--cores', '2', '--no-what-if', '--json', '--at', at]);
  expect(r.code).toBe(0);
  return (JSON.parse(r.out) as Explanation).moments[0]!;
}

/** Checks a flame moment against explain at the same event. */
function sameAsExplain(f: Flames, m: FlameMoment, e: Explanation['moments'][number]): void {
  expect(m.event).toBe(e.event);
  expect(m.total).toBe(e.residentBytes);
  expect(m.bytes.reduce((a, b) => a + b, 0)).toBe(e.residentBytes);
  const sites = bySite(f, m);
  const kindsOf: Record<string, string[]> = {
    live: ['live', 'mmapped'],
    tcache: ['tcache'],
    fastbins: ['fastbins'],
  };
  let compared = 0;
  for (const c of e.sites!.causes) {
    if (c.cause === 'fragmentation') continue;
    expect(c.more).toBe(0);
    for (const s of c.sites) {
      const r = sites.get(s.key)!;
      expect(r, s.key).toBeDefined();
      expect(
        kindsOf[c.cause]!.reduce((n, k) => n + (r[k] ?? 0), 0),
        `${c.cause} ${s.key}`,
      ).toBe(s.bytes);
      compared++;
    }
  }
  expect(compared).toBeGreaterThan(0);
  const cause = (name: string): number => e.causes.find((c) => c.cause === name)!.bytes;
  const b = boxes(f, m);
  expect(b.get('[free in the bins]') ?? 0).toBe(cause('free-bins'));
  expect(b.get('[free in the bins, on pages live blocks share]') ?? 0).toBe(cause('fragmentation'));
  expect(b.get('[free top of a heap]') ?? 0).toBe(cause('free-top'));
  expect(b.get("[glibc's own metadata]") ?? 0).toBe(cause('metadata'));
}

describe('report: allocation sites', async () => {
  const page = join(dir, 'sites.html');
  const r = await ptsim(['report', trace, '-o', page, '--cores', '2', '--no-what-if']);
  const html = readFileSync(page, 'utf8');
  const m = /<script type="application\/json" id="ptsim-data">([\s\S]*?)<\/script>/.exec(html);
  const data = JSON.parse(m![1]!) as ReportData;
  const f = data.sites!;

  it('takes the sites at the moment explained, the end, the peak and along the timeline', () => {
    expect(r.code).toBe(0);
    expect(f).toBeDefined();
    const kinds = f.moments.map((x) => x.kind);
    // The end is the moment explained (the first reason given for an event wins).
    expect(kinds.filter((k) => k === 'explained')).toHaveLength(1);
    expect(kinds).toContain('peak');
    expect(kinds.filter((k) => k === 'sample').length).toBeGreaterThan(10);
    const events = f.moments.map((x) => x.event);
    expect(new Set(events).size).toBe(events.length);
    expect(f.moments.find((x) => x.kind === 'explained')!.event).toBe(data.events - 1);
    expect(f.moments.find((x) => x.kind === 'peak')!.event).toBe(
      data.configs[0]!.summary.peakEvent,
    );
  });

  it('has the bytes explain gives for each site and cause at the end, the peak and a sample', async () => {
    sameAsExplain(
      f,
      f.moments.find((x) => x.kind === 'explained')!,
      await explainAt('end'),
    );
    sameAsExplain(
      f,
      f.moments.find((x) => x.kind === 'peak')!,
      await explainAt('peak'),
    );
    const sample = f.moments.filter((x) => x.kind === 'sample')[5]!;
    sameAsExplain(f, sample, await explainAt(String(sample.event)));
  });

  it('folds the wrapper, splits by kind and arena, with figures derived by hand', () => {
    const end = f.moments.find((x) => x.kind === 'explained')!;
    const sites = bySite(f, end);
    // xmalloc is folded into read_request, whose chain runs up to worker.
    expect(sites.has('xmalloc (/src/util.c:5)')).toBe(false);
    const rr = f.name.findIndex((n) => f.names[n] === 'read_request (/src/request.c:31)');
    expect(f.site[rr]).toBe(true);
    expect(f.names[f.name[f.parent[rr]!]!]).toBe('worker (/src/worker.c:40)');
    expect(f.parent[f.parent[rr]!]).toBe(-1);
    // The table: 300000 bytes + 8 of header, rounded up to whole pages, mmapped on its own,
    // every page written: 74 pages.
    expect(sites.get('load_table (/src/table.c:8)')).toEqual({ mmapped: 74 * 4096 });
    // 7 blocks of 40 bytes in the tcache and 13 in a fastbin: 48-byte chunks.
    expect(sites.get('cache_put (/src/cache.c:7)')).toEqual({ tcache: 7 * 48 });
    expect(sites.get('lex (/src/lexer.c:19)')).toEqual({ fastbins: 13 * 48 });
    // read_request's live blocks are in the two workers' arenas: 5 of 2000 bytes (2016-byte
    // chunks) in the first, 4 of 3000 (3008) in the second, all on written pages.
    const arenas = new Map<number, number>();
    end.node.forEach((n, i) => {
      if (n === rr) arenas.set(end.arena[i]!, (arenas.get(end.arena[i]!) ?? 0) + end.bytes[i]!);
    });
    expect([...arenas].sort((x, y) => x[0] - y[0])).toEqual([
      [1, 5 * 2016],
      [2, 4 * 3008],
    ]);
  });

  it("writes the top sites of the moment explained and each pin's code into the page", () => {
    expect(html).toContain('<h2>Which code holds the memory</h2>');
    expect(html).toContain('<td class="mono">cache_put (/src/cache.c:7)</td>');
    expect(html).toContain('in make_session (/src/session.c:12) &lt;- worker (/src/worker.c:44)');
  });

  it('folds the wrappers --wrappers adds, in the flame graph as in the explanation', async () => {
    const folded = join(dir, 'folded.html');
    const w = await ptsim([
      'report',
      trace,
      '-o',
      folded,
      '--cores',
      '2',
      '--no-what-if',
      '--wrappers',
      'read_request',
    ]);
    expect(w.code).toBe(0);
    const d = JSON.parse(
      /<script type="application\/json" id="ptsim-data">([\s\S]*?)<\/script>/.exec(
        readFileSync(folded, 'utf8'),
      )![1]!,
    ) as ReportData;
    const g = d.sites!;
    const end = g.moments.find((x) => x.kind === 'explained')!;
    const sites = bySite(g, end);
    expect(sites.has('read_request (/src/request.c:31)')).toBe(false);
    // read_request's blocks now belong to worker, where it was called.
    expect(sites.get('worker (/src/worker.c:40)')).toEqual(
      bySite(
        f,
        f.moments.find((x) => x.kind === 'explained')!,
      ).get('read_request (/src/request.c:31)'),
    );
    const live = d.explanation.moments[0]!.sites!.causes.find((c) => c.cause === 'live')!;
    expect(live.sites.map((x) => x.key)).toContain('worker (/src/worker.c:40)');
  });

  const CHROMIUM = findChromium();
  it.skipIf(CHROMIUM === undefined)(
    'draws frames as wide as their bytes in a headless browser (skipped where Chromium is missing and cannot be installed)',
    async () => {
      // The moment shown first is the one explained; a link may name another (the peak).
      drawnAs(dumpDom(CHROMIUM!, page, dir), await explainAt('end'));
      const peak = f.moments.find((x) => x.kind === 'peak')!.event;
      drawnAs(dumpDom(CHROMIUM!, page, dir, `#event=${peak}`), await explainAt('peak'));
    },
    120_000,
  );
});

/** Checks the flame graph drawn in a page's DOM against explain's figures at the same moment. */
function drawnAs(dom: string, end: Explanation['moments'][number]): void {
  expect(/data-ptsim-error="[^"]*"/.exec(dom)?.[0]).toBeUndefined();
  expect(dom).toMatch(/data-ptsim-flame="\d+ frames"/);
  expect(dom).toMatch(new RegExp(`id="flame"[^>]*data-event="${end.event}"`));
  // Each frame: its name and its width, a share of the resident total.
  const attr = (tag: string, name: string): string =>
    new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1] ?? '';
  const frames = [...dom.matchAll(/<div class="frame( site)?"[^>]*>/g)].map((x) => {
    const style = attr(x[0], 'style');
    return {
      site: x[1] !== undefined,
      // Chromium keeps six significant digits of a percentage.
      width: Number(/width: ([\d.e-]+)%/.exec(style)![1]),
      row: Number(/top: (\d+)px/.exec(style)![1]) / 20,
      bytes: Number(attr(x[0], 'data-bytes')),
      name: attr(x[0], 'data-name')
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, '&'),
    };
  });
  expect(frames.length).toBeGreaterThan(5);
  const root = frames.find((x) => x.row === 0)!;
  expect(root.bytes).toBe(end.residentBytes);
  expect(root.width).toBe(100);
  const total = end.residentBytes;
  let checked = 0;
  for (const c of end.sites!.causes)
    for (const s of c.sites) {
      if (c.cause === 'fragmentation') continue;
      const drawn = frames.filter((x) => x.site && x.name === s.key);
      // A frame narrower than 1/2,000 of the width is not drawn.
      if (s.bytes < total / 2000) {
        expect(drawn, s.key).toEqual([]);
        continue;
      }
      expect(drawn.length, s.key).toBeGreaterThan(0);
      // A site holds one cause here: its frames' widths are its bytes.
      const width = drawn.reduce((n, x) => n + x.width, 0);
      expect((width / 100) * total).toBeCloseTo(s.bytes, 0);
      checked++;
    }
  expect(checked).toBeGreaterThan(1);
}
