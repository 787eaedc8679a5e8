/**
 * Tests of the call-stack extension of the trace format (docs/trace-format.md, "Call stacks"):
 * the `^ID` field of event lines on the fast and the general path, the `#:stack`, `#:map` and
 * `#:sym` records, their mistakes, and that the records change nothing else a reader delivers.
 */

import { describe, expect, it } from 'vitest';
import { readTraceText } from '../../src/trace/reader.js';
import type { SiteRecord, TraceEvent, TraceSink } from '../../src/trace/types.js';

interface Read {
  events: TraceEvent[];
  sites: SiteRecord[];
  order: string[];
}

function read(text: string): Read {
  const out: Read = { events: [], sites: [], order: [] };
  const sink: TraceSink = {
    header: () => out.order.push('header'),
    event: (ev) => {
      out.events.push({ ...ev });
      out.order.push(`event ${ev.index}`);
    },
    touch: () => out.order.push('touch'),
    site: (r) => {
      out.sites.push(r);
      out.order.push(r.kind);
    },
  };
  readTraceText(text, 'sites.trace', sink);
  return out;
}

function mistake(text: string): string {
  try {
    read(text);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('no mistake reported');
}

const STACKED = [
  '# pid 7',
  '#:map 0x5555555540000 0x5555555560000 0x1000 /usr/local/bin/my prog',
  '#:stack 0 0x555555555123 0x555555555456',
  '@10 1 malloc 24 0x5555555592a0 ^0',
  '1 malloc 40 0x5555555592c0 ^0',
  '#:stack 1 0x555555555789',
  '1  calloc  2 8  b  ^1',
  '1 free 0x5555555592a0',
  '1 realloc 0x5555555592c0 100 0x5555555592f0 ^1',
  '1 free b ^0',
  '#:sym 0x555555555123 /src/a%20b.c:12 inner_fn | /src/a%20b.c:30 std::vector<int, std::allocator<int> >::push_back(int const&)',
  '#:sym 0x555555555456 ??:0 ??',
  '',
].join('\n');

describe('call stacks in the trace', () => {
  it('gives each event its stack number, on the fast and the general path', () => {
    const r = read(STACKED);
    expect(r.events.map((e) => e.site)).toEqual([0, 0, 1, -1, 1, 0]);
    // the general path (extra blanks) reads the rest of the line as usual
    expect(r.events[2]).toMatchObject({ n1: 2, n2: 8, out: 'b', line: 7 });
    expect(r.events[5]).toMatchObject({ in: 'b', line: 10 });
  });

  it('reads the same events as the trace without stacks, apart from their numbers', () => {
    const plain = STACKED.split('\n')
      .filter((l) => !l.startsWith('#:'))
      .map((l) => l.replace(/\s+\^\d+\s*$/, ''))
      .join('\n');
    const a = read(STACKED).events.map((e) => ({ ...e, line: 0, site: 0 }));
    const b = read(plain).events.map((e) => ({ ...e, line: 0, site: 0 }));
    expect(a).toEqual(b);
    expect(read(plain).events.every((e) => e.site === -1)).toBe(true);
  });

  it('delivers the records after the header, each before the events that follow it', () => {
    const r = read(STACKED);
    // A record may overtake the event line just before it (which waits for the next line of
    // substance, as for touch records), never one after it; and it makes the event wait no longer.
    expect(r.order).toEqual([
      'header',
      'map',
      'stack',
      'event 0',
      'stack',
      'event 1',
      'event 2',
      'event 3',
      'event 4',
      'sym',
      'sym',
      'event 5',
    ]);
    expect(r.sites[0]).toEqual({
      kind: 'map',
      line: 2,
      start: 0x5555555540000,
      end: 0x5555555560000,
      offset: 0x1000,
      path: '/usr/local/bin/my prog',
    });
    expect(r.sites[1]).toEqual({
      kind: 'stack',
      line: 3,
      id: 0,
      frames: [0x555555555123, 0x555555555456],
    });
    expect(r.sites[3]).toEqual({
      kind: 'sym',
      line: 11,
      addr: 0x555555555123,
      frames: [
        { fn: 'inner_fn', file: '/src/a b.c', line: 12 },
        {
          fn: 'std::vector<int, std::allocator<int> >::push_back(int const&)',
          file: '/src/a b.c',
          line: 30,
        },
      ],
    });
    expect(r.sites[4]).toMatchObject({ frames: [{ fn: '??', file: '??', line: 0 }] });
  });

  it('reports the mistakes with the line', () => {
    expect(mistake('1 malloc 24 a ^0\n')).toBe(
      "sites.trace:1: stack ^0 is not defined: a '#:stack 0 ...' record must come before its first use",
    );
    expect(mistake('#:stack 0 0x10\n1 malloc 24 a ^x\n')).toMatch(
      /^sites.trace:2: '\^x' is not a stack number/,
    );
    expect(mistake('#:stack 0 0x10\n#:stack 0 0x20\n')).toBe(
      'sites.trace:2: #:stack 0 is defined twice',
    );
    expect(mistake('#:stack 0 0x10 main\n')).toMatch(
      /^sites.trace:1: #:stack 0: 'main' is not an address/,
    );
    expect(mistake('#:map 0x2000 0x1000 0x0 /x\n')).toMatch(/^sites.trace:1: #:map: END/);
    expect(mistake('#:map 0x1000 0x2000 0x0\n')).toBe(
      'sites.trace:1: #:map takes START END OFFSET PATH',
    );
    expect(mistake('#:sym 0x10 main\n')).toMatch(
      /^sites.trace:1: #:sym 0x10: 'main' is not FILE:LINE FUNCTION/,
    );
    // only a field after the call's own is a stack number: where PTR belongs it is a token name
    const r = read('#:stack 0 0x10\n1 malloc 24 ^0\n1 free ^0 ^0\n');
    expect(r.events.map((e) => [e.out, e.in, e.site])).toEqual([
      ['^0', '', -1],
      ['', '^0', 0],
    ]);
  });
});
