/**
 * The visualizer's page: loads a trace (embedded in the page, served beside it, picked, dropped,
 * or one of the bundled scenarios) into the worker (engine.ts) and shows the allocator at the
 * event asked for: the heap as an address-ordered map of chunks coloured by state, the chunks as a
 * table, the bins, arenas and mappings, the resident pages, the figures along the trace with the
 * event cursor, the threshold history and the sentence of the step. Play, step, scrub and jump
 * move the cursor; the worker answers each move from its checkpoints.
 *
 * Everything a trace says (file names, tokens, header lines, messages that quote them) reaches the
 * page as text (textContent, canvas fillText, attribute values set from script), never as markup.
 */

import type { ChunkView, HeapView, ListEntry } from '../../analysis/heap-view.js';
import type { ThresholdChange } from '../../analysis/thresholds.js';
import type { PageStrip, Reply, Request, Series } from './protocol.js';

/** A teaching scenario, as the page embeds it. */
interface Scenario {
  id: string;
  title: string;
  story: string;
  trace: string;
}

interface Embedded {
  /** The trace to open at once: its name and its bytes (gzip), base64. */
  trace: { name: string; gzip64: string } | null;
  /** A URL beside the page to fetch the trace from (ptsim web serving it). */
  traceUrl: string | null;
  scenarios: Scenario[];
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error('the page has no #' + id);
  return el as T;
};

const body = document.body;
const embedded = JSON.parse($('ptsim-embedded').textContent ?? '{}') as Embedded;

/* ------------------------------------------------------------------ formatting */

