/**
 * The binary form of a trace: read back, it delivers exactly what the text delivers (every sink
 * call, in order: header, events with their indexes, lines, times, keys, texts and token numbers,
 * records, the ends of runs of records), whatever pieces the input comes in, from a file, from
 * memory or compressed; a replay of it is the replay of the text; and a damaged or cut file is a
 * TraceReadError naming the file, after every event before the damage, never anything else.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { openTrace } from '../../src/import/index.js';
import { ReplayError } from '../../src/replay/replay.js';
import { replayFile } from '../../src/replay/run-file.js';
import { isStopReplay, replaySink } from '../../src/replay/sink.js';
import { BINARY_MAGIC, BinaryTraceEncoder, BinaryTraceReader } from '../../src/trace/binary.js';
import { processFacts, readBinaryEnd } from '../../src/cli/huge-pages.js';
import { readTraceFile, readTraceText } from '../../src/trace/reader.js';
import { NULL_TOKEN, TraceReadError, type TraceSink } from '../../src/trace/types.js';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';
import { ROOT, inProcess } from '../helpers/cli.js';
import { fcParams } from '../helpers/fc.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-binary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** Every sink call a reader makes, as plain data, in order (and the reader's result last). */
function recorder(): { calls: unknown[]; sink: TraceSink } {
  const calls: unknown[] = [];
  const plain = (o: unknown): unknown =>
    JSON.parse(
      JSON.stringify(o, (_k, v: unknown) =>
        typeof v === 'bigint'
          ? `${v}n`
          : v instanceof Map
            ? [...(v as Map<unknown, unknown>)]
            : v instanceof Float64Array
              ? Array.from(v)
              : v,
      ),
    );
  return {
    calls,
    sink: {
      header: (h) => calls.push(['header', plain(h)]),
      event: (ev) =>
        calls.push([
          'event',
          plain({ ...ev, in: ev.in, out: ev.out, exact1: ev.exact1, exact2: ev.exact2 }),
        ]),
      touch: (r) =>
        calls.push([
          'touch',
          plain({
            line: r.line,
            token: r.token,
            key: r.key,
            id: r.id,
            pages: Array.from(r.pages.subarray(0, 2 * r.ranges)),
            ranges: r.ranges,
            maxPage: r.maxPage,
          }),
        ]),
      rss: (s) => calls.push(['rss', plain({ ...s })]),
      touchesIncomplete: (line, detail) => calls.push(['incomplete', line, detail]),
      site: (rec) => calls.push(['site', plain(rec)]),
      recordsEnd: () => calls.push(['recordsEnd']),
    },
  };
}

/** The binary form of a text trace, as the encoder writes it. */
function encode(text: string | Uint8Array, name = 'trace'): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new BinaryTraceEncoder((b) => parts.push(b.slice()));
  const r = readTraceText(text, name, enc);
  enc.end(r.lines);
  // A copy of its own (slice copies a Uint8Array, not a Buffer).
  return new Uint8Array(Buffer.concat(parts));
}

/** What reading `text` delivers, and what reading its binary form in pieces of `sizes` does. */
function both(text: string, sizes: number[] = [1 << 20]): { text: unknown[]; binary: unknown[] } {
  const a = recorder();
  a.calls.push(readTraceText(text, 't', a.sink));
  const bin = encode(text);
  const b = recorder();
  const reader = new BinaryTraceReader('t', b.sink);
  for (let at = 0, k = 0; at < bin.length; k++) {
    const n = sizes[k % sizes.length]!;
    reader.push(bin.subarray(at, at + n));
    at += n;
  }
  b.calls.push(reader.finish());
  return { text: a.calls, binary: b.calls };
}

const lines = (...l: string[]): string => l.join('\n') + '\n';

