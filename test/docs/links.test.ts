/**
 * The documentation's links lead somewhere: every relative link of the README, the traces' README
 * and the pages under docs/ names a file of the repository (and an anchor, when it gives one, a
 * heading of that page); every docs/ page the command's help or the sources point to exists; every
 * entry of docs/glibc-facts.md that a test or a source cites is there.
 */

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './examples.js';

function walk(dir: string, keep: (f: string) => boolean, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, keep, out);
    else if (keep(p)) out.push(p);
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[`*_]/g, '')
    .replace(/[^\p{L}\p{N} -]/gu, '')
    .replace(/ /g, '-');
}

function anchors(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1]!)));
}

const PAGES = [
  join(ROOT, 'README.md'),
  join(ROOT, 'traces/README.md'),
  ...walk(join(ROOT, 'docs'), (f) => f.endsWith('.md')),
];

describe('documentation links', () => {
  for (const page of PAGES) {
    it(relative(ROOT, page), () => {
      // Code blocks hold commands and outputs, not links.
      const text = readFileSync(page, 'utf8').replace(/```[\s\S]*?```/g, '');
      const broken: string[] = [];
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? page : normalize(join(dirname(page), path));
        if (!existsSync(file)) broken.push(target);
        else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor))
          broken.push(target);
      }
      expect(broken).toEqual([]);
    });
  }

  it('the glibc facts the tests and sources cite are entries of docs/glibc-facts.md', () => {
    // A citation is the page's path and an anchor, maybe followed by more anchors (", #perturb").
    const entries = anchors(join(ROOT, 'docs/glibc-facts.md'));
    const cited = new Set<string>();
    for (const f of [
      ...walk(join(ROOT, 'test'), (p) => /\.(ts|c|trace)$/.test(p) && !p.includes('/build/')),
      ...walk(join(ROOT, 'src'), (p) => /\.(ts|c)$/.test(p)),
    ]) {
      for (const m of readFileSync(f, 'utf8').matchAll(
        /docs\/glibc-facts\.md((?:,? ?#[\w-]+)+)/g,
      )) {
        for (const slug of m[1]!.matchAll(/#([\w-]+)/g)) cited.add(slug[1]!);
      }
    }
    expect(cited.size).toBeGreaterThan(0);
    expect([...cited].filter((s) => !entries.has(s))).toEqual([]);
  });

  it('no test or source cites a facts document outside the repository', () => {
    // Citations by section number of an outside checklist are gone: every fact a test relies on is
    // an entry of docs/glibc-facts.md, with the probe that measured it. (This file names the
    // patterns it looks for, so it is left out.)
    const stale: string[] = [];
    for (const f of [
      ...walk(join(ROOT, 'test'), (p) => /\.(ts|c|trace)$/.test(p) && !p.includes('/build/')),
      ...walk(join(ROOT, 'src'), (p) => /\.(ts|c)$/.test(p)),
    ]) {
      if (f.endsWith('links.test.ts')) continue;
      const text = readFileSync(f, 'utf8');
      if (/glibc-malloc-facts|\bfacts? \d+(\.\d+)?\b|glibc facts section/i.test(text))
        stale.push(f.slice(ROOT.length + 1));
    }
    expect(stale).toEqual([]);
  });

  it('the pages the sources name exist', () => {
    const named = new Set<string>();
    for (const f of walk(join(ROOT, 'src'), (p) => /\.(ts|c)$/.test(p)))
      for (const m of readFileSync(f, 'utf8').matchAll(/\bdocs\/[\w/-]+\.md\b/g)) named.add(m[0]);
    expect(named.size).toBeGreaterThan(0);
    expect([...named].filter((d) => !existsSync(join(ROOT, d)))).toEqual([]);
  });
});