function fmtBytes(n: number | null): string {
  if (n === null || !Number.isFinite(n)) return '-';
  const a = Math.abs(n);
  if (a < 1024) return String(n) + ' B';
  if (a < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  if (a < 1024 ** 3) return (n / 1024 ** 2).toFixed(2) + ' MiB';
  return (n / 1024 ** 3).toFixed(2) + ' GiB';
}

const hex = (n: number): string => '0x' + n.toString(16);

/** A list as pwndbg prints it: `0x... —▸ 0x... ◂— 0`. */
function chain(list: ListEntry[], user: boolean): string {
  return list.map((e) => hex(user ? e.addr + 16 : e.addr)).join(' —▸ ') + ' ◂— 0';
}

function setText(el: HTMLElement, text: string): void {
  el.textContent = text;
}

/* ------------------------------------------------------------------ state of the page */

let events = 0;
let last = -1;
let pos = -1;
let series: Series | null = null;
let whatIf: { settings: string; series: Series } | null = null;
let thresholds: ThresholdChange[] = [];
let view: HeapView | null = null;
let pages: PageStrip[] = [];
let playing = false;
/** The event the page wants shown next (null: none waiting), and whether the worker is busy. */
let wanted: number | null = null;
let busy = false;

const worker = new Worker(
  URL.createObjectURL(new Blob([$('ptsim-worker').textContent ?? ''], { type: 'text/javascript' })),
);

function send(req: Request, transfer: Transferable[] = []): void {
  worker.postMessage(req, transfer);
}

function status(text: string, error = false): void {
  const el = $('status');
  setText(el, text);
  el.className = error ? 'error' : '';
}

/** Asks for event n; moves asked for while the worker is busy collapse into the latest. */
function goTo(n: number): void {
  if (events === 0) return;
  wanted = Math.max(-1, Math.min(n, last));
  pump();
}

function pump(): void {
  if (busy || wanted === null) return;
  busy = true;
  body.dataset['ptsimState'] = 'busy';
  send({ type: 'goto', event: wanted });
  wanted = null;
}

worker.onmessage = (e: MessageEvent<Reply>): void => {
  const r = e.data;
  if (r.type === 'error') {
    busy = false;
    body.dataset['ptsimState'] = 'error';
    status(r.message, true);
    return;
  }
  if (r.type === 'loaded') {
    events = r.events;
    last = r.last;
    series = r.series;
    thresholds = r.thresholds;
    whatIf = null;
    document.title = 'ptsim web: ' + r.name;
    setText($('trace-name'), r.name);
    const scrub = $<HTMLInputElement>('scrub');
    scrub.min = '-1';
    scrub.max = String(last);
    $<HTMLInputElement>('event').max = String(last);
    status(
      `${r.events} events read and replayed in ${(r.millis / 1000).toFixed(2)} s; a checkpoint every ${r.checkpointEvery} events.` +
        (r.stop === null ? '' : ' The replay stops at ' + r.stop) +
        (r.warnings.length > 0 ? ' Warnings: ' + r.warnings.join('; ') : ''),
    );
    drawThresholdList();
    drawChart();
    return;
  }
  if (r.type === 'whatif') {
    whatIf = { settings: r.settings, series: r.series };
    const result = $('whatif-result');
    result.dataset['peakRss'] = String(r.peakRss);
    result.dataset['finalRss'] = String(r.finalRss);
    setText(
      $('whatif-result'),
      `With ${r.settings === '' ? 'the default settings' : r.settings}: peak RSS ${fmtBytes(r.peakRss)}, RSS at the end ${fmtBytes(r.finalRss)}` +
        (series === null
          ? ''
          : ` (as recorded: ${fmtBytes(Math.max(...series.rss))} and ${fmtBytes(series.rss[series.rss.length - 1] ?? 0)}).`),
    );
    drawChart();
    return;
  }
  busy = false;
  pos = r.pos;
  view = r.view;
  pages = r.pages;
  $<HTMLInputElement>('scrub').value = String(pos);
  $<HTMLInputElement>('event').value = String(pos);
  setText(
    $('sentence'),
    r.step === null
      ? pos < 0
        ? 'Before the first event: nothing allocated yet.'
        : ''
      : `[${r.step.event}] ${r.step.sentence}`,
  );
  setText(
    $('figures'),
    `event ${pos} of ${events} (line ${view.line}) · RSS ${fmtBytes(view.rss)} · brk ${fmtBytes(view.brk)} · mmap threshold ${fmtBytes(view.mmapThreshold)} · trim threshold ${fmtBytes(view.trimThreshold)}`,
  );
  setText($('timing'), `${r.millis.toFixed(0)} ms`);
  drawAll();
  body.dataset['ptsimPos'] = String(pos);
  if (wanted === null) body.dataset['ptsimState'] = 'ready';
  pump();
  if (playing && wanted === null && !busy) {
    if (pos >= last) setPlaying(false);
    else setTimeout(() => playing && goTo(pos + speed()), 120);
  }
};

worker.onerror = (e): void => {
  body.dataset['ptsimState'] = 'error';
  status('the worker failed: ' + e.message, true);
};

/* ------------------------------------------------------------------ loading */

function load(name: string, bytes: ArrayBuffer): void {
  events = 0;
  busy = false;
  wanted = null;
  setPlaying(false);
  body.dataset['ptsimState'] = 'loading';
  status('reading ' + name + '…');
  send({ type: 'load', name, bytes, settings: $<HTMLInputElement>('settings').value.trim() }, [
    bytes,
  ]);
}

function fromBase64(b64: string): ArrayBuffer {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out.buffer;
}

$<HTMLInputElement>('file').addEventListener('change', (e) => {
  const f = (e.target as HTMLInputElement).files?.[0];
  if (f !== undefined) void f.arrayBuffer().then((b) => load(f.name, b));
});

document.addEventListener('dragover', (e) => {
  e.preventDefault();
  body.classList.add('dragging');
});
document.addEventListener('dragleave', () => body.classList.remove('dragging'));
document.addEventListener('drop', (e) => {
  e.preventDefault();
  body.classList.remove('dragging');
  const f = e.dataTransfer?.files[0];
  if (f !== undefined) void f.arrayBuffer().then((b) => load(f.name, b));
});

const examples = $<HTMLSelectElement>('examples');
for (const s of embedded.scenarios) {
  const o = document.createElement('option');
  o.value = s.id;
  o.textContent = s.title;
  examples.appendChild(o);
}

function openScenario(id: string): void {
  const s = embedded.scenarios.find((x) => x.id === id);
  if (s === undefined) return;
  examples.value = id;
  setText($('story'), s.story);
  load(s.id + '.trace', new TextEncoder().encode(s.trace).buffer);
}

examples.addEventListener('change', () => {
  if (examples.value !== '') openScenario(examples.value);
});

/* ------------------------------------------------------------------ controls */

function speed(): number {
  return Number($<HTMLSelectElement>('speed').value) || 1;
}

function setPlaying(on: boolean): void {
  playing = on;
  setText($('play'), on ? 'pause' : 'play');
  if (on) goTo(pos >= last ? 0 : pos + speed());
}

$('play').addEventListener('click', () => setPlaying(!playing));
$('next').addEventListener('click', () => goTo(pos + 1));
$('back').addEventListener('click', () => goTo(pos - 1));
$('start').addEventListener('click', () => goTo(-1));
$('end').addEventListener('click', () => goTo(last));
$<HTMLInputElement>('scrub').addEventListener('input', (e) =>
  goTo(Number((e.target as HTMLInputElement).value)),
);
$<HTMLInputElement>('event').addEventListener('change', (e) =>
  goTo(Number((e.target as HTMLInputElement).value)),
);
document.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
  if (e.key === 'ArrowRight') goTo(pos + 1);
  else if (e.key === 'ArrowLeft') goTo(pos - 1);
  else if (e.key === ' ') {
    e.preventDefault();
    setPlaying(!playing);
  }
});
$('whatif').addEventListener('submit', (e) => {
  e.preventDefault();
  if (events === 0) return;
  setText($('whatif-result'), 'replaying…');
  send({ type: 'whatif', settings: $<HTMLInputElement>('settings').value.trim() });
});

