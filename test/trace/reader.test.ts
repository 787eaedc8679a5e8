/**
 * Tests of the trace reader (src/trace/parser.ts and reader.ts): every line form of the trace
 * format, the header, chunking, gzip, files, and every error with its file name and line number.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { fcParams } from '../helpers/fc.js';
import { afterAll, describe, expect, it } from 'vitest';
import { TraceParser } from '../../src/trace/parser.js';
import {
  TraceReadError,
  readTraceFile,
  readTraceText,
  streamTraceFile,
} from '../../src/trace/reader.js';
import { BinaryTraceEncoder } from '../../src/trace/binary.js';
import { tokenKey } from '../../src/trace/token-key.js';
import { MALLOPT_PARAMS } from '../../src/core/constants.js';
import {
  Op,
  TraceSyntaxError,
  type TraceEvent,
  type TraceHeader,
  type TraceSink,
} from '../../src/trace/types.js';

/** A sink that copies every event (the reader reuses one object) and records the header calls. */
function collector(): {
  sink: TraceSink;
  events: TraceEvent[];
  headers: TraceHeader[];
  order: string[];
} {
  const events: TraceEvent[] = [];
  const headers: TraceHeader[] = [];
  const order: string[] = [];
  return {
    events,
    headers,
    order,
    sink: {
      header(h) {
        headers.push(h);
        order.push('header');
      },
      event(ev) {
        events.push({ ...ev });
        order.push('event');
      },
    },
  };
}

function parse(text: string | Uint8Array, name = 't.trace') {
  const c = collector();
  const result = readTraceText(text, name, c.sink);
  return { ...c, result };
}

/** The events of a one-line trace. */
function one(line: string): TraceEvent {
  const { events } = parse(line + '\n');
  expect(events).toHaveLength(1);
  return events[0]!;
}

/** The TraceSyntaxError that reading `text` throws. */
function syntaxError(text: string | Uint8Array, name = 't.trace'): TraceSyntaxError {
  try {
    parse(text, name);
  } catch (e) {
    expect(e).toBeInstanceOf(TraceSyntaxError);
    return e as TraceSyntaxError;
  }
  throw new Error(`expected a TraceSyntaxError for ${JSON.stringify(text)}`);
}

/** Expects reading `text` to fail in file `name` at `line` with exactly `detail` (or a detail matching it). */
function expectError(text: string, line: number, detail: string | RegExp, name = 't.trace'): void {
  const e = syntaxError(text, name);
  expect([e.file, e.line]).toEqual([name, line]);
  if (typeof detail === 'string') {
    expect(e.detail).toBe(detail);
    expect(e.message).toBe(`${name}:${line}: ${detail}`);
  } else {
    expect(e.detail).toMatch(detail);
    expect(e.message).toBe(`${name}:${line}: ${e.detail}`);
  }
}

/**
 * The first event of a trace as the reader delivers it: the token keys agree with the tokens, the
 * token it returns has number 0 and the token it takes has none (it was never returned).
 */
const ev = (fields: Partial<TraceEvent>): TraceEvent => {
  const e: TraceEvent = {
    index: 0,
    line: 1,
    time: -1,
    tid: 1,
    op: Op.malloc,
    n1: 0,
    n2: 0,
    out: '',
    in: '',
    param: 0,
    ...fields,
  };
  return {
    ...e,
    inKey: tokenKey(e.in),
    outKey: tokenKey(e.out),
    inId: -1,
    outId: e.out === '' ? -1 : 0,
    site: -1, // no `^ID`: the line names no call stack
  };
};

/** Whether a program can be run (the compressors are optional). */
function have(program: string): boolean {
  return spawnSync(program, ['--version'], { stdio: 'ignore' }).error === undefined;
}

