/**
 * The differential suite's traces for the other glibc versions (test/versions/differential.test.ts
 * runs them all, test/diff/versions.test.ts a few of each kind in npm test): every hand-written
 * case, every bundled trace, the traces of docs/learn/versions.md, and every `step`-th trace of
 * the three generators, with the same seeds and lengths as their own tests.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import type { TouchMode } from '../../src/replay/replay.js';
import { tracesOf } from '../docs/examples.js';

const HERE = dirname(fileURLToPath(import.meta.url));

export interface VersionTrace {
  name: string;
  /** hand-written, bundled, generated, threads, heaps */
  group: string;
  /** Made when the test runs: a generated trace costs its generation. */
  text: () => string;
  /** Compare malloc_stats and malloc_info too. */
  details: boolean;
  /** The touch model, when not the trace's default. */
  touch?: TouchMode;
}

function readText(path: string): string {
  const buf = readFileSync(path);
  return (buf[0] === 0x1f && buf[1] === 0x8b ? gunzipSync(buf) : buf).toString('utf8');
}

function files(dir: string, test: (f: string) => boolean): string[] {
  return readdirSync(dir).filter(test).sort();
}

/** The hand-written cases and the bundled traces (the .trace.gz ones with `big`). */
export function fixedTraces(big: boolean): VersionTrace[] {
  const out: VersionTrace[] = [];
  const cases = join(HERE, 'cases');
  for (const f of files(cases, (f) => f.endsWith('.trace')))
    out.push({
      name: f,
      group: 'hand-written',
      text: () => readText(join(cases, f)),
      details: true,
    });
  const bundled = join(HERE, '../../traces');
  for (const f of files(bundled, (f) => (big ? /\.trace(\.gz)?$/ : /\.trace$/).test(f)))
    out.push({
      name: f,
      group: 'bundled',
      text: () => readText(join(bundled, f)),
      details: f.endsWith('.trace'),
    });
  return out;
}

/** Every `step`-th generated trace of each generator, from `first` on. */
export function generatedTraces(step: number, first = 0): VersionTrace[] {
  const out: VersionTrace[] = [];
  for (let n = first; n < 500; n += step) {
    const events = n % 25 === 0 ? 6000 : 150 + ((n * 7919) % 1200);
    out.push({
      name: `diff-${n}.trace`,
      group: 'generated',
      text: () => generateTrace({ seed: `diff-${n}`, events }),
      details: n % 10 === 0,
    });
  }
  for (let n = first; n < 300; n += step) {
    const events = n % 30 === 0 ? 8000 : 300 + ((n * 7919) % 1500);
    out.push({
      name: `threads-${n}.trace`,
      group: 'threads',
      text: () => generateThreadedTrace({ seed: `threads-${n}`, events }),
      details: n % 10 === 0,
    });
  }
  for (let n = first; n < 40; n += Math.max(1, Math.floor(step / 4))) {
    const events = 400 + ((n * 7919) % 1200);
    out.push({
      name: `heaps-${n}.trace`,
      group: 'heaps',
      text: () => generateThreadedTrace({ seed: `heaps-${n}`, events, heapStress: true }),
      details: n % 5 === 0,
    });
  }
  return out;
}

/**
 * The touch-model variants: every hand-written case without the program's writes (none), and
 * every `step`-th generated trace with touch records (recorded) and without writes (none).
 */
export function touchVariants(step: number, first = 0): VersionTrace[] {
  const out: VersionTrace[] = [];
  for (const t of fixedTraces(false))
    if (t.group === 'hand-written') out.push({ ...t, details: false, touch: 'none' });
  for (let n = first; n < 500; n += step) {
    const events = n % 25 === 0 ? 6000 : 150 + ((n * 7919) % 1200);
    out.push({
      name: `diff-${n}-touches.trace`,
      group: 'generated',
      text: () => generateTrace({ seed: `diff-${n}`, events, touches: true }),
      details: false,
    });
    out.push({
      name: `diff-${n}.trace`,
      group: 'generated',
      text: () => generateTrace({ seed: `diff-${n}`, events }),
      details: false,
      touch: 'none',
    });
  }
  for (let n = first; n < 300; n += step) {
    const events = n % 30 === 0 ? 8000 : 300 + ((n * 7919) % 1500);
    out.push({
      name: `threads-${n}-touches.trace`,
      group: 'threads',
      text: () => generateThreadedTrace({ seed: `threads-${n}`, events, touches: true }),
      details: false,
    });
  }
  return out;
}

/** The traces of undetected/: double frees glibc does not notice. */
export function undetectedTraces(): VersionTrace[] {
  const dir = join(HERE, 'undetected');
  return files(dir, (f) => f.endsWith('.trace')).map((f) => ({
    name: f,
    group: 'undetected',
    text: () => readText(join(dir, f)),
    details: false,
  }));
}

/**
 * The traces of docs/learn/versions.md, written on the page (each carries its settings in its own
 * header), so that every difference the page shows stays proven on each version.
 */
export function pageTraces(): VersionTrace[] {
  const page = readFileSync(join(HERE, '../../docs/learn/versions.md'), 'utf8');
  return [...tracesOf(page)].map(([name, text]) => ({
    name: `versions.md ${name}`,
    group: 'docs',
    text: () => text,
    details: true,
  }));
}
