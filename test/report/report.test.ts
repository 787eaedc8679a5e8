/**
 * ptsim report: the page's data block holds, for each configuration, the figures of a separate
 * replay with those settings; the threshold history and the pins are those of ptsim explain; the
 * page needs no network; everything taken from the trace is escaped; bad input is one clear line
 * and leaves an existing file alone. Where Chromium is installed, the page is also opened headless
 * and must draw its charts and heap map without a script error.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CAUSES } from '../../src/analysis/breakdown.js';
import { escapeHtml } from '../../src/report/escape.js';
import type { ReportData } from '../../src/report/report.js';
import { replayFile } from '../../src/replay/run-file.js';
import { heapMap } from '../../src/report/heap-map.js';
import { dumpDom, findChromium } from '../helpers/browser.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const MAIN = join(ROOT, 'dist/bin/main.js');
const dir = mkdtempSync(join(tmpdir(), 'ptsim-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ptsim(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    cwd: ROOT,
    maxBuffer: 1 << 26,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** The JSON data block, read back as a browser's JSON.parse would read it. */
function dataOf(html: string): ReportData {
  const m = /<script type="application\/json" id="ptsim-data">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!) as ReportData;
}

function report(
  trace: string,
  name: string,
  extra: string[],
): { html: string; data: ReportData; out: string; path: string } {
  const path = join(dir, name);
  const r = ptsim(['report', trace, '-o', path, '--cores', '2', ...extra]);
  expect(r.err).not.toMatch(/Error|at .*\.js:/);
  expect(r.code).toBe(0);
  const html = readFileSync(path, 'utf8');
  return { html, data: dataOf(html), out: r.out, path };
}

const CONFIGS = ['M_MMAP_THRESHOLD=131072', 'glibc.malloc.arena_max=1 M_TRIM_THRESHOLD=0'];
const SINGLE = [
  [],
  ['--mallopt', 'M_MMAP_THRESHOLD=131072'],
  ['--tunables', 'glibc.malloc.arena_max=1', '--mallopt', 'M_TRIM_THRESHOLD=0'],
];