/* ------------------------------------------------------------------ the heap map */

const COLOURS: Record<string, string> = {
  live: '#4e79a7',
  mmapped: '#edc948',
  tcache: '#f28e2b',
  fastbin: '#e15759',
  unsorted: '#b07aa1',
  small: '#76b7b2',
  large: '#59a14f',
  top: '#bab0ac',
  'tcache-struct': '#9c755f',
  fencepost: '#333333',
};

function colourOf(c: ChunkView): string {
  return c.mmapped === true ? COLOURS['mmapped']! : (COLOURS[c.state] ?? '#000000');
}

/** Chunks drawn at most (the table and the panels still list every one). */
const MAP_LIMIT = 5000;

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  c: ChunkView;
}

let boxes: Box[] = [];

function groupName(c: ChunkView): string {
  if (c.arena < 0) return 'chunks mmapped on their own';
  return c.arena === 0 ? 'main arena (brk heap)' : `arena ${c.arena}, heap ${c.heap}`;
}

/** The width inside an element's padding, in CSS pixels: what a canvas in it may take. */
function contentWidth(el: HTMLElement): number {
  const style = getComputedStyle(el);
  return el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
}

/** A canvas sized to width x height CSS pixels at the screen's pixel ratio, cleared to white. */
function clearedCanvas(
  canvas: HTMLCanvasElement,
  width: number,
  height: number,
): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = width + 'px';
  canvas.style.height = height + 'px';
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, width, height);
  return ctx;
}