/** Traces with everything the format can say. */
const CASES: Array<[string, string]> = [
  ['a generated trace (several blocks)', generateTrace({ seed: 'bin-a', events: 40000 })],
  ['eight threads', generateThreadedTrace({ seed: 'bin-t', events: 6000 })],
  ['touches and samples', generateTrace({ seed: 'bin-r', events: 3000, touches: true })],
  [
    'comments among events, tokens without a key, not ASCII',
    lines(
      '# a header',
      '# nprocs 4',
      '1 malloc 10 a',
      '# between',
      '',
      '1 malloc 20 0x10',
      '1 free a',
      '1 realloc 0x10 30 b',
      '2 malloc 5 café',
      '2 free café',
      '2 free b',
      '1 free 0',
      '1 free never-allocated',
      '1 free 0x1234',
    ),
  ],
  [
    'records: touches, samples, a run cut by touches incomplete',
    lines(
      '# touches recorded',
      '#:rss anon=0',
      '1 malloc 10000 a',
      '#:touch a 0-1',
      '#:rss anon=8192 heap=8192',
      '1 malloc 20 b',
      '#:rss @3 total=3698688',
      '1 free b',
      '#:touch a 2',
      '1 free a',
      '# touches incomplete from here: pagemap could not be read',
      '1 malloc 50000 c',
      '#:rss @5 anon=4096 total=7340032 mark=end',
    ),
  ],
  [
    'sizes above 2^32 and 2^53, mallopt, trims, memalign, exit',
    lines(
      '@5 1 mallopt M_MMAP_THRESHOLD 65536',
      '@7 1 malloc 8589934592 a',
      '@9 1 malloc 9007199254740993 b',
      '@9 1 calloc 18446744073709551615 2 c',
      '@12 1 memalign 64 100 d',
      '@13 1 malloc_trim 0',
      '@20 1 free a',
      '@21 3 exit',
    ),
  ],
  [
    'a token returned again while live, times that go back or are missing',
    lines(
      '@100 1 malloc 10 0x5000',
      '@90 1 malloc 20 0x5000',
      '1 malloc 30 0x6000',
      '@4294967297000 1 free 0x5000',
      '@4294967297001 1 free 0x6000',
    ),
  ],
  [
    'thread numbers of every width',
    lines('1 malloc 1 a', '300 malloc 2 b', '70000 malloc 3 c', '1 free a', '300 free b'),
  ],
  [
    // More than 255 high parts of keys in one block: the keys are kept whole.
    'keys spread over the address space',
    Array.from({ length: 600 }, (_, i) => `1 malloc 16 0x${(i + 1).toString(16)}00000000`).join(
      '\n',
    ) + '\n',
  ],
  ['an empty trace', ''],
  ['a header only', lines('# ptsim trace v1', '# pid 7')],
];

describe('the binary form', () => {
  for (const [what, text] of CASES) {
    it(`delivers what the text delivers: ${what}`, () => {
      const r = both(text);
      expect(r.binary.length).toBe(r.text.length);
      expect(r.binary).toEqual(r.text);
    });
  }

  it('reads the same from pieces of any size', () => {
    const text = generateTrace({ seed: 'bin-p', events: 800, touches: true });
    const whole = both(text).text;
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1 }), (sizes) => {
        expect(both(text, sizes).binary).toEqual(whole);
      }),
      fcParams({ numRuns: 30 }),
    );
  });

  it('is read from files, compressed or not, as the text is, and replays as the text does', async () => {
    const traces = [
      join(ROOT, 'traces/gcc-cc1.trace.gz'),
      join(ROOT, 'traces/sites.trace'),
      join(ROOT, 'traces/thread-arenas.trace'),
    ];
    for (const path of traces) {
      const raw = readFileSync(path);
      const bin = encode(raw, path);
      const plainFile = file('plain.ptb', bin);
      const gzFile = file('gz.ptb.gz', gzipSync(bin));
      const text = (await replayFile(path, { cores: 2 })).replayer!.finish();
      const binary = (await replayFile(gzFile, { cores: 2 })).replayer!.finish();
      expect(binary).toEqual(text);
      // Every call (the recording of cc1's 122,000 events is compared by its replay alone).
      if (path.endsWith('.gz')) continue;
      const a = recorder();
      a.calls.push(await openTrace(path, a.sink));
      for (const f of [plainFile, gzFile]) {
        const b = recorder();
        b.calls.push(await openTrace(f, b.sink));
        expect(b.calls).toEqual(a.calls);
        // Large files go to the parse worker when they are text: never a binary one.
        const c = recorder();
        const r = await readTraceFile(f, c.sink, { worker: true });
        expect(c.calls).toEqual(a.calls.slice(0, -1));
        expect(a.calls.at(-1)).toMatchObject(r);
      }
    }
  });

  it('takes less room than the text: half of a recording', () => {
    const text = generateTrace({ seed: 'bin-s', events: 20000 });
    expect(encode(text).length).toBeLessThan(0.9 * Buffer.byteLength(text));
    const recorded = readFileSync(join(ROOT, 'traces/gcc-cc1.trace.gz'));
    const plain = readTraceText(recorded, 'cc1', { header: () => {}, event: () => {} });
    expect(plain.events).toBeGreaterThan(100000);
    const size = readFileSync(join(ROOT, 'traces/gcc-cc1.trace.gz'));
    const { gunzipSync } = zlib;
    expect(encode(recorded).length).toBeLessThan(0.5 * gunzipSync(size).length);
  });
});

