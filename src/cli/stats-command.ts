/**
 * `ptsim stats TRACE`: what a trace contains, without replaying it.
 */

import { openTrace, type OpenTraceResult } from '../import/index.js';
import type { Summary } from '../stats/log-histogram.js';
import { TraceStats, type TraceStatsReport } from '../stats/trace-stats.js';
import { defineCommand } from './command.js';
import { NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { count, formatBytes, plural } from './numbers.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';

export const STATS_HELP = `Usage: ptsim stats TRACE [options]

Reads TRACE (any format ptsim reads, plain or compressed; - reads standard input) and reports what
it contains, without replaying it: events by operation, threads, the requested sizes in
power-of-two buckets, the peak of live requested bytes and when it was reached, allocation
lifetimes (in events, and in time when the trace has timestamps) and the blocks never freed.

Options:
  --json               print the statistics as one JSON object
${IMPORT_HELP}
  -h, --help           show this help

Lifetimes run from the call that allocated a block to the free (or realloc to size 0) that ended
it; a realloc that moves a block carries its lifetime on. Percentiles are estimated to within
about 9% (exact below 128).

A free of a token the trace never allocated, a token allocated again while live, or a #:touch
record of a block that is not live or of a page past its end, is a mistake a replay stops at:
stats reports the whole trace, then the first such line (status 2). A second
free of a token freed lately is a double free, which a replay may reproduce as glibc's abort:
stats counts it and goes on.

${exitStatusHelp({ replays: false })}`;

export const statsCommand = defineCommand({
  name: 'stats',
  help: STATS_HELP,
  options: {
    json: { type: 'boolean', default: false },
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { out, warn, fail }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0
          ? 'stats needs a TRACE file (- for standard input)'
          : `stats takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`,
      );
    }
    const path = positionals[0]!;
    const displayName = path === '-' ? '<stdin>' : path;
    const args = importArgs(values);
    const stats = new TraceStats();
    const read = await openTrace(path, stats, {
      ...args,
      displayName,
      onWarning: warn,
    });
    const r = stats.report();
    if (r.events === 0) warn(`${displayName}: ${NO_EVENTS}`);
    if (values.json)
      out(
        JSON.stringify({
          file: displayName,
          format: read.format,
          lines: read.lines,
          skipped: read.skipped,
          ...r,
        }) + '\n',
      );
    else out(formatStats(displayName, read, r));
    if (r.mistake === undefined) return 0;
    return fail(
      Object.assign(new Error(`${displayName}:${r.mistake.line}: ${r.mistake.detail}`), {
        name: 'ReplayError',
      }),
    );
  },
});

const n = count;

