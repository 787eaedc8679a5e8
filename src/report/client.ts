/**
 * The report page's own script: it reads the data block (#ptsim-data), draws the charts with
 * uPlot and the heap map on canvases. Plain ES5-style JavaScript kept as text, so that the page
 * runs in any browser without a build step; everything it shows from the data goes through
 * textContent or a canvas, never through innerHTML.
 */

export const CLIENT_SCRIPT = String.raw`window.addEventListener('error', function (e) { document.body.setAttribute('data-ptsim-error', String(e.message)); });
(function () {
'use strict';
var data = JSON.parse(document.getElementById('ptsim-data').textContent);
var COLORS = ['#2b6cb0', '#c53030', '#2f855a', '#dd6b20', '#6b46c1', '#975a16', '#d53f8c', '#4a5568', '#b7791f', '#0987a0'];
var STATE_COLORS = { live: '#3b7dd8', tcache: '#f0a030', fastbin: '#e4572e', bin: '#6aa84f', top: '#b6e3b0', metadata: '#8c8c8c' };
var timed = data.timed;
var xLabel = timed ? 'trace time (s)' : 'event';

function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return '-';
  var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  var v = Math.abs(n), u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  var s = u === 0 ? String(v) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0);
  return (n < 0 ? '-' : '') + s + ' ' + units[u];
}

function hex(n) { return '0x' + n.toString(16); }

function xOf(t) { return timed ? t / 1e9 : t; }

function fmtX(v) {
  if (v === null || v === undefined) return '-';
  return timed ? (+v.toFixed(6)) + ' s' : String(Math.round(v));
}

function chartWidth(host) { return Math.max(320, (host.clientWidth || 960) - 4); }

/** Sample indexes in order of x (uPlot wants ascending x; recorded times may step back a little). */
function order(series) {
  var idx = series.time.map(function (_, i) { return i; });
  idx.sort(function (a, b) { return series.time[a] - series.time[b] || series.event[a] - series.event[b]; });
  return idx;
}

function column(series, idx, f) { return idx.map(function (i) { return f(i); }); }

/** Vertical markers: threshold changes (dashed) and the explained moment (solid). */
function markers(changes, momentTime) {
  return {
    hooks: {
      draw: [function (u) {
        var ctx = u.ctx, b = u.bbox, dpr = window.devicePixelRatio || 1;
        ctx.save();
        ctx.font = (10 * dpr) + 'px sans-serif';
        var labelled = 0;
        changes.forEach(function (m) {
          var x = Math.round(u.valToPos(xOf(m.time), 'x', true));
          if (x < b.left || x > b.left + b.width) return;
          ctx.strokeStyle = m.cause === 'mallopt' ? '#6b46c1' : m.cause === 'start-up settings' ? '#4a5568' : '#c05621';
          ctx.lineWidth = dpr;
          ctx.setLineDash([4 * dpr, 3 * dpr]);
          ctx.beginPath(); ctx.moveTo(x + 0.5, b.top); ctx.lineTo(x + 0.5, b.top + b.height); ctx.stroke();
          if (labelled < 40) {
            ctx.fillStyle = ctx.strokeStyle;
            ctx.fillText('mmap ' + fmtBytes(m.newMmapThreshold), x + 3 * dpr, b.top + (10 + 11 * (labelled % 3)) * dpr);
            labelled++;
          }
        });
        if (momentTime !== null) {
          var mx = Math.round(u.valToPos(xOf(momentTime), 'x', true));
          if (mx >= b.left && mx <= b.left + b.width) {
            ctx.setLineDash([]);
            ctx.strokeStyle = '#1a202c';
            ctx.lineWidth = 2 * dpr;
            ctx.beginPath(); ctx.moveTo(mx, b.top); ctx.lineTo(mx, b.top + b.height); ctx.stroke();
          }
        }
        ctx.restore();
      }]
    }
  };
}

var charts = [];

/* Byte axes tick at powers of two (1 MiB, 2 MiB, ...), not at 1.91 MiB. */
var BYTE_INCRS = [];
for (var p2 = 1; p2 <= Math.pow(2, 52); p2 *= 2) BYTE_INCRS.push(p2);

function makeChart(host, title, xs, series, values, changes) {
  var opts = {
    title: title,
    width: chartWidth(host),
    height: 280,
    scales: { x: { time: false } },
    cursor: { sync: { key: 'ptsim' } },
    series: [{ label: xLabel, value: function (u, v) { return fmtX(v); } }].concat(series.map(function (s) {
      return {
        label: s.label,
        stroke: s.color,
        width: s.width || 1.5,
        spanGaps: true,
        points: { show: !!s.sparse, size: 4 },
        paths: s.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: function (u, v) { return fmtBytes(v); }
      };
    })),
    axes: [
      { label: xLabel, values: function (u, vals) { return vals.map(fmtX); } },
      { size: 80, incrs: BYTE_INCRS, values: function (u, vals) { return vals.map(fmtBytes); } }
    ],
    plugins: [markers(changes, data.moment.time)]
  };
  var u = new uPlot(opts, [xs].concat(values), host);
  charts.push({ u: u, host: host });
  return u;
}

function section(id) { return document.getElementById(id); }

/* ---------------------------------------------------------------- RSS of every configuration */

(function () {
  var host = section('chart-rss');
  if (!host) return;
  var tables = data.configs.map(function (c) {
    var idx = order(c.series);
    return [column(c.series, idx, function (i) { return xOf(c.series.time[i]); }), column(c.series, idx, function (i) { return c.series.rss[i]; })];
  });
  var joined = uPlot.join(tables);
  var xs = joined[0];
  var series = data.configs.map(function (c, k) { return { label: c.name, color: COLORS[k % COLORS.length], width: k === 0 ? 2.5 : 1.5 }; });
  /* The charts show times in seconds, the markers keep nanoseconds: xOf converts both. */
  makeChart(host, 'RSS over time, each configuration', xs, series, joined.slice(1), data.configs[0].thresholds);
})();

/* ---------------------------------------------------------------- each configuration in detail */

(function () {
  var host = section('chart-configs');
  if (!host) return;
  data.configs.forEach(function (c, k) {
    var box = el('div', 'chart');
    host.appendChild(box);
    var s = c.series, idx = order(s);
    var xs = column(s, idx, function (i) { return xOf(s.time[i]); });
    var free = column(s, idx, function (i) {
      var t = s.causes['free-tcache'][i];
      if (t === null) return null;
      return t + s.causes['free-fastbins'][i] + s.causes['free-bins'][i] + s.causes['free-top'][i];
    });
    var measured = free.filter(function (v) { return v !== null; }).length;
    var series = [
      { label: 'RSS', color: '#1a202c', width: 2 },
      { label: 'heap (system_mem)', color: '#2b6cb0' },
      { label: 'mmapped', color: '#c05621' },
      { label: 'live bytes', color: '#2f855a', sparse: measured < xs.length / 4 },
      { label: 'free but resident', color: '#d53f8c', sparse: measured < xs.length / 4 }
    ];
    var values = [
      column(s, idx, function (i) { return s.rss[i]; }),
      column(s, idx, function (i) { return s.heap[i]; }),
      column(s, idx, function (i) { return s.mmapped[i]; }),
      column(s, idx, function (i) { return s.live[i]; }),
      free
    ];
    makeChart(box, (k === 0 ? 'default configuration' : c.name) + ': memory over time', xs, series, values, c.thresholds);
  });
})();

/* ---------------------------------------------------------------- thresholds */

(function () {
  var host = section('chart-thresholds');
  if (!host) return;
  var c = data.configs[0], s = c.series, idx = order(s);
  makeChart(host, 'mmap and trim thresholds (default configuration)', column(s, idx, function (i) { return xOf(s.time[i]); }), [
    { label: 'mmap threshold', color: '#c05621', width: 2, stepped: true },
    { label: 'trim threshold', color: '#2b6cb0', width: 2, stepped: true }
  ], [column(s, idx, function (i) { return s.mmapThreshold[i]; }), column(s, idx, function (i) { return s.trimThreshold[i]; })], c.thresholds);
})();

window.addEventListener('resize', function () {
  charts.forEach(function (c) { c.u.setSize({ width: chartWidth(c.host), height: 280 }); });
});

/* ---------------------------------------------------------------- the heap map */

(function () {
  var host = section('heap-map');
  var map = data.heapMap;
  if (!host || !map) return;
  var legend = el('div', 'legend');
  map.states.forEach(function (st) {
    var item = el('span', 'legend-item');
    var sw = el('span', 'swatch');
    sw.style.background = STATE_COLORS[st];
    item.appendChild(sw);
    item.appendChild(document.createTextNode(st));
    legend.appendChild(item);
  });
  var pinItem = el('span', 'legend-item');
  var pinSw = el('span', 'swatch pin-swatch');
  pinItem.appendChild(pinSw);
  pinItem.appendChild(document.createTextNode('pin (the chunk that keeps the free memory below it from being trimmed)'));
  legend.appendChild(pinItem);
  var resItem = el('span', 'legend-item', 'dark strip under a row: resident pages');
  legend.appendChild(resItem);
  host.appendChild(legend);
  var tip = el('div', 'tooltip');
  tip.style.display = 'none';
  document.body.appendChild(tip);
  var drawn = [];
  map.regions.forEach(function (r, ri) {
    var box = el('div', 'region');
    var head = el('div', 'region-head');
    head.textContent = r.name + ': ' + (r.packed ? '' : hex(r.start) + ', ') + fmtBytes(r.size) + ', ' + r.chunkCount.toLocaleString('en-US') + ' chunks, ' + fmtBytes(r.residentBytes) + ' resident' + (r.buckets ? ' (drawn in buckets of ' + fmtBytes(r.buckets.span) + ')' : '');
    box.appendChild(head);
    var canvas = document.createElement('canvas');
    box.appendChild(canvas);
    host.appendChild(box);
    var pins = map.pins.filter(function (p) { return p.region === ri; });
    var d = { r: r, canvas: canvas, pins: pins, box: box };
    drawn.push(d);
    drawRegion(d);
    canvas.addEventListener('mousemove', function (ev) { hover(d, ev); });
    canvas.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });

  var GUTTER = 96, ROW_H = 16, GAP = 8, PAD = 6;

  function niceBytes(n) {
    var p = 16;
    while (p < n) p *= 2;
    return p;
  }

  function layout(d) {
    var w = Math.max(320, (d.box.clientWidth || 960) - 4);
    var plotW = w - GUTTER - 8;
    var size = Math.max(d.r.size, 16);
    /* At most 32 rows; no finer than 16 bytes (the smallest chunk) to a pixel. */
    var perRow = niceBytes(Math.max(size / 32, 16 * plotW, 64));
    var rows = Math.max(1, Math.ceil(size / perRow));
    return { w: w, plotW: plotW, perRow: perRow, rows: rows, scale: plotW / perRow, h: PAD + rows * (ROW_H + GAP) };
  }

  function spans(L, a, b, f) {
    while (a < b) {
      var row = Math.floor(a / L.perRow);
      var e = Math.min(b, (row + 1) * L.perRow);
      /* Whole pixels: neighbouring spans meet without anti-aliased seams. */
      var x0 = Math.floor(GUTTER + (a - row * L.perRow) * L.scale);
      var x1 = Math.floor(GUTTER + (e - row * L.perRow) * L.scale);
      f(x0, Math.max(1, x1 - x0), PAD + row * (ROW_H + GAP), x1 - x0);
      a = e;
    }
  }

  function drawRegion(d) {
    var r = d.r, L = layout(d), dpr = window.devicePixelRatio || 1;
    d.L = L;
    var c = d.canvas;
    c.width = L.w * dpr; c.height = L.h * dpr;
    c.style.width = L.w + 'px'; c.style.height = L.h + 'px';
    var ctx = c.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, L.w, L.h);
    ctx.font = '10px monospace';
    ctx.fillStyle = '#4a5568';
    for (var row = 0; row < L.rows; row++) {
      ctx.fillText('+' + hex(row * L.perRow), 4, PAD + row * (ROW_H + GAP) + 12);
    }
    if (!r.packed) {
      /* What no chunk covers (heap and arena headers, alignment) is glibc's. */
      ctx.fillStyle = STATE_COLORS.metadata;
      spans(L, 0, r.size, function (x, w, y) { ctx.fillRect(x, y, w, ROW_H); });
    }
    if (r.chunks) {
      var ch = r.chunks;
      for (var i = 0; i < ch.off.length; i++) {
        ctx.fillStyle = STATE_COLORS[map.states[ch.state[i]]];
        spans(L, ch.off[i], ch.off[i] + ch.size[i], function (x, w, y, exact) {
          ctx.fillRect(x, y, w, ROW_H);
          if (exact >= 4) { ctx.fillStyle = 'rgba(255,255,255,0.7)'; ctx.fillRect(x, y, 1, ROW_H); ctx.fillStyle = STATE_COLORS[map.states[ch.state[i]]]; }
        });
      }
    } else if (r.buckets) {
      var bk = r.buckets, n = bk.count.length;
      for (var k = 0; k < n; k++) {
        var a = k * bk.span, b = Math.min(r.size, a + bk.span), y0 = 0;
        for (var st = 0; st < map.states.length; st++) {
          var frac = bk.bytes[st][k] / (b - a);
          if (frac <= 0) continue;
          ctx.fillStyle = STATE_COLORS[map.states[st]];
          (function (off, fr) {
            spans(L, a, b, function (x, w, y) { ctx.fillRect(x, y + off * ROW_H, w, Math.max(1, fr * ROW_H)); });
          })(y0, frac);
          y0 += frac;
        }
      }
    }
    if (r.resident.length > 0) {
      var m = r.resident.length, rs = r.residentSpan;
      for (var j = 0; j < m; j++) {
        var f = r.resident[j];
        if (f <= 0) continue;
        ctx.fillStyle = 'rgba(26,32,44,' + (0.15 + 0.85 * f).toFixed(2) + ')';
        spans(L, j * rs, Math.min(r.size, (j + 1) * rs), function (x, w, y) { ctx.fillRect(x, y + ROW_H + 1, w, 3); });
      }
    }
    d.pins.forEach(function (p) {
      ctx.strokeStyle = '#e53e3e';
      ctx.lineWidth = 2;
      spans(L, p.off, p.off + p.size, function (x, w, y) { ctx.strokeRect(x - 1, y - 1, w + 2, ROW_H + 2); });
      var row = Math.floor(p.off / L.perRow);
      var px = GUTTER + (p.off - row * L.perRow) * L.scale, py = PAD + row * (ROW_H + GAP);
      ctx.fillStyle = '#e53e3e';
      ctx.beginPath(); ctx.moveTo(px - 5, py - 6); ctx.lineTo(px + 5, py - 6); ctx.lineTo(px, py); ctx.closePath(); ctx.fill();
    });
  }

  function hover(d, ev) {
    var L = d.L, r = d.r;
    var rect = d.canvas.getBoundingClientRect();
    var x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    var row = Math.floor((y - PAD) / (ROW_H + GAP));
    if (x < GUTTER || row < 0 || row >= L.rows) { tip.style.display = 'none'; return; }
    var off = row * L.perRow + (x - GUTTER) / L.scale;
    if (off >= r.size) { tip.style.display = 'none'; return; }
    var lines = [];
    if (r.chunks) {
      var ch = r.chunks, lo = 0, hi = ch.off.length - 1, at = -1;
      while (lo <= hi) { var mid = (lo + hi) >> 1; if (ch.off[mid] <= off) { at = mid; lo = mid + 1; } else hi = mid - 1; }
      if (at >= 0 && off < ch.off[at] + ch.size[at]) {
        var addr = ch.addr ? ch.addr[at] : r.start + ch.off[at];
        var st = map.states[ch.state[at]];
        lines.push('chunk at ' + hex(addr) + (r.packed ? '' : ' (+' + hex(ch.off[at]) + ')') + ', ' + ch.size[at] + ' bytes: ' + st);
        if (st === 'live') lines.push(ch.req[at] + ' bytes asked for');
        if (ch.born[at] >= 0) lines.push('handed out at event ' + ch.born[at]);
      } else lines.push('+' + hex(Math.floor(off)) + ': glibc metadata (no chunk)');
    } else if (r.buckets) {
      var bk = r.buckets, k = Math.min(bk.count.length - 1, Math.floor(off / bk.span));
      lines.push(hex(r.start + k * bk.span) + ' to ' + hex(r.start + Math.min(r.size, (k + 1) * bk.span)) + ': ' + bk.count[k] + ' chunks start here');
      map.states.forEach(function (st, i) { if (bk.bytes[i][k] > 0) lines.push(st + ': ' + fmtBytes(bk.bytes[i][k])); });
    }
    if (r.resident.length > 0) {
      var j = Math.min(r.resident.length - 1, Math.floor(off / r.residentSpan));
      lines.push('pages here: ' + Math.round(r.resident[j] * 100) + '% resident');
    }
    d.pins.forEach(function (p) {
      if (off >= p.off && off < p.off + p.size) {
        lines.push('PIN (' + p.kind + (p.token ? ' ' + p.token : '') + (p.line ? ', trace line ' + p.line : '') + '): holds ' + fmtBytes(p.heldBytes) + ' of free memory right below it');
      }
    });
    tip.textContent = '';
    lines.forEach(function (t) { tip.appendChild(el('div', '', t)); });
    tip.style.display = 'block';
    tip.style.left = (ev.pageX + 12) + 'px';
    tip.style.top = (ev.pageY + 12) + 'px';
  }

  window.addEventListener('resize', function () { drawn.forEach(drawRegion); });
})();
/* What was drawn, for anyone checking the page without looking at it (the tests do). */
document.body.setAttribute('data-ptsim-drawn', charts.length + ' charts, ' + document.querySelectorAll('#heap-map canvas').length + ' heap map canvases');
})();
`;
