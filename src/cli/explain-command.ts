/**
 * `ptsim explain TRACE`: why the resident memory is what it is, and which setting would help.
 */

import { CAUSE_NAMES } from '../analysis/breakdown.js';
import {
  explain,
  type Explanation,
  type MomentExplanation,
  type Moment,
} from '../analysis/explain.js';
import { formatSites, pinSiteLine } from './explain-sites-text.js';
import type { SiteView } from '../analysis/explain-sites.js';
import { DEFAULT_WRAPPERS } from '../analysis/sites.js';
import { shortBytes } from '../analysis/units.js';
import { comparisonWords, totalBesideWords } from '../analysis/measured-compare.js';
import { defineCommand } from './command.js';
import { GlibcAborted, NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count, formatBytes, plural } from './numbers.js';
import { settingsNotes, traceGlibcNotes } from './settings-notes.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, parseNumber, settingsArgs } from './settings-options.js';

const EXPLAIN_HELP = `Usage: ptsim explain TRACE [options]

Replays TRACE and explains its resident memory at the end and at its peak: where every resident
byte is (live blocks, allocator overhead, each kind of free memory glibc keeps, fragmentation),
the block that pins each heap's top and what freeing it would do, the mmap and trim thresholds
and each change of them, and what would help: remedies chosen from the causes found (settings
such as M_MXFAST=0, a smaller tcache, fewer arenas, fixed thresholds, two of them together,
malloc_trim(0) now or every N events, the pin freed or allocated earlier), each replayed for real
and shown only when it saves memory.

Options:
  --at WHEN            end, peak or an event index (repeatable; default: end and peak)
  --json               print the explanation as one JSON object
  --no-what-if         skip the remedies (faster)
  --free-at EVENT      also try each pin freed right after event EVENT (repeatable; each pin is
                       tried freed right after its last use and at the moment anyway)
  --jobs N             replay the remedies on N worker threads (default: the number of CPUs)
  --by GROUPING        site, function or file: how the allocation sites of a trace recorded
                       with call stacks are grouped (default site)
  --wrappers LIST      more allocator wrappers to skip to their caller, comma-separated
                       (* matches any run of characters; xmalloc, operator new and the like
                       are skipped already)
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

${exitStatusHelp({ replays: true })} An --at past the trace's last event is a mistake
(status 2); when glibc aborts, the end explained is the abort.`;

/** An --at value: end, peak or an event index. */
export function parseMoment(text: string): Moment {
  if (text === 'end' || text === 'peak') return text;
  const n = parseNumber(text, '--at');
  if (n < 0) throw new UsageError('--at takes end, peak or an event index (0 or more)');
  return n;
}

