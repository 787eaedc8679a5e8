/**
 * ptsim web: the exported page embeds the trace (converted, gzip) and the scenarios; a mistake in
 * the trace is one line and writes nothing; the server serves the page and the trace on the
 * loopback address. Then, in one headless Chromium (where it is installed, or can be): the page
 * read from file:// shows at each event the chunks `ptsim show --json` lists at that event,
 * stepping and scrubbing back included, as do a trace picked with its file input, one dropped
 * onto it, the trace the server serves, a scenario of its menu or of its address; hostile tokens
 * stay text. And its drawings, pixel by pixel, from screenshots: the heap map's first row has the
 * colours of the chunks the model holds there; the resident pages of hand-worked traces (their
 * sum the RSS of the real glibc) are green and the others grey in the strips; the charts' lines
 * lie at the heights of the figures after each event (from the real glibc and the trace), and
 * the event's cursor is where the event is, and moves with it.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChunkView, HeapView } from '../../src/analysis/heap-view.js';
import { BinaryTraceEncoder } from '../../src/trace/binary.js';
import { readTraceText } from '../../src/trace/reader.js';
import { findChromium } from '../helpers/browser.js';
import { Browser, type Page } from '../helpers/cdp.js';
import { inProcess, MAIN, ROOT } from '../helpers/cli.js';
import { runNative, type NativeRun } from '../helpers/native.js';
import { coverage, near, pixel, readPng, type Image } from '../helpers/png.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-web-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Embedded {
  trace: { name: string; gzip64: string } | null;
  traceUrl: string | null;
  scenarios: Array<{ id: string; title: string; story: string; trace: string }>;
}

function embeddedOf(html: string): Embedded {
  const m = /<script type="application\/json" id="ptsim-embedded">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!) as Embedded;
}

async function exportPage(name: string, args: string[]): Promise<string> {
  const out = join(dir, name);
  const r = await inProcess(['web', '--export', out, ...args]);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  expect(r.out).toContain(join(out, 'index.html'));
  return join(out, 'index.html');
}

/** The page exported with the hostile trace, made once by whichever test wants it first. */
let evilPage: Promise<string> | undefined;
const evil = (): Promise<string> => (evilPage ??= exportPage('evil', [hostileTrace]));