const tmp = mkdtempSync(join(tmpdir(), 'ptsim-reader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
function tmpFile(content: string | Uint8Array): string {
  const path = join(tmp, `t${tmpCount++}.trace`);
  writeFileSync(path, content);
  return path;
}

describe('event lines', () => {
  it('reads every operation of the format table', () => {
    expect(one('1 malloc 24 a')).toEqual(ev({ op: Op.malloc, n1: 24, out: 'a' }));
    expect(one('1 calloc 4 100 b')).toEqual(ev({ op: Op.calloc, n1: 4, n2: 100, out: 'b' }));
    expect(one('2 malloc 2097152 0x7f3a2c000b70')).toEqual(
      ev({ tid: 2, op: Op.malloc, n1: 2097152, out: '0x7f3a2c000b70' }),
    );
    expect(one('1 realloc a 200 c')).toEqual(ev({ op: Op.realloc, in: 'a', n1: 200, out: 'c' }));
    expect(one('1 memalign 64 1000 d')).toEqual(
      ev({ op: Op.memalign, n1: 64, n2: 1000, out: 'd' }),
    );
    expect(one('1 valloc 100 e')).toEqual(ev({ op: Op.valloc, n1: 100, out: 'e' }));
    expect(one('1 pvalloc 5000 f')).toEqual(ev({ op: Op.pvalloc, n1: 5000, out: 'f' }));
    expect(one('1 free b')).toEqual(ev({ op: Op.free, in: 'b' }));
    expect(one('1 malloc_trim 0')).toEqual(ev({ op: Op.mallocTrim, n1: 0 }));
    expect(one('1 malloc_trim 131072')).toEqual(ev({ op: Op.mallocTrim, n1: 131072 }));
    expect(one('1 mallopt M_MMAP_THRESHOLD 131072')).toEqual(
      ev({ op: Op.mallopt, param: -3, n1: 131072 }),
    );
    expect(one('2 exit')).toEqual(ev({ tid: 2, op: Op.exit }));
  });

  it('reads the example of the format document with line numbers and indexes', () => {
    const text = [
      "# lines starting with '#' are comments; blank lines are ignored",
      '1 malloc 24 a',
      '1 calloc 4 100 b',
      '',
      '2 malloc 2097152 0x7f3a2c000b70',
      '1 realloc a 200 c',
      '1 memalign 64 1000 d',
      '1 free b',
      '2 free 0x7f3a2c000b70',
      '1 mallopt M_MMAP_THRESHOLD 131072',
      '1 malloc_trim 0',
      '2 exit',
      '',
    ].join('\n');
    const { events, result } = parse(text);
    expect(result).toEqual({ events: 10, lines: 12 });
    expect(events.map((e) => [e.index, e.line])).toEqual([
      [0, 2],
      [1, 3],
      [2, 5],
      [3, 6],
      [4, 7],
      [5, 8],
      [6, 9],
      [7, 10],
      [8, 11],
      [9, 12],
    ]);
  });

  it('reads @TIME, on the fast and the general path', () => {
    expect(one('@123 1 malloc 24 a')).toEqual(ev({ time: 123, n1: 24, out: 'a' }));
    expect(one('@0 3 free a')).toEqual(ev({ time: 0, tid: 3, op: Op.free, in: 'a' }));
    expect(one('@9007199254740991 1 exit')).toEqual(ev({ time: 9007199254740991, op: Op.exit }));
    expect(one('@5\t1  malloc 24 a')).toEqual(ev({ time: 5, n1: 24, out: 'a' }));
    const { events } = parse('1 malloc 1 a\n@7 1 free a\n');
    expect(events.map((e) => e.time)).toEqual([-1, 7]);
  });

  it('accepts tabs, several blanks, leading and trailing blanks', () => {
    expect(one('1\tmalloc\t24\ta')).toEqual(ev({ n1: 24, out: 'a' }));
    expect(one('  1   calloc \t 4  100   b  ')).toEqual(
      ev({ op: Op.calloc, n1: 4, n2: 100, out: 'b' }),
    );
    expect(one('\t1 free a\t')).toEqual(ev({ op: Op.free, in: 'a' }));
  });

  it('reads CRLF files like LF files', () => {
    const lf = parse('# pid 42\n1 malloc 24 a\n\n1 realloc a 10 b\n1 free b\n2 exit\n');
    const crlf = parse(
      '# pid 42\r\n1 malloc 24 a\r\n\r\n1 realloc a 10 b\r\n1 free b\r\n2 exit\r\n',
    );
    expect(crlf.events).toEqual(lf.events);
    expect(crlf.headers[0]!.facts.get('pid')).toBe('42');
    expect(crlf.result).toEqual(lf.result);
  });

  it('reads a last line without newline', () => {
    const { events, result } = parse('1 malloc 24 a\n1 free a');
    expect(events.map((e) => e.op)).toEqual([Op.malloc, Op.free]);
    expect(result).toEqual({ events: 2, lines: 2 });
    expect(parse('1 malloc 24 a\r').events).toHaveLength(1);
    expect(parse('1 malloc 24 a\n   ').result).toEqual({ events: 1, lines: 2 });
  });

  it('reads hexadecimal numbers', () => {
    expect(one('1 malloc 0x18 a')).toEqual(ev({ n1: 24, out: 'a' }));
    expect(one('1 calloc 0X4 0xFf b')).toEqual(ev({ op: Op.calloc, n1: 4, n2: 255, out: 'b' }));
    expect(one('1 memalign 0x1000 0x0 c')).toEqual(
      ev({ op: Op.memalign, n1: 4096, n2: 0, out: 'c' }),
    );
    expect(one('1 malloc_trim 0x20000')).toEqual(ev({ op: Op.mallocTrim, n1: 0x20000 }));
    expect(one('1 malloc 007 a').n1).toBe(7);
  });

  it('accepts sizes up to 2^64-1, as doubles, and keeps those above 2^53 exactly too', () => {
    expect(one('1 malloc 18446744073709551615 a').n1).toBe(2 ** 64);
    expect(one('1 malloc 0xffffffffffffffff a').n1).toBe(2 ** 64);
    expect(one('1 malloc 0x00000000000000000001 a').n1).toBe(1);
    expect(one('1 malloc 000000000000000000000000000042 a').n1).toBe(42);
    expect(one('1 malloc 9007199254740993 a').n1).toBeCloseTo(2 ** 53, -2);
    expect(one('1 malloc 9007199254740993 a').exact1).toBe(9007199254740993n);
    expect(one('1 malloc 0xffffffffffffffff a').exact1).toBe(2n ** 64n - 1n);
    expect(one('1 realloc a 18446744073709551600 b').exact1).toBe(18446744073709551600n);
    expect(one('1 memalign 16 0x20000000000001 a').exact2).toBe(2n ** 53n + 1n);
    expect(one('1 malloc_trim 9007199254740999').exact1).toBe(9007199254740999n);
    expect(one('1 malloc 9007199254740991 a').exact1).toBeUndefined();
    // Only the event that has one: the next line (read by the fast path) has none.
    const { events } = parse(
      '1 malloc 9007199254740993 a\n1 malloc 24 b\n1 calloc 2 9007199254740994 c\n',
    );
    expect(events.map((e) => [e.exact1, e.exact2])).toEqual([
      [9007199254740993n, undefined],
      [undefined, undefined],
      [undefined, 9007199254740994n],
    ]);
    expect(one('1 calloc 4294967296 4294967296 a')).toEqual(
      ev({ op: Op.calloc, n1: 2 ** 32, n2: 2 ** 32, out: 'a' }),
    );
  });

  it('turns the spellings of zero into NULL tokens', () => {
    expect(one('1 free 0')).toEqual(ev({ op: Op.free, in: '' }));
    expect(one('1 free 0x0')).toEqual(ev({ op: Op.free, in: '' }));
    expect(one('1 free 0x0000000000000000')).toEqual(ev({ op: Op.free, in: '' }));
    expect(one('1 realloc 0 100 a')).toEqual(ev({ op: Op.realloc, in: '', n1: 100, out: 'a' }));
    expect(one('1 realloc a 0 0')).toEqual(ev({ op: Op.realloc, in: 'a', n1: 0, out: '' }));
    expect(one('1 malloc 99999999999999 0')).toEqual(ev({ n1: 99999999999999, out: '' }));
    expect(one('1 calloc 1 1 0x0')).toEqual(ev({ op: Op.calloc, n1: 1, n2: 1, out: '' }));
    // Not zero: ordinary tokens.
    expect(one('1 free 0x').in).toBe('0x');
    expect(one('1 free 0x01').in).toBe('0x01');
    expect(one('1 free 0a').in).toBe('0a');
  });

  it('keys pointer tokens alike on the fast and the general path', () => {
    const tokens = [
      '0x1',
      '0x55d0c2a4f2a0',
      '0xfffffffffffff',
      '0x10000000000000',
      '0x12z',
      '0x12G',
      '0xA',
      '0x0',
      '0x01',
      '0x',
      '0xg',
      '0',
      'a0x1',
    ];
    for (const t of tokens) {
      // A single space is the fast path's shape; a tab sends the line to the general path.
      const fast = parse(`1 malloc 1 ${t}\n1 free ${t}\n1 realloc ${t} 2 ${t}\n`).events;
      const general = parse(`1\tmalloc 1 ${t}\n1\tfree ${t}\n1\trealloc ${t} 2 ${t}\n`).events;
      expect(fast).toEqual(general);
      expect(fast[0]!.outKey).toBe(tokenKey(t === '0' || t === '0x0' ? '' : t));
      expect(fast[1]!.inKey).toBe(fast[0]!.outKey);
      expect([fast[2]!.inKey, fast[2]!.outKey]).toEqual([fast[0]!.outKey, fast[0]!.outKey]);
    }
  });

  it('keeps any run of non-blank characters as a token', () => {
    expect(one('1 malloc 1 buf_17[x]').out).toBe('buf_17[x]');
    expect(one('1 malloc 1 ~!@#$%^&*()').out).toBe('~!@#$%^&*()');
    const long = 'p'.repeat(40);
    expect(one(`1 malloc 1 ${long}`).out).toBe(long);
    for (let n = 1; n <= 30; n++)
      expect(one(`1 malloc 1 ${'q'.repeat(n)}`).out).toBe('q'.repeat(n));
    // Non-ASCII tokens: valid UTF-8 reads as text, other bytes one char per byte.
    expect(one('1 malloc 1 bloc-é').out).toBe('bloc-é');
    const latin1 = Buffer.from('1 malloc 1 x\xe9y\n', 'latin1');
    expect(parse(latin1).events[0]!.out).toBe('x\xe9y');
  });

  it('reads mallopt parameters by name and by number, and int values', () => {
    for (const [name, num] of Object.entries(MALLOPT_PARAMS)) {
      expect(one(`1 mallopt ${name} 1`)).toEqual(ev({ op: Op.mallopt, param: num, n1: 1 }));
    }
    expect(one('1 mallopt -3 65536')).toEqual(ev({ op: Op.mallopt, param: -3, n1: 65536 }));
    expect(one('1 mallopt 1 0x40')).toEqual(ev({ op: Op.mallopt, param: 1, n1: 64 }));
    expect(one('1 mallopt 99 1').param).toBe(99);
    expect(one('1 mallopt M_PERTURB -1').n1).toBe(-1);
    expect(one('1 mallopt M_ARENA_MAX -2147483648').n1).toBe(-2147483648);
    expect(one('1 mallopt M_ARENA_MAX 4294967295').n1).toBe(4294967295);
    expect(one('1 mallopt M_ARENA_MAX 0xffffffff').n1).toBe(4294967295);
  });

  it('accepts large thread numbers and leading zeros', () => {
    expect(one('2147483647 exit').tid).toBe(2147483647);
    expect(one('0 exit').tid).toBe(0);
    expect(one('007 free a').tid).toBe(7);
  });

  it('skips a UTF-8 byte order mark at the start of the file', () => {
    expect(parse('\ufeff1 malloc 24 a\n').events).toEqual([ev({ n1: 24, out: 'a' })]);
    expect(parse('\ufeff # pid 3\n1 exit\n').headers[0]!.facts.get('pid')).toBe('3');
  });

  it('fills one reused event object', () => {
    const seen = new Set<TraceEvent>();
    readTraceText('1 malloc 1 a\n1 malloc 2 b\n1 free a\n', 't', {
      header() {},
      event(e) {
        seen.add(e);
      },
    });
    expect(seen.size).toBe(1);
  });
});

describe('header and comments', () => {
  it('collects header facts before the first event, and calls header once, first', () => {
    const text = [
      '# ptsim trace',
      '#',
      '# pid 4242',
      '#exe   /usr/bin/some program  ',
      '# cmdline  ./prog --flag value',
      '# start_brk 0x55d0c2a4f000',
      '# env MALLOC_ARENA_MAX=2',
      '# env GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0',
      '# env MALLOC_PERTURB_=',
      '# nprocs 8',
      '',
      '1 malloc 24 a',
      '# env MALLOC_TOP_PAD_=1',
      '# nprocs 2',
      '# pid 1',
      '1 free a',
    ].join('\n');
    const { headers, order, events } = parse(text);
    expect(order).toEqual(['header', 'event', 'event']);
    expect(headers).toHaveLength(1);
    const h = headers[0]!;
    expect(h.nprocs).toBe(8);
    expect(h.env).toEqual([
      ['MALLOC_ARENA_MAX', '2'],
      ['GLIBC_TUNABLES', 'glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0'],
      ['MALLOC_PERTURB_', ''],
    ]);
    expect(Object.fromEntries(h.facts)).toEqual({
      ptsim: 'trace',
      pid: '4242',
      exe: '/usr/bin/some program',
      cmdline: './prog --flag value',
      start_brk: '0x55d0c2a4f000',
    });
    expect(events.map((e) => e.line)).toEqual([12, 16]);
  });

  it('calls header at the end of a trace without events', () => {
    for (const text of ['', '\n\n', '# nprocs 4\n# pid 1', '# only comments\n']) {
      const { headers, order, result } = parse(text);
      expect(order).toEqual(['header']);
      expect(result.events).toBe(0);
      if (text.includes('nprocs')) expect(headers[0]!.nprocs).toBe(4);
    }
    expect(parse('').result).toEqual({ events: 0, lines: 0 });
    expect(parse('\n\n').result).toEqual({ events: 0, lines: 2 });
  });

  it('ignores malformed-looking comments after the first event', () => {
    const { events } = parse(
      '1 malloc 1 a\n# env nonsense\n# nprocs zero\n  # anything\n1 free a\n',
    );
    expect(events).toHaveLength(2);
  });

  it('decodes header values as UTF-8', () => {
    expect(parse('# exe /home/zoë/prog\n').headers[0]!.facts.get('exe')).toBe('/home/zoë/prog');
  });
});

/** A small trace with every oddity the parser handles, for the chunking tests. */
const ODD_TRACE =
  '\ufeff# pid 12\r\n# env MALLOC_ARENA_MAX=1\n\n' +
  '1 malloc 24 0x55d0c2a4f2a0\n' +
  '@100\t2 calloc 0x4 100 b\r\n' +
  '  1 realloc 0x55d0c2a4f2a0 200 c  \n' +
  '# a comment\n' +
  '1 memalign 64 1000 d\n1 free 0\n1 mallopt M_TOP_PAD -1\n2 exit\n' +
  '1 malloc_trim 0x10\n1 valloc 1 v\n1 pvalloc 1 pv\n1 free bloc-é\n1 free c';

describe('chunking', () => {
  const whole = parse(ODD_TRACE);

  it('gives the same events for every way of cutting the input in two', () => {
    const bytes = Buffer.from(ODD_TRACE);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const c = collector();
      const p = new TraceParser('t.trace', c.sink);
      p.push(bytes.subarray(0, cut));
      p.push(bytes.subarray(cut));
      expect(p.end()).toEqual(whole.result);
      expect(c.events).toEqual(whole.events);
      expect(c.headers).toEqual(whole.headers);
    }
  });

  it('gives the same events when fed one byte at a time', () => {
    const bytes = Buffer.from(ODD_TRACE);
    const c = collector();
    const p = new TraceParser('t.trace', c.sink);
    for (let i = 0; i < bytes.length; i++) p.push(new Uint8Array(bytes.subarray(i, i + 1)));
    expect(p.end()).toEqual(whole.result);
    expect(c.events).toEqual(whole.events);
    expect(c.headers).toEqual(whole.headers);
    expect(c.order.indexOf('header')).toBe(0);
  });

  it('does not keep a reference to the chunks it was given', () => {
    const c = collector();
    const p = new TraceParser('t', c.sink);
    const chunk = Buffer.from('1 malloc 24 ab');
    p.push(chunk);
    chunk.fill(0x21);
    p.push(Buffer.from('c\n'));
    p.end();
    expect(c.events[0]!.out).toBe('abc');
  });

  it('reports the right line for an error in a line split across chunks', () => {
    const bytes = Buffer.from('1 malloc 1 a\n\n1 malloc x b\n');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const p = new TraceParser('t.trace', collector().sink);
      expect(() => {
        p.push(bytes.subarray(0, cut));
        p.push(bytes.subarray(cut));
        p.end();
      }).toThrow("t.trace:3: size 'x' is not a number");
    }
  });

  it('rejects a line longer than 16 MiB', () => {
    const p = new TraceParser('big', collector().sink);
    const chunk = Buffer.alloc(1 << 20, 0x61);
    expect(() => {
      for (let i = 0; i < 17; i++) p.push(chunk);
    }).toThrow('big:1: line is longer than 16 MiB: is this a text trace?');
  });
});

