/**
 * `ptsim record --binary`: every trace of the recording (FILE and the side traces in FILE.d/) is
 * written in the binary form, holds the calls the programs made, and replays as its text does.
 */

import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NativeTraceWriter } from '../../src/import/native-writer.js';
import { TraceWriteError, recordedAsBinary, writeBinaryTrace } from '../../src/record/session.js';
import { replayFile } from '../../src/replay/run-file.js';
import { BINARY_MAGIC } from '../../src/trace/binary.js';
import { readTraceFile } from '../../src/trace/reader.js';
import type { TraceSink } from '../../src/trace/types.js';
import type { EventRecord } from '../../src/replay/replay.js';
import { events, logged, program, scratch, cacheInBuild, runRecord } from './helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');

const run = runRecord;
cacheInBuild();

function startsWithMagic(path: string): boolean {
  const head = readFileSync(path).subarray(0, BINARY_MAGIC.length);
  return Buffer.from(head).equals(Buffer.from(BINARY_MAGIC));
}

/**
 * Every call a reader makes on its sink, copied (the reader reuses its objects). `lines`: keep the
 * line numbers (a text converted back has lines of its own). `apart`: the call stacks, mappings
 * and symbols in a list of their own (in order among themselves), for a text converted back: the
 * text's reader delivers such a record before the event line above it, and the text written
 * from that has it there.
 */
async function sinkCalls(path: string, lines: boolean, apart = false): Promise<unknown[]> {
  const calls: unknown[] = [];
  const sites: unknown[] = [];
  const line = (n: number): number | null => (lines ? n : null);
  const sink: TraceSink = {
    header: (h) =>
      calls.push({
        header: {
          env: h.env,
          nprocs: h.nprocs,
          touches: h.touchesRecorded,
          incomplete: h.touchesIncomplete?.detail,
          facts: [...h.facts],
        },
      }),
    event: (ev) =>
      calls.push({
        event: {
          index: ev.index,
          line: line(ev.line),
          time: ev.time,
          tid: ev.tid,
          op: ev.op,
          n1: ev.n1,
          n2: ev.n2,
          exact: [ev.exact1?.toString(), ev.exact2?.toString()],
          in: ev.in,
          out: ev.out,
          param: ev.param,
          site: ev.site ?? -1,
          follow: ev.recordsFollow === true,
        },
      }),
    touch: (rec) =>
      calls.push({
        touch: {
          line: line(rec.line),
          token: rec.token,
          pages: [...rec.pages.subarray(0, 2 * rec.ranges)],
        },
      }),
    rss: (s) => calls.push({ rss: { ...s, line: line(s.line) } }),
    touchesIncomplete: (l, detail) => calls.push({ incomplete: [line(l), detail] }),
    recordsEnd: () => calls.push('recordsEnd'),
    site: (rec) => (apart ? sites : calls).push({ site: { ...rec, line: line(rec.line) } }),
  };
  await readTraceFile(path, sink, { worker: false });
  return apart ? [...calls, ...sites] : calls;
}

/** The binary trace at `path` converted back to text, as `ptsim convert` writes it. */
async function backToText(path: string, target: string): Promise<void> {
  const writer = new NativeTraceWriter(target);
  const r = await readTraceFile(path, writer, { worker: false });
  writer.close(r.lines);
}

/** `x` without its line numbers, at any depth. */
function withoutLines(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(withoutLines);
  if (x === null || typeof x !== 'object') return x;
  return Object.fromEntries(
    Object.entries(x)
      .filter(([k]) => k !== 'line')
      .map(([k, v]) => [k, withoutLines(v)]),
  );
}

/** The replay's record of every event, and its summary at the end (`lines`: as for sinkCalls). */
async function replayed(path: string, lines = true): Promise<unknown> {
  const records: EventRecord[] = [];
  const r = await replayFile(path, { onEvent: (e) => records.push({ ...e }) });
  expect(r.failure).toBeNull();
  const got = { events: records, summary: r.replayer!.finish() };
  expect(got.events.length).toBeGreaterThan(0);
  return lines ? got : withoutLines(got);
}

