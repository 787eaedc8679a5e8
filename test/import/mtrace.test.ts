/**
 * The mtrace importer on hand-made logs: every record and caller style glibc writes, and every
 * kind of malformed or cut-short log.
 */

import { describe, expect, it } from 'vitest';
import { NO_KEY, tokenKey } from '../../src/trace/token-key.js';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { imp, importError } from './helpers.js';

const opts = { from: 'mtrace' };

describe('mtrace importer', () => {
  it('reads every record with every caller style', () => {
    const r = imp(
      [
        '= Start',
        '@ ./a.out:(main+0x1e)[0x555555555169] + 0x5555555592a0 0x10', // glibc <= 2.33
        '@ ./a.out:(main+1e)[0x1169] + 0x5555555592c0 0x20', // glibc >= 2.34
        '@ ./a.out:[0x1169] + 0x5555555592e0 0', // no symbol; malloc(0)
        '@ [0x7ffff7e4a123] < 0x5555555592a0', // caller not named
        '@ [0x7ffff7e4a123] > 0x555555559700 0x100',
        '+ 0x555555559800 0x30', // no caller at all
        '@ /usr/lib/my lib.so:(f-10)[0x99] - 0x5555555592c0', // a file name with a space, negative offset
        '! 0x555555559700 0xffffffffffff', // failed realloc: the old block stays
        '+ (nil) 0x7fffffffffffffff', // failed malloc
        '! (nil) 0x7fffffffffffffff', // failed realloc from NULL
        '- 0x555555559700',
        '- 0x555555559800',
        '- 0x5555555592e0',
        '= End',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '2: 1 malloc 16 0x5555555592a0',
      '3: 1 malloc 32 0x5555555592c0',
      '4: 1 malloc 0 0x5555555592e0',
      '5: 1 realloc 0x5555555592a0 256 0x555555559700',
      '7: 1 malloc 48 0x555555559800',
      '8: 1 free 0x5555555592c0',
      '9: 1 realloc 0x555555559700 281474976710655 0',
      // 0x7fffffffffffffff: kept exactly, as the native reader keeps sizes above 2^53.
      '10: 1 malloc 9223372036854775807 0',
      '11: 1 realloc 0 9223372036854775807 0',
      '12: 1 free 0x555555559700',
      '13: 1 free 0x555555559800',
      '14: 1 free 0x5555555592e0',
    ]);
    expect(r.warnings).toEqual([]);
    expect(r.header?.facts.get('from')).toBe('mtrace');
    expect(r.result).toMatchObject({ format: 'mtrace', events: 12, lines: 15 });
  });

  it('gives tokens the keys the native reader gives the same pointers', () => {
    const r = imp(
      '+ 0x5555555592a0 0x10\n+ 0x00007f0000001000 0x10\n- 0x7f0000001000\n+ 0x1234567890abcdef0 8\n',
      opts,
    );
    expect(r.events[0]!.outKey).toBe(tokenKey('0x5555555592a0'));
    // Leading zeros name the same pointer: the token is the value's canonical spelling.
    expect(r.events[1]!.out).toBe('0x7f0000001000');
    expect(r.events[2]!.inKey).toBe(r.events[1]!.outKey);
    // A pointer too wide for a key keeps its text.
    expect(r.events[3]!.outKey).toBe(NO_KEY);
    expect(r.events[3]!.out).toBe('0x1234567890abcdef0');
  });

  it('skips and reports frees of pointers it never saw allocated (glibc frees its own at exit)', () => {
    const r = imp('= Start\n+ 0x10 0x10\n- 0x20\n- 0x10\n- 0x30\n= End\n', opts, 'm.log');
    expect(r.lines).toEqual(['2: 1 malloc 16 0x10', '4: 1 free 0x10']);
    expect(r.warnings).toEqual([
      'm.log:3: free of 0x20, which was never allocated in this log: skipped',
      'm.log:5: free of 0x30, which was never allocated in this log: skipped',
    ]);
    expect(r.result.skipped).toEqual({ 'free of a pointer never seen': 2 });
    const e = importError('+ 0x10 0x10\n- 0x20\n', { ...opts, strict: true }, 'm.log');
    expect(e).toBeInstanceOf(TraceSyntaxError);
    expect(e.message).toBe(
      'm.log:2: free of 0x20, which was never allocated in this log: skipped (--strict)',
    );
  });

  it('turns a realloc of a pointer never seen into an allocation of its result', () => {
    const r = imp('< 0x10\n> 0x20 0x40\n- 0x20\n', opts, 'm.log');
    expect(r.lines).toEqual(['1: 1 malloc 64 0x20', '3: 1 free 0x20']);
    expect(r.warnings).toEqual([
      'm.log:1: realloc of 0x10, which was never allocated in this log: replayed as an allocation of its result',
    ]);
  });

  it('reports an address handed out twice (a free mtrace did not see) and frees the old block first', () => {
    const r = imp('+ 0x10 0x10\n+ 0x10 0x20\n- 0x10\n', opts, 'm.log');
    expect(r.lines).toEqual([
      '1: 1 malloc 16 0x10',
      '2: 1 free 0x10',
      '2: 1 malloc 32 0x10',
      '3: 1 free 0x10',
    ]);
    expect(r.warnings).toEqual([
      'm.log:2: 0x10 is handed out again but was never freed since line 1; taken as freed just before',
    ]);
    expect(
      importError('+ 0x10 0x10\n+ 0x10 0x20\n', { ...opts, strict: true }, 'm.log').message,
    ).toMatch(/^m\.log:2: 0x10 is handed out again/);
  });

  it('names the file and line of malformed records', () => {
    const cases: Array<[string, string]> = [
      ['+ 0x10 0x10\nhello\n', "m.log:2: not an mtrace record: 'hello'"],
      ['+ 0x10 zz\n', "m.log:1: 'zz' is not a size"],
      [
        '+ 0x10 0x1ffffffffffffffff\n',
        'm.log:1: size 0x1ffffffffffffffff is out of range (more than 2^64-1)',
      ],
      ['+ ptr 0x10\n', "m.log:1: 'ptr' is not a pointer"],
      ['- 0x10 0x20 0x30\n', 'm.log:1: not an mtrace record'],
      ['x + 0x10 0x10\n', "m.log:1: unexpected text before the record: 'x '"],
      [
        '> 0x10 0x10\n',
        "m.log:1: a '>' record (realloc's new block) without the '<' record before it",
      ],
      [
        '+ 0x10 0x10\n< 0x10\n+ 0x20 0x10\n',
        "m.log:3: the realloc at line 2 ('<' record) is not followed by its '>' record",
      ],
      ['< (nil)\n', "m.log:1: a '<' record needs the pointer being reallocated, not NULL"],
    ];
    for (const [text, message] of cases) {
      const e = importError(text, opts, 'm.log');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toContain(message);
    }
  });

  it('uses a complete last line without newline, and drops an incomplete one with a warning', () => {
    expect(imp('+ 0x10 0x10\n- 0x10', opts).lines).toEqual([
      '1: 1 malloc 16 0x10',
      '2: 1 free 0x10',
    ]);
    const cut = imp('+ 0x10 0x10\n+ 0x20 0', opts, 'm.log');
    expect(cut.lines).toEqual(['1: 1 malloc 16 0x10', '2: 1 malloc 0 0x20']);
    const r = imp('+ 0x10 0x10\n+ 0x20', opts, 'm.log');
    expect(r.lines).toEqual(['1: 1 malloc 16 0x10']);
    expect(r.warnings).toEqual([
      "m.log:2: the last line is incomplete (the log was cut short?) and is ignored: not an mtrace record: '+ 0x20' (expected '+ PTR SIZE', '- PTR', '< PTR', '> PTR SIZE' or '! PTR SIZE', after an optional '@ caller')",
    ]);
    const half = imp('+ 0x10 0x10\n< 0x10\n', opts, 'm.log');
    expect(half.lines).toEqual(['1: 1 malloc 16 0x10']);
    expect(half.warnings[0]).toMatch(/^m\.log:2: the log ends after a realloc's '<' record/);
    expect(() => imp('+ 0x10 0x10\n+ 0x20', { ...opts, strict: true })).toThrow(TraceSyntaxError);
  });

  it('reads CRLF line ends and blank lines', () => {
    expect(imp('= Start\r\n\r\n+ 0x10 0x10\r\n  \r\n- 0x10\r\n', opts).lines).toEqual([
      '3: 1 malloc 16 0x10',
      '5: 1 free 0x10',
    ]);
  });
});