describe('ptsim report', () => {
  const load = report('traces/load-test.trace', 'load.html', [
    ...CONFIGS.flatMap((c) => ['--config', c]),
    '--samples',
    '300',
    '--no-what-if',
  ]);

  it('charts each configuration with the figures of a separate replay', () => {
    const { data } = load;
    expect(data.format).toBe('ptsim-report/1');
    expect(data.configs.map((c) => c.name)).toEqual(['default', ...CONFIGS]);
    SINGLE.forEach((args, i) => {
      const s = JSON.parse(
        ptsim(['replay', 'traces/load-test.trace', '--cores', '2', '--json', ...args]).out,
      ) as { rss: number; peakRss: number; events: number; syscalls: object; pageFaults: number };
      const c = data.configs[i]!;
      const n = c.series.event.length;
      expect(n).toBeLessThanOrEqual(300);
      expect(n).toBeGreaterThan(50);
      // The last sample is the last event, the highest sample is the replay's peak.
      expect(c.series.event[n - 1]).toBe(s.events - 1);
      expect(c.series.rss[n - 1]).toBe(s.rss);
      expect(Math.max(...c.series.rss)).toBe(s.peakRss);
      expect(c.summary.rss).toBe(s.rss);
      expect(c.summary.peakRss).toBe(s.peakRss);
      expect(c.summary.syscalls).toEqual(s.syscalls);
      expect(c.summary.pageFaults).toBe(s.pageFaults);
      // Samples in event order.
      for (let k = 1; k < n; k++) expect(c.series.event[k]).toBeGreaterThan(c.series.event[k - 1]!);
    });
  });

  it('has, at sampled events, what a replay stopped there has', async () => {
    const c = load.data.configs[1]!;
    const picks = [3, 40, 120, 200].map((k) => Math.min(k, c.series.event.length - 2));
    for (const k of picks) {
      const run = await replayFile('traces/load-test.trace', {
        cores: 2,
        mallopts: [[-3, 131072]],
        stopAfter: c.series.event[k]!,
      });
      const r = run.replayer!;
      const s = r.finish();
      expect(c.series.rss[k]).toBe(s.rss);
      expect(c.series.mmapped[k]).toBe(s.mmapped);
      expect(c.series.heap[k]).toBe(r.process.arenas.reduce((n, a) => n + a.systemMem, 0));
      expect(c.series.mmapThreshold[k]).toBe(r.process.mp.mmapThreshold);
      expect(c.series.trimThreshold[k]).toBe(r.process.mp.trimThreshold);
      if (c.series.live[k] !== null) expect(c.series.live[k]).toBe(s.liveBytes);
      if (c.series.causes['free-top'][k] !== null) {
        let sum = 0;
        for (const cause of CAUSES) sum += c.series.causes[cause][k]!;
        expect(sum).toBe(s.rss);
      }
    }
  });

  it("maps the heap at the peak as a replay stopped there has it, at the peak event's time", async () => {
    // Pointers for tokens (the replay to the peak runs without event objects between the events
    // it looks at) and times: the moment's time is the peak event's @TIME.
    const P = (i: number): string => `0x${(0x10000 + 16 * i).toString(16)}`;
    const lines = ['# ptsim trace v1'];
    let t = 1000;
    for (let i = 0; i < 3000; i++)
      lines.push(`@${(t += 7)} 1 malloc ${32 + (i % 50) * 16} ${P(i)}`);
    for (let i = 0; i < 3000; i += 2) lines.push(`@${(t += 5)} 1 free ${P(i)}`);
    for (let i = 3000; i < 3400; i++) lines.push(`@${(t += 3)} 1 malloc 24 ${P(i)}`);
    const trace = join(dir, 'peak-timed.trace');
    writeFileSync(trace, lines.join('\n') + '\n');
    const { data } = report(trace, 'peak.html', ['--at', 'peak', '--no-what-if']);
    const whole = (await replayFile(trace, { cores: 2 })).replayer!.finish();
    expect(data.moment.event).toBe(whole.peakEvent);
    let time = -1;
    const run = await replayFile(trace, {
      cores: 2,
      stopAfter: whole.peakEvent,
      observe: (ev) => {
        time = ev.time;
      },
    });
    expect(data.moment.time).toBe(time);
    expect(time).toBeGreaterThan(1000);
    // The report names each pin's token and line, which explain knows and the map does not.
    const shown = {
      ...data.heapMap,
      pins: data.heapMap.pins.map(({ token: _t, line: _l, ...pin }) => pin),
    };
    expect(JSON.stringify(shown)).toBe(
      JSON.stringify(heapMap(run.replayer!.process, whole.peakEvent)),
    );
  });

  it('shows the threshold history and the pins of ptsim explain', () => {
    const e = JSON.parse(
      ptsim(['explain', 'traces/load-test.trace', '--cores', '2', '--json', '--no-what-if']).out,
    ) as {
      moments: Array<{
        event: number;
        residentBytes: number;
        pins: Array<{ addr: number; token: string; line: number; heldBytes: number }>;
        thresholds: Array<{ event: number }>;
      }>;
    };
    const m = e.moments[0]!;
    const d = load.data;
    expect(d.explanation.moments[0]!.residentBytes).toBe(m.residentBytes);
    expect(d.moment.event).toBe(m.event);
    // The load test raises the dynamic threshold once; the default configuration's history shows it
    // at the same event, and a fixed threshold has no dynamic change at all.
    expect(d.explanation.moments[0]!.thresholds).toEqual(m.thresholds);
    expect(d.configs[0]!.thresholds.map((t) => t.event)).toEqual(m.thresholds.map((t) => t.event));
    expect(d.configs[1]!.thresholds.filter((t) => t.cause.startsWith('dynamic'))).toEqual([]);
    // The heap map marks the chunk explain names as the pin, with its token and line.
    expect(m.pins.length).toBeGreaterThan(0);
    expect(d.heapMap.pins.map((p) => [p.addr, p.token, p.line])).toEqual(
      m.pins.map((p) => [p.addr, p.token, p.line]),
    );
    // Each region's states tile it: chunk bytes plus glibc's metadata cover the region exactly.
    const main = d.heapMap.regions[0]!;
    expect(main.arena).toBe(0);
    if (main.chunks !== undefined) {
      let end = 0;
      for (let k = 0; k < main.chunks.off.length; k++) {
        expect(main.chunks.off[k]).toBeGreaterThanOrEqual(end);
        end = main.chunks.off[k]! + main.chunks.size[k]!;
      }
      expect(end).toBeLessThanOrEqual(main.size);
    }
  });

  it("shows explain's notes and what the settings do not do in glibc", () => {
    // An mtrace log has no thread ids (explain's note); M_MXFAST=1000 is refused by glibc's
    // mallopt (it takes 0 to 160), which the command warns about and the page says too.
    const log = join(dir, 'notes.mtrace');
    writeFileSync(
      log,
      '= Start\n@ ./a.out:(main+0x1e)[0x555555555169] + 0x5555555592a0 0x10\n@ ./a.out:(main+0x2e)[0x555555555179] - 0x5555555592a0\n= End\n',
    );
    const { data, html } = report(log, 'notes.html', ['--config', 'M_MXFAST=1000', '--no-what-if']);
    expect(data.notes).toEqual([
      expect.stringMatching(/^M_MXFAST=1000: mallopt\(M_MXFAST, 1000\) returns 0/),
      expect.stringMatching(
        /^glibc's mtrace log has no thread ids: every call is replayed on one thread/,
      ),
    ]);
    for (const n of data.notes)
      expect(html).toContain(`<p class="note warn">Note: ${escapeHtml(n)}.</p>`);
    const plain = report(log, 'notes-plain.html', ['--no-what-if']);
    expect(plain.data.notes).toHaveLength(1);
  });

  it('opens without a network: every script and style inline, nothing fetched', () => {
    const { html } = load;
    expect(html).not.toMatch(
      /<(script|img|iframe|link|audio|video|source|embed|object)\b[^>]*\b(src|href|data)\s*=/i,
    );
    expect(html).not.toMatch(/@import|url\(\s*['"]?(https?:)?\/\//i);
    expect(html.match(/<script\b/g)).toHaveLength(3);
    expect(html).toContain('uPlot');
    // uPlot's licence travels with its code.
    expect(html).toMatch(/Permission is hereby granted/);
  });

  it("draws the recording's #:rss samples beside the RSS, and says where they part", () => {
    // No samples: no measured line, no paragraph.
    expect(load.data.configs[0]!.measured).toBeUndefined();
    expect(load.html).not.toContain('Measured by the process');
    const trace = join(dir, 'measured.trace');
    writeFileSync(
      trace,
      [
        '#:rss anon=4194304 rec=65536',
        '1 malloc 524288 a',
        '#:rss anon=4726784 rec=65536 mark=big',
        '1 malloc 100 b',
        '1 free b',
        '#:rss anon=13631488 rec=65536',
        '1 malloc 200 c',
        '',
      ].join('\n'),
    );
    const { html, data } = report(trace, 'measured.html', ['--no-what-if']);
    // The replay: a mmapped chunk of 129 pages (512 KiB + 16 bytes, all written) and the main
    // heap's first page (the tcache's block): 532,480 bytes from event 0 on, 0 before it. The
    // baseline: 4 MiB - 64 KiB measured against 0 modelled at the first sample. Each sample at
    // the time of the event it follows (an untimed trace: its index; the first at event 0's).
    expect(data.configs[0]!.measured).toEqual({
      of: 'anon',
      time: [0, 0, 2],
      bytes: [0, 532480, 9 * 1024 * 1024],
      baseline: 4194304 - 65536,
    });
    // The end (event 3) is explained beside the sample after event 2: 9 MiB against 520 KiB.
    expect(html).toContain('Measured by the process: RssAnon <b>13.0 MiB</b>');
    expect(html).toContain('the #:rss sample after event 2, the last before this moment');
    expect(html).toContain('measured 9.00 MiB, modelled 520.0 KiB; they differ');
    expect(html).toContain(
      'the process&#39;s RssAnon grew 8.49 MiB more than the replay&#39;s RSS',
    );
    expect(html).toContain('Grey line: what the process measured of itself (3 #:rss samples)');
    expect(html).toContain('less 3.94 MiB, what it held before its first allocator call');
  });

  it('draws samples of the whole RSS alone (total=) as such, beside the replay, with no verdict', () => {
    const trace = join(dir, 'total.trace');
    writeFileSync(
      trace,
      [
        '#:rss total=8388608',
        '1 malloc 524288 a',
        '#:rss total=8921088',
        '1 malloc 100 b',
        '1 free b',
        '#:rss total=9437184',
        '1 malloc 200 c',
        '',
      ].join('\n'),
    );
    const { html, data } = report(trace, 'total.html', ['--no-what-if']);
    // The baseline: the rest of the process at the first sample, 8 MiB against 0 modelled.
    expect(data.configs[0]!.measured).toEqual({
      of: 'total',
      time: [0, 0, 2],
      bytes: [0, 532480, 1024 * 1024],
      baseline: 8388608,
    });
    // At the end: 9 MiB whole against the replay's 520 KiB, the rest 8.49 MiB.
    expect(html).toContain(
      'Measured by the process: the process&#39;s whole RSS 9.00 MiB (total=, what top shows as RES), the replay&#39;s RSS of the allocator&#39;s memory 520.0 KiB: the difference, 8.49 MiB, is the rest of the process',
    );
    expect(html).toContain('the sample has no RssAnon (anon=), so the growth comparison');
    expect(html).not.toContain('RssAnon <b>');
    expect(html).not.toContain('they differ');
    expect(html).toContain("total= only), beside the default configuration's RSS: its whole RSS");
  });

  it('escapes everything taken from the trace', () => {
    const evil = '</script><script>document.title="pwned"</script>';
    const trace = join(dir, 'evil<b>.trace');
    writeFileSync(
      trace,
      [
        '# <script>document.title="pwned-header"</script> & <b>bold</b>',
        '# pid <img src=x onerror="document.title=1">',
        '# exe </script><script>document.title="pwned-exe"</script>',
        '1 malloc 200000 big1',
        '1 malloc 1000 a',
        '1 free big1',
        '1 malloc 300000 big2',
        '1 malloc 300000 big3',
        // The pin: a late small block above the freed ones.
        `1 malloc 40 ${evil}`,
        '1 free big2',
        '1 free big3',
        '',
      ].join('\n'),
    );
    const { html, data } = report(trace, 'evil.html', [
      '--no-what-if',
      '--config',
      'M_MMAP_THRESHOLD=4096',
    ]);
    // Three script elements and no others; the payloads only ever appear escaped.
    expect(html.match(/<script\b/gi)).toHaveLength(3);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>bold');
    expect(html).toContain('&lt;script&gt;document.title=&quot;pwned-header&quot;');
    expect(html).toContain('evil&lt;b&gt;.trace');
    // The data block gives the browser the very strings of the trace.
    expect(data.trace).toBe(trace);
    expect(data.heapMap.pins.map((p) => p.token)).toContain(evil);
    expect(data.header.facts).toContainEqual(['pid', '<img src=x onerror="document.title=1">']);
    expect(data.header.comments[0]).toBe(
      '<script>document.title="pwned-header"</script> & <b>bold</b>',
    );
  });

  it('refuses bad input in one line and keeps an existing file', () => {
    const bad = join(dir, 'bad.trace');
    writeFileSync(bad, '1 malloc 10 a\n1 mallok 10 b\n');
    const out = join(dir, 'keep.html');
    writeFileSync(out, 'previous report');
    const r = ptsim(['report', bad, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${bad}:2`);
    expect(r.err).not.toMatch(/at .*\.js:/);
    expect(readFileSync(out, 'utf8')).toBe('previous report');
    const fresh = join(dir, 'fresh.html');
    expect(ptsim(['report', bad, '-o', fresh]).code).toBe(2);
    expect(existsSync(fresh)).toBe(false);
    const noOut = ptsim(['report', 'traces/load-test.trace']);
    expect(noOut.code).toBe(2);
    expect(noOut.err).toMatch(/^ptsim: report needs -o FILE.html/);
    const dirOut = ptsim([
      'report',
      'traces/load-test.trace',
      '-o',
      join(dir, 'no/such/dir/r.html'),
    ]);
    expect(dirOut.code).toBe(2);
    expect(dirOut.err).toContain('cannot write it');
  });

  const CHROMIUM = findChromium();
  it.skipIf(CHROMIUM === undefined)(
    'draws its charts and heap map in a headless browser, with no script error (skipped where Chromium is missing and cannot be installed)',
    () => {
      // measured.html: the RSS chart with the measured line (the test above writes it).
      for (const page of [load.path, join(dir, 'evil.html'), join(dir, 'measured.html')]) {
        const dom = dumpDom(CHROMIUM!, page, tmpdir());
        expect(/data-ptsim-error="[^"]*"/.exec(dom)?.[0]).toBeUndefined();
        const drawn = /data-ptsim-drawn="(\d+) charts, (\d+) heap map canvases"/.exec(dom);
        expect(drawn).not.toBeNull();
        // One chart of RSS for all configurations, one per configuration, one of the thresholds.
        const configs = page === load.path ? 3 : page.endsWith('evil.html') ? 2 : 1;
        expect(Number(drawn![1])).toBe(configs + 2);
        expect(Number(drawn![2])).toBeGreaterThan(0);
        // Each heap map canvas is drawn when the page opens, not only after a resize.
        const mapCanvases = [
          ...dom
            .slice(dom.indexOf('id="heap-map"'))
            .matchAll(/<canvas width="(\d+)" height="(\d+)"/g),
        ];
        expect(mapCanvases).toHaveLength(Number(drawn![2]));
        for (const c of mapCanvases) expect(Number(c[2])).toBeGreaterThan(0);
        // No payload ran: each would have changed the title.
        const title = /<title>([^<]*)<\/title>/.exec(dom);
        expect(title![1]).toMatch(/^ptsim report: /);
        expect(title![1]).not.toContain('pwned');
      }
    },
    200_000,
  );
});