describe('fast and general paths agree', () => {
  // Random valid event lines, written once in the canonical form (single spaces, decimal) and
  // once with random blanks, hex numbers and CRLF, which sends most of them to the general path.
  const token = fc.oneof(
    fc.constantFrom('0', '0x0', 'a', 'b17', '0x55d0c2a4f2a0', 'zz'),
    fc
      .stringMatching(/^[!-~]{1,30}$/)
      .filter((t) => !/^(0+|0[xX]0+)$/.test(t) && !t.startsWith('#')),
  );
  const size = fc.oneof(
    fc.integer({ min: 0, max: 4096 }),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  );
  type Fields = Array<string | number>;
  const op: fc.Arbitrary<Fields> = fc.oneof(
    fc.tuple(fc.constant('malloc'), size, token).map((f): Fields => f),
    fc.tuple(fc.constant('calloc'), size, size, token).map((f): Fields => f),
    fc.tuple(fc.constant('memalign'), size, size, token).map((f): Fields => f),
    fc.tuple(fc.constant('realloc'), token, size, token).map((f): Fields => f),
    fc.tuple(fc.constant('free'), token).map((f): Fields => f),
    fc.tuple(fc.constantFrom('valloc', 'pvalloc'), size, token).map((f): Fields => f),
    fc.constant<Fields>(['exit']),
  );
  const line = fc.record({
    time: fc.option(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { nil: undefined }),
    tid: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    op,
  });
  const blank = fc.constantFrom(' ', '  ', '\t', ' \t ');

  it('on random lines', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            line,
            fc.array(blank, { minLength: 8, maxLength: 8 }),
            fc.boolean(),
            fc.boolean(),
          ),
          { maxLength: 20 },
        ),
        (lines) => {
          const canonical: string[] = [];
          const odd: string[] = [];
          for (const [l, blanks, hex, crlf] of lines) {
            const fields = [
              ...(l.time === undefined ? [] : [`@${l.time}`]),
              String(l.tid),
              ...l.op.map(String),
            ];
            canonical.push(fields.join(' ') + '\n');
            const oddFields = fields.map((f, i) =>
              hex && i > 0 && typeof l.op[i - fields.length + l.op.length] === 'number'
                ? '0x' + Number(f).toString(16)
                : f,
            );
            odd.push(
              blanks[0] +
                oddFields.map((f, i) => f + blanks[i + 1]).join('') +
                (crlf ? '\r\n' : '\n'),
            );
          }
          const a = parse(canonical.join(''));
          const b = parse(odd.join(''));
          expect(b.events).toEqual(a.events);
        },
      ),
      fcParams({ numRuns: 300 }),
    );
  });
});