function drawHeapMap(): void {
  const canvas = $<HTMLCanvasElement>('heap-map');
  const width = Math.max(320, contentWidth(canvas.parentElement!));
  const chunks = view === null ? [] : view.chunks.slice(0, MAP_LIMIT);
  const BOX_H = 34;
  const GAP = 3;
  const HEAD = 18;
  // Layout first: chunks in address order, wrapped into rows, a title above each heap.
  boxes = [];
  const titles: Array<{ y: number; text: string }> = [];
  let x = 0;
  let y = 0;
  let group = '';
  for (const c of chunks) {
    const g = groupName(c);
    if (g !== group) {
      if (group !== '') y += BOX_H + GAP;
      group = g;
      titles.push({ y: y + 13, text: g });
      y += HEAD;
      x = 0;
    }
    const w = Math.min(width, Math.max(22, Math.round(26 + 14 * Math.log2(c.size / 32))));
    if (x + w > width) {
      x = 0;
      y += BOX_H + GAP;
    }
    boxes.push({ x, y, w, h: BOX_H, c });
    x += w + GAP;
  }
  const height = chunks.length === 0 ? 40 : y + BOX_H + 4;
  const ctx = clearedCanvas(canvas, width, height);
  ctx.textBaseline = 'alphabetic';
  if (chunks.length === 0) {
    ctx.fillStyle = '#555555';
    ctx.font = '13px sans-serif';
    ctx.fillText(view === null ? 'No trace loaded.' : 'No chunks yet.', 4, 24);
  }
  ctx.font = 'bold 12px sans-serif';
  ctx.fillStyle = '#222222';
  for (const t of titles) ctx.fillText(t.text, 2, t.y);
  ctx.font = '11px sans-serif';
  for (const b of boxes) {
    ctx.fillStyle = colourOf(b.c);
    ctx.fillRect(b.x, b.y, b.w, b.h);
    ctx.strokeStyle = '#ffffff';
    ctx.strokeRect(b.x + 0.5, b.y + 0.5, b.w - 1, b.h - 1);
    ctx.save();
    ctx.beginPath();
    ctx.rect(b.x + 2, b.y, b.w - 4, b.h);
    ctx.clip();
    ctx.fillStyle = b.c.state === 'fencepost' ? '#ffffff' : '#111111';
    const label = b.c.state === 'live' ? (b.c.token ?? '?') : b.c.state;
    ctx.fillText(label, b.x + 3, b.y + 14);
    ctx.fillText(String(b.c.size), b.x + 3, b.y + 28);
    ctx.restore();
  }
  canvas.dataset['chunks'] = String(boxes.length);
  setText(
    $('map-note'),
    view !== null && view.chunks.length > MAP_LIMIT
      ? `The map shows the first ${MAP_LIMIT} of ${view.chunks.length} chunks; the table lists all of them.`
      : '',
  );
}

$('heap-map').addEventListener('mousemove', (e) => {
  const r = (e.target as HTMLElement).getBoundingClientRect();
  const x = e.clientX - r.left;
  const y = e.clientY - r.top;
  const b = boxes.find((q) => x >= q.x && x < q.x + q.w && y >= q.y && y < q.y + q.h);
  setText($('chunk-info'), b === undefined ? '' : describe(b.c));
});

function describe(c: ChunkView): string {
  const where = c.arena < 0 ? 'mmapped' : `arena ${c.arena} heap ${c.heap}`;
  let s = `${c.state} chunk at ${hex(c.addr)} (${where}, offset ${c.off}), size ${c.size}`;
  if (c.flags.length > 0) s += ' [' + c.flags.join(' | ') + ']';
  if (c.state === 'live')
    s += `: ${c.token ?? '(no token)'}, ${c.requested} bytes asked for, usable ${c.usable}, since event ${c.event}`;
  if (c.bin !== undefined) s += `, bin ${c.bin}`;
  return s;
}

/* ------------------------------------------------------------------ the resident pages */

