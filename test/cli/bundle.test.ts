/**
 * The executable is a bundle (`npm run build:bin`: dist/bin/main.js, its chunks, and the worker
 * threads' scripts beside them): it has every worker script the code starts by path next to the
 * chunks that start it, and its commands that run worker threads print what the compiled modules
 * print in this process.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inProcess, MAIN, ROOT, spawned } from '../helpers/cli.js';

/** The worker scripts the sources start by path: `new URL('./NAME.js', import.meta.url)`. */
function workerScripts(dir: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) found.push(...workerScripts(p));
    else if (e.name.endsWith('.ts'))
      for (const m of readFileSync(p, 'utf8').matchAll(
        /new URL\('\.\/([\w-]+-worker)\.js', import\.meta\.url\)/g,
      ))
        found.push(`${m[1]}.js`);
  }
  return found;
}

const work = mkdtempSync(join(tmpdir(), 'ptsim-bundle-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the bundled executable', () => {
  it('is what package.json names, with every worker script beside its chunks', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(join(ROOT, pkg.bin['ptsim']!)).toBe(MAIN);
    const scripts = workerScripts(join(ROOT, 'src'));
    expect(scripts.sort()).toEqual([
      'explain-worker.js',
      'figures-worker.js',
      'parse-worker.js',
      'run-worker.js',
    ]);
    const bundled = readdirSync(join(ROOT, 'dist/bin'));
    for (const s of scripts) expect(bundled).toContain(s);
  });

  it('prints what the modules print, with worker threads: parsing, remedies, configurations', async () => {
    // 4 MiB and more of text: the parse worker reads it.
    const lines = ['# ptsim trace v1'];
    for (let i = 0; i < 140_000; i++) {
      lines.push(`1 malloc ${24 + (i % 50) * 40} 0x${(0x10000 + i).toString(16)}`);
      if (i % 3 !== 0) lines.push(`1 free 0x${(0x10000 + i).toString(16)}`);
    }
    const big = join(work, 'big.trace');
    writeFileSync(big, lines.join('\n') + '\n');
    expect(readFileSync(big).length).toBeGreaterThan(4 << 20);
    const runs: string[][] = [
      ['replay', big, '--json'],
      ['explain', 'traces/pinned-top.trace', '--jobs', '2'],
      [
        'compare',
        'traces/pinned-top.trace',
        '--jobs',
        '2',
        '--config',
        'M_TRIM_THRESHOLD=0',
        '--json',
      ],
    ];
    for (const args of runs) {
      const own = spawned(args, { env: { ...process.env, PTSIM_HUGE_PAGES: '0' } });
      const here = await inProcess(args);
      expect({ args, code: own.code, out: own.out, err: own.err }).toEqual({
        args,
        code: 0,
        out: here.out,
        err: here.err,
      });
    }
  });
});