async function showJson(trace: string, at: number): Promise<HeapView> {
  const r = await inProcess(['show', trace, '--at', String(at), '--json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.out) as HeapView;
}

/** A chunk as the page's table lists it (and `ptsim show chunks`). */
const row = (c: ChunkView): string[] => [
  String(c.arena),
  String(c.heap),
  String(c.off),
  String(c.size),
  c.state,
  c.usable === undefined ? '' : String(c.usable),
  c.token ?? '',
];

const HOSTILE = [
  '</script><script>document.title="pwned1"</script>',
  '<img/src=x/onerror=document.title="pwned2">',
  '"><svg/onload=document.title="pwned3">',
  '&lt;b&gt;amp',
];
const EVIL_NAME = '<b>evil&amp;<i>.trace';
const hostileTrace = join(dir, EVIL_NAME);
writeFileSync(
  hostileTrace,
  [
    '# <script>document.title="pwned-header"</script>',
    ...HOSTILE.map((t, i) => `1 malloc ${24 + 16 * i} ${t}`),
    `1 free ${HOSTILE[1]}`,
    '',
  ].join('\n'),
);

/**
 * A trace small enough to work by hand (glibc 2.36, docs/glibc-facts.md; the touch records of
 * docs/trace-format.md), whose resident pages the tests draw on:
 * - s: the first malloc makes the main heap, its 656-byte tcache block + 128 KiB of top_pad +
 *   MINSIZE rounded up to pages: 33 pages, of which glibc writes only the first (the tcache
 *   block, s, the top's header);
 * - big: 300000 bytes, above the mmap threshold (128 KiB), mmapped on its own: its chunk of
 *   300016 bytes + 8 rounded up to pages, 74; resident, the pages its record names (page 0 also
 *   holds the chunk's header);
 * - m: 40000 bytes from the top, at offset 784 of the heap: its pages 0-9 are the heap's, the top's
 *   new header at 768 + 40016 lands on page 9 too;
 * - free big: munmap; the mmap threshold becomes its chunk's size, 303104, the trim threshold twice
 *   that;
 * - big2: 300000 bytes, now below the threshold: from the heap, whose break grows to 116 pages;
 *   its first byte at 40800, on page 9, its record's 20 pages the heap's 9-28; u next to it, and
 *   the top's header after u, at 340800 + 32, both on page 83.
 */
const HAND_LINES = [
  '# touches recorded',
  '1 malloc 100 s',
  '1 malloc 300000 big',
  '#:touch big 0-3,10,20-29,48-73',
  '1 malloc 40000 m',
  '#:touch m 0-9',
  '1 free big',
  '1 malloc 300000 big2',
  '#:touch big2 0-19',
  '1 malloc 20 u',
  '1 free m',
  '1 free s',
];
const handTrace = join(dir, 'hand.trace');
writeFileSync(handTrace, HAND_LINES.join('\n') + '\n');
const range = (a: number, b: number): number[] =>
  Array.from({ length: b - a + 1 }, (_, i) => a + i);
/**
 * And one block of more pages than a strip has cells (256): 2000000 bytes, mmapped, its chunk of
 * 2000016 bytes + 8 rounded up to 489 pages, drawn 2 pages a cell; resident, its header's page and
 * those of its record. The heap: the first page, as above.
 */
const HUGE_LINES = [
  '# touches recorded',
  '1 malloc 2000000 huge',
  '#:touch huge 3-5,9,100-199,488',
];
const hugeTrace = join(dir, 'huge.trace');
writeFileSync(hugeTrace, HUGE_LINES.join('\n') + '\n');

/** The resident pages of each mapping after some events, by the reasoning above. */
const RESIDENT = [
  {
    trace: handTrace,
    at: 2,
    maps: [
      { pages: 33, resident: range(0, 9) },
      { pages: 74, resident: [...range(0, 3), 10, ...range(20, 29), ...range(48, 73)] },
    ],
  },
  { trace: handTrace, at: 5, maps: [{ pages: 116, resident: [...range(0, 28), 83] }] },
  {
    trace: hugeTrace,
    at: 0,
    maps: [
      { pages: 33, resident: [0] },
      { pages: 489, resident: [0, 3, 4, 5, 9, ...range(100, 199), 488] },
    ],
  },
];
/** The hand-worked traces replayed on the real glibc, with the RSS after each event (once). */
const nativeRuns = new Map<string, NativeRun>();
const native = (trace: string): NativeRun => {
  if (!nativeRuns.has(trace)) nativeRuns.set(trace, runNative(trace, { rss: true }));
  return nativeRuns.get(trace)!;
};

interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The events of a native trace: its lines that are not comments. */
const eventLines = (text: string): string[] =>
  text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));

