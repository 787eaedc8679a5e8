/**
 * The recorder on small C programs of ours that log every allocator call they make: the recording
 * must hold exactly those calls, in order, per thread, with `exit` where each thread ended, and
 * must replay identically in ptsim and on the real glibc, every block at the address the program
 * really got (addressCheck).
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { addressCheck, events, logged, program, record, scratch, type Line } from './helpers.js';

describe('one thread, every function', () => {
  it('records exactly the calls the program made, failures included', async () => {
    const r = await record(program('single'), []);
    expect(r.exitCode).toBe(0);
    expect(r.traces).toHaveLength(1);
    const got = events(r.main);
    expect(got.map((e) => e.call)).toEqual(logged(r.stdout!));
    expect(new Set(got.map((e) => e.tid))).toEqual(new Set([1]));
    // Timestamps: nanoseconds from the start, never decreasing.
    const times = r.main
      .split('\n')
      .filter((l) => l.startsWith('@'))
      .map((l) => Number(l.slice(1, l.indexOf(' '))));
    expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
  });

  it('writes the header facts first and a final # end line', async () => {
    // The program writes its own log to its first argument: a file with a space in its name, in a scratch directory.
    const arg = join(scratch('args'), 'an arg');
    const r = await record(program('single'), [arg, "it's"], {
      env: {
        ...process.env,
        MALLOC_ARENA_MAX: '2',
        GLIBC_TUNABLES: 'glibc.malloc.tcache_count=5',
        MALLOC_TOP_PAD_: '0',
      },
    });
    const lines = r.main.split('\n');
    expect(lines[0]).toBe('# ptsim trace v1');
    const header = lines.slice(
      0,
      lines.findIndex((l) => !l.startsWith('#')),
    );
    expect(header).toContain(`# pid ${r.pid}`);
    expect(header).toContain(`# exe ${program('single')}`);
    expect(header).toContain(`# cmdline ${program('single')} '${arg}' 'it'\\''s'`);
    expect(header.find((l) => l.startsWith('# nprocs '))).toMatch(/^# nprocs [1-9]\d*$/);
    expect(header.find((l) => l.startsWith('# start_brk '))).toMatch(
      /^# start_brk 0x[0-9a-f]+000$/,
    );
    expect(header.filter((l) => l.startsWith('# env ')).sort()).toEqual([
      '# env GLIBC_TUNABLES=glibc.malloc.tcache_count=5',
      '# env MALLOC_ARENA_MAX=2',
      '# env MALLOC_TOP_PAD_=0',
    ]);
    expect(lines.at(-2)).toBe(`# end ${events(r.main).length} events (exit)`);
    expect(r.traces[0]!.events).toBe(events(r.main).length);
    // The replay applies the recorded settings: still identical to glibc.
    expect(differential(r.main, { name: 'single-env' })).toBeNull();
  });

  it('replays identically in ptsim and in glibc, at the addresses the program got', async () => {
    const r = await record(program('single'), []);
    expect(differential(r.main, { name: 'single', stats: true, info: true })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });
});

describe('a few thousand calls', () => {
  for (const seed of ['1', '2']) {
    it(`seed ${seed}: exact, identical in replay, at the real addresses`, async () => {
      const r = await record(program('many'), [seed]);
      expect(r.exitCode).toBe(0);
      const got = events(r.main);
      expect(got.map((e) => e.call)).toEqual(logged(r.stdout!));
      expect(got.length).toBeGreaterThan(4000);
      expect(differential(r.main, { name: `many-${seed}`, stats: true, info: true })).toBeNull();
      expect(addressCheck(r.main)).toBeNull();
    });
  }
});

describe('threads', () => {
  it('records each thread exactly, its exit after its last call (glibc frees included) and before its joiner goes on', async () => {
    const dir = scratch('threads');
    const r = await record(program('threads'), [dir]);
    expect(r.exitCode).toBe(0);
    const all = events(r.main);
    const byTid = new Map<number, Line[]>();
    for (const e of all) byTid.set(e.tid, [...(byTid.get(e.tid) ?? []), e]);
    const pos = new Map(all.map((e, k) => [e, k]));
    const mainLog = logged(readFileSync(join(dir, 'main.log'), 'utf8'));
    const workers = 10;
    const seen = new Set<number>([1]);
    for (let w = 0; w < workers; w++) {
      const log = logged(readFileSync(join(dir, `t${w}.log`), 'utf8'));
      const strerror = log.find((l) => l.startsWith('strerror '))!.split(' ')[1]!;
      const expected = log.filter((l) => !l.startsWith('strerror '));
      // The worker's thread number: the thread of its malloc(1000 + w), a size no other thread asks for.
      const tid = all.find(
        (e) => e.call === expected.find((l) => l.startsWith(`malloc ${1000 + w} `)),
      )!.tid;
      expect(seen.has(tid)).toBe(false);
      seen.add(tid);
      const mine = byTid.get(tid)!;
      // Its own calls in order; at the point where it called strerror, strerror's own
      // allocations; after its last call, glibc's __libc_thread_freeres frees strerror's buffer;
      // then the thread exits.
      const at = log.findIndex((l) => l.startsWith('strerror '));
      const before = expected.slice(0, at);
      const after = expected.slice(at);
      // Worker 9 leaves through pthread_exit, which unwinds its stack: glibc's first unwind
      // dlopens libgcc_s.so.1, and the loader's allocations are this thread's calls too.
      const calls = mine.map((e) => e.call);
      expect(calls.slice(-2)).toEqual([`free ${strerror}`, 'exit']);
      const body = calls.slice(0, -2);
      expect(body.slice(0, before.length)).toEqual(before);
      const afterAt = body.indexOf(after[0]!, before.length);
      expect(body.slice(afterAt, afterAt + after.length)).toEqual(after);
      const inside = mine.slice(before.length, afterAt);
      const unwinder = mine.slice(afterAt + after.length, -2);
      if (w !== 9) expect(unwinder).toEqual([]);
      else expect(unwinder.length).toBeGreaterThan(0);
      for (const e of [...inside, ...unwinder])
        expect(['malloc', 'calloc', 'realloc', 'free']).toContain(e.op);
      expect(inside.some((e) => e.op !== 'free' && e.args.at(-1) === strerror)).toBe(true);
      if (w !== 8) {
        // Joined workers: the exit precedes the main thread's first call after pthread_join.
        const marker = all.find((e) => e.tid === 1 && e.call.startsWith(`malloc ${7000 + w} `))!;
        expect(pos.get(mine.at(-1)!)!).toBeLessThan(pos.get(marker)!);
      }
    }
    // The main thread: its own calls in order; the rest are glibc's (pthread_create callocs the
    // new thread's DTV in the creating thread, and frees old ones).
    const mainCalls = byTid.get(1)!;
    let k = 0;
    for (const e of mainCalls) if (k < mainLog.length && e.call === mainLog[k]) k++;
    expect(k).toBe(mainLog.length);
    const knownMain = new Set(
      mainLog.flatMap((l) => l.split(' ').slice(1)).filter((t) => t.startsWith('0x')),
    );
    for (const e of mainCalls)
      if (!e.args.some((a) => knownMain.has(a))) expect(['calloc', 'free']).toContain(e.op);
    expect(byTid.size).toBe(workers + 1);
    expect(differential(r.main, { name: 'threads', stats: true, info: true })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });
});

describe('fork and exec', () => {
  it('a forked child records to FILE.d/PID.trace, starting with the parent trace up to the fork', async () => {
    const dir = scratch('fork');
    const r = await record(program('fork'), [dir]);
    expect(r.exitCode).toBe(0);
    const parentLog = readFileSync(join(dir, 'parent.log'), 'utf8');
    const childPid = (c: number): number =>
      Number(new RegExp(`^# child ${c} (\\d+)$`, 'm').exec(parentLog)![1]);
    const forkAfter = Number(/^# fork-after 1 (\d+)$/m.exec(parentLog)![1]);
    const parent = events(r.main).map((e) => e.call);
    expect(parent).toEqual(logged(parentLog));
    expect(r.traces.map((t) => t.file.slice(r.dir.length + 1)).sort()).toEqual(
      [
        'out.trace',
        `out.trace.d/${childPid(1)}.trace`,
        `out.trace.d/${childPid(2)}.trace`,
        `out.trace.d/${childPid(3)}.1.trace`,
        `out.trace.d/${childPid(3)}.2.trace`,
      ].sort(),
    );
    const byName = (n: string): string => r.text.get(join(r.dir, n))!;
    for (const c of [1, 2, 3]) {
      const name =
        c === 3 ? `out.trace.d/${childPid(3)}.1.trace` : `out.trace.d/${childPid(c)}.trace`;
      const text = byName(name);
      const own = logged(readFileSync(join(dir, `child${c}.log`), 'utf8'));
      expect(events(text).map((e) => e.call)).toEqual([...parent.slice(0, forkAfter), ...own]);
      expect(text).toContain(
        `# fork: pid ${childPid(c)}, child of pid ${r.pid} after its event ${forkAfter}\n`,
      );
      const t = r.traces.find((x) => x.file.endsWith(`/${name}`))!;
      expect(t).toMatchObject({
        pid: childPid(c),
        forkedFrom: r.pid,
        inherited: forkAfter,
        ending: ['exit', '_exit', 'exec'][c - 1],
      });
      expect(differential(text, { name })).toBeNull();
      expect(addressCheck(text)).toBeNull();
    }
    // The program child 3 exec'd: a trace of its own, from a fresh heap.
    const exec = byName(`out.trace.d/${childPid(3)}.2.trace`);
    expect(exec).toContain(`# pid ${childPid(3)}\n`);
    expect(exec).toContain('# cmdline fork --exec ');
    expect(events(exec).map((e) => e.call)).toEqual(
      logged(readFileSync(join(dir, 'exec.log'), 'utf8')),
    );
    expect(differential(exec, { name: 'exec' })).toBeNull();
    expect(addressCheck(exec)).toBeNull();
    // Child 4 made no allocator call: no file.
    expect(r.traces.some((t) => t.pid === childPid(4))).toBe(false);
    expect(differential(r.main, { name: 'fork-parent' })).toBeNull();
    expect(addressCheck(r.main)).toBeNull();
  });

  it('--no-children records only the started program', async () => {
    const dir = scratch('fork');
    const r = await record(program('fork'), [dir], { children: false });
    expect(r.exitCode).toBe(0);
    expect(r.traces).toHaveLength(1);
    expect(events(r.main).map((e) => e.call)).toEqual(
      logged(readFileSync(join(dir, 'parent.log'), 'utf8')),
    );
  });
});

describe('endings', () => {
  const cases: Array<[string, number, string]> = [
    ['abort', 134, 'signal 6'],
    ['segv', 139, 'signal 11'],
    ['term', 143, 'signal 15'],
    ['int', 130, 'signal 2'],
    ['handler', 4, 'exit'],
    ['_exit', 3, '_exit'],
    ['thread', 5, 'exit'],
  ];
  for (const [mode, status, ending] of cases) {
    it(`${mode}: the trace is complete and says how the program ended`, async () => {
      const dir = scratch('endings');
      const r = await record(program('endings'), [mode, dir]);
      expect(r.exitCode).toBe(status);
      expect(r.traces).toHaveLength(1);
      expect(r.traces[0]!.ending).toBe(ending);
      // (pthread_create's calloc of the new thread's DTV is glibc's own call.)
      const calls = events(r.main).filter(
        (e) => e.op !== 'exit' && !(mode === 'thread' && e.op === 'calloc'),
      );
      expect(calls.map((e) => e.call)).toEqual(
        logged(readFileSync(join(dir, 'endings.log'), 'utf8')),
      );
      // For the abort, the free glibc aborted in is the trace's last call, so the replays
      // reproduce the abort ("free(): double free detected in tcache 2") at that event.
      expect(differential(r.main, { name: `endings-${mode}` })).toBeNull();
      expect(addressCheck(r.main)).toBeNull();
    });
  }
});
