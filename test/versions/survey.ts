/**
 * How far each other glibc version is from 2.36, native against native: the differential suite's
 * traces replayed by the native replayer on this machine's glibc 2.36 and on Debian's build of
 * the other version, their fidelity logs compared event by event. No ptsim in it: this is the map
 * of what a version profile of the model would have to change (docs/glibc-versions.md).
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { traceEnv } from '../diff/harness.js';
import { runNativeText, type NativeRun } from '../helpers/native.js';
import { readTraceText } from '../../src/trace/reader.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '../..');

export interface SurveyTrace {
  name: string;
  /** hand-written, bundled, undetected, generated, threads, heaps */
  group: string;
  text: string;
}

function files(dir: string, test: (f: string) => boolean): string[] {
  return readdirSync(dir).filter(test).sort();
}

function readText(path: string): string {
  const buf = readFileSync(path);
  return (buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf).toString('utf8');
}

/**
 * The survey's traces: every hand-written case, every bundled trace (compressed ones included),
 * the undetected double frees, and every `step`-th generated trace of the differential suite's
 * three generators, with the same seeds and lengths as their tests.
 */
export function surveyTraces(step = 10): SurveyTrace[] {
  const out: SurveyTrace[] = [];
  const add = (group: string, dir: string, test: (f: string) => boolean): void => {
    for (const f of files(dir, test)) out.push({ name: f, group, text: readText(join(dir, f)) });
  };
  add('hand-written', join(ROOT, 'test/diff/cases'), (f) => f.endsWith('.trace'));
  add('undetected', join(ROOT, 'test/diff/undetected'), (f) => f.endsWith('.trace'));
  add('native', join(ROOT, 'test/native'), (f) => f.endsWith('.trace'));
  add('bundled', join(ROOT, 'traces'), (f) => /\.trace(\.gz)?$/.test(f));
  for (let n = 0; n < 500; n += step) {
    const events = n % 25 === 0 ? 6000 : 150 + ((n * 7919) % 1200);
    const name = `diff-${n}.trace`;
    out.push({ name, group: 'generated', text: generateTrace({ seed: `diff-${n}`, events }) });
  }
  for (let n = 0; n < 300; n += step) {
    const events = n % 30 === 0 ? 8000 : 300 + ((n * 7919) % 1500);
    const text = generateThreadedTrace({ seed: `threads-${n}`, events });
    out.push({ name: `threads-${n}.trace`, group: 'threads', text });
  }
  for (let n = 0; n < 40; n += Math.max(1, Math.floor(step / 2))) {
    const events = 400 + ((n * 7919) % 1200);
    const text = generateThreadedTrace({ seed: `heaps-${n}`, events, heapStress: true });
    out.push({ name: `heaps-${n}.trace`, group: 'heaps', text });
  }
  return out;
}

/** The part of a log line that says where a block went: everything but the RSS. */
function record(e: Record<string, unknown> | undefined): string {
  if (e === undefined) return 'none';
  const { rss: _rss, ...rest } = e;
  return JSON.stringify(rest);
}

export interface TraceComparison {
  name: string;
  group: string;
  /** Events in the 2.36 log, and in the other version's. */
  events: number;
  eventsOther: number;
  /** Events (of the longer log) whose record differs, or that one log lacks. */
  differing: number;
  /** Events whose RSS after the event differs. */
  rssDiffering: number;
  /** The first event whose record differs: its index, trace line, and both records. */
  first?: { i: number; line: number; text: string; base: string; other: string };
  firstRss?: { i: number; line: number; base: number; other: number };
  rss: [number, number];
  peakRss: [number, number];
  /** How each run ended: "ok", "abort at N: message", "exit N", "signal S". */
  end: [string, string];
}

function ending(r: NativeRun): string {
  if (r.abort !== undefined) return `abort at ${r.abort.event}: ${r.abort.message}`;
  if (r.signal !== null) return `signal ${r.signal}`;
  if (r.exitCode !== 0) return `exit ${r.exitCode}: ${r.stderr.trim().split('\n').pop() ?? ''}`;
  return 'ok';
}

function eventLines(text: string, name: string): number[] {
  const lines: number[] = [];
  try {
    readTraceText(text, name, { header: () => {}, event: (ev) => lines.push(ev.line) });
  } catch {
    // a trace ptsim refuses still replays natively; events past the error have no line here
  }
  return lines;
}

export function compareNative(t: SurveyTrace, base: NativeRun, other: NativeRun): TraceComparison {
  const n = Math.max(base.events.length, other.events.length);
  const lines = eventLines(t.text, t.name);
  const traceLines = t.text.split('\n');
  const c: TraceComparison = {
    name: t.name,
    group: t.group,
    events: base.events.length,
    eventsOther: other.events.length,
    differing: 0,
    rssDiffering: 0,
    rss: [Number(base.summary?.['rss'] ?? NaN), Number(other.summary?.['rss'] ?? NaN)],
    peakRss: [Number(base.summary?.['peakRss'] ?? NaN), Number(other.summary?.['peakRss'] ?? NaN)],
    end: [ending(base), ending(other)],
  };
  for (let i = 0; i < n; i++) {
    const a = base.events[i];
    const b = other.events[i];
    const line = lines[i] ?? 0;
    if (record(a) !== record(b)) {
      c.differing++;
      c.first ??= {
        i,
        line,
        text: traceLines[line - 1] ?? '',
        base: record(a),
        other: record(b),
      };
    }
    if (a?.['rss'] !== b?.['rss']) {
      c.rssDiffering++;
      c.firstRss ??= { i, line, base: Number(a?.['rss']), other: Number(b?.['rss']) };
    }
  }
  return c;
}

/** Replays one survey trace on 2.36 (this machine's glibc) or on `glibc`. */
export function runSurveyTrace(t: SurveyTrace, glibc?: string): NativeRun {
  return runNativeText(t.text, {
    env: traceEnv(t.text),
    name: t.name,
    rss: true,
    ...(glibc === undefined ? {} : { glibc }),
  });
}