describe('gzip', () => {
  const text = '# pid 7\n1 malloc 24 a\n1 calloc 4 100 b\n1 free a\n1 free b\n';
  const expected = parse(text);

  it('is recognised by its magic bytes in readTraceText', () => {
    const gz = parse(gzipSync(Buffer.from(text)));
    expect(gz.events).toEqual(expected.events);
    expect(gz.headers).toEqual(expected.headers);
  });

  it('is recognised by its magic bytes in readTraceFile, whatever the file name', async () => {
    const path = tmpFile(gzipSync(Buffer.from(text)));
    const c = collector();
    expect(await readTraceFile(path, c.sink)).toEqual(expected.result);
    expect(c.events).toEqual(expected.events);
  });

  it('streams a large gzip file in chunks', async () => {
    const lines: string[] = [];
    for (let i = 0; i < 300_000; i++)
      lines.push(`${1 + (i % 3)} malloc ${i % 5000} t${i}\n${1 + (i % 3)} free t${i}\n`);
    const big = lines.join('');
    const path = tmpFile(gzipSync(Buffer.from(big), { level: 1 }));
    let n = 0;
    let lastLine = 0;
    const result = await readTraceFile(path, {
      header() {},
      event(e) {
        if (e.index !== n || e.line !== n + 1)
          throw new Error(`event ${n} numbered ${e.index} on line ${e.line}`);
        if (e.op === Op.malloc && e.out !== `t${n >> 1}`)
          throw new Error(`event ${n} has token ${e.out}`);
        n++;
        lastLine = e.line;
      },
    });
    expect(result).toEqual({ events: 600_000, lines: 600_000 });
    expect(lastLine).toBe(600_000);
  });

  it('reads concatenated gzip members', async () => {
    const data = Buffer.concat([gzipSync('1 malloc 1 a\n'), gzipSync('1 free a\n')]);
    expect(parse(data).events.map((e) => e.op)).toEqual([Op.malloc, Op.free]);
    const c = collector();
    await readTraceFile(tmpFile(data), c.sink);
    expect(c.events.map((e) => e.op)).toEqual([Op.malloc, Op.free]);
  });

  it('reports corrupt or truncated gzip data with the file name', async () => {
    const good = gzipSync(Buffer.from(text.repeat(50)));
    const truncated = good.subarray(0, good.length - 20);
    const corrupt = Buffer.from(good);
    for (const at of [20, 30]) corrupt.writeUInt8(corrupt.readUInt8(at) ^ 0xff, at);
    for (const bad of [truncated, corrupt]) {
      expect(() => parse(bad, 'bad.trace')).toThrow(TraceReadError);
      expect(() => parse(bad, 'bad.trace')).toThrow(
        /^bad\.trace: gzip data is corrupt or truncated/,
      );
      const path = tmpFile(bad);
      const p = readTraceFile(path, collector().sink, { displayName: 'shown.gz' });
      await expect(p).rejects.toThrow(TraceReadError);
      await expect(
        readTraceFile(path, collector().sink, { displayName: 'shown.gz' }),
      ).rejects.toThrow(/^shown\.gz: gzip data is corrupt or truncated/);
    }
    // Only the magic bytes.
    expect(() => parse(Buffer.from([0x1f, 0x8b]), 'x')).toThrow(
      /^x: gzip data is corrupt or truncated/,
    );
  });

  it('reports syntax errors inside gzip data with the line number', async () => {
    const data = gzipSync(Buffer.from('1 malloc 1 a\n1 mallocc 1 b\n'));
    expect(() => parse(data, 'z.gz')).toThrow(/^z\.gz:2: unknown operation 'mallocc'/);
    await expect(
      readTraceFile(tmpFile(data), collector().sink, { displayName: 'z.gz' }),
    ).rejects.toThrow(/^z\.gz:2: unknown operation 'mallocc'/);
  });
});

