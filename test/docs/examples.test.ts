/**
 * The documentation's examples are real: every command shown on the learning pages and the field
 * reports is run, and every output line pasted under it must be in what it prints, in order. The
 * small traces the learning pages write inline must also replay identically on this machine's
 * glibc (2.36), with the same settings the page gives them, and, where a command names another
 * version with `--glibc`, on Debian's build of that version (skipped, with the reason, when it
 * cannot be fetched).
 */

import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { fetchGlibc } from '../helpers/glibc-builds.js';
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
    const md = readPage(join(ROOT, page));
    const traces = tracesOf(md);
    // mallopt calls made from the command line have no environment equivalent to give glibc.
    const runs = replaySettingsOf(md, traces).filter((r) => !r.mallopt);
    // This machine's glibc is 2.36: a command without --glibc, or with 2.36, replays on it; a
    // command with another version replays on Debian's build of that version.
    const native = (v: string | undefined): string | undefined => (v === '2.36' ? undefined : v);
    const versions = [...new Set(runs.map((r) => native(r.glibc)))];
    for (const version of versions) {
      const f = version === undefined ? null : fetchGlibc(version);
      const why = f === null || f.ok ? '' : ` (skipped: ${f.reason})`;
      const label = version === undefined ? page : `${page} on glibc ${version}${why}`;
      it.skipIf(f !== null && !f.ok)(label, () => {
        const seen = new Set<string>();
        for (const r of runs.filter((r) => native(r.glibc) === version)) {
          const key = `${r.trace} ${JSON.stringify(r.env)}`;
          if (seen.has(key)) continue;
          seen.add(key);
          const diff = differential(traces.get(r.trace)!, {
            name: r.trace,
            env: r.env,
            stats: true,
            info: true,
            ...(version === undefined ? {} : { glibc: version }),
          });
          expect(
            diff === null
              ? null
              : `${page}: ${r.trace} with ${JSON.stringify(r.env)} on glibc ${r.glibc ?? '2.36'}:\n${diff}`,
          ).toBeNull();
        }
      });
    }
  }
});