describe('ptsim record --binary', () => {
  it('writes FILE and every side trace in the binary form, with the calls the programs made', async () => {
    const dir = scratch('binary');
    const out = join(dir, 'fork.ptb');
    const r = await run(['--binary', '--stacks', '-o', out, '--', program('fork'), dir]);
    expect(r.code).toBe(0);
    const parentLog = readFileSync(join(dir, 'parent.log'), 'utf8');
    const childPid = (c: number): number =>
      Number(new RegExp(`^# child ${c} (\\d+)$`, 'm').exec(parentLog)![1]);
    const forkAfter = Number(/^# fork-after 1 (\d+)$/m.exec(parentLog)![1]);
    const side = join(dir, 'fork.ptb.d');
    const expected = new Map<string, string[]>([
      [out, logged(parentLog)],
      [join(side, `${childPid(1)}.ptb`), []],
      [join(side, `${childPid(2)}.ptb`), []],
      [join(side, `${childPid(3)}.1.ptb`), []],
      [join(side, `${childPid(3)}.2.ptb`), logged(readFileSync(join(dir, 'exec.log'), 'utf8'))],
    ]);
    for (const c of [1, 2, 3])
      expected.set(join(side, c === 3 ? `${childPid(3)}.1.ptb` : `${childPid(c)}.ptb`), [
        ...logged(parentLog).slice(0, forkAfter),
        ...logged(readFileSync(join(dir, `child${c}.log`), 'utf8')),
      ]);
    expect(readdirSync(side).sort()).toEqual(
      [...expected.keys()]
        .filter((f) => f !== out)
        .map((f) => f.slice(side.length + 1))
        .sort(),
    );
    // The report names the files as written.
    expect(r.err).toContain(` recorded in ${out} (`);
    expect(r.err).toContain(`4 other process images recorded in ${side}:\n`);
    for (const f of expected.keys())
      if (f !== out)
        expect(r.err).toMatch(new RegExp(`\n  ${f.slice(side.length + 1)} +\\d+ events`));

    for (const [file, calls] of expected) {
      expect(startsWithMagic(file), file).toBe(true);
      // Read back, the binary trace holds the calls the program logged, and what the recorder
      // adds: the header's facts, the call stacks and their symbols, the samples of RSS.
      const text = join(dir, 'back.trace');
      await backToText(file, text);
      const back = readFileSync(text, 'utf8');
      expect(
        events(back).map((e) => e.call.replace(/ \^\d+$/, '')),
        file,
      ).toEqual(calls);
      expect(back).toMatch(/^# exe .*\/fork$/m);
      expect(back).toMatch(/^#:stack 0 0x/m);
      expect(back).toMatch(/^#:sym 0x/m);
      expect(back).toMatch(/^#:rss /m);
      // The reader gives the same calls for the binary as for its text, and the replay the same
      // record of every event and the same summary.
      expect(await sinkCalls(file, false, true)).toEqual(await sinkCalls(text, false, true));
      expect(await replayed(file, false)).toEqual(await replayed(text, false));
    }
  });

  it('a trace that cannot be written is one line, status 125', async () => {
    const dir = scratch('binary');
    const out = join(dir, 'taken.ptb');
    mkdirSync(out); // a directory stands where the trace goes
    const r = await run(['--binary', '-o', out, '--', program('single'), join(dir, 'single.log')]);
    expect(r.code).toBe(125);
    expect(r.err).toBe(`ptsim: cannot write the trace ${out}: is a directory\n`);
    expect(readdirSync(dir).sort()).toEqual(['single.log', 'taken.ptb']);
    // A directory that is not there: found before the program runs.
    const missing = join(dir, 'no-such-dir', 'x.ptb');
    const m = await run(['--binary', '-o', missing, '--', program('single')]);
    expect(m.code).toBe(125);
    expect(m.err).toMatch(new RegExp(`^ptsim: cannot write the trace ${missing}: [^\n]*\n$`));
  });
});

describe('a conversion to the binary form that fails', () => {
  it('keeps the recording as text beside the target, and says so in one line', async () => {
    const dir = scratch('binary-fails');
    // A text the reader refuses stands for whatever made the conversion fail.
    const text = join(dir, 'work.trace');
    writeFileSync(text, '1 malloc 10 a\n1 frobnicate a\n');
    const target = join(dir, 'app.ptb');
    const e = await recordedAsBinary(text, target, false).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(TraceWriteError);
    const kept = join(dir, 'app.trace');
    expect((e as Error).message).toBe(
      `cannot write the trace ${target} in the binary form: ${text}:2: unknown operation 'frobnicate' (known: malloc, calloc, realloc, memalign, valloc, pvalloc, free, malloc_trim, mallopt, exit); the recording is kept as text in ${kept}`,
    );
    expect(readFileSync(kept, 'utf8')).toBe('1 malloc 10 a\n1 frobnicate a\n');
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['app.trace']);
  });
});

describe('writeBinaryTrace (the conversion record --binary makes)', () => {
  // Recordings of real programs, with touch records, samples of RSS, touches incomplete, stacks.
  const traces = [
    'test/diff/cases/touch-over-time.trace',
    'test/diff/cases/touch-incomplete.trace',
    'test/diff/cases/touch-incomplete-start.trace',
    'test/diff/cases/touch-mmapped-partial.trace',
    'traces/sites.trace',
    'traces/malloc-trim.trace',
  ];
  for (const name of traces) {
    for (const gzip of [false, true]) {
      it(`${name}${gzip ? ' (gzip)' : ''}: the reader's calls and the replay as for the text`, async () => {
        const text = join(ROOT, name);
        expect(existsSync(text)).toBe(true);
        const bin = join(scratch('binary'), `t.ptb${gzip ? '.gz' : ''}`);
        await writeBinaryTrace(text, bin, gzip);
        const raw = readFileSync(bin);
        if (gzip) expect([raw[0], raw[1]]).toEqual([0x1f, 0x8b]);
        else expect(startsWithMagic(bin)).toBe(true);
        expect(await sinkCalls(bin, true)).toEqual(await sinkCalls(text, true));
        expect(await replayed(bin)).toEqual(await replayed(text));
      });
    }
  }
});
