/**
 * The heaptrack importer on hand-made raw data (the records heaptrack 1.4 writes, as seen in a
 * recording of a small program on this machine), the refusal of interpreted files, and malformed
 * records.
 */

import { describe, expect, it } from 'vitest';
import { importText } from '../../src/import/index.js';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { imp, importError } from './helpers.js';

const opts = { from: 'heaptrack' };

/** Raw data of a program doing malloc(24), calloc(4, 100), realloc, memalign (untracked), frees. */
const RAW = [
  'v 10400 3',
  'x 9 /tmp/ht/p',
  'X ./p',
  'I 1000 5e2922',
  'm 1 -',
  'm 1 x 55b475155000 0 700 1000 229 2000 dc 3dd0 270',
  't 7f7fe9797b9f 0',
  '+ 11c00 4 55b476ab1530',
  't 55b47515618a 7',
  '+ 18 8 55b476ac31d0',
  't 55b47515619d 7',
  '+ 190 9 55b476ac32b0',
  '- 55b476ac31d0',
  't 55b4751561b2 7',
  '+ c8 a 55b476ac34b0',
  'c 1',
  'R 3b8',
  '- 55b476ac32b0',
  '- 55b476ac3680',
  'c 2a',
  '- 55b476ac34b0',
  '- 55b476ab1530',
  'c 2b',
  'R 3b8',
  '',
].join('\n');

describe('heaptrack importer', () => {
  it('reads allocations, frees and timestamps, and keeps the executable and command line', () => {
    const r = imp(RAW, opts, 'h.raw');
    expect(r.lines).toEqual([
      '8: @0 1 malloc 72704 0x55b476ab1530',
      '10: @0 1 malloc 24 0x55b476ac31d0',
      '12: @0 1 malloc 400 0x55b476ac32b0',
      '13: @0 1 free 0x55b476ac31d0',
      '15: @0 1 malloc 200 0x55b476ac34b0',
      '18: @1000000 1 free 0x55b476ac32b0',
      '21: @42000000 1 free 0x55b476ac34b0',
      '22: @42000000 1 free 0x55b476ab1530',
    ]);
    // heaptrack 1.4 does not track memalign, but does track the free of its block.
    expect(r.warnings).toEqual([
      'h.raw:19: free of 0x55b476ac3680, which was never allocated in this log: skipped',
    ]);
    expect([...r.header!.facts]).toEqual([
      ['from', 'heaptrack'],
      ['exe', '/tmp/ht/p'],
      ['cmdline', './p'],
    ]);
  });

  it('keeps sizes above 2^53 exactly', () => {
    const r = imp(
      [
        'v 10400 3',
        't 7f7fe9797b9f 0',
        '+ 20000000000001 1 55b476ab1530',
        '+ 18 1 55b476ac31d0',
        '',
      ].join('\n'),
      opts,
      'h.raw',
    );
    expect(r.lines.map((l) => l.replace(/@\d+ /, ''))).toEqual([
      '3: 1 malloc 9007199254740993 0x55b476ab1530',
      '4: 1 malloc 24 0x55b476ac31d0',
    ]);
    expect(r.events[0]!.n1).toBe(2 ** 53);
    expect(r.events[1]!.exact1).toBeUndefined();
  });

  it("refuses heaptrack's interpreted files, which have lost the pointers", () => {
    for (const text of ['v 10400 3\ns 5 main\na 18 1\n+ 0\n- 0\n', 'v 10400 3\n+ 1\n']) {
      const e = importError(text, opts, 'heaptrack.p.1.zst');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toMatch(
        /^heaptrack\.p\.1\.zst:\d: this is heaptrack's interpreted output, .* 'heaptrack --raw PROGRAM'/,
      );
    }
  });

  it("makes each resident size record a sample of the whole RSS, where it stands, at the last c's time", () => {
    const log: unknown[] = [];
    importText(
      [
        'v 10400 3',
        'R 10', // before I: pages of 4096 bytes, before the first event, at time 0
        'I 2000 5e2922',
        'R 11', // pages of 8192 bytes from here
        '+ 18 0 10',
        'c 5',
        'R 12', // after the allocation, at 5 ms
        'c 7',
        '- 10',
        '+ 20 0 20',
        'c a',
        'R 3b8', // after the second allocation, at 10 ms
        '',
      ].join('\n'),
      'h.raw',
      {
        header: () => log.push('header'),
        event: (ev) => log.push(['event', ev.line, ev.time, ev.recordsFollow === true]),
        rss: (x) => log.push(['rss', x.line, x.time, x.anon, x.total, x.heap, x.rec, x.mark]),
        recordsEnd: () => log.push('end'),
      },
      opts,
    );
    expect(log).toEqual([
      'header',
      ['rss', 2, 0, -1, 0x10 * 4096, -1, -1, ''],
      ['rss', 4, 0, -1, 0x11 * 8192, -1, -1, ''],
      'end',
      ['event', 5, 0, true],
      ['rss', 7, 5e6, -1, 0x12 * 8192, -1, -1, ''],
      'end',
      ['event', 9, 7e6, false],
      ['event', 10, 7e6, true],
      ['rss', 12, 10e6, -1, 0x3b8 * 8192, -1, -1, ''],
      'end',
    ]);
  });

  it('names the file and line of malformed records', () => {
    const cases: Array<[string, string]> = [
      ['+ 18 8 10\n+ 18 8\n', "h.raw:2: malformed allocation record '+ 18 8'"],
      ['+ 18 8 zz\n', "h.raw:1: malformed allocation record '+ 18 8 zz'"],
      ['+ 18 8 10 11\n', "h.raw:1: unexpected '11' after the allocation record"],
      ['- \n', "h.raw:1: malformed free record '- '"],
      ['c zz\n', "h.raw:1: malformed timestamp record 'c zz'"],
      ['+18 8 10\n', "h.raw:1: not a heaptrack record: '+18 8 10'"],
      ['% 1\n', "h.raw:1: not a heaptrack record: '% 1'"],
      ['+ 18 8 10\nR\n', "h.raw:2: malformed resident size record 'R' (expected 'R PAGES' in hex"],
      ['R 3b8 1\n', "h.raw:1: malformed resident size record 'R 3b8 1'"],
      ['R zz\n', "h.raw:1: malformed resident size record 'R zz'"],
      [
        'I 1000\n',
        "h.raw:1: malformed system record 'I 1000' (expected 'I PAGESIZE PAGES' in hex)",
      ],
      ['I 0 5e2922\n', "h.raw:1: malformed system record 'I 0 5e2922'"],
      ['I 1000 5e2922 x\n', "h.raw:1: malformed system record 'I 1000 5e2922 x'"],
      ['I 100000 1\nR 20000000000\n', "h.raw:2: malformed resident size record 'R 20000000000'"],
    ];
    for (const [text, message] of cases) {
      const e = importError(text, opts, 'h.raw');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toContain(message);
    }
  });

  it('drops a last record cut short', () => {
    const r = imp('+ 18 8 10\n+ 20 8', opts, 'h.raw');
    expect(r.lines).toEqual(['1: @0 1 malloc 24 0x10']);
    expect(r.warnings[0]).toMatch(/^h\.raw:2: the last line is incomplete/);
  });
});