export const explainCommand = defineCommand({
  name: 'explain',
  help: EXPLAIN_HELP,
  options: {
    at: { type: 'string', multiple: true, default: [] },
    json: { type: 'boolean', default: false },
    'no-what-if': { type: 'boolean', default: false },
    jobs: { type: 'string' },
    by: { type: 'string' },
    wrappers: { type: 'string', multiple: true, default: [] },
    'free-at': { type: 'string', multiple: true, default: [] },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  progress: 'replaying remedies',
  async run({ values, positionals }, { out, warn, progress }) {
    if (positionals.length !== 1)
      throw new UsageError(
        'explain needs one TRACE file (- is not accepted: the trace is read more than once)',
      );
    const path = positionals[0]!;
    if (path === '-')
      throw new UsageError('explain reads the trace several times: give a file, not -');
    const jobs = values.jobs !== undefined ? parseNumber(values.jobs, '--jobs') : undefined;
    if (jobs !== undefined && jobs < 1) throw new UsageError('--jobs must be 1 or more');
    const settings = settingsArgs(values);
    for (const n of settingsNotes(settings, true)) warn(n);
    for (const n of await traceGlibcNotes(path, [settings], importArgs(values))) warn(n);
    const ex = await explain(path, {
      settings,
      import: importArgs(values),
      at: values.at.length > 0 ? values.at.map(parseMoment) : undefined,
      whatIfs: !values['no-what-if'],
      parallel: jobs,
      progress: (d, t) => progress(d, t),
      sites: siteView(values.by, values.wrappers),
      freeAt: freeAtEvents(values['free-at']),
    });
    if (ex.events === 0) warn(`${path}: ${NO_EVENTS}`);
    out(values.json ? JSON.stringify(ex) + '\n' : formatExplanation(ex));
    if (ex.abort !== undefined) throw new GlibcAborted(path, ex.abort);
    return 0;
  },
});

/** The --free-at events. */
export function freeAtEvents(texts: string[]): number[] {
  return texts.map((t) => {
    const n = parseNumber(t, '--free-at');
    if (n < 0) throw new UsageError('--free-at takes an event index (0 or more)');
    return n;
  });
}

/** The --by and --wrappers options, as explain takes them. */
export function siteView(by: string | undefined, wrappers: string[]): SiteView {
  if (by !== undefined && by !== 'site' && by !== 'function' && by !== 'file')
    throw new UsageError('--by takes site, function or file');
  const more = wrappers.flatMap((w) => w.split(',').map((x) => x.trim())).filter((x) => x !== '');
  return { by: by ?? 'site', wrappers: [...DEFAULT_WRAPPERS, ...more] };
}

/** A heap's name, as the explanation prints it. */
function heapName(arena: number, heap: number): string {
  return arena === 0 ? 'main heap' : `arena ${arena} heap ${heap}`;
}

/** The trace's measurement at the moment beside the replay's, when it has `#:rss` samples. */
function measuredLines(m: MomentExplanation): string[] {
  const c = m.measured;
  if (c === undefined) return [];
  const s = c.sample;
  const { where, mark, rec, total, signed } = comparisonWords(c, m.event, String);
  if (c.kind === 'total') {
    const { beside, leftOut } = totalBesideWords(c);
    return [
      `  measured: ${beside} (#:rss sample ${where}, line ${s.line}${mark})`,
      `    ${leftOut}`,
    ];
  }
  const lines = [
    `  measured: RssAnon ${shortBytes(s.anon!)}${rec}${total} (#:rss sample ${where}, line ${s.line}${mark}); the replay ${shortBytes(s.modelled)} there`,
    `    growth since the first sample (line ${c.first.line}, RssAnon ${shortBytes(c.first.anon!)} against the replay's ${shortBytes(c.first.modelled)}: what the process held before its first allocator call): measured ${signed(c.measuredGrowth)}${s.recorder === null ? '' : ' less the recorder'}, modelled ${signed(c.modelledGrowth)}: ${c.differs ? 'they differ' : `they agree within 5% + 512 KiB (${shortBytes(c.allowed)})`}`,
  ];
  if (c.note !== undefined) lines.push(`  note: ${c.note}`);
  return lines;
}

function formatMoment(ex: Explanation, m: MomentExplanation): string {
  const where =
    m.event < 0
      ? 'before any event (the trace has none)'
      : m.moment === 'end'
        ? `at the end (event ${m.event}, line ${m.line})`
        : m.moment === 'peak'
          ? `at the peak (event ${m.event}, line ${m.line})`
          : `after event ${m.event} (line ${m.line})`;
  const lines: string[] = [];
  lines.push(
    `${ex.trace} ${where}: ${formatBytes(m.residentBytes)} resident, ${plural(m.residentPages, 'page')}`,
  );
  for (const n of ex.notes) lines.push(`  note: ${n}`);
  lines.push(...measuredLines(m));
  lines.push('');
  lines.push('  where it is');
  for (const c of m.causes) {
    if (c.bytes === 0 && c.chunks === 0) continue;
    const share = m.residentBytes > 0 ? ((100 * c.bytes) / m.residentBytes).toFixed(1) : '0.0';
    lines.push(
      `    ${CAUSE_NAMES[c.cause].padEnd(15)} ${shortBytes(c.bytes).padStart(10)} ${share.padStart(5)}%  ${count(c.pages).padStart(8)} ${(c.pages === 1 ? 'page' : 'pages').padEnd(5)}   ${c.text}`,
    );
  }
  // Mapped pages that cost nothing: never written since they were mapped, or given back with madvise.
  lines.push(
    `    ${'not resident'.padEnd(15)} ${shortBytes(m.mappedBytes - m.residentBytes).padStart(10)}  of ${shortBytes(m.mappedBytes)} mapped: pages never touched, or given back with madvise; they cost no RSS`,
  );
  if (m.arenas.filter((a) => a.residentBytes > 0).length > 2) {
    lines.push('');
    lines.push('  by arena');
    for (const a of m.arenas) {
      if (a.residentBytes === 0) continue;
      const name =
        a.arena < 0 ? 'mmapped chunks' : a.arena === 0 ? 'main arena' : `arena ${a.arena}`;
      const free =
        a.causes['free-bins'].bytes +
        a.causes.fragmentation.bytes +
        a.causes['free-top'].bytes +
        a.causes['free-fastbins'].bytes +
        a.causes['free-tcache'].bytes;
      lines.push(
        `    ${name.padEnd(15)} ${shortBytes(a.residentBytes).padStart(10)} resident, ${shortBytes(free)} of it free`,
      );
    }
  }
  // Fragmentation gets its section once it matters: a page or two shared with the pin is common.
  const fragmented = m.causes.find((c) => c.cause === 'fragmentation')!.bytes;
  if (m.fragmentation.length > 0 && fragmented >= FRAGMENTATION_SHOWN * m.residentBytes) {
    lines.push('');
    lines.push(
      '  fragmentation (pages that live blocks share with free memory in the bins: no trim can return them)',
    );
    for (const f of m.fragmentation.slice(0, 8)) {
      lines.push(
        `    ${heapName(f.arena, f.heap)}: ${plural(f.pages, 'page')} with ${shortBytes(f.bytes)} free stay resident because ${plural(f.blocks, 'live block')} ${f.blocks === 1 ? 'is' : 'are'} on them`,
      );
      for (const b of f.examples.slice(0, 3))
        lines.push(
          `      e.g. ${b.token || '?'} (${count(b.requested)} bytes, allocated at event ${b.bornEvent}, line ${b.line}): on ${plural(b.pages, 'page')} with ${shortBytes(b.freeBytes)} free`,
        );
    }
    if (m.fragmentation.length > 8)
      lines.push(`    ... and ${plural(m.fragmentation.length - 8, 'more heap')}`);
  }
  const pins = m.pins.filter((p) => p.heldBytes > 0 || p.freeBelowBytes > 0);
  if (pins.length > 0) {
    lines.push('');
    lines.push('  what pins it (a heap only gives memory back from its top)');
    for (const p of pins.slice(0, 8)) {
      const what =
        p.kind === 'live'
          ? `live block ${p.token || '?'} (${count(p.requested)} bytes, allocated at event ${p.bornEvent}, line ${p.line})`
          : p.kind === 'glibc'
            ? "glibc's own chunk (the tcache structure or a fencepost)"
            : `a freed ${count(p.size)}-byte chunk still held in the ${p.kind} (allocated at event ${p.bornEvent}, line ${p.line})`;
      lines.push(
        `    ${heapName(p.arena, p.heap)}: ${what} sits above ${shortBytes(p.heldBytes)} of free memory (${shortBytes(p.freeBelowBytes)} free below it in all)`,
      );
      if (p.site !== undefined) lines.push(pinSiteLine(p.site));
      if (p.freed !== undefined) lines.push(`      freeing it at this moment ${p.freed.note}`);
    }
    if (pins.length > 8) lines.push(`    ... and ${plural(pins.length - 8, 'more heap')}`);
  }
  if (m.sites !== undefined) lines.push(...formatSites(m.sites));
  lines.push('');
  lines.push('  thresholds');
  const st = m.thresholdState;
  const unchanged = m.thresholds.length === 0;
  lines.push(
    `    at this moment: mmap threshold ${shortBytes(st.mmapThreshold)}, trim threshold ${shortBytes(st.trimThreshold)}${unchanged ? ' (unchanged since start-up)' : ''}; ${st.dynamic ? 'glibc still adjusts them' : 'fixed by a setting: glibc no longer adjusts them'}`,
  );
  for (const t of m.thresholds) {
    const at =
      t.event < 0
        ? 'at start-up'
        : `event ${t.event} (line ${t.line}, ${t.op}${t.token ? ' ' + t.token : ''})`;
    const since =
      t.heapAllocationsSince > 0
        ? `; ${plural(t.heapAllocationsSince, 'later allocation')} (${shortBytes(t.heapBytesSince)}) went to a heap instead of mmap`
        : '';
    lines.push(
      `    ${at}: mmap threshold ${shortBytes(t.oldMmapThreshold)} -> ${shortBytes(t.newMmapThreshold)}, trim threshold ${shortBytes(t.oldTrimThreshold)} -> ${shortBytes(t.newTrimThreshold)} (${t.cause})${since}`,
    );
  }
  lines.push(`    ${THRESHOLD_RULE}`);
  if (m.remedies.length > 0 || m.tried.length > 0) {
    lines.push('');
    if (m.remedies.length === 0)
      lines.push(
        '  what would help: nothing tried saves memory at this moment (each replayed to it)',
      );
    else lines.push('  what would help (each replayed to this moment)');
    const signed = (n: number, what: string): string =>
      `${n >= 0 ? '+' : '-'}${plural(Math.abs(n), what)}`;
    for (const r of m.remedies) {
      const calls = r.calls !== undefined ? `${plural(r.calls, 'malloc_trim call')}, ` : '';
      const cost = `${calls}${signed(r.extraSyscalls, 'syscall')}, ${signed(r.extraPageFaults, 'page fault')}`;
      lines.push(
        `    ${r.setting.padEnd(30)} ${shortBytes(r.rss).padStart(10)} resident (saves ${shortBytes(r.saved)}), peak ${shortBytes(r.peakRss)}, ${cost}`,
      );
      lines.push(`    ${''.padEnd(30)} ${r.why}`);
      if (r.id === 'free_pin_early' && r.note !== undefined)
        lines.push(`    ${''.padEnd(30)} ${r.note}`);
      if (r.site !== undefined)
        lines.push(`    ${''.padEnd(30)} allocated in ${r.site.chain.join(' <- ')}`);
    }
    const failed = m.tried.filter((r) => r.failure !== undefined);
    // A pin freed earlier that saves nothing: why, on a line of its own.
    const early = m.tried.filter((r) => r.failure === undefined && r.id === 'free_pin_early');
    const none = m.tried.filter((r) => r.failure === undefined && r.id !== 'free_pin_early');
    for (const r of early) {
      lines.push(`    ${r.setting}: ${r.note ?? 'saves nothing here'}`);
      if (r.site !== undefined) lines.push(`      allocated in ${r.site.chain.join(' <- ')}`);
    }
    if (none.length > 0)
      lines.push(
        `    tried, saving nothing here: ${none.map((r) => `${r.setting}${r.saved < 0 ? ` (costs ${shortBytes(-r.saved)})` : r.saved > 0 ? ' (no more than one of them alone)' : ''}`).join(', ')}`,
      );
    for (const r of failed) lines.push(`    ${r.setting} could not be replayed: ${r.failure}`);
  }
  return lines.join('\n') + '\n';
}

/** The share of the resident memory from which fragmentation gets a section of its own. */
const FRAGMENTATION_SHOWN = 0.01;

/** glibc's rule for the two thresholds, in one line. */
const THRESHOLD_RULE =
  "glibc's rule: free() of an mmapped block bigger than the mmap threshold, and at most 32 MiB (DEFAULT_MMAP_THRESHOLD_MAX), raises the mmap threshold to its size and the trim threshold to twice that; setting M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD or M_MMAP_MAX (mallopt, tunable or environment) stops it";

function formatExplanation(ex: Explanation): string {
  return ex.moments.map((m) => formatMoment(ex, m)).join('\n');
}