/** A duration in ns, readable. */
function formatDuration(ns: number): string {
  if (ns < 1e3) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

function summaryLine(s: Summary, f: (v: number) => string): string {
  return `mean ${f(s.mean)}, median ${f(s.median)}, p90 ${f(s.p90)}, p99 ${f(s.p99)}, max ${f(s.max)}`;
}

/** A size bucket's label: `0`, `1`, `[2, 4)`, `[4, 8)`, ..., with units from 1 KiB on. */
function bucketLabel(min: number, max: number): string {
  const u = (v: number): string => {
    for (const [unit, k] of [
      ['EiB', 2 ** 60],
      ['PiB', 2 ** 50],
      ['TiB', 2 ** 40],
      ['GiB', 2 ** 30],
      ['MiB', 2 ** 20],
      ['KiB', 2 ** 10],
    ] as const) {
      if (v >= k && v % k === 0) return `${v / k} ${unit}`;
    }
    return `${v}`;
  };
  return min === max ? u(min) : `[${u(min)}, ${u(max + 1)})`;
}

function formatStats(name: string, read: OpenTraceResult, r: TraceStatsReport): string {
  const lines: string[] = [];
  const span =
    r.time !== undefined ? `, ${formatDuration(r.time.last - r.time.first)} of recording` : '';
  lines.push(
    `${name} (${read.format}): ${plural(r.events, 'event')}, ${plural(r.threads.length, 'thread')}${span}`,
  );
  lines.push('', '  operations');
  for (const [op, count] of Object.entries(r.operations)) {
    lines.push(
      `    ${op.padEnd(12)} ${n(count).padStart(14)}  ${((100 * count) / r.events).toFixed(1).padStart(5)}%`,
    );
  }
  if (r.failed > 0) lines.push(`    (${plural(r.failed, 'call')} returned NULL in the recording)`);
  const skipped = Object.entries(read.skipped);
  if (skipped.length > 0)
    lines.push(
      `    left out by the import: ${skipped.map(([what, c]) => `${n(c)} ${what}`).join(', ')}`,
    );

  if (r.threads.length > 1) {
    lines.push('', '  threads (events)');
    const shown = r.threads.slice(0, 16);
    for (const t of shown)
      lines.push(`    ${String(t.tid).padStart(6)} ${n(t.events).padStart(14)}`);
    if (r.threads.length > shown.length)
      lines.push(`    ... and ${plural(r.threads.length - shown.length, 'more thread')}`);
  }

  lines.push('', '  requested sizes (bytes)');
  const most = Math.max(1, ...r.sizes.map((b) => b.count));
  const labels = r.sizes.map((b) => bucketLabel(b.min, b.max));
  const total = 'total requested';
  const labelWidth = Math.max(total.length, ...labels.map((l) => l.length));
  const countWidth = Math.max(0, ...r.sizes.map((b) => n(b.count).length));
  r.sizes.forEach((b, i) => {
    const bar = '#'.repeat(Math.max(1, Math.round((30 * b.count) / most)));
    lines.push(
      `    ${labels[i]!.padStart(labelWidth)}  ${n(b.count).padStart(countWidth)}  ${bar}`,
    );
  });
  lines.push(`    ${total.padStart(labelWidth)}  ${formatBytes(BigInt(r.requestedBytesExact))}`);

  lines.push('');
  if (r.peak.event >= 0) {
    const when =
      r.peak.time !== undefined ? `, ${formatDuration(r.peak.time - (r.time?.first ?? 0))} in` : '';
    lines.push(
      `  peak live requested bytes  ${formatBytes(r.peak.bytes)} in ${plural(r.peak.blocks, 'block')}, after event ${r.peak.event} (line ${r.peak.line}${when})`,
    );
  } else {
    lines.push('  peak live requested bytes  0 B (nothing was allocated)');
  }
  lines.push(
    `  never freed                ${plural(r.neverFreed.blocks, 'block')} holding ${formatBytes(r.neverFreed.bytes)}`,
  );

  lines.push('', `  allocation lifetimes (${plural(r.lifetimes.count, 'block')} freed)`);
  if (r.lifetimes.count > 0) {
    lines.push(
      `    in events  ${summaryLine(r.lifetimes.events, (v) => n(Math.round(v * 10) / 10))}`,
    );
    if (r.lifetimes.ns !== undefined && r.lifetimes.ns.count > 0)
      lines.push(`    in time    ${summaryLine(r.lifetimes.ns, formatDuration)}`);
  }
  const a = r.anomalies;
  if (a.unknownFrees > 0 || a.reusedLive > 0 || a.doubleFrees > 0) {
    const odd: string[] = [];
    if (a.unknownFrees > 0)
      odd.push(
        `${plural(a.unknownFrees, 'free or realloc', 'frees or reallocs')} of tokens never allocated`,
      );
    if (a.reusedLive > 0) odd.push(`${plural(a.reusedLive, 'token')} handed out again while live`);
    if (a.doubleFrees > 0)
      odd.push(
        `${plural(a.doubleFrees, 'free or realloc', 'frees or reallocs')} of tokens freed before (double frees)`,
      );
    lines.push('', `  oddities: ${odd.join(', ')}`);
  }
  return lines.join('\n') + '\n';
}
