/**
 * The visualizer's page as one HTML file that opens without a network, from file:// or from
 * `ptsim web`'s server: the page's script and its worker's (bundled from src/web/client by
 * `npm run build`), uPlot inlined, the teaching scenarios, and the trace itself (gzip, base64) or
 * the address to fetch it from. Text from a trace reaches the HTML only through jsonForScript and
 * escapeHtml; the page's script puts it on screen as text.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chartAssets } from '../report/assets.js';
import { escapeHtml as h, inlineScript, inlineStyle, jsonForScript } from '../report/escape.js';

/** A teaching scenario: a trace of traces/scenarios with its title and story. */
export interface Scenario {
  id: string;
  title: string;
  story: string;
  trace: string;
}

const ROOT = new URL('../../', import.meta.url);

/** The folder of the bundled teaching scenarios. */
const SCENARIOS_DIR = fileURLToPath(new URL('traces/scenarios/', ROOT));

/**
 * A scenario's title and story from its first comment lines: `# scenario: TITLE`, then the story,
 * up to a bare `#` line.
 */
function readScenario(id: string, text: string): Scenario {
  const lines = text.split('\n');
  const first = /^# scenario: (.+)$/.exec(lines[0] ?? '');
  if (first === null) throw new Error(`${id}.trace: the first line must be '# scenario: TITLE'`);
  const story: string[] = [];
  for (const l of lines.slice(1)) {
    if (l.trim() === '#' || !l.startsWith('#')) break;
    story.push(l.replace(/^# ?/, ''));
  }
  return { id, title: first[1]!.trim(), story: story.join(' '), trace: text };
}

/** The small bundled traces of the field reports, offered beside the scenarios. */
const EXAMPLES = ['malloc-trim', 'thread-arenas', 'load-test'];

/**
 * A bundled trace as an example: the title and the report of its field report (the page of that
 * name in docs/field-reports, the paragraph that starts "The report."), markdown made text.
 */
function example(id: string): Scenario {
  const report = readFileSync(fileURLToPath(new URL(`docs/field-reports/${id}.md`, ROOT)), 'utf8');
  const title = /^# (?:Field report: )?(.*)$/m.exec(report)?.[1] ?? id;
  const para = /^\*\*The report\.\*\* ([\s\S]*?)\n\n/m.exec(report)?.[1] ?? '';
  const text = (s: string): string =>
    s
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/[`*]/g, '')
      .replace(/\s+/g, ' ')
      .trim();
  return {
    id,
    title: `Field report: ${text(title)} (${id}.trace)`,
    story: text(para),
    trace: readFileSync(fileURLToPath(new URL(`traces/${id}.trace`, ROOT)), 'utf8'),
  };
}

let scenarios: Scenario[] | null = null;

/** The bundled scenarios, in the order of their file names, then the bundled examples. */
function bundledScenarios(): Scenario[] {
  scenarios ??= [
    ...readdirSync(SCENARIOS_DIR)
      .filter((f) => f.endsWith('.trace'))
      .sort()
      .map((f) => readScenario(f.slice(0, -6), readFileSync(SCENARIOS_DIR + f, 'utf8'))),
    // Where the repository's docs and traces are not there (an installed package), none.
    ...EXAMPLES.flatMap((id) => {
      try {
        return [example(id)];
      } catch {
        return [];
      }
    }),
  ];
  return scenarios;
}

function clientScript(name: string): string {
  // From the package's root: this module also runs bundled, from dist/bin (npm run build:bin).
  const file = fileURLToPath(new URL(`dist/web/client/${name}.js`, ROOT));
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`the visualizer's script ${file} is missing: run npm run build`, {
      cause: e,
    });
  }
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; margin: 0; background: #f7f7f5; }
body.dragging { outline: 4px dashed #3b7dd8; outline-offset: -8px; }
header { background: #1a202c; color: #fff; padding: 10px 18px; display: flex; flex-wrap: wrap; gap: 14px; align-items: center; }
header h1 { font-size: 18px; margin: 0; }
#trace-name { font-family: ui-monospace, monospace; word-break: break-all; }
main { padding: 12px 18px; }
#controls { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; position: sticky; top: 0; background: #f7f7f5; padding: 8px 0; z-index: 5; }
#controls button { min-width: 44px; }
#scrub { flex: 1; min-width: 240px; }
#event { width: 8em; }
#sentence { font-size: 16px; background: #fff; border-left: 4px solid #d62728; padding: 8px 12px; min-height: 1.5em; margin: 6px 0; }
#figures, #timing, .note { color: #4a5568; font-size: 13px; }
#status.error { color: #9b2c2c; font-weight: 600; }
#story { font-style: italic; max-width: 70em; }
#layout { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 18px; }
@media (max-width: 1000px) { #layout { grid-template-columns: minmax(0, 1fr); } }
h2 { font-size: 16px; margin: 18px 0 6px; border-bottom: 1px solid #d2d6dc; padding-bottom: 3px; }
.box { background: #fff; padding: 6px; }
pre { background: #fff; padding: 8px; margin: 0; font-size: 12px; overflow-x: auto; max-height: 420px; }
#legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
#legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
#chunk-info { font-family: ui-monospace, monospace; font-size: 12px; min-height: 1.4em; word-break: break-all; }
#chunks { border-collapse: collapse; background: #fff; font-size: 12px; font-family: ui-monospace, monospace; }
#chunks th, #chunks td { padding: 2px 8px; border-bottom: 1px solid #edf2f7; text-align: right; }
#chunks td:nth-child(5), #chunks td:nth-child(7) { text-align: left; }
#chunks td:nth-child(5) { border-left: 6px solid var(--state); }
#chunks td:nth-child(7) { word-break: break-all; }
.table-box { max-height: 480px; overflow: auto; }
#settings { width: 32em; }
`;

export interface PageOptions {
  /** The trace to embed: its name and bytes (any compression the page reads: none or gzip). */
  trace?: { name: string; bytes: Uint8Array };
  /** Or the address to fetch it from, beside the page. */
  traceUrl?: string;
}

/** The page, whole. */
export function webPage(opts: PageOptions = {}): string {
  const chart = chartAssets();
  const trace =
    opts.trace === undefined
      ? null
      : {
          name: opts.trace.name,
          gzip64: (opts.trace.bytes[0] === 0x1f && opts.trace.bytes[1] === 0x8b
            ? Buffer.from(opts.trace.bytes)
            : gzipSync(opts.trace.bytes)
          ).toString('base64'),
        };
  const embedded = {
    trace,
    traceUrl: opts.traceUrl ?? null,
    scenarios: bundledScenarios(),
  };
  const title = opts.trace?.name ?? 'a trace';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ptsim web: ${h(title)}</title>
<style>${inlineStyle(chart.style)}</style>
<style>${STYLE}</style>
</head>
<body data-ptsim-state="starting">
<header>
<h1>ptsim web</h1>
<span id="trace-name"></span>
<label>Open a trace: <input type="file" id="file"></label>
<select id="examples"><option value="">Teaching scenarios and examples…</option></select>
<span class="note">or drop a trace onto the page</span>
</header>
<main>
<p id="story"></p>
<div id="controls">
<button id="start" title="before the first event">&#124;◀</button>
<button id="back" title="back one event (←)">◀</button>
<button id="play" title="play or pause (space)">play</button>
<button id="next" title="next event (→)">▶</button>
<button id="end" title="the last event">▶&#124;</button>
<input type="range" id="scrub" min="-1" max="0" value="-1" aria-label="event">
<label>event <input type="number" id="event" min="-1" value="-1"></label>
<label>speed <select id="speed"><option value="1">1</option><option value="10">10</option><option value="100">100</option><option value="1000">1000</option><option value="10000">10000</option></select> events a step</label>
<span id="timing"></span>
</div>
<p id="sentence"></p>
<p id="figures"></p>
<p id="status"></p>
<div id="layout">
<div>
<h2>Heap</h2>
<div id="legend"></div>
<div class="box"><canvas id="heap-map"></canvas></div>
<p id="map-note" class="note"></p>
<div id="chunk-info"></div>
<h2>Resident pages</h2>
<div class="box"><canvas id="pages"></canvas></div>
<h2>Memory along the trace</h2>
<div id="chart" class="box"></div>
<form id="whatif"><label>mallopt, tunables: <input id="settings" placeholder="M_MMAP_THRESHOLD=128K glibc.malloc.trim_threshold=0"></label> <button>Replay with these settings</button></form>
<p id="whatif-result" class="note"></p>
<div id="threshold-chart" class="box"></div>
<h2>Threshold history</h2>
<ul id="thresholds"></ul>
</div>
<div>
<h2>Bins</h2>
<pre id="bins"></pre>
<h2>Arenas</h2>
<pre id="arenas"></pre>
<h2>Mappings (/proc/self/maps, Rss)</h2>
<pre id="maps"></pre>
<h2>Chunks</h2>
<div class="table-box"><table id="chunks"><thead><tr><th>arena</th><th>heap</th><th>off</th><th>size</th><th>state</th><th>usable</th><th>token</th></tr></thead></table></div>
</div>
</div>
<p class="note">uPlot ${h(chart.version)} is inlined under its MIT licence:</p>
<pre class="note">${h(chart.license)}</pre>
</main>
<script type="application/json" id="ptsim-embedded">${jsonForScript(embedded)}</script>
<script type="text/plain" id="ptsim-worker">${inlineScript(clientScript('worker'))}</script>
<script>${inlineScript(chart.script)}</script>
<script>${inlineScript(clientScript('app'))}</script>
</body>
</html>
`;
}