describe('readTraceFile', () => {
  it('reads a plain file', async () => {
    const text = '# nprocs 2\n1 malloc 24 a\n1 free a';
    const c = collector();
    const result = await readTraceFile(tmpFile(text), c.sink);
    expect(result).toEqual({ events: 2, lines: 3 });
    expect(c.headers[0]!.nprocs).toBe(2);
    expect(c.events).toEqual(parse(text).events);
  });

  it('streams a large plain file, text or binary, as the same events as the text in memory', async () => {
    // Several megabytes: the file is read in many chunks, into buffers read into again.
    const lines: string[] = ['# ptsim trace v1\n'];
    for (let i = 0; i < 300_000; i++)
      lines.push(
        `${1 + (i % 3)} malloc ${(i * 7919) % 100_000} 0x${(0x10000 + 16 * i).toString(16)}\n`,
        `${1 + (i % 3)} free 0x${(0x10000 + 16 * i).toString(16)}\n`,
      );
    const text = lines.join('');
    const digest = (): { sink: TraceSink; all: () => string } => {
      const out: string[] = [];
      return {
        sink: {
          header() {},
          event: (e) => out.push(`${e.index} ${e.line} ${e.tid} ${e.op} ${e.n1} ${e.in} ${e.out}`),
        },
        all: () => out.join('\n'),
      };
    };
    const inMemory = digest();
    const expected = readTraceText(text, 'big', inMemory.sink);
    const parts: Uint8Array[] = [];
    const enc = new BinaryTraceEncoder((b) => parts.push(b.slice()));
    enc.end(readTraceText(text, 'big', enc).lines);
    for (const bytes of [Buffer.from(text), Buffer.concat(parts)]) {
      expect(bytes.length).toBeGreaterThan(4 << 20);
      const path = tmpFile(bytes);
      const streamed = digest();
      expect(await streamTraceFile(path, path, streamed.sink)).toEqual(expected);
      expect(streamed.all()).toBe(inMemory.all());
    }
  });

  it('reads an empty file', async () => {
    const c = collector();
    expect(await readTraceFile(tmpFile(''), c.sink)).toEqual({ events: 0, lines: 0 });
    expect(c.order).toEqual(['header']);
  });

  it('names the file in syntax errors, or the display name', async () => {
    const path = tmpFile('1 malloc 24 a\n1 free\n');
    await expect(readTraceFile(path, collector().sink)).rejects.toThrow(
      `${path}:2: free takes PTR, got 0 arguments`,
    );
    const e = await readTraceFile(path, collector().sink, { displayName: 'app.trace' }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(TraceSyntaxError);
    expect((e as TraceSyntaxError).message).toBe('app.trace:2: free takes PTR, got 0 arguments');
  });

  it('reports a missing file', async () => {
    const path = join(tmp, 'does-not-exist.trace');
    const e = await readTraceFile(path, collector().sink).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TraceReadError);
    expect((e as Error).message).toBe(`${path}: no such file`);
    expect((e as Error).name).toBe('TraceReadError');
  });

  it('reports a directory', async () => {
    await expect(readTraceFile(tmp, collector().sink, { displayName: 'dir' })).rejects.toThrow(
      'dir: is a directory, not a trace file',
    );
  });

  it.skipIf(!['xz', 'zstd', 'bzip2'].every(have))(
    'reads xz, zstd and bzip2 compressed traces through their programs',
    async () => {
      const text = '# pid 7\n1 malloc 24 a\n1 free a\n';
      const expected = parse(text);
      for (const program of ['xz', 'zstd', 'bzip2']) {
        const packed = execFileSync(program, ['-c'], { input: text });
        const c = collector();
        expect(await readTraceFile(tmpFile(packed), c.sink)).toEqual(expected.result);
        expect(c.events).toEqual(expected.events);
        expect(parse(packed).events).toEqual(expected.events);
      }
      const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04]);
      await expect(
        readTraceFile(tmpFile(xz), collector().sink, { displayName: 'a.xz' }),
      ).rejects.toThrow(/^a\.xz: xz data is corrupt or truncated \(xz -dc: /);
      expect(() => parse(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]), 'a.zst')).toThrow(
        /^a\.zst: zstd data is corrupt or truncated \(zstd -dc: /,
      );
    },
  );

  it('says which program a compressed trace needs when it is not installed', async () => {
    const zst = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]);
    const message =
      "a.zst: is zstd-compressed, and reading it needs the 'zstd' program, which is not installed (install zstd, or decompress the file first)";
    const path = process.env['PATH'];
    process.env['PATH'] = join(tmp, 'no-programs-here');
    try {
      await expect(
        readTraceFile(tmpFile(zst), collector().sink, { displayName: 'a.zst' }),
      ).rejects.toThrow(new TraceReadError('a.zst', message.slice('a.zst: '.length)));
      expect(() => parse(zst, 'a.zst')).toThrow(message);
    } finally {
      process.env['PATH'] = path;
    }
  });

  it('passes errors thrown by the sink through unchanged', async () => {
    class Stop extends Error {}
    const stop = new Stop('stop');
    const sink: TraceSink = {
      header() {},
      event(e) {
        if (e.index === 1) throw stop;
      },
    };
    const text = '1 malloc 1 a\n1 malloc 2 b\n1 malloc 3 c\n';
    await expect(readTraceFile(tmpFile(text), sink)).rejects.toBe(stop);
    await expect(readTraceFile(tmpFile(gzipSync(text)), sink)).rejects.toBe(stop);
    expect(() => readTraceText(text, 't', sink)).toThrow(stop);
  });
});

