/**
 * `npm run survey:versions`: the native-against-native survey of docs/glibc-versions.md. Replays
 * the survey's traces (survey.ts) on this machine's glibc 2.36 and on each other version, and
 * writes what differs: per version the share of events whose record differs, the first differing
 * event of each trace, final and peak RSS. Asserts nothing about the versions: it measures.
 *
 * SURVEY_VERSIONS=2.41,2.43 picks the versions (default: all of GLIBC_SUITES); SURVEY_STEP=N
 * takes every N-th generated trace (default 10); SURVEY_OUT names the JSON file written (default
 * ptsim-glibc-survey.json in the system's temp directory), with a Markdown summary beside it.
 */

import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'vitest';
import { fetchGlibc, GLIBC_SUITES } from '../helpers/glibc-builds.js';
import type { NativeRun } from '../helpers/native.js';
import {
  compareNative,
  runSurveyTrace,
  surveyTraces,
  type SurveyTrace,
  type TraceComparison,
} from './survey.js';

const VERSIONS = (process.env['SURVEY_VERSIONS'] ?? Object.keys(GLIBC_SUITES).join(','))
  .split(',')
  .filter((v) => v !== '');
const STEP = Number(process.env['SURVEY_STEP'] ?? 10);
const OUT = process.env['SURVEY_OUT'] ?? join(tmpdir(), 'ptsim-glibc-survey.json');

function pct(a: number, b: number): string {
  return b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`;
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(0)} KiB`;
}

it('survey: native glibc 2.36 against the other versions', () => {
  const traces = surveyTraces(STEP);
  const t0 = performance.now();
  const base = new Map<SurveyTrace, NativeRun>();
  for (const t of traces) base.set(t, runSurveyTrace(t));
  const baseSeconds = (performance.now() - t0) / 1000;
  const results: Record<string, unknown> = {};
  const md: string[] = [
    `# glibc versions against 2.36, native against native`,
    '',
    `${traces.length} traces (generated: every ${STEP}th); 2.36 replayed in ${baseSeconds.toFixed(1)} s.`,
    '',
  ];
  for (const v of VERSIONS) {
    const f = fetchGlibc(v);
    if (!f.ok) {
      md.push(`## glibc ${v}: not available (${f.reason})`, '');
      results[v] = { unavailable: f.reason };
      continue;
    }
    const t1 = performance.now();
    const rows: TraceComparison[] = traces.map((t) =>
      compareNative(t, base.get(t)!, runSurveyTrace(t, v)),
    );
    const seconds = (performance.now() - t1) / 1000;
    const groups = [...new Set(rows.map((r) => r.group))];
    md.push(
      `## glibc ${v} (Debian ${f.build.debianVersion}, ${f.build.suite}), replayed in ${seconds.toFixed(1)} s`,
      '',
      '| traces | identical logs | identical RSS | events | differing records | differing RSS | final RSS (sum) 2.36 → ' +
        v +
        ' | peak RSS (sum) | endings that differ |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const g of [...groups, 'all']) {
      const rs = g === 'all' ? rows : rows.filter((r) => r.group === g);
      const ev = rs.reduce((s, r) => s + Math.max(r.events, r.eventsOther), 0);
      const sum = (k: 'rss' | 'peakRss', j: 0 | 1): number =>
        rs.reduce((s, r) => s + (Number.isFinite(r[k][j]) ? r[k][j] : 0), 0);
      md.push(
        `| ${g} (${rs.length}) | ${rs.filter((r) => r.differing === 0).length} | ${
          rs.filter((r) => r.rssDiffering === 0).length
        } | ${ev} | ${rs.reduce((s, r) => s + r.differing, 0)} (${pct(
          rs.reduce((s, r) => s + r.differing, 0),
          ev,
        )}) | ${rs.reduce((s, r) => s + r.rssDiffering, 0)} (${pct(
          rs.reduce((s, r) => s + r.rssDiffering, 0),
          ev,
        )}) | ${kib(sum('rss', 0))} → ${kib(sum('rss', 1))} | ${kib(sum('peakRss', 0))} → ${kib(
          sum('peakRss', 1),
        )} | ${rs.filter((r) => r.end[0] !== r.end[1]).length} |`,
      );
    }
    md.push('', '| trace | first differing event (line: text) | 2.36 | ' + v + ' | RSS / peak |');
    md.push('| --- | --- | --- | --- | --- |');
    for (const r of rows) {
      if (r.differing === 0 && r.rssDiffering === 0 && r.end[0] === r.end[1]) continue;
      const first =
        r.first === undefined
          ? r.firstRss === undefined
            ? '(records and RSS agree)'
            : `RSS only, event ${r.firstRss.i} (line ${r.firstRss.line}): ${r.firstRss.base} vs ${r.firstRss.other}`
          : `${r.first.i} (${r.first.line}: \`${r.first.text.trim()}\`)`;
      const end = r.end[0] !== r.end[1] ? ` ends: ${r.end[0]} / ${r.end[1]}` : '';
      md.push(
        `| ${r.name} | ${first} | ${r.first?.base ?? ''} | ${r.first?.other ?? ''} | ${kib(r.rss[0])} → ${kib(
          r.rss[1],
        )} / ${kib(r.peakRss[0])} → ${kib(r.peakRss[1])}${end} |`,
      );
    }
    md.push('');
    results[v] = { debianVersion: f.build.debianVersion, seconds, rows };
  }
  writeFileSync(OUT, `${JSON.stringify(results, null, 1)}\n`);
  const mdPath = OUT.replace(/\.json$/, '') + '.md';
  writeFileSync(mdPath, `${md.join('\n')}\n`);
  process.stdout.write(`${md.join('\n')}\nwritten: ${OUT}, ${mdPath}\n`);
});
