/**
 * ptsim web: the exported page embeds the trace (converted, gzip) and the scenarios; a mistake in
 * the trace is one line and writes nothing; the server serves the page and the trace on the
 * loopback address. Then, in one headless Chromium (where it is installed, or can be): the page
 * read from file:// shows at each event the chunks `ptsim show --json` lists at that event,
 * stepping and scrubbing back included; hostile tokens stay text; and the heap map's pixels have,
 * along its first row, the colours of the chunks the model holds there.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChunkView, HeapView } from '../../src/analysis/heap-view.js';
import { findChromium } from '../helpers/browser.js';
import { Browser, type Page } from '../helpers/cdp.js';
import { inProcess, MAIN, ROOT } from '../helpers/cli.js';
import { readPng } from '../helpers/png.js';

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
    const page = await exportPage('evil', [hostileTrace]);
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

describe('ptsim web TRACE', () => {
  it('serves the page and the trace on 127.0.0.1, prints the address, stops on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [MAIN, 'web', 'traces/malloc-trim.trace', '--port', '0'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /http:\/\/127\.0\.0\.1:\d+\//.exec(out);
        if (m !== null) resolve(m[0]);
      });
      child.once('exit', () => reject(new Error('ptsim web ended: ' + out)));
    });
    const page = await (await fetch(url)).text();
    const e = embeddedOf(page);
    expect(e.trace).toBeNull();
    expect(e.traceUrl).toBe('trace?name=malloc-trim.trace');
    const trace = Buffer.from(await (await fetch(new URL(e.traceUrl!, url))).arrayBuffer());
    // A native trace goes as it is, so that the page gives the file's own line numbers.
    expect(trace.equals(readFileSync(join(ROOT, 'traces/malloc-trim.trace')))).toBe(true);
    expect((await fetch(new URL('/nothing', url))).status).toBe(404);
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c));
      child.kill('SIGTERM');
    });
    expect(code).toBe(0);
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
          await p.eval(
            `(() => { const s = document.getElementById('scrub'); s.value = '${at}'; s.dispatchEvent(new Event('input')); })()`,
          );
          await ready(p, at);
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
      const page = join(dir, 'evil', 'index.html');
      const p = await browser.newPage(`file://${page}`);
      await ready(p, -1);
      await p.eval(
        `(() => { const s = document.getElementById('scrub'); s.value = '4'; s.dispatchEvent(new Event('input')); })()`,
      );
      await ready(p, 4);
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
      const page = join(dir, 'bare', 'index.html');
      const p = await browser.newPage(`file://${page}#scenario=4-dynamic-threshold`);
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
      const page = join(dir, 'bare', 'index.html');
      const p = await browser.newPage(`file://${page}#scenario=1-tcache`);
      await ready(p, -1);
      await p.eval(
        `(() => { const s = document.getElementById('scrub'); s.value = '5'; s.dispatchEvent(new Event('input')); })()`,
      );
      await ready(p, 5);
      // What the model holds after the three frees, from ptsim itself.
      const shown = await showJson('traces/scenarios/1-tcache.trace', 5);
      const states = shown.chunks.map((c) => c.state);
      expect(states).toEqual(['tcache-struct', 'tcache', 'tcache', 'tcache', 'top']);
      const rect = await p.eval<{ x: number; y: number; width: number; height: number }>(
        `(() => { const r = document.getElementById('heap-map').getBoundingClientRect(); return { x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height }; })()`,
      );
      const img = readPng(await p.screenshot(rect));
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
  },
);
