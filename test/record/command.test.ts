/**
 * `ptsim record` as a user meets it: help, mistakes on the command line, the report, gzip, exit
 * statuses, and the message when there is no C compiler.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { RECORD_HELP } from '../../src/cli/record-command.js';
import { UsageError } from '../../src/cli/errors.js';
import { buildRecorder, RecorderBuildError } from '../../src/record/build.js';
import { BUILD, events, program, scratch, cacheInBuild, runRecord } from './helpers.js';

const run = runRecord;
cacheInBuild();

describe('ptsim record', () => {
  it('explains itself', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(RECORD_HELP + '\n');
    for (const opt of [
      '-o, --output',
      '--binary',
      '--gzip',
      '--no-children',
      '--no-touches',
      '--rss-every',
      '--stacks[=DEPTH]',
      '--free-stacks',
      'Exit status',
    ])
      expect(r.out).toContain(opt);
  });

  it('reports mistakes on the command line as usage errors', async () => {
    await expect(run([])).rejects.toThrow(UsageError);
    await expect(run(['-o', 'x.trace', '--'])).rejects.toThrow(/needs a COMMAND/);
    await expect(run(['-o', '-', '--', 'true'])).rejects.toThrow(UsageError);
    await expect(run(['--frobnicate', '--', 'true'])).rejects.toThrow(/frobnicate/);
    for (const [when, why] of [
      [
        '5x',
        /'5x' is neither a time \(100ms, 2s\) nor a number of allocator calls \(50000\), nor off/,
      ],
      ['100ms,2s', /two times/],
      ['10,20', /two numbers of calls/],
      ['0ms', /from 1ms to 24 hours/],
      ['0', /from 1 to 10\^12/],
      ['100ms,off', /'off' is neither/],
      ['', /'' is neither/],
    ] as const) {
      await expect(run(['--rss-every', when, '--', 'true'])).rejects.toThrow(UsageError);
      await expect(run(['--rss-every', when, '--', 'true'])).rejects.toThrow(why);
    }
    await expect(run(['--no-touches', '--rss-every', '1s', '--', 'true'])).rejects.toThrow(
      /--rss-every and --no-touches do not go together/,
    );
    for (const depth of ['0', '257', 'x', '', '-1'])
      await expect(run([`--stacks=${depth}`, '--', 'true'])).rejects.toThrow(
        /--stacks=.*: the depth must be a number of frames from 1 to 256/,
      );
    await expect(run(['--free-stacks', '--', 'true'])).rejects.toThrow(
      /--free-stacks goes with --stacks/,
    );
  });

  it('--stacks takes a depth after = only, and says what the stacks came to', async () => {
    const dir = scratch('cmd');
    const out = join(dir, 'stacks.trace');
    // Without a value, the default depth: the COMMAND that follows is not taken for one.
    const r = await run(['--stacks', '-o', out, program('single'), join(dir, 'single.log')]);
    expect(r.code).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text).toMatch(/^# stacks 64$/m);
    expect(text).toMatch(/^#:stack 0 0x/m);
    expect(r.err).toMatch(
      /\d+ call stacks?, [\d,]+ address(es)? (symbolized|\(\d+ without symbols\))/,
    );
    const d = await run(['--stacks=3', '-o', out, program('single'), join(dir, 'single.log')]);
    expect(d.code).toBe(0);
    const frames = [...readFileSync(out, 'utf8').matchAll(/^#:stack \d+((?: 0x[0-9a-f]+)*)$/gm)];
    expect(frames.length).toBeGreaterThan(0);
    for (const f of frames) expect(f[1]!.trim().split(' ').length).toBeLessThanOrEqual(3);
  });

  it('--rss-every takes its value before the COMMAND, and the recorder gets it', async () => {
    const dir = scratch('cmd');
    const out = join(dir, 'every.trace');
    const r = await run([
      '--rss-every',
      '2s',
      '-o',
      out,
      program('single'),
      join(dir, 'single.log'),
    ]);
    expect(r.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/^# rss_sampling 2000ms$/m);
    const both = await run([
      '--rss-every=1000,50ms',
      '-o',
      out,
      '--',
      program('single'),
      join(dir, 'single.log'),
    ]);
    expect(both.code).toBe(0);
    expect(readFileSync(out, 'utf8')).toMatch(/^# rss_sampling 50ms,1000events$/m);
    const none = await run(['--no-touches', '-o', out, program('single'), join(dir, 'single.log')]);
    expect(none.code).toBe(0);
    expect(readFileSync(out, 'utf8')).not.toMatch(/^#:|^# (touches|rss_sampling)/m);
  });

  it('records, reports the events and the file, and exits with the program status', async () => {
    const dir = scratch('cmd');
    const out = join(dir, 'single.trace');
    const r = await run(['-o', out, program('single'), join(dir, 'single.log')]);
    expect(r.code).toBe(0);
    expect(r.out).not.toContain('ptsim record'); // the report goes to standard error
    const text = readFileSync(out, 'utf8');
    const n = events(text).length;
    expect(r.err).toBe(
      `ptsim record: ${n} events recorded in ${out} (pid ${/^# pid (\d+)$/m.exec(text)![1]}, ${program('single')})\n`,
    );
    expect(
      events(text)
        .map((e) => e.call)
        .join('\n') + '\n',
    ).toBe(readFileSync(join(dir, 'single.log'), 'utf8'));
  });

  it('--gzip (or a name ending in .gz) compresses; a forked child is listed with its file', async () => {
    const dir = scratch('cmd');
    const out = join(dir, 'fork.trace.gz');
    const r = await run(['-o', out, '--', program('fork'), dir]);
    expect(r.code).toBe(0);
    const raw = readFileSync(out);
    expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b]);
    expect(gunzipSync(raw).toString('utf8')).toMatch(/^# ptsim trace v1\n/);
    const pid = /^# child 1 (\d+)$/m.exec(readFileSync(join(dir, 'parent.log'), 'utf8'))![1];
    const child = join(dir, 'fork.trace.d', `${pid}.trace.gz`);
    expect(existsSync(child)).toBe(true);
    expect(r.err).toContain(`4 other process images recorded in ${join(dir, 'fork.trace.d')}:\n`);
    expect(r.err).toMatch(
      new RegExp(
        `\n  ${pid}\\.trace\\.gz +\\d+ events +pid ${pid}, .*, forked from pid \\d+; its first \\d+ events are the parent's\n`,
      ),
    );
    const gz = await run([
      '--gzip',
      '-o',
      join(dir, 'plain-name.trace'),
      '--',
      program('single'),
      join(dir, 'single.log'),
    ]);
    expect(gz.code).toBe(0);
    expect(readFileSync(join(dir, 'plain-name.trace'))[0]).toBe(0x1f);
  });

  it('exits as the program did: its status, 128+N for signal N, 127 when not found', async () => {
    const dir = scratch('cmd');
    expect(
      (await run(['-o', join(dir, 'a.trace'), '--', program('endings'), '_exit', dir])).code,
    ).toBe(3);
    const killed = await run(['-o', join(dir, 'b.trace'), '--', program('endings'), 'term', dir]);
    expect(killed.code).toBe(143);
    expect(killed.err).toContain('killed by signal 15');
    const missing = await run(['-o', join(dir, 'c.trace'), '--', join(dir, 'no-such-program')]);
    expect(missing.code).toBe(127);
    expect(missing.err).toContain('command not found');
    const nothing = await run(['-o', join(dir, 'd.trace'), '--', 'true']);
    expect(nothing.code).toBe(0);
    expect(nothing.err).toContain('made no allocator call that could be recorded');
  });

  it('says clearly when there is no C compiler', () => {
    const env = { ...process.env, CC: join(BUILD, 'no-such-cc') };
    expect(() => buildRecorder({ cacheDir: scratch('nocc'), env })).toThrow(RecorderBuildError);
    expect(() => buildRecorder({ cacheDir: scratch('nocc'), env })).toThrow(
      /C compiler on first use, and there is none here .* Install one/,
    );
  });
});
