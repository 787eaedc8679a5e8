/**
 * The documentation's examples are real: every command shown on the learning pages and the field
 * reports is run, and every output line pasted under it must be in what it prints, in order. The
 * small traces the learning pages write inline must also replay identically on this machine's
 * glibc, with the same settings the page gives them.
 */

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import {
  checkOutput,
  examplesOf,
  readPage,
  replaySettingsOf,
  ROOT,
  runExamples,
  tracesOf,
} from './examples.js';

const DIRS = ['docs/learn', 'docs/field-reports'];
const PAGES = ['docs/explaining.md', 'docs/show-and-step.md'];

const pages: string[] = [];
for (const d of DIRS)
  for (const f of readdirSync(join(ROOT, d))
    .filter((f) => f.endsWith('.md'))
    .sort())
    pages.push(`${d}/${f}`);
pages.push(...PAGES);

describe('the documentation examples print what the pages show', () => {
  for (const page of pages) {
    it(page, async () => {
      const md = readPage(join(ROOT, page));
      expect(examplesOf(md).length).toBeGreaterThan(0);
      for (const ran of await runExamples(md)) {
        const problem = checkOutput(ran);
        expect(
          problem === null
            ? null
            : `${page}:${ran.example.line}: $ ${ran.example.command.split('\n')[0]}\n${problem}`,
        ).toBeNull();
      }
    });
  }
});

describe("the learning pages' traces replay identically on glibc", () => {
  for (const page of pages.filter((p) => p.startsWith('docs/learn/'))) {
    it(page, () => {
      const md = readPage(join(ROOT, page));
      const traces = tracesOf(md);
      const runs = replaySettingsOf(md, traces);
      const seen = new Set<string>();
      for (const r of runs) {
        // mallopt calls made from the command line have no environment equivalent to give glibc.
        if (r.mallopt) continue;
        const key = `${r.trace} ${JSON.stringify(r.env)}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const diff = differential(traces.get(r.trace)!, {
          name: r.trace,
          env: r.env,
          stats: true,
          info: true,
        });
        expect(
          diff === null ? null : `${page}: ${r.trace} with ${JSON.stringify(r.env)}:\n${diff}`,
        ).toBeNull();
      }
    });
  }
});
