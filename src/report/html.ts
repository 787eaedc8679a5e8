/**
 * The report as one HTML file that opens without a network: the explanation as tables written
 * here, the data as a JSON block (#ptsim-data) that the inlined script draws the charts and the
 * heap map from, and the chart library inlined. Text from the trace goes through escapeHtml in
 * the tables and through jsonForScript in the data block.
 */

import { CAUSE_NAMES, CAUSE_TEXT } from '../analysis/breakdown.js';
import type { MomentExplanation } from '../analysis/explain.js';
import { shortBytes, thousands } from '../analysis/units.js';
import { comparisonWords, totalBesideWords } from '../analysis/measured-compare.js';
import { chartAssets, pageScript } from './assets.js';
import type { PageData } from './client/page-data.js';
import { escapeHtml as h, inlineScript, inlineStyle, jsonForScript } from './escape.js';
import type { ReportData } from './report.js';

function num(n: number): string {
  return thousands(n);
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; margin: 0; background: #f7f7f5; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d2d6dc; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
details.header { margin: 8px 0; }
details.header summary { cursor: pointer; color: #4a5568; }
details.header pre { background: #fff; border: 1px solid #e2e8f0; padding: 8px 12px; overflow-x: auto; font-size: 12px; }
.sub { color: #4a5568; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; background: #fff; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e2e8f0; text-align: left; vertical-align: top; }
th { background: #edf2f7; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { display: inline-block; height: 10px; background: #3b7dd8; vertical-align: middle; }
.why { color: #4a5568; font-size: 13px; }
.facts td:first-child { color: #4a5568; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; word-break: break-all; }
.chart { margin: 10px 0 18px; background: #fff; padding: 6px 0; }
#chart-rss, #chart-thresholds { background: #fff; padding: 6px 0; }
.legend { margin: 6px 0 10px; }
.legend-item { display: inline-block; margin-right: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; border: 1px solid rgba(0,0,0,0.15); }
.pin-swatch { border: 2px solid #e53e3e; background: transparent; }
.region { margin: 8px 0 14px; background: #fff; padding: 6px 4px; }
.region-head { font-size: 13px; color: #2d3748; margin: 0 0 4px 4px; }
.tooltip { position: absolute; z-index: 10; background: #1a202c; color: #fff; padding: 6px 8px; border-radius: 4px; font-size: 12px; pointer-events: none; max-width: 520px; }
.note { color: #4a5568; font-size: 13px; }
.flame-controls { margin: 6px 0; }
.flame-controls button { margin-right: 6px; font: inherit; font-size: 13px; }
.flame-controls label { margin: 0 10px; font-size: 13px; }
.flame-title { font-size: 13px; color: #2d3748; margin: 6px 0; }
.flame { position: relative; background: #fff; margin: 6px 0 14px; overflow: hidden; }
.frame { position: absolute; height: 19px; display: flex; overflow: hidden; cursor: pointer; box-shadow: inset -1px 0 #fff, inset 0 -1px #fff; }
.frame .seg { height: 100%; flex: none; opacity: 0.85; }
.frame .label { position: absolute; left: 3px; top: 2px; font-size: 11.5px; white-space: nowrap; color: #1a202c; pointer-events: none; }
.frame.site .label { font-weight: 600; }
.frame:hover .seg { opacity: 1; }
.warn { color: #9b2c2c; }
`;

/** The trace's measurement at the moment beside the replay's (explain's measured), when it has one. */
function measuredHtml(m: MomentExplanation): string[] {
  const c = m.measured;
  if (c === undefined) return [];
  const s = c.sample;
  const { where, mark, rec, total, signed } = comparisonWords(c, m.event, num);
  if (c.kind === 'total') {
    const { beside, leftOut } = totalBesideWords(c);
    return [
      `<p class="sub">Measured by the process: ${h(beside)} (the #:rss sample ${h(where)}, trace line ${num(s.line)}${h(mark)}); ${h(leftOut)}.</p>`,
    ];
  }
  const out = [
    `<p class="sub">Measured by the process: RssAnon <b>${h(shortBytes(s.anon!))}</b>${h(rec)}${h(total)} (the #:rss sample ${h(where)}, trace line ${num(s.line)}${h(mark)}); the replay ${h(shortBytes(s.modelled))} there. Grown since the first sample (line ${num(c.first.line)}): measured ${h(signed(c.measuredGrowth))}, modelled ${h(signed(c.modelledGrowth))}; ${c.differs ? 'they differ' : `they agree within 5% + 512 KiB (${h(shortBytes(c.allowed))})`}.</p>`,
  ];
  if (c.note !== undefined) out.push(`<p class="note warn">${h(c.note)}.</p>`);
  return out;
}

function explanationHtml(d: ReportData, m: MomentExplanation): string {
  const out: string[] = [];
  const where =
    m.moment === 'end'
      ? 'at the end of the trace'
      : m.moment === 'peak'
        ? 'at its peak'
        : `after event ${num(m.event)}`;
  out.push(
    `<p class="sub">Resident memory ${h(where)} (event ${num(m.event)}, trace line ${num(m.line)}): <b>${h(shortBytes(m.residentBytes))}</b>, ${num(m.residentPages)} pages, of ${h(shortBytes(m.mappedBytes))} mapped (the rest never touched, or given back with madvise).</p>`,
  );

  for (const n of d.notes) out.push(`<p class="note warn">Note: ${h(n)}.</p>`);
  out.push(...measuredHtml(m));
  out.push(
    '<h3>Where it is</h3><table><tr><th>cause</th><th>resident</th><th>share</th><th>pages</th><th>chunks</th><th>what it means</th></tr>',
  );
  for (const c of m.causes) {
    if (c.bytes === 0 && c.chunks === 0) continue;
    const share = m.residentBytes > 0 ? (100 * c.bytes) / m.residentBytes : 0;
    out.push(
      `<tr><td>${h(CAUSE_NAMES[c.cause])}</td><td class="n">${h(shortBytes(c.bytes))}</td><td class="n"><span class="bar" style="width:${Math.round(share)}px"></span> ${share.toFixed(1)}%</td><td class="n">${num(c.pages)}</td><td class="n">${num(c.chunks)}</td><td class="why">${h(CAUSE_TEXT[c.cause])}</td></tr>`,
    );
  }
  out.push('</table>');

  const arenas = m.arenas.filter((a) => a.residentBytes > 0);
  if (arenas.length > 2) {
    out.push('<h3>By arena</h3><table><tr><th>arena</th><th>resident</th><th>of it free</th></tr>');
    for (const a of arenas) {
      const name =
        a.arena < 0
          ? 'chunks mmapped on their own'
          : a.arena === 0
            ? 'main arena'
            : `arena ${a.arena}`;
      const free =
        a.causes['free-bins'].bytes +
        a.causes.fragmentation.bytes +
        a.causes['free-top'].bytes +
        a.causes['free-fastbins'].bytes +
        a.causes['free-tcache'].bytes;
      out.push(
        `<tr><td>${h(name)}</td><td class="n">${h(shortBytes(a.residentBytes))}</td><td class="n">${h(shortBytes(free))}</td></tr>`,
      );
    }
    out.push('</table>');
  }

  if (m.fragmentation.length > 0) {
    out.push(
      '<h3>Fragmentation</h3><p class="note">Resident pages that live blocks share with free memory in the bins: the kernel takes pages back whole, so no trim can return them while the blocks are there.</p>',
    );
    out.push(
      '<table><tr><th>heap</th><th>pages</th><th>free on them</th><th>live blocks on them</th><th>for example</th></tr>',
    );
    for (const f of m.fragmentation) {
      const heap = f.arena === 0 ? 'main heap' : `arena ${f.arena} heap ${f.heap}`;
      const eg = f.examples
        .slice(0, 3)
        .map(
          (b) =>
            `<code>${h(b.token || '?')}</code> (${num(b.requested)} bytes, event ${num(b.bornEvent)}, line ${num(b.line)})`,
        )
        .join(', ');
      out.push(
        `<tr><td>${h(heap)}</td><td class="n">${num(f.pages)}</td><td class="n">${h(shortBytes(f.bytes))}</td><td class="n">${num(f.blocks)}</td><td>${eg}</td></tr>`,
      );
    }
    out.push('</table>');
  }

  const pins = m.pins.filter((p) => p.heldBytes > 0 || p.freeBelowBytes > 0);
  if (pins.length > 0) {
    out.push(
      '<h3>What pins it</h3><p class="note">A heap gives memory back only from its top: the highest chunk still held keeps the free memory below it. Pins are outlined in red on the heap map. Freeing a pin does not always help: the last column says what freeing it at this moment does, replayed.</p>',
    );
    out.push(
      '<table><tr><th>heap</th><th>held by</th><th>allocated</th><th>free right below</th><th>free below in all</th><th>freeing it now</th></tr>',
    );
    for (const p of pins) {
      const heap = p.arena === 0 ? 'main heap' : `arena ${p.arena} heap ${p.heap}`;
      const what =
        p.kind === 'live'
          ? `live block <code>${h(p.token || '?')}</code> (${num(p.requested)} bytes)`
          : p.kind === 'glibc'
            ? "glibc's own chunk (the tcache structure or a fencepost)"
            : `a freed ${num(p.size)}-byte chunk held in the ${h(p.kind)}`;
      const born =
        (p.bornEvent >= 0 ? h(`event ${num(p.bornEvent)}, line ${num(p.line)}`) : '') +
        (p.site !== undefined
          ? `<br><span class="mono">in ${h(p.site.chain.join(' <- '))}</span>`
          : '');
      out.push(
        `<tr><td>${h(heap)}</td><td>${what}</td><td>${born}</td><td class="n">${h(shortBytes(p.heldBytes))}</td><td class="n">${h(shortBytes(p.freeBelowBytes))}</td><td>${p.freed !== undefined ? h(p.freed.note) : ''}</td></tr>`,
      );
    }
    out.push('</table>');
  }

  out.push(...sitesHtml(m));

  const changes = d.configs[0]!.thresholds;
  const st = m.thresholdState;
  out.push('<h3>Thresholds</h3>');
  out.push(
    `<p class="note">At this moment: mmap threshold ${h(shortBytes(st.mmapThreshold))}, trim threshold ${h(shortBytes(st.trimThreshold))}; ${st.dynamic ? 'glibc still adjusts them' : 'fixed by a setting, glibc no longer adjusts them'}. glibc's rule: free() of an mmapped block bigger than the mmap threshold, and at most 32 MiB, raises the mmap threshold to its size and the trim threshold to twice that; setting M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD or M_MMAP_MAX stops it.</p>`,
  );
  if (changes.length === 0)
    out.push('<p class="note">The mmap and trim thresholds never changed during the trace.</p>');
  else {
    out.push(
      '<p class="note">Each change is a dashed line on the charts below. After the dynamic threshold rises, blocks that used to get a mapping of their own (returned to the system on free) come from the heap instead.</p>',
    );
    out.push(
      '<table><tr><th>when</th><th>cause</th><th>mmap threshold</th><th>trim threshold</th><th>later heap allocations it caused</th></tr>',
    );
    for (const t of changes) {
      const at =
        t.event < 0
          ? 'start-up'
          : `event ${num(t.event)} (line ${num(t.line)}, ${h(t.op)}${t.token ? ` <code>${h(t.token)}</code>` : ''})`;
      out.push(
        `<tr><td>${at}</td><td>${h(t.cause)}</td><td class="n">${h(shortBytes(t.oldMmapThreshold))} &rarr; ${h(shortBytes(t.newMmapThreshold))}</td><td class="n">${h(shortBytes(t.oldTrimThreshold))} &rarr; ${h(shortBytes(t.newTrimThreshold))}</td><td class="n">${t.heapAllocationsSince > 0 ? `${num(t.heapAllocationsSince)} (${h(shortBytes(t.heapBytesSince))})` : ''}</td></tr>`,
      );
    }
    out.push('</table>');
  }

  if (m.remedies.length === 0 && m.tried.length > 0)
    out.push(
      '<h3>What would help</h3><p class="note">Nothing tried saves memory at this moment (each remedy replayed to it).</p>',
    );
  if (m.remedies.length > 0) {
    out.push(
      '<h3>What would help</h3><p class="note">Remedies chosen from the causes above, each replayed to this moment, ranked by the memory it saves; only those that save something are listed.</p>',
    );
    out.push(
      '<table><tr><th>setting</th><th>resident</th><th>saves</th><th>peak</th><th>system calls</th><th>page faults</th><th>what it does</th></tr>',
    );
    for (const r of m.remedies) {
      if (r.failure !== undefined) {
        out.push(
          `<tr><td><code>${h(r.setting)}</code></td><td colspan="6" class="warn">could not be replayed: ${h(r.failure)}</td></tr>`,
        );
        continue;
      }
      const sign = (n: number): string => (n >= 0 ? `+${num(n)}` : num(n));
      out.push(
        `<tr><td><code>${h(r.setting)}</code></td><td class="n">${h(shortBytes(r.rss))}</td><td class="n">${h(shortBytes(r.saved))}</td><td class="n">${h(shortBytes(r.peakRss))}</td><td class="n">${sign(r.extraSyscalls)}</td><td class="n">${sign(r.extraPageFaults)}</td><td class="why">${h(r.why)}${remedyMore(r)}</td></tr>`,
      );
    }
    out.push('</table>');
  }
  // A pin freed earlier that saves nothing: why, each on a line of its own.
  for (const r of m.tried.filter((x) => x.id === 'free_pin_early' && x.failure === undefined))
    out.push(
      `<p class="note">Tried: <code>${h(r.setting)}</code>: ${h(r.note ?? 'saves nothing here')}.${remedyMore({ ...r, note: undefined })}</p>`,
    );
  if (m.tried.length > 0)
    out.push(
      `<p class="note">Tried, saving nothing here: ${m.tried
        .filter((r) => r.id !== 'free_pin_early' || r.failure !== undefined)
        .map(
          (r) =>
            `<code>${h(r.setting)}</code>${r.failure !== undefined ? ` (could not be replayed: ${h(r.failure)})` : ''}`,
        )
        .join(', ')}.</p>`,
    );
  return out.join('\n');
}

const SITE_CAUSE: Record<string, string> = {
  live: 'live data',
  tcache: 'freed blocks in the tcache',
  fastbins: 'freed blocks in the fastbins',
  fragmentation: 'fragmentation (free memory in the bins that these live blocks keep resident)',
};

/** The top allocation sites of each cause, as explain lists them (a trace with call stacks). */
function sitesHtml(m: MomentExplanation): string[] {
  const ms = m.sites;
  if (ms === undefined || ms.causes.length === 0) return [];
  const out = [
    `<h3>Which code holds it</h3><p class="note">The top allocation sites of each cause (by ${h(ms.by)}): the first caller of each block's call stack that is not an allocator wrapper. The flame graph below shows every site, at this and other moments.</p>`,
    '<table><tr><th>cause</th><th>site</th><th>resident</th><th>pages</th><th>blocks</th><th>called from</th></tr>',
  ];
  for (const c of ms.causes) {
    c.sites.forEach((x, i) => {
      out.push(
        `<tr><td>${i === 0 ? h(SITE_CAUSE[c.cause] ?? c.cause) : ''}</td><td class="mono">${h(x.key)}</td><td class="n">${h(shortBytes(x.bytes))}</td><td class="n">${num(x.pages)}</td><td class="n">${num(x.blocks)}</td><td class="mono">${h(x.chain.slice(1).join(' <- '))}</td></tr>`,
      );
    });
    const rest: string[] = [];
    if (c.more > 0) rest.push(`and ${num(c.more)} more site${c.more === 1 ? '' : 's'}`);
    if (c.unknownBytes > 0)
      rest.push(`${shortBytes(c.unknownBytes)} in blocks without a call stack`);
    if (rest.length > 0)
      out.push(`<tr><td></td><td colspan="5" class="note">${h(rest.join('; '))}</td></tr>`);
  }
  out.push('</table>');
  return out;
}

/** The flame graph's section, for a trace with call stacks. */
function flameHtml(d: ReportData): string {
  const s = d.sites;
  if (s === undefined) return '';
  const wrappers =
    s.wrappers.length > 0
      ? ` Allocator wrappers (${h(s.wrappers.slice(0, 6).join(', '))}, ...) are folded into their callers.`
      : '';
  return `<h2>Which code holds the memory</h2>
<p class="note">Resident memory by call chain, as an icicle: the outermost caller at the top, each allocation site at the bottom of its chain, widths in proportion to resident bytes (chunk headers included), each frame coloured by what its bytes are. Memory no allocation site holds (free chunks merged in the bins, the free top, glibc's own metadata) has boxes of its own, so that the whole width is the resident memory; call chains that hold less than 1/5,000 of it are summed in one box. Taken at the moment explained, the end, the peak and ${num(s.moments.filter((x) => x.kind === 'sample').length)} moments along the timeline.${wrappers}</p>
<div id="flame"></div>
<div id="chart-sites"></div>`;
}

/** A pin remedy's note on the freed chunk, and the code that allocated the pin. */
function remedyMore(r: {
  id: string;
  note?: string | undefined;
  site?: { chain: string[] };
}): string {
  let out = '';
  if (r.id === 'free_pin_early' && r.note !== undefined) out += `<br>${h(r.note)}`;
  if (r.site !== undefined)
    out += `<br>allocated in <span class="mono">${h(r.site.chain.join(' <- '))}</span>`;
  return out;
}

function configsHtml(d: ReportData): string {
  const out: string[] = [
    '<table><tr><th>configuration</th><th>final RSS</th><th>peak RSS</th><th>peak at event</th><th>heap</th><th>mmapped</th><th>brk</th><th>mmap</th><th>munmap</th><th>mremap</th><th>mprotect</th><th>madvise</th><th>page faults</th></tr>',
  ];
  for (const c of d.configs) {
    const s = c.summary;
    const sc = s.syscalls;
    out.push(
      `<tr><td><code>${h(c.name)}</code></td><td class="n">${h(shortBytes(s.rss))}</td><td class="n">${h(shortBytes(s.peakRss))}</td><td class="n">${num(s.peakEvent)}</td><td class="n">${h(shortBytes(s.heap))}</td><td class="n">${h(shortBytes(s.mmapped))}</td>` +
        [sc.brk, sc.mmap, sc.munmap, sc.mremap, sc.mprotect, sc.madvise, s.pageFaults]
          .map((n) => `<td class="n">${num(n)}</td>`)
          .join('') +
        '</tr>',
    );
    if (s.abort !== undefined)
      out.push(
        `<tr><td></td><td colspan="12" class="warn">glibc would abort: ${h(s.abort)}</td></tr>`,
      );
    if (c.failure !== undefined)
      out.push(
        `<tr><td></td><td colspan="12" class="warn">the replay stopped early: ${h(c.failure)}</td></tr>`,
      );
  }
  out.push('</table>');
  return out.join('\n');
}

function headerHtml(d: ReportData, baseSettings: string): string {
  const rows: Array<[string, string]> = [
    ['events', num(d.events)],
    ['CPUs glibc sees', num(d.explanation.cores)],
    ['arenas at the end', num(d.explanation.arenas)],
    ['time axis', d.timed ? "the trace's @TIME stamps" : 'event index (the trace has no times)'],
  ];
  if (baseSettings !== '') rows.push(['settings for every configuration', baseSettings]);
  for (const [k, v] of d.header.facts) rows.push([`# ${k}`, v]);
  for (const [k, v] of d.header.env) rows.push(['# env', `${k}=${v}`]);
  const table = `<table class="facts">${rows.map(([k, v]) => `<tr><td>${h(k)}</td><td class="mono">${h(v)}</td></tr>`).join('')}</table>`;
  const lines = d.header.comments;
  if (lines.length === 0) return table;
  return `${table}
<details class="header"><summary>the trace's header (${num(lines.length)} comment line${lines.length === 1 ? '' : 's'})</summary><pre>${h(lines.map((l) => `# ${l}`).join('\n'))}</pre></details>`;
}

/** What the measured line of the RSS chart is, when the trace has #:rss samples. */
function measuredChartNote(d: ReportData): string {
  const m = d.configs[0]!.measured;
  if (m === undefined) return '';
  if (m.of === 'total')
    return `\n<p class="note">Grey line: what the process measured of itself (${num(m.time.length)} #:rss sample${m.time.length === 1 ? '' : 's'}, total= only), beside the default configuration's RSS: its whole RSS (what top shows as RES), ${m.baseline < 0 ? `plus ${h(shortBytes(-m.baseline))}` : `less ${h(shortBytes(m.baseline))}`}, the rest of the process at the first sample (code, libraries, stacks, the recorder's own memory: the replay's RSS counts only the allocator's memory), so that the two lines start together. Where they part, the allocator's memory grew differently from the replay's, or the rest of the process grew (thread stacks, its own mmaps, a language runtime's pools).</p>`;
  return `\n<p class="note">Grey line: what the process measured of itself (${num(m.time.length)} #:rss sample${m.time.length === 1 ? '' : 's'}), beside the default configuration's RSS: its RssAnon less the recorder's own memory (rec=) and ${m.baseline < 0 ? `plus ${h(shortBytes(-m.baseline))}` : `less ${h(shortBytes(m.baseline))}`}, what it held before its first allocator call beyond the replay's figure there (stacks, libraries' data, a runtime's start-up), so that the two lines start together. Where they part, the process holds memory the allocator does not own (thread stacks, its own mmaps, a language runtime's pools), or the replay counts pages the program never wrote.</p>`;
}

/**
 * What the page models: "A replay on a model of glibc 2.36's malloc (x86_64)", or, with
 * configurations on several releases, each of them and the one explained.
 */
function modelled(d: ReportData): string {
  const versions = [...new Set(d.configs.map((c) => c.summary.glibc))];
  const first = d.configs[0]!.summary.glibc;
  if (versions.length === 1) return `A replay on a model of glibc ${first}'s malloc (x86_64)`;
  return `Replays on models of glibc ${versions.join(', ')}'s malloc (x86_64), the explanation and the heap map on glibc ${first}`;
}

/** The whole page. `baseSettings` describes the settings every configuration ran with. */
export function renderReport(d: ReportData, baseSettings = ''): string {
  const assets = chartAssets();
  const m = d.explanation.moments[0]!;
  const samples = d.configs[0]!.series.event.length;
  // The page's script reads the data as a PageData: this fails to compile if the two drift apart.
  const forPage: PageData = d;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ptsim report: ${h(d.trace)}</title>
<style>${inlineStyle(assets.style)}</style>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>ptsim report: ${h(d.trace)}</h1>
<p class="sub">${h(modelled(d))}: where the resident memory is, why glibc keeps it, and what each setting would change.</p>
${headerHtml(d, baseSettings)}
<h2>Explanation</h2>
${explanationHtml(d, m)}
${flameHtml(d)}
<h2>Resident memory over time</h2>
<p class="note">${num(samples)} samples per configuration (the peak and the last event always among them). Dashed lines: changes of the mmap threshold; solid line: the moment explained above. Live bytes and free-but-resident bytes are measured at fewer samples on large heaps (a walk over every chunk).</p>${measuredChartNote(d)}
<div id="chart-rss"></div>
<h3>Configurations</h3>
${configsHtml(d)}
<div id="chart-configs"></div>
<h2>Thresholds</h2>
<div id="chart-thresholds"></div>
<h2>Heap map ${h(m.moment === 'end' ? 'at the end' : m.moment === 'peak' ? 'at the peak' : 'after event ' + num(m.event))}</h2>
<p class="note">Each region of the allocator's memory, addresses left to right and row by row; hover for a chunk's address, size and state.</p>
<div id="heap-map"></div>
</main>
<script type="application/json" id="ptsim-data">${jsonForScript(forPage)}</script>
<script>
/* uPlot ${h(assets.version)}
${assets.license.replace(/\*\//g, '* /')}
*/
${inlineScript(assets.script)}
</script>
<script>
${inlineScript(pageScript())}
</script>
</body>
</html>
`;
}