describe('a damaged binary trace', () => {
  const text = generateTrace({ seed: 'bin-d', events: 5000, touches: true });
  const bin = encode(text);
  const whole = both(text).text;

  /** What reading `bytes` delivers (when `keep`), and what it threw. */
  function read(bytes: Uint8Array, keep = true): { calls: unknown[]; error: unknown } {
    const r = recorder();
    const sink: TraceSink = keep ? r.sink : { header: () => {}, event: () => {} };
    try {
      const reader = new BinaryTraceReader('x.ptb', sink);
      reader.push(bytes);
      r.calls.push(reader.finish());
      return { calls: r.calls, error: undefined };
    } catch (e) {
      return { calls: r.calls, error: e };
    }
  }

  it('cut anywhere: everything before the cut block, then a TraceReadError', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: bin.length - 1 }), (cut) => {
        const { calls, error } = read(bin.subarray(0, cut));
        expect(error).toBeInstanceOf(TraceReadError);
        expect((error as TraceReadError).file).toBe('x.ptb');
        expect(String((error as Error).message)).toMatch(
          /^x\.ptb: (empty input|binary trace cut short at byte \d+: it has no end)/,
        );
        expect(calls).toEqual(whole.slice(0, calls.length));
      }),
      fcParams({ numRuns: 60 }),
    );
  });

  it('with bytes changed: a TraceReadError or a reading, never another error', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(bin.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        (flips) => {
          const bytes = bin.slice();
          for (const [at, x] of flips) bytes[at] = bytes[at]! ^ x;
          const { error } = read(bytes, false);
          if (error !== undefined) expect(error).toBeInstanceOf(TraceReadError);
        },
      ),
      fcParams({ numRuns: 200 }),
    );
  });

  it('with bytes changed and replayed: what a replay says of a bad trace, never a crash', () => {
    const small = encode(generateTrace({ seed: 'bin-f', events: 600, touches: true }));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(small.length - 1), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 3,
        }),
        (flips) => {
          const bytes = small.slice();
          for (const [at, x] of flips) bytes[at] = bytes[at]! ^ x;
          const rs = replaySink('x.ptb');
          try {
            const reader = new BinaryTraceReader('x.ptb', rs.sink);
            reader.push(bytes);
            reader.finish();
            rs.replayer?.finish();
          } catch (e) {
            // A damaged file, a trace a replay refuses (a free of a token never allocated...), or
            // glibc's abort: each said in a line. Anything else would be a crash.
            if (!(e instanceof TraceReadError || e instanceof ReplayError || isStopReplay(e)))
              throw e;
          }
        },
      ),
      fcParams({ numRuns: 150 }),
    );
  });

  it('says what is wrong: another version, bytes after the end, a number no token has', () => {
    const v2 = bin.slice();
    v2[8] = 2;
    expect(String(read(v2).error)).toMatch(/binary trace of version 2: this ptsim reads version 1/);
    const extra = Buffer.concat([bin, Buffer.from([1, 0, 0, 0])]);
    expect(String(read(extra).error)).toMatch(/damaged binary trace: bytes after the end/);
    // A free of a token by a number no live token has: the taken token's number (5, the only
    // such word in the block) made 9.
    const six = Array.from({ length: 6 }, (_, i) => `1 malloc 1000 0x${i + 1}00`);
    const bad = Buffer.from(encode(lines(...six, '1 free 0x600')));
    const words: number[] = [];
    for (let k = 24; k + 4 <= bad.length; k += 4) if (bad.readInt32LE(k) === 5) words.push(k);
    expect(words).toHaveLength(1);
    const at = words[0]!;
    bad[at] = 9;
    const r = read(bad);
    expect(String(r.error)).toMatch(
      /^TraceReadError: x\.ptb: damaged binary trace: event 6 takes token number 9, which no live token has \(block at byte 16; 6 events read\)$/,
    );
    expect(r.calls.filter((c) => (c as unknown[])[0] === 'event')).toHaveLength(6);
  });

  it('says which code or flags of an entry are unknown, the first in the block', () => {
    // One block: the header's record and five events. Its codes, then its flags, each from a
    // multiple of 8.
    const text = lines(
      '1 malloc 10 0x10',
      '1 malloc 20 0x20',
      '1 free 0x10',
      '1 realloc 0x20 30 0x30',
      '1 free 0x30',
    );
    const ok = Buffer.from(encode(text));
    const metaLength = ok.readUInt32LE(24);
    const codesAt = 24 + ((4 + metaLength + 7) & ~7);
    const flagsAt = codesAt + 8;
    expect([...ok.subarray(codesAt, codesAt + 6)]).toEqual([0x46, 0, 0, 6, 2, 6]);
    // malloc: size, token returned; free: token taken; realloc: the three.
    expect([...ok.subarray(flagsAt, flagsAt + 5)]).toEqual([33, 33, 16, 49, 16]);
    const changed = (edits: Array<[number, number]>): string => {
      const b = Buffer.from(ok);
      for (const [at, v] of edits) b[at] = v;
      return String(read(b).error);
    };
    const where = '\\(block at byte 16; 0 events read\\)$';
    expect(changed([[flagsAt + 1, 0x80 | 33]])).toMatch(new RegExp(`unknown flags 0xa1 ${where}`));
    // A number written out for a token not returned.
    expect(changed([[flagsAt + 2, 16 | 64]])).toMatch(new RegExp(`unknown flags 0x50 ${where}`));
    // The first in the block: a bad code after bad flags, bad flags after a bad code.
    expect(
      changed([
        [flagsAt + 2, 64],
        [codesAt + 5, 0x1f],
      ]),
    ).toMatch(/unknown flags 0x40 /);
    expect(
      changed([
        [codesAt + 2, 0x1f],
        [flagsAt + 3, 0xff],
      ]),
    ).toMatch(new RegExp(`unknown operation code 0x1f ${where}`));
    expect(changed([[codesAt + 5, 0x4f]])).toMatch(/unknown record code 0x4f /);
    // Known flags that do not match the columns' counts: a free given a size it does not have.
    expect(changed([[flagsAt + 2, 16 | 1]])).toMatch(
      /damaged binary trace: the columns do not hold what the events say/,
    );
  });

  it('refuses values no text gives: a size that is not a whole number, a negative one', () => {
    // The size 2^33 is kept as a double: made NaN, then -4096, then a malloc's size of -1.
    const big = Buffer.from(encode(lines('1 malloc 8589934592 0x10', '1 free 0x10')));
    const word = Buffer.alloc(8);
    word.writeDoubleLE(2 ** 33);
    const at = big.indexOf(word);
    expect(at).toBeGreaterThan(0);
    const made = (v: number): unknown => {
      const b = Buffer.from(big);
      b.writeDoubleLE(v, at);
      return read(b).error;
    };
    expect(String(made(NaN))).toMatch(/damaged binary trace: a size that is not one/);
    expect(String(made(2.5))).toMatch(/damaged binary trace: a size that is not one/);
    expect(String(made(-4096))).toMatch(/damaged binary trace: event 0 has a negative size/);
    // mallopt's value may be negative, as in the text.
    const opt = both(lines('1 mallopt M_MMAP_THRESHOLD -1', '1 malloc 8589934592 0x10'));
    expect(opt.binary).toEqual(opt.text);
  });

  it("ends with how many tokens were live at once, read from the file's last bytes", () => {
    // Three blocks live after the third malloc; the free and the malloc after it keep three.
    const text = lines(
      '1 malloc 10 0x10',
      '1 malloc 20 0x20',
      '1 malloc 30 0x30',
      '1 free 0x20',
      '1 malloc 40 0x40',
      '1 realloc 0x40 50 0x40',
      '1 free 0x10',
      '1 free 0x30',
      '1 free 0x40',
    );
    expect(readBinaryEnd(file('peak.ptb', encode(text)))).toEqual({
      events: 9,
      lines: 9,
      peakLive: 3,
    });
    expect(processFacts().peakLive(join(dir, 'peak.ptb'))).toBe(3);
    // On generated traces, the most tokens live at once, counted from the text's events.
    for (const [what, t] of CASES) {
      const live = new Set<string>();
      let most = 0;
      readTraceText(t, what, {
        header: () => {},
        event: (ev) => {
          if (ev.in !== NULL_TOKEN) live.delete(ev.in);
          if (ev.out !== NULL_TOKEN) live.add(ev.out);
          most = Math.max(most, live.size);
        },
      });
      expect(readBinaryEnd(file('case.ptb', encode(t)))?.peakLive, what).toBe(most);
    }
    // Not a binary trace, compressed, cut short, missing: nothing said.
    const bin = encode(text);
    expect(readBinaryEnd(file('peak.trace', text))).toBeNull();
    expect(readBinaryEnd(file('peak.ptb.gz', gzipSync(bin)))).toBeNull();
    expect(readBinaryEnd(file('cut.ptb', bin.subarray(0, bin.length - 1)))).toBeNull();
    expect(readBinaryEnd(file('short.ptb', bin.subarray(0, 20)))).toBeNull();
    expect(readBinaryEnd(join(dir, 'no-such.ptb'))).toBeNull();
  });

  it("checks the end's count of live tokens against its own, and reads an end without one", () => {
    const text = lines('1 malloc 10 0x10', '1 malloc 20 0x20', '1 free 0x10');
    const bin = Buffer.from(encode(text));
    const endAt = bin.lastIndexOf(Buffer.from('{"events"'));
    const withEnd = (json: string): Uint8Array => {
      const head = Buffer.alloc(8);
      head.writeUInt32LE(2, 0);
      head.writeUInt32LE(Buffer.byteLength(json), 4);
      return Buffer.concat([bin.subarray(0, endAt - 8), head, Buffer.from(json)]);
    };
    expect(bin.subarray(endAt).toString()).toBe('{"events":3,"lines":3,"peakLive":2}');
    expect(read(withEnd('{"events":3,"lines":3,"peakLive":2}')).error).toBeUndefined();
    // A file written before the count was kept.
    expect(read(withEnd('{"events":3,"lines":3}')).error).toBeUndefined();
    for (const wrong of ['1', '3', '"2"', '-1'])
      expect(String(read(withEnd(`{"events":3,"lines":3,"peakLive":${wrong}}`)).error)).toMatch(
        /^TraceReadError: x\.ptb: damaged binary trace: the end says .* tokens were live at once, the numbers read say 2 \(block at byte \d+; 3 events read\)$/,
      );
  });

  it('is not taken for text: the magic bytes come first', () => {
    expect(Buffer.from(bin.subarray(0, 8))).toEqual(Buffer.from(BINARY_MAGIC));
  });
});

describe('ptsim convert --binary', () => {
  it('writes a trace that replays as its input does; --from another format is refused', async () => {
    const input = join(ROOT, 'traces/pinned-top.trace');
    const out = join(dir, 'pinned.ptb');
    const c = await inProcess(['convert', input, '--binary', '-o', out]);
    expect(c.code).toBe(0);
    expect(c.err).toMatch(/to .*pinned\.ptb \(binary\)/);
    expect(readFileSync(out).subarray(0, 8)).toEqual(Buffer.from(BINARY_MAGIC));
    const a = await inProcess(['replay', input, '--json']);
    const b = await inProcess(['replay', out, '--json']);
    expect(a.code).toBe(0);
    const strip = (s: string): unknown => {
      const j = JSON.parse(s) as Record<string, unknown>;
      delete j.trace;
      return j;
    };
    expect(strip(b.out)).toEqual(strip(a.out));
    const wrong = await inProcess(['replay', out, '--from', 'mtrace']);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/a binary ptsim trace is a native trace, not mtrace/);
    expect(wrong.err.trim().split('\n')).toHaveLength(1);
  });
});
