/**
 * What every command promises, run as a user runs it (the built `ptsim`, in this process but for
 * what needs a process of its own: see test/helpers/cli.ts): one exit-status contract
 * (0 done, 2 a mistake in an input or on the command line, 3 glibc's abort), stated in each
 * --help; one clear line for each mistake, never a stack trace; warnings for input that replays
 * nothing or settings glibc ignores.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { inProcess, MAIN, spawned } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-contract-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Every path given is absolute: the directory the command runs in does not matter. */
const ptsim = inProcess;

function file(name: string, text: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const UNKNOWN = file('unknown.trace', '1 malloc 24 a\n1 free zz\n');
const ABORT = file('abort.trace', '1 malloc 24 a\n1 free a\n1 free a\n');
const GOOD = file('good.trace', '1 malloc 24 a\n1 free a\n');
const MISSING = join(dir, 'missing.trace');

/** Each command, with the arguments it needs besides its trace. */
const COMMANDS: Array<{ name: string; args: (out: string) => string[]; replays: boolean }> = [
  { name: 'replay', args: () => [], replays: true },
  { name: 'explain', args: () => ['--no-what-if'], replays: true },
  { name: 'compare', args: () => ['--config', 'M_MMAP_THRESHOLD=4096'], replays: true },
  { name: 'sweep', args: () => ['--param', 'mmap_max=0,1'], replays: true },
  { name: 'report', args: (out) => ['-o', out + '.html', '--no-what-if'], replays: true },
  { name: 'show', args: () => ['bins'], replays: true },
  { name: 'stats', args: () => [], replays: false },
  { name: 'convert', args: (out) => ['-o', out + '.trace'], replays: false },
];

const NO_STACK = /\n\s+at /;

describe('every command keeps one exit-status contract', () => {
  for (const c of COMMANDS) {
    describe(`ptsim ${c.name}`, () => {
      it('states it in its --help', async () => {
        const r = await ptsim([c.name, '--help']);
        expect(r.code).toBe(0);
        expect(r.out).toContain('Exit status: 0 when the command did its work; 2 for a mistake');
        expect(r.out.includes("3 when the replay reproduces glibc's abort")).toBe(c.replays);
      });

      it('ends a free of an unknown token with status 2 and its line', async () => {
        const r = await ptsim([c.name, UNKNOWN, ...c.args(join(dir, `${c.name}-unknown`))]);
        expect(r.code).toBe(2);
        expect(r.err).toContain(
          `ptsim: ${UNKNOWN}:2: free of zz, which is not a live block (never allocated, or freed long ago)\n`,
        );
        expect(r.err).not.toMatch(NO_STACK);
      });

      it('ends a missing file with status 2 in one line', async () => {
        const r = await ptsim([c.name, MISSING, ...c.args(join(dir, `${c.name}-missing`))]);
        expect(r.code).toBe(2);
        expect(r.err).toBe(`ptsim: ${MISSING}: no such file\n`);
        expect(r.out).toBe('');
      });

      it('ends a usage error with status 2 and a pointer to its --help', async () => {
        const r = await ptsim([c.name, GOOD, '--frobnicate']);
        expect(r.code).toBe(2);
        expect(r.err).toBe(
          `ptsim: Unknown option '--frobnicate'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- "--frobnicate"\nTry 'ptsim ${c.name} --help'.\n`,
        );
      });

      if (c.replays) {
        it("ends glibc's abort with status 3 and glibc's message, after its output", async () => {
          const r = await ptsim([c.name, ABORT, ...c.args(join(dir, `${c.name}-abort`))]);
          expect(r.code).toBe(3);
          expect(r.err).toContain(
            `ptsim: glibc would abort at event 2 (${ABORT}:3): free(): double free detected in tcache 2\n`,
          );
          expect(r.out).not.toBe('');
        });
      } else {
        it('takes a trace that would abort glibc as a trace: status 0', async () => {
          const r = await ptsim([c.name, ABORT, ...c.args(join(dir, `${c.name}-abort`))]);
          expect(r.code).toBe(0);
          expect(r.err).not.toContain('glibc would abort');
        });
      }

      it('succeeds on a good trace with status 0', async () => {
        const r = await ptsim([c.name, GOOD, ...c.args(join(dir, `${c.name}-good`))]);
        expect(r.code).toBe(0);
      });
    });
  }

  it('the executable itself ends with the status the command returns: 0, 2 and 3', () => {
    // main.js is the same few lines for every command: one command of each kind is enough.
    expect(spawned(['replay', GOOD], { cwd: dir }).code).toBe(0);
    const unknown = spawned(['replay', UNKNOWN], { cwd: dir });
    expect(unknown.code).toBe(2);
    expect(unknown.err).toContain(`ptsim: ${UNKNOWN}:2: free of zz`);
    expect(unknown.err).not.toMatch(NO_STACK);
    expect(spawned(['stats', MISSING], { cwd: dir }).code).toBe(2);
    for (const c of COMMANDS.filter((c) => c.name === 'replay' || c.name === 'compare')) {
      const abort = spawned([c.name, ABORT, ...c.args(join(dir, `${c.name}-spawned`))], {
        cwd: dir,
      });
      expect(abort.code).toBe(3);
      expect(abort.err).toContain(`ptsim: glibc would abort at event 2 (${ABORT}:3)`);
    }
  });

  it('ptsim record states its own statuses and ends a usage error with status 2', async () => {
    const help = await ptsim(['record', '--help']);
    expect(help.out).toContain("Exit status: COMMAND's own, or 128+N when signal N killed it");
    const r = await ptsim(['record']);
    expect(r.code).toBe(2);
    expect(r.err).toContain("Try 'ptsim record --help'.");
  });

  it.skipIf(spawnSync('cc', ['--version']).status !== 0)(
    'ptsim record says a program killed before its recorder wrote anything was killed',
    () => {
      const out = join(dir, 'killed.trace');
      const r = spawnSync(
        process.execPath,
        [MAIN, 'record', '-o', out, '--', 'sh', '-c', 'kill -INT $$'],
        { encoding: 'utf8', cwd: dir, env: { ...process.env, XDG_CACHE_HOME: join(dir, 'xdg') } },
      );
      expect(r.status).toBe(130);
      expect(r.stderr).toBe(
        `ptsim record: sh was killed by SIGINT before its recorder wrote any of its calls; no trace written to ${out}\n`,
      );
    },
    60_000,
  );

  it('compare and sweep print their rows, then the mistake, and name the configurations that met it', async () => {
    // Only with the tcache off does glibc see the double free of a fastbin chunk at the top.
    const r = await ptsim([
      'compare',
      ABORT,
      '--config',
      'glibc.malloc.tcache_count=0',
      '--config',
      'M_MMAP_THRESHOLD=4096',
    ]);
    expect(r.code).toBe(3);
    expect(r.out).toContain('configuration');
    expect(r.err.split('\n').filter((l) => l !== '')).toEqual([
      `ptsim: default, M_MMAP_THRESHOLD=4096: glibc would abort at event 2 (${ABORT}:3): free(): double free detected in tcache 2`,
      `ptsim: glibc.malloc.tcache_count=0: glibc would abort at event 2 (${ABORT}:3): double free or corruption (fasttop)`,
    ]);
  });
});

describe('suspicious input is said, not silently taken', () => {
  it('warns when a trace has no events, and replays nothing with status 0', async () => {
    for (const [name, text] of [
      ['empty.trace', ''],
      ['comments.trace', '# pid 7\n# only comments\n'],
    ] as const) {
      const p = file(name, text);
      for (const cmd of ['replay', 'stats']) {
        const r = await ptsim([cmd, p]);
        expect(r.code).toBe(0);
        expect(r.err).toBe(
          `ptsim: warning: ${p}: no events: the trace is empty or holds only comments, so nothing was replayed\n`,
        );
      }
    }
  });

  it('refuses CR-only line ends with what to do, and reads CRLF like LF', async () => {
    const cr = file('cr.trace', '# pid 1\r1 malloc 24 a\r1 free a\r');
    const message = `ptsim: ${cr}: its lines end in a carriage return alone (CR, classic Mac OS line ends); ptsim reads LF or CRLF line ends: convert them first, for example with tr '\\r' '\\n' < IN > OUT\n`;
    for (const cmd of ['replay', 'stats']) {
      const r = await ptsim([cmd, cr]);
      expect(r.code).toBe(2);
      expect(r.err).toBe(message);
    }
    const stdin = spawned(['replay', '-', '--json'], {
      input: '1 malloc 24 a\r1 free a\r',
      cwd: dir,
    });
    expect(stdin.code).toBe(2);
    expect(stdin.err).toContain('<stdin>: its lines end in a carriage return alone');
    const crlf = await ptsim([
      'replay',
      file('crlf.trace', '1 malloc 24 a\r\n1 free a\r\n'),
      '--json',
    ]);
    expect(crlf.code).toBe(0);
    expect((JSON.parse(crlf.out) as { events: number }).events).toBe(2);
  });

  it('refuses an --at past the last event, saying the valid range, and a negative one cleanly', async () => {
    const eleven = file(
      'eleven.trace',
      Array.from({ length: 11 }, (_, i) => `1 malloc 24 b${i}\n`).join(''),
    );
    const far = await ptsim(['explain', eleven, '--at', '99', '--no-what-if']);
    expect(far.code).toBe(2);
    expect(far.err).toBe(
      'ptsim: --at 99: the trace has 11 events: give end, peak or an event index from 0 to 10\n',
    );
    expect((await ptsim(['explain', eleven, '--at', '10', '--no-what-if'])).code).toBe(0);
    const report = await ptsim(['report', eleven, '--at', '11', '-o', join(dir, 'at.html')]);
    expect(report.code).toBe(2);
    expect(report.err).toContain('--at 11: the trace has 11 events');
    const negative = await ptsim(['explain', eleven, '--at', '-1']);
    expect(negative.code).toBe(2);
    expect(negative.err).toBe(
      "ptsim: --at takes end, peak or an event index (0 or more)\nTry 'ptsim explain --help'.\n",
    );
  });

  it('names the unknown setting of a configuration', async () => {
    for (const [setting, named] of [
      ['M_FOO=3', "unknown mallopt parameter 'M_FOO'"],
      ['glibc.malloc.foo=1', "unknown setting 'glibc.malloc.foo'"],
      ['MALLOC_FOO_=1', "unknown setting 'MALLOC_FOO_'"],
    ]) {
      const r = await ptsim(['compare', GOOD, '--config', setting!]);
      expect(r.code).toBe(2);
      expect(r.err.split('\n')[0]).toContain(named);
    }
  });

  it("shows a YAML file's error whole, and a binary file's escaped", async () => {
    const yaml = file('bad.yaml', 'a: b: c\n');
    const r = await ptsim(['compare', GOOD, '--configs', yaml]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      `ptsim: ${yaml}: not valid YAML: Nested mappings are not allowed in compact mappings at line 1, column 4:\n    a: b: c\n       ^\n`,
    );
    const binary = file('binary.yaml', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0x1b, 0x5b]));
    const b = await ptsim(['compare', GOOD, '--configs', binary]);
    expect(b.code).toBe(2);
    expect(b.err).toBe(
      `ptsim: ${binary}: not valid YAML: it holds binary data (NUL bytes), not text\n`,
    );
    // A binary trace: its first bytes escaped, never raw.
    const elf = await ptsim([
      'replay',
      file('binary.trace', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 0x1b, 0x5b, 0x32, 0x4a])),
    ]);
    expect(elf.code).toBe(2);
    expect(elf.err).toContain("it starts with '\\x7fELF\\x02\\x01\\x1b[2J'");
    // eslint-disable-next-line no-control-regex -- what must not reach the terminal
    expect(elf.err).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
  });

  it('shortens a huge number in an error', async () => {
    const log = file('huge.log', `+ 0x10 0x${'1'.repeat(1 << 20)}\n`);
    const r = await ptsim(['stats', log, '--from', 'mtrace']);
    expect(r.code).toBe(2);
    expect(r.err.length).toBeLessThan(300);
    expect(r.err).toContain('is out of range (more than 2^64-1)');
    expect(r.err).toContain('...');
  });

  it('warns about --mallopt values glibc refuses or ignores', async () => {
    const mxfast = await ptsim(['replay', GOOD, '--mallopt', 'M_MXFAST=1000']);
    expect(mxfast.code).toBe(0);
    expect(mxfast.err).toBe(
      'ptsim: warning: mallopt(M_MXFAST, 1000) returns 0: glibc refuses the value and ignores it (M_MXFAST takes 0 to 160)\n',
    );
    expect((await ptsim(['replay', GOOD, '--mallopt', 'M_MXFAST=160'])).err).toBe('');
    const arena = await ptsim(['replay', GOOD, '--mallopt', 'M_ARENA_MAX=0']);
    expect(arena.err).toBe(
      'ptsim: warning: mallopt(M_ARENA_MAX, 0) returns 1, but glibc ignores values below 1 for M_ARENA_MAX\n',
    );
    const compare = await ptsim(['compare', GOOD, '--config', 'M_MXFAST=200']);
    expect(compare.code).toBe(0);
    expect(compare.err).toContain(
      'ptsim: warning: M_MXFAST=200: mallopt(M_MXFAST, 200) returns 0: glibc refuses the value and ignores it',
    );
  });
});
