/**
 * `ptsim step`, driven as a user drives it: by a script on standard input (no terminal: no prompt,
 * no colour) and under a pseudo-terminal (util-linux's `script`: the prompt, colour unless
 * NO_COLOR). The sentences of a few steps are checked against figures worked by hand from glibc's
 * rules (the comments give the arithmetic).
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { pageTrace } from '../docs/examples.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const MAIN = join(ROOT, 'dist/bin/main.js');
const dir = mkdtempSync(join(tmpdir(), 'ptsim-step-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function trace(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

function step(
  path: string,
  commands: string,
  env: Record<string, string> = {},
): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, 'step', path], {
    encoding: 'utf8',
    input: commands,
    env: { ...process.env, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// The first sbrk of a fresh process asks for the tcache struct's 656-byte chunk plus M_TOP_PAD
// (128 KiB) plus MINSIZE (32), page-rounded: 135,168 bytes (132 KiB). A 100,000-byte request is a
// 100,016-byte chunk; the tcache struct took the first 656 bytes, so the top is then
// 135,168 - 656 - 100,016 = 34,496 bytes (33.7 KiB).
const TRIM = trace(
  'trim.trace',
  `1 malloc 100000 a
1 free a
1 mallopt M_TRIM_THRESHOLD 65536
1 malloc 100000 b
1 malloc 100000 c
1 free c
1 malloc 64 f1
1 malloc 64 f2
1 malloc 64 f3
1 malloc 64 f4
1 malloc 64 f5
1 malloc 64 f6
1 malloc 64 f7
1 malloc 64 f8
1 malloc 24 guard
1 free f1
1 free f2
1 free f3
1 free f4
1 free f5
1 free f6
1 free f7
1 free f8
`,
);

describe('ptsim step from a script (standard input not a terminal)', () => {
  it('steps through a trace that replays as on the real glibc', () => {
    expect(differential(readFileSync(TRIM, 'utf8'), { name: 'trim.trace' })).toBeNull();
  });

  it('explains each step in one sentence, with the figures glibc gives', () => {
    const r = step(TRIM, 'next 6\n');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).not.toContain('(ptsim)');
    expect(r.out).not.toContain('\x1b[');
    const lines = r.out.split('\n');
    // free(a): 100,016 + 34,496 = 134,512 bytes of top (131.4 KiB), above the 128 KiB trim
    // threshold, but systrim keeps M_TOP_PAD: (134,512 - 33 - 131,072) rounded down to pages is 0.
    expect(lines).toContain(
      '[1] free(a): the 100016-byte chunk merged with the top; the top is 131.4 KiB, above the trim threshold of 128 KiB, but glibc keeps M_TOP_PAD (128 KiB) of it and less than a page more was free, so nothing went back to the kernel',
    );
    // malloc(100000) -> c: the top (34,496) is too small; sysmalloc asks for 100,016 + 128 KiB +
    // 32 - 34,496 = 196,624 bytes, page-rounded to 200,704 (196 KiB); the top is then
    // 34,496 + 200,704 - 100,016 = 135,184 bytes (132.0 KiB).
    expect(lines).toContain(
      '[4] malloc(100000) -> c: the top was too small, so the arena got 196 KiB more from the kernel and cut a 100016-byte chunk (100000 bytes asked for) from the top; the top is now 132.0 KiB',
    );
    // free(c): the top becomes 235,200 bytes, above the 64 KiB threshold set by mallopt;
    // systrim gives back (235,200 - 33 - 131,072) rounded down to pages = 102,400 bytes (100 KiB),
    // leaving 132,800 (129.7 KiB).
    expect(lines).toContain(
      '[5] free(c): the 100016-byte chunk merged with the top; the top was above the trim threshold of 64 KiB, so 100 KiB went back to the kernel, leaving a top of 129.7 KiB',
    );
  });

  it('says where a freed chunk goes: seven to the tcache, the eighth to its fastbin', () => {
    const r = step(TRIM, 'go 20\nnext 2\n');
    expect(r.code).toBe(0);
    expect(r.out).toContain(
      '[20] free(f6): the 80-byte chunk went into the tcache (bin 0x50, now 6 of 7)',
    );
    expect(r.out).toContain(
      '[21] free(f7): the 80-byte chunk went into the tcache (bin 0x50, now 7 of 7)',
    );
    expect(r.out).toContain(
      '[22] free(f8): the 80-byte chunk went into the 0x50 fastbin, unmerged and still marked in use',
    );
    expect(r.out).toContain('at the end of the trace');
  });

  it('goes back by replaying, to the same state', () => {
    const r = step(TRIM, 'next 5\nback 2\nnext\n');
    const lines = r.out.split('\n').filter((l) => l.startsWith('[3]'));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(lines[1]);
    expect(r.out).toContain('now after event 2 of 23 (line 3)');
  });

  it('runs to breakpoints and watched tokens', () => {
    const r = step(TRIM, 'break op=free\ncontinue\ncontinue\nbreak size>=60\ncontinue\ninfo\n');
    expect(r.code).toBe(0);
    const stops = r.out.split('\n').filter((l) => l.startsWith('stopped at'));
    expect(stops).toEqual([
      'stopped at breakpoint 1 (op=free)',
      'stopped at breakpoint 1 (op=free)',
      'stopped at breakpoint 2 (size>=60)',
    ]);
    expect(r.out).toMatch(/^\[1\] free\(a\)/m);
    expect(r.out).toMatch(/^\[5\] free\(c\)/m);
    expect(r.out).toContain('/trim.trace: after event 6 of 23 (line 7)');
    const w = step(TRIM, 'watch f2\ncontinue\ncontinue\n');
    expect(w.out).toContain('watch f2: not live now');
    // c's chunk went back to the top, so f1 starts where c did, after b: f1's pointer is at b's
    // (672) + 100,016, and f2's 80 bytes further: 100,768.
    expect(w.out).toContain(
      'watch f2: live, an 80-byte chunk in the main arena at offset 100768 (64 bytes asked for, since event 7)',
    );
    expect(w.out).toContain(
      'watch f2: not live; its memory is a free 80-byte chunk in the tcache (bin 0x50)',
    );
  });

  it('says how a malloc splits a free chunk (the trace of docs/learn/bins.md, worked there by hand)', () => {
    const bins = trace('bins.trace', pageTrace('learn/bins.md', 'bins.trace'));
    const r = step(bins, 'go 9\nnext 5\n');
    expect(r.out.split('\n').filter((l) => l.startsWith('['))).toEqual([
      '[9] free(b): the 112-byte chunk went into the 0x70 fastbin, unmerged and still marked in use',
      '[10] malloc(100) -> x: a 112-byte chunk (100 bytes asked for) reused from the 0x70 fastbin',
      '[11] free(c): the 512-byte chunk went into the unsorted bin; its neighbours are in use, so nothing merged',
      '[12] free(d): the 3008-byte chunk went into the unsorted bin; its neighbours are in use, so nothing merged',
      // c (512) is sorted into small bin 32 and d into large bin 95, then c is split: 512 - 208.
      '[13] malloc(200) -> y: a 208-byte chunk (200 bytes asked for) split from a 512-byte free chunk (malloc first sorted the unsorted bin, where it was, into the bins); the other 304 bytes went to the unsorted bin as the last remainder',
      // The last remainder, alone in the unsorted bin, is cut directly: 304 - 48.
      '[14] malloc(40) -> z: a 48-byte chunk (40 bytes asked for) split from a 304-byte free chunk, the last remainder in the unsorted bin; the other 256 bytes went to the unsorted bin as the last remainder',
    ]);
  });

  it('stops at a breakpoint on an arena: the first block of a second thread is in arena 1', () => {
    const threads = trace(
      'threads.trace',
      '1 malloc 24 a\n1 malloc 24 b\n2 malloc 24 t\n2 free t\n1 free a\n',
    );
    const r = step(threads, 'break arena=1\ncontinue\ncontinue\n');
    expect(r.code).toBe(0);
    expect(r.out.split('\n').filter((l) => l.startsWith('[') || l.startsWith('stopped'))).toEqual([
      expect.stringMatching(
        /^\[2\] malloc\(24\) -> t: a 32-byte chunk of arena 1 \(24 bytes asked for\)/,
      ),
      'stopped at breakpoint 1 (arena=1)',
      '[3] free(t): the 32-byte chunk went into the tcache (bin 0x20, now 1 of 7)',
      'stopped at breakpoint 1 (arena=1)',
    ]);
  });

  it('reports a mistaken command and goes on', () => {
    const r = step(TRIM, 'frobnicate\nbreak op=frob\ngo 99\nshow nothing\nnext\n');
    expect(r.code).toBe(0);
    expect(r.err.split('\n').filter((l) => l !== '')).toEqual([
      "ptsim: unknown command 'frobnicate' (type help for the list)",
      expect.stringMatching(/^ptsim: unknown op 'frob'/),
      'ptsim: the trace has 23 events: give 0 to 22',
      expect.stringMatching(/^ptsim: unknown view 'nothing'/),
    ]);
    expect(r.out).toContain('[0] malloc(100000) -> a');
  });

  it("stops at glibc's abort with status 3, and at a mistake in the trace with status 2", () => {
    const df = trace('df.trace', '1 malloc 24 a\n1 malloc 24 b\n1 free a\n1 free a\n');
    const r = step(df, 'next 10\n');
    expect(r.code).toBe(3);
    expect(r.out).toContain('[2] free(a)');
    expect(r.err).toMatch(
      /^ptsim: glibc would abort here: free\(\): double free detected in tcache 2\n$/,
    );
    const bad = trace('bad.trace', '1 malloc 24 a\n1 free zz\n1 malloc 8 c\n');
    const m = step(bad, 'next 5\nshow chunks\n');
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/^ptsim: .*bad\.trace:2: free of zz, which is not a live block/);
    expect(m.out).toContain('[0] malloc(24) -> a');
    expect(m.out).toContain('live');
  });

  it('refuses a command line without a trace, and a missing file, in one line', () => {
    const r = spawnSync(process.execPath, [MAIN, 'step'], { encoding: 'utf8', input: '' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe("ptsim: step needs a TRACE file\nTry 'ptsim step --help'.\n");
    const missing = join(dir, 'missing.trace');
    const m = step(missing, 'next\n');
    expect(m.code).toBe(2);
    expect(m.err).toBe(`ptsim: ${missing}: no such file\n`);
    expect(m.out).toBe('');
  });
});

describe('ptsim step under a pseudo-terminal', () => {
  const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;
  const underPty = (env: Record<string, string>): string => {
    const r = spawnSync(
      'script',
      ['-q', '-e', '-c', `${process.execPath} ${MAIN} step ${TRIM}`, '/dev/null'],
      {
        encoding: 'utf8',
        input: 'next 2\nquit\n',
        env: { ...process.env, ...env },
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(0);
    return r.stdout;
  };

  it.skipIf(!hasScript)('prompts, and colours the output', () => {
    const out = underPty({ NO_COLOR: '' });
    expect(out).toContain('(ptsim) ');
    expect(out).toContain('\x1b[34m[1]\x1b[0m free(a): the 100016-byte chunk merged with the top');
  });

  it.skipIf(!hasScript)('leaves colour out with NO_COLOR', () => {
    const out = underPty({ NO_COLOR: '1' });
    expect(out).toContain('(ptsim) ');
    expect(out).toContain('[1] free(a): the 100016-byte chunk merged with the top');
    expect(out).not.toContain('\x1b[34m');
  });
});