describe('errors', () => {
  it('reports unknown operations', () => {
    expectError(
      '1 malloc 1 a\n1 malocc 24 a\n',
      2,
      "unknown operation 'malocc' (known: malloc, calloc, realloc, memalign, valloc, pvalloc, free, malloc_trim, mallopt, exit)",
    );
    expectError(
      '1 MALLOC 24 a\n',
      1,
      "unknown operation 'MALLOC' (operation names are lower case: 'malloc')",
    );
    expectError('1 aligned_alloc 16 32 a\n', 1, /^unknown operation 'aligned_alloc' \(known: /);
  });

  it('reports missing thread numbers and operations', () => {
    expectError('malloc 24 a\n', 1, "missing thread number before 'malloc'");
    expectError('@12 free a\n', 1, "missing thread number before 'free'");
    expectError('@12\n', 1, 'missing thread number');
    expectError('\n\n7\n', 3, 'missing operation after the thread number');
    expectError('x malloc 24 a\n', 1, "thread number 'x' is not a non-negative decimal integer");
    expectError('-1 malloc 24 a\n', 1, "thread number '-1' is not a non-negative decimal integer");
    expectError(
      '0x1 malloc 24 a\n',
      1,
      "thread number '0x1' is not a non-negative decimal integer",
    );
    expectError(
      '2147483648 exit\n',
      1,
      'thread number 2147483648 is out of range (at most 2147483647)',
    );
  });

  it('reports bad times', () => {
    expectError('@ 1 exit\n', 1, "missing time after '@'");
    expectError(
      '@12a 1 exit\n',
      1,
      "time '@12a' is not '@' followed by a decimal number of nanoseconds",
    );
    expectError(
      '@-5 1 exit\n',
      1,
      "time '@-5' is not '@' followed by a decimal number of nanoseconds",
    );
    expectError(
      '@99999999999999999999 1 exit\n',
      1,
      "time '@99999999999999999999' is out of range (more than 2^53-1)",
    );
    expectError(
      '1 @5 exit\n',
      1,
      "unknown operation '@5' (the time must be the first field of the line)",
    );
  });

  it('reports wrong numbers of arguments', () => {
    expectError('1 malloc 1\n', 1, 'malloc takes SIZE PTR, got 1 argument');
    expectError('1 malloc 1 a b\n', 1, 'malloc takes SIZE PTR, got 3 arguments');
    expectError('1 malloc\n', 1, 'malloc takes SIZE PTR, got 0 arguments');
    expectError('1 calloc 1 a\n', 1, 'calloc takes NMEMB SIZE PTR, got 2 arguments');
    expectError('1 realloc a 10\n', 1, 'realloc takes OLD SIZE NEW, got 2 arguments');
    expectError('1 memalign 16 a\n', 1, 'memalign takes ALIGN SIZE PTR, got 2 arguments');
    expectError('1 valloc 16\n', 1, 'valloc takes SIZE PTR, got 1 argument');
    expectError('1 pvalloc 16 a 7\n', 1, 'pvalloc takes SIZE PTR, got 3 arguments');
    expectError('1 free\n', 1, 'free takes PTR, got 0 arguments');
    expectError('1 free a b\n', 1, 'free takes PTR, got 2 arguments');
    expectError('1 free a\tb\n', 1, 'free takes PTR, got 2 arguments');
    expectError('1 malloc_trim\n', 1, 'malloc_trim takes PAD, got 0 arguments');
    expectError('1 mallopt M_MXFAST\n', 1, 'mallopt takes PARAM VALUE, got 1 argument');
    expectError('1 exit now\n', 1, 'exit takes no arguments, got 1 argument');
    expectError('1 malloc 1 a # comment\n', 1, 'malloc takes SIZE PTR, got 4 arguments');
    expectError('1 free a b c d e f g h i j k\n', 1, 'free takes PTR, got 11 arguments');
  });

  it('reports bad numbers', () => {
    expectError('1 malloc 12x a\n', 1, "size '12x' is not a number");
    expectError('1 malloc 0x a\n', 1, "size '0x' is not a number");
    expectError('1 malloc 0xg a\n', 1, "size '0xg' is not a number");
    expectError('1 malloc 1.5 a\n', 1, "size '1.5' is not a number");
    expectError('1 malloc -5 a\n', 1, 'size -5 is negative');
    expectError('1 malloc -0x10 a\n', 1, 'size -0x10 is negative');
    expectError(
      '1 malloc 18446744073709551616 a\n',
      1,
      'size 18446744073709551616 is out of range (more than 2^64-1)',
    );
    expectError(
      '1 malloc 0x10000000000000000 a\n',
      1,
      'size 0x10000000000000000 is out of range (more than 2^64-1)',
    );
    expectError('1 calloc x 1 a\n', 1, "nmemb 'x' is not a number");
    expectError('1 calloc 1 x a\n', 1, "size 'x' is not a number");
    expectError('1 memalign x 1 a\n', 1, "alignment 'x' is not a number");
    expectError('1 realloc a x b\n', 1, "size 'x' is not a number");
    expectError('1 malloc_trim -1\n', 1, 'pad -1 is negative');
    expectError('1 valloc ten a\n', 1, "size 'ten' is not a number");
  });

  it('reports bad mallopt parameters and values', () => {
    const known = Object.keys(MALLOPT_PARAMS).join(', ');
    expectError(
      '1 mallopt M_FOO 1\n',
      1,
      `mallopt parameter 'M_FOO' is unknown (known: ${known}, or glibc's number)`,
    );
    expectError(
      '1 mallopt m_mxfast 1\n',
      1,
      `mallopt parameter 'm_mxfast' is unknown (known: ${known}, or glibc's number)`,
    );
    expectError('1 mallopt 3x 1\n', 1, "mallopt parameter '3x' is not a number");
    expectError(
      '1 mallopt 2147483648 1\n',
      1,
      'mallopt parameter 2147483648 is out of range (an int)',
    );
    expectError(
      '1 mallopt M_MXFAST 99999999999\n',
      1,
      'value 99999999999 is out of range for mallopt (an int)',
    );
    expectError(
      '1 mallopt M_MXFAST 4294967296\n',
      1,
      'value 4294967296 is out of range for mallopt (an int)',
    );
    expectError(
      '1 mallopt M_MXFAST -2147483649\n',
      1,
      'value -2147483649 is out of range for mallopt (an int)',
    );
    expectError(
      '1 mallopt M_MXFAST 0x100000000\n',
      1,
      'value 0x100000000 is out of range for mallopt (an int)',
    );
    expectError('1 mallopt M_MXFAST big\n', 1, "value 'big' is not a number");
    expectError('1 mallopt M_MXFAST -0x1\n', 1, "value '-0x1' is not a number");
  });

  it('reports bad header lines', () => {
    expectError(
      '# pid 1\n# env MALLOC_ARENA_MAX\n',
      2,
      "malformed header line '# env MALLOC_ARENA_MAX': expected '# env NAME=VALUE'",
    );
    expectError('# env =2\n', 1, "malformed header line '# env =2': expected '# env NAME=VALUE'");
    expectError('# env\n', 1, "malformed header line '# env ': expected '# env NAME=VALUE'");
    expectError(
      '# env 1X=2\n',
      1,
      "malformed header line '# env 1X=2': expected '# env NAME=VALUE'",
    );
    expectError(
      '# nprocs 0\n',
      1,
      "malformed header line '# nprocs 0': expected a positive number of CPUs",
    );
    expectError(
      '# nprocs -2\n',
      1,
      "malformed header line '# nprocs -2': expected a positive number of CPUs",
    );
    expectError(
      '# nprocs four\n',
      1,
      "malformed header line '# nprocs four': expected a positive number of CPUs",
    );
    expectError(
      '# nprocs\n',
      1,
      "malformed header line '# nprocs ': expected a positive number of CPUs",
    );
  });

  it('reports control characters in event lines', () => {
    expectError(
      '1 malloc 1 a\x00b\n',
      1,
      'unexpected control character 0x00 in column 13: is this a text trace?',
    );
    expectError(
      '\x00\x00\x00\n',
      1,
      'unexpected control character 0x00 in column 1: is this a text trace?',
    );
    expectError(
      '1 free a\x0b\n',
      1,
      'unexpected control character 0x0b in column 9: is this a text trace?',
    );
  });

  it('says when the last line may be truncated', () => {
    expectError(
      '1 malloc 24 a\n1 malloc 24',
      2,
      'malloc takes SIZE PTR, got 1 argument (the file ends in the middle of this line: truncated?)',
    );
    expectError('1 malloc 24 a\n1 mall', 2, /^unknown operation 'mall' .*truncated\?\)$/);
    expectError(
      '# env X',
      1,
      "malformed header line '# env X': expected '# env NAME=VALUE' (the file ends in the middle of this line: truncated?)",
    );
  });

  it('shows long and odd tokens shortened and escaped', () => {
    const e = syntaxError(`1 ${'m'.repeat(100)} 1 a\n`);
    expect(e.detail).toBe(
      `unknown operation '${'m'.repeat(60)}...' (known: malloc, calloc, realloc, memalign, valloc, pvalloc, free, malloc_trim, mallopt, exit)`,
    );
    expect(syntaxError('1 mallöc 1 a\n').detail).toMatch(/^unknown operation 'mallöc'/);
  });

  it('stops at the first error, after delivering the lines before it', () => {
    const c = collector();
    expect(() =>
      readTraceText('1 malloc 1 a\n1 malloc 2 b\n1 oops\n1 free a\n', 't', c.sink),
    ).toThrow('t:3:');
    expect(c.events.map((e) => e.line)).toEqual([1, 2]);
  });

  it('names the file given', () => {
    expectError('1 bad\n', 1, /^unknown operation 'bad'/, 'traces/app.trace.gz');
  });
});