function drawPages(): void {
  const canvas = $<HTMLCanvasElement>('pages');
  const width = Math.max(320, contentWidth(canvas.parentElement!));
  const LABEL = 16;
  const ROW = 14;
  const height = Math.max(20, pages.length * (LABEL + ROW + 4));
  const ctx = clearedCanvas(canvas, width, height);
  ctx.font = '11px sans-serif';
  pages.forEach((m, i) => {
    const y = i * (LABEL + ROW + 4);
    const resident = m.cells.reduce((n, v) => n + v, 0) / 255;
    ctx.fillStyle = '#222222';
    ctx.fillText(
      `${hex(m.start)} ${m.name}: ${fmtBytes(m.size)}, about ${fmtBytes(Math.round(resident) * m.cell)} resident (a cell is ${fmtBytes(m.cell)})`,
      2,
      y + 12,
    );
    const w = width / m.cells.length;
    m.cells.forEach((v, k) => {
      ctx.fillStyle = v === 0 ? '#e8e8e8' : `rgba(47, 133, 90, ${0.25 + (0.75 * v) / 255})`;
      ctx.fillRect(k * w, y + LABEL, Math.max(1, w - 0.5), ROW);
    });
  });
}

/* ------------------------------------------------------------------ panels */

function drawPanels(): void {
  const v = view;
  const bins: string[] = [];
  const arenas: string[] = [];
  if (v !== null) {
    for (const t of v.tcache) {
      bins.push(`tcachebins (thread ${t.tid}, arena ${t.arena})`);
      if (t.bins.length === 0) bins.push('empty');
      for (const b of t.bins)
        bins.push(
          `${hex(b.size)} [${String(b.chunks.length).padStart(3)}]: ${chain(b.chunks, true)}`,
        );
    }
    for (const a of v.arenas) {
      bins.push('', `arena ${a.arena}: fastbins`);
      if (!v.fastbins) bins.push('none in this release (glibc 2.43 removed them)');
      else if (a.fastbins.length === 0) bins.push('empty');
      for (const b of a.fastbins) bins.push(`${hex(b.size)}: ${chain(b.chunks, false)}`);
      bins.push(
        'unsortedbin',
        a.unsorted.length === 0 ? 'empty' : 'all: ' + chain(a.unsorted, false),
      );
      bins.push('smallbins');
      if (a.smallbins.length === 0) bins.push('empty');
      for (const b of a.smallbins) bins.push(`${hex(b.size)}: ${chain(b.chunks, false)}`);
      bins.push('largebins');
      if (a.largebins.length === 0) bins.push('empty');
      for (const b of a.largebins) bins.push(`${hex(b.size)}-: ${chain(b.chunks, false)}`);
      arenas.push(
        `arena ${a.arena}${a.arena === 0 ? ' (main_arena)' : ''}: ${a.threads} thread${a.threads === 1 ? '' : 's'}, system_mem ${fmtBytes(a.systemMem)}`,
        `  top: ${a.top === null ? 'none yet' : `${hex(a.top.addr)}, ${fmtBytes(a.top.size)}`}`,
        `  last_remainder: ${a.lastRemainder === null ? '0' : `${hex(a.lastRemainder.addr)}, ${a.lastRemainder.size} bytes`}`,
        ...a.heaps.map((h) => `  heap ${h.heap}: ${hex(h.start)}, ${fmtBytes(h.size)}`),
      );
    }
  }
  setText($('bins'), bins.join('\n'));
  setText($('arenas'), arenas.join('\n'));
  setText(
    $('maps'),
    v === null
      ? ''
      : v.maps
          .map(
            (m) =>
              `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.name}\n    Size ${fmtBytes(m.size)}, Rss ${fmtBytes(m.rss)}`,
          )
          .join('\n'),
  );
  // The chunks, one row each, as `ptsim show chunks` lists them.
  const table = $<HTMLTableElement>('chunks');
  const tbody = document.createElement('tbody');
  for (const c of v?.chunks ?? []) {
    const tr = document.createElement('tr');
    const cells = [
      String(c.arena),
      String(c.heap),
      String(c.off),
      String(c.size),
      c.state,
      c.usable === undefined ? '' : String(c.usable),
      c.token ?? '',
    ];
    for (const t of cells) {
      const td = document.createElement('td');
      td.textContent = t;
      tr.appendChild(td);
    }
    tr.style.setProperty('--state', colourOf(c));
    tbody.appendChild(tr);
  }
  table.tBodies[0]?.remove();
  table.appendChild(tbody);
}

