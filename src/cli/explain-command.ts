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
import { shortBytes } from '../analysis/units.js';
import { defineCommand } from './command.js';
import { GlibcAborted, NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count, formatBytes, plural } from './numbers.js';
import { settingsNotes } from './settings-notes.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, parseNumber, settingsArgs } from './settings-options.js';

const EXPLAIN_HELP = `Usage: ptsim explain TRACE [options]

Replays TRACE and explains its resident memory at the end and at its peak: where every resident
byte is (live blocks, allocator overhead, each kind of free memory glibc keeps), the block that
pins each heap's top, each change of the mmap and trim thresholds, and what each remedy would
change, computed by replaying the trace again with it (malloc_trim(0), a fixed M_MMAP_THRESHOLD,
M_TRIM_THRESHOLD=0, M_MMAP_MAX=0, no tcache, and fewer arenas when there are several).

Options:
  --at WHEN            end, peak or an event index (repeatable; default: end and peak)
  --json               print the explanation as one JSON object
  --no-what-if         skip the remedies (faster)
  --jobs N             replay the remedies on N worker threads (default: the number of CPUs)
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
    const ex = await explain(path, {
      settings,
      import: importArgs(values),
      at: values.at.length > 0 ? values.at.map(parseMoment) : undefined,
      whatIfs: !values['no-what-if'],
      parallel: jobs,
      progress: (d, t) => progress(d, t),
    });
    if (ex.events === 0) warn(`${path}: ${NO_EVENTS}`);
    out(values.json ? JSON.stringify(ex) + '\n' : formatExplanation(ex));
    if (ex.abort !== undefined) throw new GlibcAborted(path, ex.abort);
    return 0;
  },
});

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
        a.causes['free-top'].bytes +
        a.causes['free-fastbins'].bytes +
        a.causes['free-tcache'].bytes;
      lines.push(
        `    ${name.padEnd(15)} ${shortBytes(a.residentBytes).padStart(10)} resident, ${shortBytes(free)} of it free`,
      );
    }
  }
  const pins = m.pins.filter((p) => p.heldBytes > 0 || p.freeBelowBytes > 0);
  if (pins.length > 0) {
    lines.push('');
    lines.push('  what pins it (a heap only gives memory back from its top)');
    for (const p of pins.slice(0, 8)) {
      const heap = p.arena === 0 ? 'main heap' : `arena ${p.arena} heap ${p.heap}`;
      const what =
        p.kind === 'live'
          ? `live block ${p.token || '?'} (${count(p.requested)} bytes, allocated at event ${p.bornEvent}, line ${p.line})`
          : p.kind === 'glibc'
            ? "glibc's own chunk (the tcache structure or a fencepost)"
            : `a freed ${count(p.size)}-byte chunk still held in the ${p.kind} (allocated at event ${p.bornEvent}, line ${p.line})`;
      lines.push(
        `    ${heap}: ${what} holds ${shortBytes(p.heldBytes)} of free memory right below it (${shortBytes(p.freeBelowBytes)} free below it in all)`,
      );
    }
    if (pins.length > 8) lines.push(`    ... and ${plural(pins.length - 8, 'more heap')}`);
  }
  if (m.thresholds.length > 0) {
    lines.push('');
    lines.push('  thresholds');
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
  }
  if (m.remedies.length > 0) {
    lines.push('');
    lines.push('  what would help (each replayed to this moment)');
    for (const r of m.remedies) {
      if (r.failure !== undefined) {
        lines.push(`    ${r.setting.padEnd(30)} could not be replayed: ${r.failure}`);
        continue;
      }
      const signed = (n: number, what: string): string =>
        `${n >= 0 ? '+' : '-'}${plural(Math.abs(n), what)}`;
      const cost = `${signed(r.extraSyscalls, 'syscall')}, ${signed(r.extraPageFaults, 'page fault')}`;
      lines.push(
        `    ${r.setting.padEnd(30)} ${shortBytes(r.rss).padStart(10)} resident (${r.saved >= 0 ? 'saves' : 'costs'} ${shortBytes(Math.abs(r.saved))}), peak ${shortBytes(r.peakRss)}, ${cost}`,
      );
      lines.push(`    ${''.padEnd(30)} ${r.why}`);
    }
  }
  return lines.join('\n') + '\n';
}

function formatExplanation(ex: Explanation): string {
  const text = ex.moments.map((m) => formatMoment(ex, m)).join('\n');
  return ex.note === undefined ? text : `${text}\nnote: ${ex.note}\n`;
}
