/**
 * The report page's own script: it reads the data block (#ptsim-data), draws the charts with
 * uPlot and the heap map on canvases. It runs in the browser as a classic script after uPlot's,
 * which defines the global `uPlot`; `npm run build` compiles it (tsconfig.json here: the browser's
 * types, not Node's) and html.ts inlines the result into the page. Everything it shows from the
 * data goes through textContent or a canvas, never through innerHTML.
 *
 * A script, not a module: no import or export statements, so the compiled file runs as it is.
 */

type PageData = import('./page-data.js').PageData;
type PageSeries = import('./page-data.js').PageSeries;
type PageThresholdChange = import('./page-data.js').PageThresholdChange;
type PageRegion = import('./page-data.js').PageRegion;
type PagePin = import('./page-data.js').PagePin;
type PageSites = import('./page-data.js').PageSites;

window.addEventListener('error', (e) => {
  document.body.setAttribute('data-ptsim-error', String(e.message));
});

(() => {
  const data = JSON.parse(document.getElementById('ptsim-data')!.textContent) as PageData;
  const COLORS = [
    '#2b6cb0',
    '#c53030',
    '#2f855a',
    '#dd6b20',
    '#6b46c1',
    '#975a16',
    '#d53f8c',
    '#4a5568',
    '#b7791f',
    '#0987a0',
  ];
  const STATE_COLORS: Record<string, string> = {
    live: '#3b7dd8',
    tcache: '#f0a030',
    fastbin: '#e4572e',
    bin: '#6aa84f',
    top: '#b6e3b0',
    metadata: '#8c8c8c',
  };
  const timed = data.timed;
  const xLabel = timed ? 'trace time (s)' : 'event';

  function el(tag: string, cls?: string, text?: string): HTMLElement {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtBytes(n: number | null | undefined): string {
    if (n === null || n === undefined) return '-';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Math.abs(n);
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    const s = u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
    return (n < 0 ? '-' : '') + s + ' ' + units[u]!;
  }

  function hex(n: number): string {
    return '0x' + n.toString(16);
  }

  function xOf(t: number): number {
    return timed ? t / 1e9 : t;
  }

  function fmtX(v: number | null | undefined): string {
    if (v === null || v === undefined) return '-';
    return timed ? String(+v.toFixed(6)) + ' s' : String(Math.round(v));
  }

  function chartWidth(host: HTMLElement): number {
    return Math.max(320, (host.clientWidth || 960) - 4);
  }

  /** Sample indexes in order of x (uPlot wants ascending x; recorded times may step back a little). */
  function order(series: PageSeries): number[] {
    const idx = series.time.map((_, i) => i);
    idx.sort((a, b) => series.time[a]! - series.time[b]! || series.event[a]! - series.event[b]!);
    return idx;
  }

  function column<T>(idx: number[], f: (i: number) => T): T[] {
    return idx.map((i) => f(i));
  }

  /** Vertical markers: threshold changes (dashed) and the explained moment (solid). */
  function markers(changes: PageThresholdChange[], momentTime: number | null): uPlot.Plugin {
    return {
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            const b = u.bbox;
            const dpr = window.devicePixelRatio || 1;
            ctx.save();
            ctx.font = String(10 * dpr) + 'px sans-serif';
            let labelled = 0;
            changes.forEach((m) => {
              const x = Math.round(u.valToPos(xOf(m.time), 'x', true));
              if (x < b.left || x > b.left + b.width) return;
              ctx.strokeStyle =
                m.cause === 'mallopt'
                  ? '#6b46c1'
                  : m.cause === 'start-up settings'
                    ? '#4a5568'
                    : '#c05621';
              ctx.lineWidth = dpr;
              ctx.setLineDash([4 * dpr, 3 * dpr]);
              ctx.beginPath();
              ctx.moveTo(x + 0.5, b.top);
              ctx.lineTo(x + 0.5, b.top + b.height);
              ctx.stroke();
              if (labelled < 40) {
                ctx.fillStyle = ctx.strokeStyle;
                ctx.fillText(
                  'mmap ' + fmtBytes(m.newMmapThreshold),
                  x + 3 * dpr,
                  b.top + (10 + 11 * (labelled % 3)) * dpr,
                );
                labelled++;
              }
            });
            if (momentTime !== null) {
              const mx = Math.round(u.valToPos(xOf(momentTime), 'x', true));
              if (mx >= b.left && mx <= b.left + b.width) {
                ctx.setLineDash([]);
                ctx.strokeStyle = '#1a202c';
                ctx.lineWidth = 2 * dpr;
                ctx.beginPath();
                ctx.moveTo(mx, b.top);
                ctx.lineTo(mx, b.top + b.height);
                ctx.stroke();
              }
            }
            ctx.restore();
          },
        ],
      },
    };
  }

  const charts: Array<{ u: uPlot; host: HTMLElement }> = [];

  /* Byte axes tick at powers of two (1 MiB, 2 MiB, ...), not at 1.91 MiB. */
  const BYTE_INCRS: number[] = [];
  for (let p2 = 1; p2 <= Math.pow(2, 52); p2 *= 2) BYTE_INCRS.push(p2);

  /** A line of a chart. */
  interface Line {
    label: string;
    color: string;
    width?: number;
    /** Draw the samples as points too (a line measured at few samples). */
    sparse?: boolean;
    /** A step function (thresholds), not a line between samples. */
    stepped?: boolean;
  }

  /** A chart of byte values over time; `columns` holds the x values, then one column per line. */
  function makeChart(
    host: HTMLElement,
    title: string,
    columns: uPlot.AlignedData,
    series: Line[],
    changes: PageThresholdChange[],
  ): uPlot {
    const opts: uPlot.Options = {
      title: title,
      width: chartWidth(host),
      height: 280,
      scales: { x: { time: false } },
      cursor: { sync: { key: 'ptsim' } },
      series: [
        { label: xLabel, value: (_u, v) => fmtX(v) },
        ...series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: s.color,
          width: s.width || 1.5,
          spanGaps: true,
          points: { show: !!s.sparse, size: 4 },
          paths: s.stepped ? uPlot.paths.stepped!({ align: 1 }) : undefined,
          value: (_u, v) => fmtBytes(v),
        })),
      ],
      axes: [
        { label: xLabel, values: (_u, vals) => vals.map(fmtX) },
        { size: 80, incrs: BYTE_INCRS, values: (_u, vals) => vals.map(fmtBytes) },
      ],
      plugins: [markers(changes, data.moment.time)],
    };
    const u = new uPlot(opts, columns, host);
    charts.push({ u: u, host: host });
    return u;
  }

  function section(id: string): HTMLElement | null {
    return document.getElementById(id);
  }

  /* ---------------------------------------------------------------- RSS of every configuration */

  (() => {
    const host = section('chart-rss');
    if (!host) return;
    const tables = data.configs.map((c): uPlot.AlignedData => {
      const idx = order(c.series);
      return [column(idx, (i) => xOf(c.series.time[i]!)), column(idx, (i) => c.series.rss[i]!)];
    });
    const series = data.configs.map((c, k): Line => ({
      label: c.name,
      color: COLORS[k % COLORS.length]!,
      width: k === 0 ? 2.5 : 1.5,
    }));
    /* The recording's own measurement, beside the default configuration's RSS. */
    const m = data.configs[0]!.measured;
    if (m) {
      const idx = m.time.map((_, i) => i).sort((a, b) => m.time[a]! - m.time[b]!);
      tables.push([column(idx, (i) => xOf(m.time[i]!)), column(idx, (i) => m.bytes[i]!)]);
      series.push({
        label:
          m.of === 'total'
            ? 'measured (whole RSS less the baseline)'
            : 'measured (RssAnon less rec= and the baseline)',
        color: '#718096',
        width: 2,
        sparse: m.time.length < 200,
      });
    }
    const joined = uPlot.join(tables);
    /* The charts show times in seconds, the markers keep nanoseconds: xOf converts both. */
    makeChart(
      host,
      'RSS over time, each configuration',
      joined,
      series,
      data.configs[0]!.thresholds,
    );
  })();

  /* ---------------------------------------------------------------- each configuration in detail */

  (() => {
    const host = section('chart-configs');
    if (!host) return;
    data.configs.forEach((c, k) => {
      const box = el('div', 'chart');
      host.appendChild(box);
      const s = c.series;
      const idx = order(s);
      const xs = column(idx, (i) => xOf(s.time[i]!));
      const free = column(idx, (i) => {
        const t = s.causes['free-tcache'][i];
        if (t === null || t === undefined) return null;
        return (
          t +
          s.causes['free-fastbins'][i]! +
          s.causes['free-bins'][i]! +
          s.causes.fragmentation[i]! +
          s.causes['free-top'][i]!
        );
      });
      const measured = free.filter((v) => v !== null).length;
      const series: Line[] = [
        { label: 'RSS', color: '#1a202c', width: 2 },
        { label: 'heap (system_mem)', color: '#2b6cb0' },
        { label: 'mmapped', color: '#c05621' },
        { label: 'live bytes', color: '#2f855a', sparse: measured < xs.length / 4 },
        { label: 'free but resident', color: '#d53f8c', sparse: measured < xs.length / 4 },
      ];
      const columns: uPlot.AlignedData = [
        xs,
        column(idx, (i) => s.rss[i]!),
        column(idx, (i) => s.heap[i]!),
        column(idx, (i) => s.mmapped[i]!),
        column(idx, (i) => s.live[i] ?? null),
        free,
      ];
      makeChart(
        box,
        (k === 0 ? 'default configuration' : c.name) + ': memory over time',
        columns,
        series,
        c.thresholds,
      );
    });
  })();

  /* ---------------------------------------------------------------- thresholds */

  (() => {
    const host = section('chart-thresholds');
    if (!host) return;
    const c = data.configs[0]!;
    const s = c.series;
    const idx = order(s);
    makeChart(
      host,
      'mmap and trim thresholds (default configuration)',
      [
        column(idx, (i) => xOf(s.time[i]!)),
        column(idx, (i) => s.mmapThreshold[i]!),
        column(idx, (i) => s.trimThreshold[i]!),
      ],
      [
        { label: 'mmap threshold', color: '#c05621', width: 2, stepped: true },
        { label: 'trim threshold', color: '#2b6cb0', width: 2, stepped: true },
      ],
      c.thresholds,
    );
  })();

  window.addEventListener('resize', () => {
    charts.forEach((c) => {
      c.u.setSize({ width: chartWidth(c.host), height: 280 });
    });
  });

  /* ---------------------------------------------------------------- the heap map */

  (() => {
    const host = section('heap-map');
    const map = data.heapMap;
    if (!host) return;

    const GUTTER = 96;
    const ROW_H = 16;
    const GAP = 8;
    const PAD = 6;

    /** How a region is drawn: rows of `perRow` bytes, `scale` pixels a byte. */
    interface Layout {
      w: number;
      plotW: number;
      perRow: number;
      rows: number;
      scale: number;
      h: number;
    }

    /** A region on its canvas. */
    interface Drawn {
      r: PageRegion;
      canvas: HTMLCanvasElement;
      pins: PagePin[];
      box: HTMLElement;
      /** The layout of the last drawing. */
      L: Layout | null;
    }

    const stateColor = (state: number): string => STATE_COLORS[map.states[state]!]!;

    const legend = el('div', 'legend');
    map.states.forEach((st) => {
      const item = el('span', 'legend-item');
      const sw = el('span', 'swatch');
      sw.style.background = STATE_COLORS[st]!;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(st));
      legend.appendChild(item);
    });
    const pinItem = el('span', 'legend-item');
    const pinSw = el('span', 'swatch pin-swatch');
    pinItem.appendChild(pinSw);
    pinItem.appendChild(
      document.createTextNode(
        'pin (the chunk that keeps the free memory below it from being trimmed)',
      ),
    );
    legend.appendChild(pinItem);
    const resItem = el('span', 'legend-item', 'dark strip under a row: resident pages');
    legend.appendChild(resItem);
    host.appendChild(legend);
    const tip = el('div', 'tooltip');
    tip.style.display = 'none';
    document.body.appendChild(tip);
    const drawn: Drawn[] = [];
    map.regions.forEach((r, ri) => {
      const box = el('div', 'region');
      const head = el('div', 'region-head');
      head.textContent =
        r.name +
        ': ' +
        (r.packed ? '' : hex(r.start) + ', ') +
        fmtBytes(r.size) +
        ', ' +
        r.chunkCount.toLocaleString('en-US') +
        ' chunks, ' +
        fmtBytes(r.residentBytes) +
        ' resident' +
        (r.buckets ? ' (drawn in buckets of ' + fmtBytes(r.buckets.span) + ')' : '');
      box.appendChild(head);
      const canvas = document.createElement('canvas');
      box.appendChild(canvas);
      host.appendChild(box);
      const pins = map.pins.filter((p) => p.region === ri);
      const d: Drawn = { r: r, canvas: canvas, pins: pins, box: box, L: null };
      drawn.push(d);
      drawRegion(d);
      canvas.addEventListener('mousemove', (ev) => {
        hover(d, ev);
      });
      canvas.addEventListener('mouseleave', () => {
        tip.style.display = 'none';
      });
    });

    function niceBytes(n: number): number {
      let p = 16;
      while (p < n) p *= 2;
      return p;
    }

    function layout(d: Drawn): Layout {
      const w = Math.max(320, (d.box.clientWidth || 960) - 4);
      const plotW = w - GUTTER - 8;
      const size = Math.max(d.r.size, 16);
      /* At most 32 rows; no finer than 16 bytes (the smallest chunk) to a pixel. */
      const perRow = niceBytes(Math.max(size / 32, 16 * plotW, 64));
      const rows = Math.max(1, Math.ceil(size / perRow));
      return {
        w: w,
        plotW: plotW,
        perRow: perRow,
        rows: rows,
        scale: plotW / perRow,
        h: PAD + rows * (ROW_H + GAP),
      };
    }

    /** Calls f(x, width, y, exact width) for each row's part of the bytes [a, b). */
    function spans(
      L: Layout,
      a: number,
      b: number,
      f: (x: number, w: number, y: number, exact: number) => void,
    ): void {
      while (a < b) {
        const row = Math.floor(a / L.perRow);
        const e = Math.min(b, (row + 1) * L.perRow);
        /* Whole pixels: neighbouring spans meet without anti-aliased seams. */
        const x0 = Math.floor(GUTTER + (a - row * L.perRow) * L.scale);
        const x1 = Math.floor(GUTTER + (e - row * L.perRow) * L.scale);
        f(x0, Math.max(1, x1 - x0), PAD + row * (ROW_H + GAP), x1 - x0);
        a = e;
      }
    }

    function drawRegion(d: Drawn): void {
      const r = d.r;
      const L = layout(d);
      const dpr = window.devicePixelRatio || 1;
      d.L = L;
      const c = d.canvas;
      c.width = L.w * dpr;
      c.height = L.h * dpr;
      c.style.width = String(L.w) + 'px';
      c.style.height = String(L.h) + 'px';
      const ctx = c.getContext('2d')!;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, L.w, L.h);
      ctx.font = '10px monospace';
      ctx.fillStyle = '#4a5568';
      for (let row = 0; row < L.rows; row++) {
        ctx.fillText('+' + hex(row * L.perRow), 4, PAD + row * (ROW_H + GAP) + 12);
      }
      if (!r.packed) {
        /* What no chunk covers (heap and arena headers, alignment) is glibc's. */
        ctx.fillStyle = STATE_COLORS['metadata']!;
        spans(L, 0, r.size, (x, w, y) => {
          ctx.fillRect(x, y, w, ROW_H);
        });
      }
      if (r.chunks) {
        const ch = r.chunks;
        for (let i = 0; i < ch.off.length; i++) {
          ctx.fillStyle = stateColor(ch.state[i]!);
          spans(L, ch.off[i]!, ch.off[i]! + ch.size[i]!, (x, w, y, exact) => {
            ctx.fillRect(x, y, w, ROW_H);
            if (exact >= 4) {
              ctx.fillStyle = 'rgba(255,255,255,0.7)';
              ctx.fillRect(x, y, 1, ROW_H);
              ctx.fillStyle = stateColor(ch.state[i]!);
            }
          });
        }
      } else if (r.buckets) {
        const bk = r.buckets;
        const n = bk.count.length;
        for (let k = 0; k < n; k++) {
          const a = k * bk.span;
          const b = Math.min(r.size, a + bk.span);
          let y0 = 0;
          for (let st = 0; st < map.states.length; st++) {
            const frac = bk.bytes[st]![k]! / (b - a);
            if (frac <= 0) continue;
            ctx.fillStyle = stateColor(st);
            const off = y0;
            spans(L, a, b, (x, w, y) => {
              ctx.fillRect(x, y + off * ROW_H, w, Math.max(1, frac * ROW_H));
            });
            y0 += frac;
          }
        }
      }
      if (r.resident.length > 0) {
        const m = r.resident.length;
        const rs = r.residentSpan;
        for (let j = 0; j < m; j++) {
          const f = r.resident[j]!;
          if (f <= 0) continue;
          ctx.fillStyle = 'rgba(26,32,44,' + (0.15 + 0.85 * f).toFixed(2) + ')';
          spans(L, j * rs, Math.min(r.size, (j + 1) * rs), (x, w, y) => {
            ctx.fillRect(x, y + ROW_H + 1, w, 3);
          });
        }
      }
      d.pins.forEach((p) => {
        ctx.strokeStyle = '#e53e3e';
        ctx.lineWidth = 2;
        spans(L, p.off, p.off + p.size, (x, w, y) => {
          ctx.strokeRect(x - 1, y - 1, w + 2, ROW_H + 2);
        });
        const row = Math.floor(p.off / L.perRow);
        const px = GUTTER + (p.off - row * L.perRow) * L.scale;
        const py = PAD + row * (ROW_H + GAP);
        ctx.fillStyle = '#e53e3e';
        ctx.beginPath();
        ctx.moveTo(px - 5, py - 6);
        ctx.lineTo(px + 5, py - 6);
        ctx.lineTo(px, py);
        ctx.closePath();
        ctx.fill();
      });
    }

    function hover(d: Drawn, ev: MouseEvent): void {
      const L = d.L;
      const r = d.r;
      if (L === null) return;
      const rect = d.canvas.getBoundingClientRect();
      const x = ev.clientX - rect.left;
      const y = ev.clientY - rect.top;
      const row = Math.floor((y - PAD) / (ROW_H + GAP));
      if (x < GUTTER || row < 0 || row >= L.rows) {
        tip.style.display = 'none';
        return;
      }
      const off = row * L.perRow + (x - GUTTER) / L.scale;
      if (off >= r.size) {
        tip.style.display = 'none';
        return;
      }
      const lines: string[] = [];
      if (r.chunks) {
        const ch = r.chunks;
        let lo = 0;
        let hi = ch.off.length - 1;
        let at = -1;
        while (lo <= hi) {
          const mid = (lo + hi) >> 1;
          if (ch.off[mid]! <= off) {
            at = mid;
            lo = mid + 1;
          } else hi = mid - 1;
        }
        if (at >= 0 && off < ch.off[at]! + ch.size[at]!) {
          const addr = ch.addr ? ch.addr[at]! : r.start + ch.off[at]!;
          const st = map.states[ch.state[at]!]!;
          lines.push(
            'chunk at ' +
              hex(addr) +
              (r.packed ? '' : ' (+' + hex(ch.off[at]!) + ')') +
              ', ' +
              String(ch.size[at]) +
              ' bytes: ' +
              st,
          );
          if (st === 'live') lines.push(String(ch.req[at]) + ' bytes asked for');
          if (ch.born[at]! >= 0) lines.push('handed out at event ' + String(ch.born[at]));
        } else lines.push('+' + hex(Math.floor(off)) + ': glibc metadata (no chunk)');
      } else if (r.buckets) {
        const bk = r.buckets;
        const k = Math.min(bk.count.length - 1, Math.floor(off / bk.span));
        lines.push(
          hex(r.start + k * bk.span) +
            ' to ' +
            hex(r.start + Math.min(r.size, (k + 1) * bk.span)) +
            ': ' +
            String(bk.count[k]) +
            ' chunks start here',
        );
        map.states.forEach((st, i) => {
          if (bk.bytes[i]![k]! > 0) lines.push(st + ': ' + fmtBytes(bk.bytes[i]![k]));
        });
      }
      if (r.resident.length > 0) {
        const j = Math.min(r.resident.length - 1, Math.floor(off / r.residentSpan));
        lines.push('pages here: ' + String(Math.round(r.resident[j]! * 100)) + '% resident');
      }
      d.pins.forEach((p) => {
        if (off >= p.off && off < p.off + p.size) {
          lines.push(
            'PIN (' +
              p.kind +
              (p.token ? ' ' + p.token : '') +
              (p.line ? ', trace line ' + String(p.line) : '') +
              '): holds ' +
              fmtBytes(p.heldBytes) +
              ' of free memory right below it',
          );
        }
      });
      tip.textContent = '';
      lines.forEach((t) => {
        tip.appendChild(el('div', '', t));
      });
      tip.style.display = 'block';
      tip.style.left = String(ev.pageX + 12) + 'px';
      tip.style.top = String(ev.pageY + 12) + 'px';
    }

    window.addEventListener('resize', () => {
      drawn.forEach(drawRegion);
    });
  })();

  /* ---------------------------------------------------------------- which code holds it */

  let flameFrames = 0;
  (() => {
    const flameHost = section('flame');
    if (!flameHost || !data.sites) return;
    const host: HTMLElement = flameHost;
    const sites: PageSites = data.sites;
    const KIND_COLORS: Record<string, string> = {
      live: '#3b7dd8',
      mmapped: '#805ad5',
      tcache: '#f0a030',
      fastbins: '#e4572e',
      bins: '#6aa84f',
      fragmentation: '#9ae6b4',
      top: '#b6e3b0',
      metadata: '#8c8c8c',
    };
    const KIND_TEXT: Record<string, string> = {
      live: 'live',
      mmapped: 'live, mmapped on its own',
      tcache: 'freed, in the tcache',
      fastbins: 'freed, in a fastbin',
      bins: 'free in the bins',
      fragmentation: 'free in the bins, on pages live blocks share',
      top: 'free top',
      metadata: "glibc's metadata",
    };
    const ROW = 20;
    const kinds = sites.kinds;
    const moments = sites.moments;
    /* Each node's path of names from the root, made once. */
    const paths: number[][] = sites.name.map(() => []);
    sites.name.forEach((_, n) => {
      const p: number[] = [];
      for (let x = n; x >= 0; x = sites.parent[x]!) p.unshift(x);
      paths[n] = p;
    });
    const arenaName = (a: number): string =>
      a < 0 ? 'chunks mmapped on their own' : a === 0 ? 'main arena' : 'arena ' + String(a);

    /** A frame of the tree drawn: its name, bytes by kind, blocks, children. */
    interface Frame {
      name: string;
      site: boolean;
      bytes: number;
      kinds: number[];
      blocks: number;
      children: Map<string, Frame>;
      parent: Frame | null;
    }
    const frame = (name: string, site: boolean, parent: Frame | null): Frame => ({
      name: name,
      site: site,
      bytes: 0,
      kinds: kinds.map(() => 0),
      blocks: 0,
      children: new Map(),
      parent: parent,
    });

    let current = Math.max(
      0,
      moments.findIndex((m) => m.kind === 'explained'),
    );
    let byArena = false;
    /* The names from the root to the frame zoomed into (empty: the whole moment). */
    let zoom: string[] = [];

    function tree(mi: number): Frame {
      const m = moments[mi]!;
      const root = frame('all resident memory', false, null);
      for (let i = 0; i < m.node.length; i++) {
        const names = paths[m.node[i]!]!.map((n) => sites.names[sites.name[n]!]!);
        if (byArena) names.unshift(arenaName(m.arena[i]!));
        const add = (f: Frame): void => {
          f.bytes += m.bytes[i]!;
          f.kinds[m.what[i]!]! += m.bytes[i]!;
          f.blocks += m.blocks[i]!;
        };
        add(root);
        let f = root;
        names.forEach((nm, k) => {
          let c = f.children.get(nm);
          if (!c) {
            const last = k === names.length - 1;
            c = frame(nm, last && sites.site[m.node[i]!]!, f);
            f.children.set(nm, c);
          }
          add(c);
          f = c;
        });
      }
      return root;
    }

    const controls = el('div', 'flame-controls');
    host.appendChild(controls);
    const legend = el('div', 'legend');
    kinds.forEach((k) => {
      const item = el('span', 'legend-item');
      const sw = el('span', 'swatch');
      sw.style.background = KIND_COLORS[k] || '#999';
      item.appendChild(sw);
      item.appendChild(document.createTextNode(KIND_TEXT[k] || k));
      legend.appendChild(item);
    });
    host.appendChild(legend);
    const title = el('div', 'flame-title');
    host.appendChild(title);
    const box = el('div', 'flame');
    host.appendChild(box);
    const tip = el('div', 'tooltip');
    tip.style.display = 'none';
    document.body.appendChild(tip);

    const momentName = (m: (typeof moments)[number]): string =>
      (m.kind === 'explained'
        ? 'the moment explained'
        : m.kind === 'end'
          ? 'the end'
          : m.kind === 'peak'
            ? 'the peak'
            : 'a sample') +
      ' (after event ' +
      m.event.toLocaleString('en-US') +
      (timed ? ', ' + fmtX(xOf(m.time)) : '') +
      ')';

    const buttons: HTMLButtonElement[] = [];
    (['explained', 'end', 'peak'] as const).forEach((kind) => {
      const mi = moments.findIndex((m) => m.kind === kind);
      if (mi < 0) return;
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = kind === 'explained' ? 'moment explained' : kind;
      b.setAttribute('data-moment', String(mi));
      b.addEventListener('click', () => {
        show(mi);
      });
      controls.appendChild(b);
      buttons.push(b);
    });
    const arenaBox = document.createElement('label');
    const check = document.createElement('input');
    check.type = 'checkbox';
    check.addEventListener('change', () => {
      byArena = check.checked;
      zoom = [];
      draw();
    });
    arenaBox.appendChild(check);
    arenaBox.appendChild(document.createTextNode(' split by arena'));
    controls.appendChild(arenaBox);
    const reset = document.createElement('button');
    reset.type = 'button';
    reset.textContent = 'whole moment';
    reset.addEventListener('click', () => {
      zoom = [];
      draw();
    });
    controls.appendChild(reset);
    controls.appendChild(
      el(
        'span',
        'note',
        ' or click a moment on the charts above and below; click a frame to zoom in',
      ),
    );

    function show(mi: number): void {
      current = mi;
      zoom = [];
      draw();
    }

    function draw(): void {
      const m = moments[current]!;
      let root = tree(current);
      for (const nm of zoom) {
        const c = root.children.get(nm);
        if (!c) {
          zoom = [];
          root = tree(current);
          break;
        }
        root = c;
      }
      buttons.forEach((b) => {
        b.disabled = Number(b.getAttribute('data-moment')) === current;
      });
      title.textContent =
        'Resident memory at ' +
        momentName(m) +
        ': ' +
        fmtBytes(m.total) +
        (zoom.length > 0 ? '; shown: ' + zoom[zoom.length - 1]! + ', ' + fmtBytes(root.bytes) : '');
      box.textContent = '';
      host.setAttribute('data-event', String(m.event));
      flameFrames = 0;
      let depth = 0;
      const total = root.bytes;
      if (total <= 0) return;
      /* Frames narrower than this share of the width are not drawn (their bytes are in their parent's). */
      const MIN = 0.0005;
      const place = (f: Frame, left: number, row: number, names: string[]): void => {
        const w = f.bytes / total;
        if (w < MIN) return;
        depth = Math.max(depth, row + 1);
        const d = el('div', 'frame' + (f.site ? ' site' : ''));
        d.style.left = String(left * 100) + '%';
        d.style.width = String(w * 100) + '%';
        d.style.top = String(row * ROW) + 'px';
        d.setAttribute('data-bytes', String(f.bytes));
        d.setAttribute('data-name', f.name);
        f.kinds.forEach((b, k) => {
          if (b <= 0) return;
          const seg = el('span', 'seg');
          seg.style.width = String((100 * b) / f.bytes) + '%';
          seg.style.background = KIND_COLORS[kinds[k]!] || '#999';
          d.appendChild(seg);
        });
        d.appendChild(el('span', 'label', f.name + ' ' + fmtBytes(f.bytes)));
        d.addEventListener('mousemove', (ev) => {
          const lines = [
            f.name,
            fmtBytes(f.bytes) +
              ' resident' +
              (f.blocks > 0 ? ', ' + f.blocks.toLocaleString('en-US') + ' chunks' : ''),
          ];
          f.kinds.forEach((b, k) => {
            if (b > 0) lines.push(KIND_TEXT[kinds[k]!]! + ': ' + fmtBytes(b));
          });
          if (f.site)
            lines.push('an allocation site (the first caller that is not an allocator wrapper)');
          tip.textContent = '';
          lines.forEach((t) => tip.appendChild(el('div', '', t)));
          tip.style.display = 'block';
          tip.style.left = String(ev.pageX + 12) + 'px';
          tip.style.top = String(ev.pageY + 12) + 'px';
          ev.stopPropagation();
        });
        d.addEventListener('mouseleave', () => {
          tip.style.display = 'none';
        });
        d.addEventListener('click', (ev) => {
          ev.stopPropagation();
          zoom = names;
          draw();
        });
        box.appendChild(d);
        flameFrames++;
        let x = left;
        [...f.children.values()]
          .sort((a, b) => b.bytes - a.bytes || (a.name < b.name ? -1 : 1))
          .forEach((c) => {
            place(c, x, row + 1, [...names, c.name]);
            x += c.bytes / total;
          });
      };
      place(root, 0, 0, zoom);
      box.style.height = String(depth * ROW + 2) + 'px';
      document.body.setAttribute('data-ptsim-flame', String(flameFrames) + ' frames');
    }

    /* The moment nearest a time clicked on a chart (samples only: those the replay took). */
    function nearest(t: number): number {
      let best = 0;
      moments.forEach((m, i) => {
        if (Math.abs(xOf(m.time) - t) < Math.abs(xOf(moments[best]!.time) - t)) best = i;
      });
      return best;
    }

    /* Top sites over time: the sites with the most bytes at any moment, one line each. */
    const chartHost = section('chart-sites');
    if (chartHost) {
      const order = moments
        .map((_, i) => i)
        .sort(
          (a, b) => moments[a]!.time - moments[b]!.time || moments[a]!.event - moments[b]!.event,
        );
      const perSite = new Map<string, number[]>();
      order.forEach((mi, k) => {
        const m = moments[mi]!;
        for (let i = 0; i < m.node.length; i++) {
          if (!sites.site[m.node[i]!]) continue;
          const name = sites.names[sites.name[m.node[i]!]!]!;
          let col = perSite.get(name);
          if (!col) {
            col = order.map(() => 0);
            perSite.set(name, col);
          }
          col[k]! += m.bytes[i]!;
        }
      });
      const top = [...perSite.entries()]
        .sort((a, b) => Math.max(...b[1]) - Math.max(...a[1]) || (a[0] < b[0] ? -1 : 1))
        .slice(0, 8);
      if (top.length > 0)
        makeChart(
          chartHost,
          'Top allocation sites over time (resident bytes of their live and cached blocks)',
          [order.map((mi) => xOf(moments[mi]!.time)), ...top.map(([, col]) => col)],
          top.map(([name], k): Line => ({
            label: name,
            color: COLORS[k % COLORS.length]!,
            sparse: true,
          })),
          data.configs[0]!.thresholds,
        );
    }

    charts.forEach((c) => {
      c.u.over.addEventListener('click', () => {
        const left = c.u.cursor.left;
        if (left === undefined || left < 0) return;
        show(nearest(c.u.posToVal(left, 'x')));
        host.scrollIntoView({ block: 'start' });
      });
    });

    /* A link may name the moment to show: #event=N, the moment taken nearest event N. */
    const asked = /(?:^#|&)event=(\d+)/.exec(location.hash);
    if (asked) {
      const e = Number(asked[1]);
      moments.forEach((m, i) => {
        if (Math.abs(m.event - e) < Math.abs(moments[current]!.event - e)) current = i;
      });
    }
    draw();
  })();

  /* What was drawn, for anyone checking the page without looking at it (the tests do). */
  document.body.setAttribute(
    'data-ptsim-drawn',
    String(charts.length) +
      ' charts, ' +
      String(document.querySelectorAll('#heap-map canvas').length) +
      ' heap map canvases',
  );
})();