function drawThresholdList(): void {
  const ul = $('thresholds');
  ul.replaceChildren();
  for (const t of thresholds) {
    const li = document.createElement('li');
    li.textContent =
      `${t.event < 0 ? 'at start-up' : `event ${t.event} (line ${t.line}), ${t.op}${t.token === '' ? '' : '(' + t.token + ')'}`}: ${t.cause}; mmap threshold ${fmtBytes(t.oldMmapThreshold)} → ${fmtBytes(t.newMmapThreshold)}, trim threshold ${fmtBytes(t.oldTrimThreshold)} → ${fmtBytes(t.newTrimThreshold)}` +
      (t.heapAllocationsSince > 0
        ? `; ${t.heapAllocationsSince} later allocations (${fmtBytes(t.heapBytesSince)}) went to the heap instead of mmap`
        : '');
    ul.appendChild(li);
  }
  if (thresholds.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'The thresholds never changed.';
    ul.appendChild(li);
  }
}

/* ------------------------------------------------------------------ charts */

let chart: uPlot | null = null;
let thresholdChart: uPlot | null = null;

/** The event cursor, drawn on a chart. */
const cursorLine: uPlot.Plugin = {
  hooks: {
    draw: [
      (u) => {
        // Where the plot lies on its canvas (CSS pixels) and what its scales span, for the tests
        // of the drawing.
        const dpr = window.devicePixelRatio || 1;
        u.root.dataset['plot'] = JSON.stringify({
          left: u.bbox.left / dpr,
          top: u.bbox.top / dpr,
          width: u.bbox.width / dpr,
          height: u.bbox.height / dpr,
          x: [u.scales['x']!.min, u.scales['x']!.max],
          y: [u.scales['y']!.min, u.scales['y']!.max],
        });
        if (pos < 0) return;
        const x = Math.round(u.valToPos(pos, 'x', true));
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = '#d62728';
        ctx.lineWidth = 2 * (window.devicePixelRatio || 1);
        // Solid, whatever dash the last line drawn left on the context.
        ctx.setLineDash([]);
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.restore();
      },
    ],
  },
};

/** Steps between the ticks of the event axis: 1, 2, 5, 10, 20, 50, ... */
const EVENT_TICKS = Array.from(
  { length: 30 },
  (_, i) => [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3),
);

/** A line of a chart: its label, colour, and whether it is stepped or dashed. */
interface Line {
  label: string;
  color: string;
  stepped?: boolean;
  dash?: number[];
}

function chartOpts(title: string, lines: Line[], height: number): uPlot.Options {
  const host = $('chart');
  return {
    title,
    width: Math.max(320, contentWidth(host)),
    height,
    scales: { x: { time: false } },
    series: [
      { label: 'event' },
      ...lines.map((l): uPlot.Series => ({
        label: l.label,
        stroke: l.color,
        ...(l.dash === undefined ? {} : { dash: l.dash }),
        width: 1.5,
        spanGaps: true,
        points: { show: false },
        paths: l.stepped === true ? uPlot.paths.stepped!({ align: 1 }) : undefined,
        value: (_u, v) => fmtBytes(v),
      })),
    ],
    // Ticks on whole events only.
    axes: [
      { incrs: EVENT_TICKS },
      { size: 80, values: (_u, vals) => vals.map((v) => fmtBytes(v)) },
    ],
    plugins: [cursorLine],
    cursor: { sync: { key: 'ptsim-web' } },
  };
}