describe('ptsim web --export', () => {
  let loadPage = '';
  beforeAll(async () => {
    loadPage = await exportPage('load', ['traces/load-test.trace']);
  });

  it('embeds the trace and the scenarios', () => {
    const e = embeddedOf(readFileSync(loadPage, 'utf8'));
    expect(e.trace!.name).toBe('load-test.trace');
    expect(e.traceUrl).toBeNull();
    const text = gunzipSync(Buffer.from(e.trace!.gzip64, 'base64')).toString('utf8');
    expect(text).toBe(readFileSync('traces/load-test.trace', 'utf8'));
    // The teaching scenarios, then the small bundled traces, each as it is on disk.
    expect(e.scenarios.map((s) => s.id)).toEqual([
      ...readdirSync('traces/scenarios')
        .filter((f) => f.endsWith('.trace'))
        .sort()
        .map((f) => f.slice(0, -6)),
      'malloc-trim',
      'thread-arenas',
      'load-test',
    ]);
    expect(e.scenarios.find((s) => s.id === 'load-test')!.trace).toBe(
      readFileSync('traces/load-test.trace', 'utf8'),
    );
    for (const s of e.scenarios) {
      expect(s.title).not.toBe('');
      expect(s.story.length).toBeGreaterThan(80);
    }
  });

  it('opens without a network and keeps trace text out of the markup', async () => {
    const page = await evil();
    const html = readFileSync(page, 'utf8');
    expect(html).not.toMatch(
      /<(script|img|iframe|link|audio|video|source|embed|object)\b[^>]*\b(src|href|data)\s*=/i,
    );
    // The page's four scripts: data, worker, uPlot, the page's own.
    expect(html.match(/<script\b/gi)).toHaveLength(4);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<svg');
    expect(html).toContain('<title>ptsim web: &lt;b&gt;evil&amp;amp;&lt;i&gt;.trace</title>');
    expect(embeddedOf(html).trace!.name).toBe(EVIL_NAME);
  });

  it('writes a page without a trace, and refuses bad input in one line', async () => {
    const bare = embeddedOf(readFileSync(await exportPage('bare', []), 'utf8'));
    expect(bare.trace).toBeNull();
    const bad = join(dir, 'bad.trace');
    writeFileSync(bad, '1 malloc 10 a\n1 mallok 10 b\n');
    const r = await inProcess(['web', '--export', join(dir, 'bad'), bad]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${bad}:2`);
    expect(r.err).not.toMatch(/at .*\.js:/);
    expect(existsSync(join(dir, 'bad', 'index.html'))).toBe(false);
    const none = await inProcess(['web']);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/web needs a TRACE/);
    const both = await inProcess(['web', '--export', join(dir, 'x'), '--port', '1', bad]);
    expect(both.code).toBe(2);
  });
});

/** The servers started, stopped at the end whatever happened. */
const servers: ChildProcess[] = [];
afterAll(() => {
  for (const c of servers) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
});

/** `ptsim web TRACE --port 0` as its own process: the address it prints, and a stop by SIGTERM. */
async function serve(trace: string): Promise<{ url: string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [MAIN, 'web', trace, '--port', '0'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  servers.push(child);
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(out);
      if (m !== null) resolve(m[0]);
    });
    child.once('exit', () => reject(new Error('ptsim web ended: ' + out)));
  });
  const stop = (): Promise<number | null> =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
  return { url, stop };
}

describe('ptsim web TRACE', () => {
  it('serves the page and the trace on 127.0.0.1, prints the address, stops on SIGTERM', async () => {
    const { url, stop } = await serve('traces/malloc-trim.trace');
    const page = await (await fetch(url)).text();
    const e = embeddedOf(page);
    expect(e.trace).toBeNull();
    expect(e.traceUrl).toBe('trace?name=malloc-trim.trace');
    const trace = Buffer.from(await (await fetch(new URL(e.traceUrl!, url))).arrayBuffer());
    // A native trace goes as it is, so that the page gives the file's own line numbers.
    expect(trace.equals(readFileSync(join(ROOT, 'traces/malloc-trim.trace')))).toBe(true);
    expect((await fetch(new URL('/nothing', url))).status).toBe(404);
    expect(await stop()).toBe(0);
  }, 30_000);
});

const CHROMIUM = findChromium();

describe.skipIf(CHROMIUM === undefined)(
  'in headless Chromium (skipped where Chromium is missing and cannot be installed)',
  () => {
    let browser: Browser;
    beforeAll(() => {
      browser = Browser.launch(CHROMIUM!);
    });
    afterAll(async () => browser.close());

    const ready = (p: Page, pos: number): Promise<void> =>
      p.waitFor(
        `document.body.dataset.ptsimState === 'ready' && document.body.dataset.ptsimPos === '${pos}'`,
      );
    const tableRows = (p: Page): Promise<string[][]> =>
      p.eval(
        `[...document.querySelectorAll('#chunks tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent))`,
      );

    const scrubTo = async (p: Page, at: number): Promise<void> => {
      await p.eval(
        `(() => { const s = document.getElementById('scrub'); s.value = '${at}'; s.dispatchEvent(new Event('input')); })()`,
      );
      await ready(p, at);
    };
    /** Waits until the page has read the trace of that name and shows the start of it. */
    const opened = (p: Page, name: string): Promise<void> =>
      p.waitFor(
        `document.getElementById('trace-name').textContent === ${JSON.stringify(name)} && document.body.dataset.ptsimState === 'ready' && document.body.dataset.ptsimPos === '-1'`,
      );
    /** The page shows at each of these events the chunks and the line `ptsim show --json` gives. */
    async function expectShows(p: Page, trace: string, ats: number[]): Promise<void> {
      const events = eventLines(readFileSync(trace, 'utf8')).length;
      for (const at of ats) {
        await scrubTo(p, at);
        const shown = await showJson(trace, at);
        expect(await tableRows(p)).toEqual(shown.chunks.map(row));
        expect(await p.eval<string>(`document.getElementById('figures').textContent`)).toContain(
          `event ${at} of ${events} (line ${shown.line})`,
        );
      }
    }
    const FILE_INPUT = `document.getElementById('file')`;
    let barePage = '';
    const bare = async (): Promise<string> => (barePage ||= await exportPage('bare-b', []));

    it('shows at each event, stepping and scrubbing back, the chunks of ptsim show --json', async () => {
      const page = await exportPage('load-b', ['traces/load-test.trace']);
      const p = await browser.newPage(`file://${page}`);
      await ready(p, -1);
      expect(await tableRows(p)).toEqual([]);
      // Step forwards, then scrub far, back, and forwards again.
      await p.eval(`document.getElementById('next').click()`);
      await ready(p, 0);
      await p.eval(`document.getElementById('next').click()`);
      await ready(p, 1);
      for (const at of [1, 2000, 40, 1200, 2441]) {
        if (at !== 1) {
          await scrubTo(p, at);
        }
        const shown = await showJson('traces/load-test.trace', at);
        expect(await tableRows(p)).toEqual(shown.chunks.map(row));
        expect(await p.eval<string>(`document.getElementById('figures').textContent`)).toContain(
          `event ${at} of 2442 (line ${shown.line})`,
        );
        expect(await p.eval<string>(`document.getElementById('sentence').textContent`)).toMatch(
          new RegExp(`^\\[${at}\\] (malloc|free|realloc|calloc)\\(`),
        );
      }
      await p.eval(`document.getElementById('back').click()`);
      await ready(p, 2440);
      expect(await tableRows(p)).toEqual(
        (await showJson('traces/load-test.trace', 2440)).chunks.map(row),
      );
      expect(p.errors).toEqual([]);
    }, 60_000);

    it('keeps hostile tokens and names as text', async () => {
      const p = await browser.newPage(`file://${await evil()}`);
      await ready(p, -1);
      await scrubTo(p, 4);
      const tokens = (await tableRows(p)).map((r) => r[6]).filter((t) => t !== '');
      expect(tokens).toEqual([HOSTILE[0], HOSTILE[2], HOSTILE[3]]);
      expect(await p.eval<string>(`document.getElementById('sentence').textContent`)).toBe(
        `[4] free(${HOSTILE[1]}): the 48-byte chunk went into the tcache (bin 0x30, now 1 of 7)`,
      );
      expect(await p.eval<string>(`document.getElementById('trace-name').textContent`)).toBe(
        EVIL_NAME,
      );
      expect(
        await p.eval<number>(`document.querySelectorAll('img, svg, b, i:not(#legend i)').length`),
      ).toBe(0);
      expect(await p.eval<string>('document.title')).toBe(`ptsim web: ${EVIL_NAME}`);
      expect(p.errors).toEqual([]);
    }, 30_000);

    it('replays with the settings given and reports what ptsim replay reports', async () => {
      const p = await browser.newPage(`file://${await bare()}#scenario=4-dynamic-threshold`);
      await ready(p, -1);
      await p.eval(`document.getElementById('settings').value = 'M_MMAP_THRESHOLD=128K'`);
      await p.eval(`document.querySelector('#whatif button').click()`);
      await p.waitFor(`document.getElementById('whatif-result').dataset.peakRss !== undefined`);
      const got = await p.eval<{ peakRss?: string; finalRss?: string }>(
        `({ ...document.getElementById('whatif-result').dataset })`,
      );
      const r = await inProcess([
        'replay',
        'traces/scenarios/4-dynamic-threshold.trace',
        '--mallopt',
        'M_MMAP_THRESHOLD=131072',
        '--json',
      ]);
      const s = JSON.parse(r.out) as { peakRss: number; rss: number };
      expect(got).toEqual({ peakRss: String(s.peakRss), finalRss: String(s.rss) });
      // With a fixed threshold the second big block is mmapped too, and its free unmaps it.
      expect(s.rss).toBeLessThan(100_000);
      expect(p.errors).toEqual([]);
    }, 30_000);

    it('draws the heap map: its first row has the colours of the chunks, in address order', async () => {
      const p = await browser.newPage(`file://${await bare()}#scenario=1-tcache`);
      await ready(p, -1);
      await scrubTo(p, 5);
      // What the model holds after the three frees, from ptsim itself.
      const shown = await showJson('traces/scenarios/1-tcache.trace', 5);
      const states = shown.chunks.map((c) => c.state);
      expect(states).toEqual(['tcache-struct', 'tcache', 'tcache', 'tcache', 'top']);
      const img = readPng(await p.shot('#heap-map'));
      // The colours of the states (the page's legend), read from the page's own legend swatches.
      const legend = await p.eval<Array<[string, string]>>(
        `[...document.querySelectorAll('#legend span')].map((s) => [s.textContent, getComputedStyle(s.firstChild).backgroundColor])`,
      );
      const colour = new Map(
        legend.map(([state, rgb]) => [state, rgb.match(/\d+/g)!.slice(0, 3).map(Number)]),
      );
      // Along a line just inside the first row of boxes (below the heap's title, above the
      // labels): runs of one state's colour, white between boxes.
      const y = 18 + 5;
      const runs: string[] = [];
      let prev = '';
      for (let x = 0; x < img.width; x++) {
        const o = (y * img.width + x) * 4;
        const px = [img.rgba[o]!, img.rgba[o + 1]!, img.rgba[o + 2]!];
        let hit = '';
        for (const [state, c] of colour)
          if (c.every((v, k) => Math.abs(v - px[k]!) <= 2)) hit = state;
        if (hit !== '' && hit !== prev) runs.push(hit);
        prev = hit;
      }
      expect(runs).toEqual(states);
      expect(p.errors).toEqual([]);
    }, 30_000);

    const rectOf = (p: Page, selector: string): Promise<Rect> =>
      p.eval<Rect>(
        `(() => { const r = document.querySelector(${JSON.stringify(selector)}).getBoundingClientRect(); return { x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height }; })()`,
      );
    /** The page opened from file:// with the hand-worked trace picked, at the event before any. */
    async function openHand(): Promise<Page> {
      const p = await browser.newPage(`file://${await bare()}`);
      await p.waitFor(`document.body.dataset.ptsimState === 'empty'`);
      await p.pickFiles(FILE_INPUT, [handTrace]);
      await opened(p, 'hand.trace');
      return p;
    }

    it('draws the resident pages: a strip a mapping, a cell a page or more, green as they are resident', async () => {
      // The residency worked by hand adds up to the RSS the real glibc has after those events.
      for (const { trace, at, maps } of RESIDENT)
        expect(native(trace).events[at]!['rss']).toBe(
          4096 * maps.reduce((n, m) => n + m.resident.length, 0),
        );
      const p = await browser.newPage(`file://${await bare()}`);
      await p.waitFor(`document.body.dataset.ptsimState === 'empty'`);
      let open = '';
      for (const { trace, at, maps } of RESIDENT) {
        if (trace !== open) {
          await p.pickFiles(FILE_INPUT, [trace]);
          await opened(p, basename(trace));
          open = trace;
        }
        await scrubTo(p, at);
        // The page's strips: a mapping each, in address order, 34 pixels apart; the cells 14
        // high, under a 16-pixel label, as many as the mapping has pages up to 256, each as wide
        // as the canvas over their number, less half a pixel between two.
        const rect = await rectOf(p, '#pages');
        expect(rect.height).toBe(34 * maps.length);
        const img = readPng(await p.shot('#pages'));
        expect(img.height).toBe(rect.height);
        maps.forEach((m, i) => {
          const per = Math.ceil(m.pages / 256);
          const n = Math.ceil(m.pages / per);
          const w = img.width / n;
          // The pixel at the middle of a cell is wholly inside it.
          expect(w).toBeGreaterThanOrEqual(2.5);
          const green = [47, 133, 90];
          const cells = range(0, n - 1).map((k) => {
            const px = pixel(img, Math.floor(k * w + (w - 0.5) / 2), 34 * i + 16 + 7);
            if (near(px, green)) return '#';
            if (near(px, [232, 232, 232])) return '.';
            const share = coverage(px, green);
            return share > 0.3 && share < 0.9 ? '+' : '?';
          });
          // A cell all resident green, none grey, some of it a lighter green.
          const want = range(0, n - 1).map((k) => {
            const pages = range(k * per, Math.min(m.pages, (k + 1) * per) - 1);
            const resident = pages.filter((q) => m.resident.includes(q)).length;
            return resident === 0 ? '.' : resident === pages.length ? '#' : '+';
          });
          const where = `${basename(trace)} at ${at}, mapping ${i}: `;
          expect(where + cells.join('')).toBe(where + want.join(''));
        });
      }
      expect(p.errors).toEqual([]);
      await p.close();
    }, 30_000);

    interface Plot {
      left: number;
      top: number;
      width: number;
      height: number;
      x: number[];
      y: number[];
    }
    /** Where a chart's plot lies on its canvas and what its scales span, as the page notes it. */
    const plotOf = async (p: Page, host: string): Promise<Plot> =>
      JSON.parse(
        await p.eval<string>(
          `document.querySelector(${JSON.stringify(host)} + ' .uplot').dataset.plot`,
        ),
      ) as Plot;
    /** The columns of the plot that are red (the cursor's colour) over 80% of its height. */
    function redColumns(img: Image, plot: Plot): number[] {
      const red: number[] = [];
      for (let x = Math.floor(plot.left); x < plot.left + plot.width; x++) {
        let n = 0;
        for (let y = Math.ceil(plot.top) + 1; y < plot.top + plot.height - 1; y++)
          if (near(pixel(img, x, y), [214, 39, 40], 10)) n++;
        if (n > 0.8 * (plot.height - 2)) red.push(x);
      }
      return red;
    }

    it('draws the figures along the trace: each line at the height of its value, the cursor at the event and moving with it', async () => {
      // The figures after each event: the RSS and the break (the main heap, all the heap there
      // is) from the real glibc, the bytes of the blocks mmapped on their own from their usable
      // sizes there, the bytes live and the thresholds from the trace (a free of an mmapped
      // chunk sets the mmap threshold to its size and the trim threshold to twice that).
      const events = native(handTrace).events;
      const fig: Record<string, number[]> = {
        RSS: [],
        heap: [],
        mmapped: [],
        live: [],
        'mmap threshold': [],
        'trim threshold': [],
      };
      const asked = new Map<string, number>();
      const mmapped = new Map<string, number>();
      let live = 0;
      let mm = 0;
      let mmapThreshold = 128 * 1024;
      let trimThreshold = 128 * 1024;
      eventLines(HAND_LINES.join('\n')).forEach((line, i) => {
        const [, op, a, b] = line.split(' ') as [string, string, string, string?];
        const ev = events[i]!;
        if (op === 'malloc') {
          asked.set(b!, Number(a));
          live += Number(a);
          if (ev['arena'] === -1) mmapped.set(b!, (ev['usable'] as number) + 16);
          mm += mmapped.get(b!) ?? 0;
        } else {
          live -= asked.get(a)!;
          const size = mmapped.get(a);
          if (size !== undefined) {
            mm -= size;
            mmapThreshold = size;
            trimThreshold = 2 * size;
          }
        }
        fig['RSS']!.push(ev['rss'] as number);
        fig['heap']!.push(ev['brk'] as number);
        fig['mmapped']!.push(mm);
        fig['live']!.push(live);
        fig['mmap threshold']!.push(mmapThreshold);
        fig['trim threshold']!.push(trimThreshold);
      });
      const last = events.length - 1;
      const p = await openHand();
      // Every drawing lies inside its white box, the box's padding around it.
      expect(
        await p.eval<string[]>(
          `[...document.querySelectorAll('.box')].flatMap((box) => { const b = box.getBoundingClientRect(); const s = getComputedStyle(box); return [...box.querySelectorAll('canvas')].filter((c) => { const r = c.getBoundingClientRect(); return r.left < b.left + parseFloat(s.paddingLeft) - 0.5 || r.right > b.right - parseFloat(s.paddingRight) + 0.5; }).map((c) => (box.id || c.id) + ': ' + c.getBoundingClientRect().right + ' > ' + b.right); })`,
        ),
      ).toEqual([]);
      const colours = new Map(
        (
          await p.eval<Array<[string, string]>>(
            `[...document.querySelectorAll('.u-legend .u-series')].map((tr) => [tr.querySelector('.u-label').textContent, getComputedStyle(tr.querySelector('.u-marker')).borderTopColor])`,
          )
        ).map(([label, rgb]) => [label, rgb.match(/\d+/g)!.slice(0, 3).map(Number)]),
      );
      const charts = [
        { host: '#chart', lines: ['RSS', 'heap', 'mmapped', 'live'], stepped: false },
        { host: '#threshold-chart', lines: ['mmap threshold', 'trim threshold'], stepped: true },
      ];
      const misses: string[] = [];
      let checked = 0;
      let before: number[] = [];
      for (const at of [2, 3]) {
        if (at === 2) await scrubTo(p, at);
        else {
          await p.eval(`document.getElementById('next').click()`);
          await ready(p, at);
        }
        const cursors: number[] = [];
        for (const chart of charts) {
          const rect = await rectOf(p, `${chart.host} canvas`);
          const plot = await plotOf(p, chart.host);
          const values = chart.lines.flatMap((l) => fig[l]!);
          // The scales span the events sampled, every one, and every value drawn.
          expect(plot.x).toEqual([0, last]);
          expect(plot.y[0]!).toBeLessThanOrEqual(Math.min(...values));
          expect(plot.y[1]!).toBeGreaterThanOrEqual(Math.max(...values));
          const img = readPng(await p.shot(`${chart.host} canvas`));
          expect(img.width).toBe(rect.width);
          const xOf = (event: number): number =>
            plot.left + ((event - plot.x[0]!) / (plot.x[1]! - plot.x[0]!)) * plot.width;
          const yOf = (v: number): number =>
            plot.top + (1 - (v - plot.y[0]!) / (plot.y[1]! - plot.y[0]!)) * plot.height;
          // The cursor: a red line 2 pixels wide, centred on the event's x rounded, from the top
          // of the plot to its bottom; no other column of the plot is red.
          const cursor = Math.round(xOf(at));
          cursors.push(cursor);
          const red = redColumns(img, plot);
          expect(`${chart.host} at ${at}: red columns ${red.join(' ')}`).toBe(
            `${chart.host} at ${at}: red columns ${cursor - 1} ${cursor}`,
          );
          // Each line, 4 pixels either side of the cursor: at the height of its value there
          // (between two events, the straight line between their values; a stepped line, the
          // value after the event before), within 2 pixels, at least half its colour. A line
          // that a line drawn after it covers there is not looked at.
          for (const x of [cursor - 4, cursor + 4]) {
            const e = plot.x[0]! + ((x + 0.5 - plot.left) / plot.width) * (plot.x[1]! - plot.x[0]!);
            const k = Math.floor(e);
            const ys = chart.lines.map((l) => {
              const v = fig[l]!;
              return yOf(chart.stepped ? v[k]! : v[k]! + (e - k) * (v[k + 1]! - v[k]!));
            });
            chart.lines.forEach((l, i) => {
              const y = ys[i]!;
              if (ys.some((o, j) => j > i && Math.abs(o - y) < 4)) return;
              checked++;
              let best = -1;
              for (let r = Math.round(y) - 2; r <= Math.round(y) + 2; r++)
                best = Math.max(best, coverage(pixel(img, x, r), colours.get(l)!));
              if (best < 0.5)
                misses.push(`${l} at event ${e.toFixed(2)} (x ${x}, y ${y.toFixed(1)})`);
            });
          }
        }
        // Stepping moved the cursors.
        if (at === 3)
          for (const [i, c] of cursors.entries()) expect(c).toBeGreaterThan(before[i]! + 10);
        before = cursors;
      }
      expect(misses).toEqual([]);
      expect(checked).toBeGreaterThanOrEqual(16);
      // With a what-if's RSS on the chart (a dashed line), the cursor is still solid.
      await p.eval(`document.getElementById('settings').value = 'M_MMAP_THRESHOLD=512K'`);
      await p.eval(`document.querySelector('#whatif button').click()`);
      await p.waitFor(`document.getElementById('whatif-result').dataset.peakRss !== undefined`);
      const img = readPng(await p.shot('#chart canvas'));
      expect(redColumns(img, await plotOf(p, '#chart'))).toEqual([before[0]! - 1, before[0]!]);
      expect(p.errors).toEqual([]);
      await p.close();
    }, 30_000);

    it('opens a trace picked with the file input (gzip here), then one dropped onto the page, in the page read from file://', async () => {
      const p = await browser.newPage(`file://${await bare()}`);
      await p.waitFor(`document.body.dataset.ptsimState === 'empty'`);
      const gz = join(dir, 'thread-arenas.trace.gz');
      writeFileSync(gz, gzipSync(readFileSync('traces/thread-arenas.trace')));
      await p.pickFiles(FILE_INPUT, [gz]);
      await opened(p, 'thread-arenas.trace.gz');
      await expectShows(p, 'traces/thread-arenas.trace', [3, 2056]);
      // Dragged over the page, the page is outlined; dropped, the file replaces the trace.
      const file = join(ROOT, 'traces/scenarios/2-fastbins.trace');
      await p.drag('dragEnter', [file], 400, 300);
      await p.drag('dragOver', [file], 400, 300);
      await p.waitFor(`document.body.classList.contains('dragging')`);
      await p.drag('drop', [file], 400, 300);
      await opened(p, '2-fastbins.trace');
      expect(await p.eval<boolean>(`document.body.classList.contains('dragging')`)).toBe(false);
      await expectShows(p, 'traces/scenarios/2-fastbins.trace', [2, 8]);
      // The binary form of a trace (here gzip-compressed) opens as its text does.
      const parts: Uint8Array[] = [];
      const enc = new BinaryTraceEncoder((b) => parts.push(b.slice()));
      enc.end(readTraceText(readFileSync('traces/thread-arenas.trace'), 'x', enc).lines);
      const bin = join(dir, 'thread-arenas.ptb.gz');
      writeFileSync(bin, gzipSync(Buffer.concat(parts)));
      await p.pickFiles(FILE_INPUT, [bin]);
      await opened(p, 'thread-arenas.ptb.gz');
      await expectShows(p, 'traces/thread-arenas.trace', [3, 2056]);
      expect(p.errors).toEqual([]);
      await p.close();
    }, 60_000);

    it('served by ptsim web: fetches its trace; opens a picked one, a scenario from the menu and one the address names', async () => {
      const { url, stop } = await serve('traces/malloc-trim.trace');
      const p = await browser.newPage(url);
      await opened(p, 'malloc-trim.trace');
      await expectShows(p, 'traces/malloc-trim.trace', [1, 28]);
      await p.eval(
        `(() => { const s = document.getElementById('examples'); s.value = '3-pinned-top'; s.dispatchEvent(new Event('change')); })()`,
      );
      await opened(p, '3-pinned-top.trace');
      const text = readFileSync('traces/scenarios/3-pinned-top.trace', 'utf8');
      expect(text).toContain(
        (await p.eval<string>(`document.getElementById('story').textContent`)).slice(0, 60),
      );
      await expectShows(p, 'traces/scenarios/3-pinned-top.trace', [4, 8]);
      await p.pickFiles(FILE_INPUT, [join(ROOT, 'traces/scenarios/5-trim-threshold.trace')]);
      await opened(p, '5-trim-threshold.trace');
      await expectShows(p, 'traces/scenarios/5-trim-threshold.trace', [5]);
      expect(p.errors).toEqual([]);
      await p.close();
      // The address names a scenario: it opens rather than the trace served.
      const q = await browser.newPage(url + '#scenario=6-arenas');
      await opened(q, '6-arenas.trace');
      await expectShows(q, 'traces/scenarios/6-arenas.trace', [5]);
      // Named in the address of the open page: it opens in place of the one shown.
      await q.eval(`location.hash = 'scenario=2-fastbins'`);
      await opened(q, '2-fastbins.trace');
      await expectShows(q, 'traces/scenarios/2-fastbins.trace', [6]);
      expect(await q.eval<string>(`document.getElementById('examples').value`)).toBe('2-fastbins');
      expect(q.errors).toEqual([]);
      await q.close();
      // A name that is none of them: said so, in one line.
      const r = await browser.newPage(url + '#scenario=7-nothing');
      await r.waitFor(`document.body.dataset.ptsimState === 'error'`);
      expect(await r.eval<string>(`document.getElementById('status').textContent`)).toBe(
        'no scenario is called 7-nothing',
      );
      await r.close();
      expect(await stop()).toBe(0);
    }, 60_000);
  },
);