/** A sink that logs every call, records included, as plain values in order. */
function recordLog(): { sink: TraceSink; log: unknown[] } {
  const log: unknown[] = [];
  return {
    log,
    sink: {
      header(h) {
        log.push(['header', h.touchesRecorded === true]);
      },
      event(ev) {
        log.push(['event', ev.index, ev.line, ev.recordsFollow === true]);
      },
      touch(r) {
        log.push([
          'touch',
          r.line,
          r.token,
          r.id,
          [...r.pages.subarray(0, 2 * r.ranges)],
          r.maxPage,
        ]);
      },
      rss(s) {
        log.push([
          'rss',
          s.line,
          s.time,
          s.anon,
          s.heap,
          s.mark,
          ...(s.rec! >= 0 ? [s.rec] : []),
          ...(s.total! >= 0 ? [`total=${s.total}`] : []),
        ]);
      },
      recordsEnd() {
        log.push(['end']);
      },
      touchesIncomplete(line, detail) {
        log.push(['incomplete', line, detail]);
      },
    },
  };
}

function records(text: string | Uint8Array): unknown[] {
  const r = recordLog();
  readTraceText(text, 't.trace', r.sink);
  return r.log;
}

/** A trace with records in every place they may stand, for the record tests. */
const RECORDS_TRACE = [
  '# touches recorded',
  '#:rss anon=8192 mark=start',
  '# rss_sampling 100ms',
  '1 malloc 100000 0x7f0000000010',
  '#:touch 0x7f0000000010 0-3,7',
  '# a comment between records',
  '#:rss @5000 anon=1048576 heap=40960 threads=2',
  '',
  '1 malloc 8000 buf',
  '1 malloc 10 small',
  '#:touch buf 1',
  '1 realloc buf 20000 buf2',
  '#:touch 0x7f0000000010 4-5',
  '#:touch buf2 0,2-4',
  '#:rss anon=2000000',
  '1 free 0x7f0000000010',
].join('\n');