function drawChart(): void {
  chart?.destroy();
  thresholdChart?.destroy();
  chart = null;
  thresholdChart = null;
  if (series === null) return;
  const s = series;
  const lines: Line[] = [
    { label: 'RSS', color: '#2f855a' },
    { label: 'heap', color: '#4e79a7' },
    { label: 'mmapped', color: '#edc948' },
    { label: 'live', color: '#b07aa1' },
  ];
  let data: uPlot.AlignedData = [s.event, s.rss, s.heap, s.mmapped, s.live];
  if (whatIf !== null) {
    // Dashed and dark: not the red of the event's cursor.
    lines.push({
      label: 'RSS with ' + (whatIf.settings || 'default settings'),
      color: '#1a202c',
      dash: [6, 4],
    });
    data = uPlot.join([data, [whatIf.series.event, whatIf.series.rss]]);
  }
  chart = new uPlot(chartOpts('Memory along the trace', lines, 260), data, $('chart'));
  thresholdChart = new uPlot(
    chartOpts(
      'Thresholds',
      [
        { label: 'mmap threshold', color: '#c05621', stepped: true },
        { label: 'trim threshold', color: '#6b46c1', stepped: true },
      ],
      160,
    ),
    [s.event, s.mmapThreshold, s.trimThreshold],
    $('threshold-chart'),
  );
  // A click on a chart goes to that event.
  for (const u of [chart, thresholdChart])
    u.over.addEventListener('click', () => {
      const i = u.cursor.idx;
      const x = i === null || i === undefined ? null : u.data[0][i];
      if (x !== undefined && x !== null) goTo(x);
    });
}

function drawAll(): void {
  drawHeapMap();
  drawPages();
  drawPanels();
  chart?.redraw(false);
  thresholdChart?.redraw(false);
}

window.addEventListener('resize', () => {
  drawChart();
  drawAll();
});

/* ------------------------------------------------------------------ start */

const legend = $('legend');
for (const [state, colour] of Object.entries(COLOURS)) {
  const item = document.createElement('span');
  const sw = document.createElement('i');
  sw.style.background = colour;
  item.append(sw, state);
  legend.appendChild(item);
}
drawAll();

/** The scenario the address names (`#scenario=NAME`), or null. */
function scenarioInAddress(): string | null {
  return new URLSearchParams(location.hash.slice(1)).get('scenario');
}

/** Opens the scenario called `id`, or says in the status line that there is none. */
function openNamed(id: string): void {
  if (embedded.scenarios.some((s) => s.id === id)) openScenario(id);
  else {
    body.dataset['ptsimState'] = 'error';
    status(`no scenario is called ${id}`, true);
  }
}

// A scenario named in the address after the page opened (a link, or typed) opens too.
window.addEventListener('hashchange', () => {
  const id = scenarioInAddress();
  if (id !== null && id !== examples.value) openNamed(id);
});

const wantedScenario = scenarioInAddress();
// A scenario the address names comes first: it is what the reader asked for.
if (wantedScenario !== null) {
  openNamed(wantedScenario);
} else if (embedded.trace !== null) {
  load(embedded.trace.name, fromBase64(embedded.trace.gzip64));
} else if (embedded.traceUrl !== null) {
  body.dataset['ptsimState'] = 'loading';
  const name = decodeURIComponent(embedded.traceUrl.replace(/^.*name=/, ''));
  fetch(embedded.traceUrl)
    .then((r) => {
      if (!r.ok) throw new Error(`${r.status} ${r.statusText}`);
      return r.arrayBuffer();
    })
    .then((b) => load(name, b))
    .catch((e: unknown) => {
      body.dataset['ptsimState'] = 'error';
      status('could not fetch the trace: ' + String(e), true);
    });
} else {
  body.dataset['ptsimState'] = 'empty';
  status('Open a trace (or drop one onto the page), or pick an example.');
}