describe('records (#:touch, #:rss)', () => {
  it('delivers them in trace order, each run after the event before it and closed by recordsEnd', () => {
    expect(records(RECORDS_TRACE)).toEqual([
      ['header', true],
      ['rss', 2, -1, 8192, -1, 'start'],
      ['end'],
      ['event', 0, 4, true],
      ['touch', 5, '0x7f0000000010', 0, [0, 3, 7, 7], 7],
      ['rss', 7, 5000, 1048576, 40960, ''],
      ['end'],
      ['event', 1, 9, false],
      ['event', 2, 10, true],
      ['touch', 11, 'buf', 1, [1, 1], 1],
      ['end'],
      ['event', 3, 12, true],
      ['touch', 13, '0x7f0000000010', 0, [4, 5], 5],
      // buf2 got the number buf gave up
      ['touch', 14, 'buf2', 1, [0, 0, 2, 4], 4],
      ['rss', 15, -1, 2000000, -1, ''],
      ['end'],
      ['event', 4, 16, false],
    ]);
  });

  it('gives a record the number its token has, and none to a token that has none', () => {
    const log = records('1 malloc 5000 a\n1 malloc 5000 b\n1 free a\n#:touch b 0\n#:touch a 0\n');
    expect(log.filter((x) => (x as unknown[])[0] === 'touch')).toEqual([
      ['touch', 4, 'b', 1, [0, 0], 0],
      ['touch', 5, 'a', -1, [0, 0], 0],
    ]);
  });

  it('reads a trace without records exactly as a sink without record methods sees it', () => {
    const text = RECORDS_TRACE.replace(/^#:.*$/gm, '# was a record');
    const plain = parse(text);
    const withRecords = parse(RECORDS_TRACE);
    expect(withRecords.events.map((e) => ({ ...e, recordsFollow: undefined }))).toEqual(
      plain.events,
    );
    expect(withRecords.result).toEqual(plain.result);
    expect(plain.events.every((e) => e.recordsFollow === undefined)).toBe(true);
    expect(withRecords.events.map((e) => e.recordsFollow)).toEqual([
      true,
      undefined,
      true,
      true,
      undefined,
    ]);
  });

  it('keeps records out of the header, and header lines after an early sample in it', () => {
    const r = recordLog();
    const headers: TraceHeader[] = [];
    readTraceText('#:rss anon=1\n# env MALLOC_ARENA_MAX=1\n#:unknown x\n1 malloc 1 a\n', 't', {
      ...r.sink,
      header: (h) => headers.push(h),
    });
    expect(headers[0]!.env).toEqual([['MALLOC_ARENA_MAX', '1']]);
    expect(headers[0]!.comments).toEqual(['env MALLOC_ARENA_MAX=1']);
    expect([...headers[0]!.facts]).toEqual([]);
    expect(r.log).toEqual([['rss', 1, -1, 1, -1, ''], ['end'], ['event', 0, 4, false]]);
  });

  it('delivers the samples of a trace without events after its header', () => {
    expect(records('# touches recorded\n#:rss anon=5\n#:rss anon=6 heap=0x10\n')).toEqual([
      ['header', true],
      ['rss', 2, -1, 5, -1, ''],
      ['rss', 3, -1, 6, 16, ''],
      ['end'],
    ]);
  });

  it('skips #: lines of other keywords, and takes other comments as comments', () => {
    expect(
      records(
        '1 malloc 1 a\n#:future 1 2 3\n#:touchy a 0\n# :touch a 0\n#:\n1 free a\n#:touch\x01\n',
      ),
    ).toEqual([
      ['header', false],
      ['event', 0, 1, false],
      ['event', 1, 6, false],
    ]);
  });

  it('reads page lists: -, numbers, inclusive ranges, in any order', () => {
    const pages = (list: string): unknown =>
      (records(`1 malloc 1 a\n#:touch a ${list}\n`)[2] as unknown[]).slice(4);
    expect(pages('-')).toEqual([[], -1]);
    expect(pages('0')).toEqual([[0, 0], 0]);
    expect(pages('3-3')).toEqual([[3, 3], 3]);
    expect(pages('9,0-2,5')).toEqual([[9, 9, 0, 2, 5, 5], 9]);
    expect(pages('999999999999999')).toEqual([[999999999999999, 999999999999999], 999999999999999]);
  });

  it('reads samples: @TIME, anon=, heap=, rec=, mark=, other keys skipped, tabs and CRLF', () => {
    const sample = (line: string): unknown => records(`1 malloc 1 a\n${line}\n`)[2];
    expect(sample('#:rss anon=0x1000')).toEqual(['rss', 2, -1, 4096, -1, '']);
    expect(sample('#:rss anon=8192 rec=4096 heap=0')).toEqual(['rss', 2, -1, 8192, 0, '', 4096]);
    expect(sample('#:rss\t@7  heap=3 anon=4\tmark=ready-1\r')).toEqual([
      'rss',
      2,
      7,
      4,
      3,
      'ready-1',
    ]);
    expect(sample('#:rss a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8 i=9 anon=10 mark=é')).toEqual([
      'rss',
      2,
      -1,
      10,
      -1,
      'é',
    ]);
  });

  it('reads the whole RSS (total=) with anon=, or alone, and before the first event', () => {
    const sample = (line: string): unknown => records(`1 malloc 1 a\n${line}\n`)[2];
    const at = (line: string): string => `1 malloc 1 a\n${line}\n`;
    expect(sample('#:rss @3 total=0x5000')).toEqual(['rss', 2, 3, -1, -1, '', 'total=20480']);
    expect(sample('#:rss total=9 anon=8 rec=1')).toEqual(['rss', 2, -1, 8, -1, '', 1, 'total=9']);
    expect(sample('#:rss anon=8')).toEqual(['rss', 2, -1, 8, -1, '']);
    expect(records('#:rss total=12288\n1 malloc 1 a\n')).toEqual([
      ['header', false],
      ['rss', 1, -1, -1, -1, '', 'total=12288'],
      ['end'],
      ['event', 0, 2, false],
    ]);
    expectError(at('#:rss total=1 total=2'), 2, '#:rss: total= is given twice');
    expectError(at('#:rss total=-1'), 2, '#:rss total= -1 is negative');
    expectError(at('#:rss total='), 2, '#:rss: total= has no value');
  });

  it('gives the same calls for every way of cutting a trace with records in two', () => {
    const bytes = Buffer.from(RECORDS_TRACE);
    const whole = records(bytes);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = recordLog();
      const p = new TraceParser('t.trace', r.sink);
      p.push(bytes.subarray(0, cut));
      p.push(bytes.subarray(cut));
      p.end();
      expect(r.log).toEqual(whole);
    }
  });

  it('reports malformed records with file and line', () => {
    const at = (line: string): string => `1 malloc 100000 a\n${line}\n`;
    const bad = (list: string): string =>
      `#:touch: malformed page list '${list}': expected page numbers and ranges like 0-3,7,12-40, or - for none`;
    for (const list of [
      'x',
      '1-',
      '-3',
      '1,',
      ',1',
      '1,,2',
      '1--2',
      '0x1',
      '1-2-3',
      '--',
      '1000000000000000',
    ])
      expectError(at(`#:touch a ${list}`), 2, bad(list));
    expectError(at('#:touch a 5-2'), 2, '#:touch: page range 5-2 runs backwards');
    expectError(at('#:touch a'), 2, '#:touch takes TOKEN PAGES, got 1 argument');
    expectError(at('#:touch'), 2, '#:touch takes TOKEN PAGES, got 0 arguments');
    expectError(at('#:touch a 1 2'), 2, '#:touch takes TOKEN PAGES, got 3 arguments');
    expectError(
      at('#:touch 0x0 1'),
      2,
      "#:touch of NULL ('0x0'): a touch record names a live block",
    );
    expectError(
      '# touches recorded\n#:touch a 0\n1 malloc 1 a\n',
      2,
      '#:touch of a before the first event: no block is live yet',
    );
    expectError(
      at('#:touch a 1\x07'),
      2,
      'unexpected control character 0x07 in column 12: is this a text trace?',
    );
    expectError(
      at('#:rss'),
      2,
      "#:rss without anon=BYTES or total=BYTES (the process's anonymous, or whole, resident memory)",
    );
    expectError(
      at('#:rss heap=4'),
      2,
      "#:rss without anon=BYTES or total=BYTES (the process's anonymous, or whole, resident memory)",
    );
    expectError(at('#:rss anon=4k'), 2, "#:rss anon= '4k' is not a number");
    expectError(at('#:rss anon=-4'), 2, '#:rss anon= -4 is negative');
    expectError(at('#:rss anon='), 2, '#:rss: anon= has no value');
    expectError(at('#:rss anon=1 anon=2'), 2, '#:rss: anon= is given twice');
    expectError(at('#:rss anon=1 mark=a mark=b'), 2, '#:rss: mark= is given twice');
    expectError(at('#:rss anon=1 rec=1 rec=2'), 2, '#:rss: rec= is given twice');
    expectError(at('#:rss anon=1 rec=x'), 2, "#:rss rec= 'x' is not a number");
    expectError(at('#:rss anon=1 12'), 2, "#:rss: '12' is not KEY=VALUE (or @TIME, first)");
    expectError(at('#:rss anon=1 =3'), 2, "#:rss: '=3' is not KEY=VALUE (or @TIME, first)");
    expectError(at('#:rss anon=1 @5'), 2, "#:rss: '@5' is not KEY=VALUE (or @TIME, first)");
    expectError(
      at('#:rss @x anon=1'),
      2,
      "time '@x' is not '@' followed by a decimal number of nanoseconds",
    );
    expectError(
      '#:rss anon=1\n#:rss\n',
      2,
      "#:rss without anon=BYTES or total=BYTES (the process's anonymous, or whole, resident memory)",
    );
    expectError(
      '# touches all\n',
      1,
      "malformed header line '# touches all': expected '# touches recorded'",
    );
  });

  it('delivers # touches incomplete from here in trace order, like a record', () => {
    const text = [
      '# touches recorded',
      '1 malloc 8000 a',
      '#:touch a 0',
      '# touches incomplete from here: /proc/self/pagemap could not be read',
      '1 malloc 8000 b',
      '# touches incomplete from here',
      '# touches incomplete from hereafter',
      '#   touches   incomplete from here:  padded  \r',
      '# touches of another kind: a comment',
      '1 free a',
    ].join('\n');
    expect(records(text)).toEqual([
      ['header', true],
      ['event', 0, 2, true],
      ['touch', 3, 'a', 0, [0, 0], 0],
      ['incomplete', 4, '/proc/self/pagemap could not be read'],
      ['end'],
      ['event', 1, 5, true],
      ['incomplete', 6, ''],
      ['incomplete', 8, 'padded'],
      ['end'],
      ['event', 2, 10, false],
    ]);
    // Before the first event it is a fact of the header: incomplete from the start.
    const headers: TraceHeader[] = [];
    readTraceText('# touches recorded\n# touches incomplete from here: why\n1 malloc 1 a\n', 't', {
      header: (h) => headers.push(h),
      event: () => {},
    });
    expect(headers[0]!.touchesRecorded).toBe(true);
    expect(headers[0]!.touchesIncomplete).toEqual({ line: 2, detail: 'why' });
    expect(headers[0]!.facts.get('touches')).toBe('recorded');
  });

  it('delivers the event before a malformed record, and ends the records before a bad line', () => {
    const r = recordLog();
    expect(() => readTraceText('1 malloc 1 a\n#:touch a x\n', 't', r.sink)).toThrow('t:2: #:touch');
    expect(r.log).toEqual([
      ['header', false],
      ['event', 0, 1, false],
    ]);
    const s = recordLog();
    expect(() =>
      readTraceText('1 malloc 1 a\n#:touch a 0\n#:rss anon=1\n1 oops\n', 't', s.sink),
    ).toThrow('t:4: unknown operation');
    expect(s.log).toEqual([
      ['header', false],
      ['event', 0, 1, true],
      ['touch', 2, 'a', 0, [0, 0], 0],
      ['rss', 3, -1, 1, -1, ''],
      ['end'],
    ]);
  });
});
