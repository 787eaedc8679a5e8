/**
 * The ltrace importer on hand-made output: plain, `-e` caller prefixes, `-f` pids in both styles,
 * unfinished and resumed calls, timestamps and durations, C++ operators, and malformed lines.
 */

import { describe, expect, it } from 'vitest';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { imp, importError } from './helpers.js';

const opts = { from: 'ltrace' };

describe('ltrace importer', () => {
  it('keeps sizes above 2^53 exactly, beside their nearest doubles', () => {
    // Digit by digit in doubles, 9223372036854775807 drifts to 2^63 + 2048; its nearest double is
    // 2^63, and 12345678901234567891's is 12345678901234567168 (not 12345678901234569216).
    const r = imp(
      [
        'malloc(9223372036854775807)                      = nil',
        'malloc(12345678901234567891)                     = nil',
        'malloc(0x7fffffffffffffff)                       = nil',
        'calloc(3, 0x20000000000001)                      = nil',
        'malloc(24)                                       = 0x5555555592a0',
        // 2^32 x 2^32 = 2^64 overflows: reallocarray fails before calling realloc, so nothing is
        // replayed; 2^27 x (2^27 + 1) = 2^54 + 2^27 is exact.
        'reallocarray(0x5555555592a0, 4294967296, 4294967296) = nil',
        'reallocarray(0x5555555592a0, 134217728, 134217729) = nil',
        'malloc(9007199254740993)                         = nil',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 9223372036854775807 0',
      '2: 1 malloc 12345678901234567891 0',
      '3: 1 malloc 9223372036854775807 0',
      '4: 1 calloc 3 9007199254740993 0',
      '5: 1 malloc 24 0x5555555592a0',
      '7: 1 realloc 0x5555555592a0 18014398643699712 0',
      '8: 1 malloc 9007199254740993 0',
    ]);
    // The doubles the replay works with are the nearest ones.
    expect(r.events.map((e) => e.n1)).toEqual([
      2 ** 63,
      12345678901234567168,
      2 ** 63,
      3,
      24,
      2 ** 54 + 2 ** 27,
      2 ** 53,
    ]);
    expect(r.events[3]!.n2).toBe(2 ** 53);
    // An event without a big size has no exact spelling left from the one before it.
    expect(r.events[4]!.exact1).toBeUndefined();
    expect(r.events[3]!.exact1).toBeUndefined();
    expect(r.result.skipped).toEqual({
      'reallocarray whose size overflows (no allocator call)': 1,
    });
  });

  it('reads the calls villoc reads, and skips the rest with a count', () => {
    const r = imp(
      [
        '__libc_start_main(0x401136, 1, 0x7ffd3c8e1a28, 0x4011d0 <unfinished ...>',
        'malloc(24)                                       = 0x5555555592a0',
        'a.out->calloc(4, 100)                            = 0x5555555596c0',
        'realloc(0x5555555592a0, 200)                     = 0x555555559ae0',
        'memalign(64, 1000)                               = 0x555555559c00',
        'aligned_alloc(64, 128)                           = 0x55555555a000',
        'valloc(100)                                      = 0x55555555b000',
        'pvalloc(100)                                     = 0x55555555c000',
        'posix_memalign(0x7ffd3c8e1910, 64, 100)          = 0',
        'puts("hello")                                    = 6',
        'malloc(0x18)                                     = nil',
        'free(0x5555555596c0)                             = <void>',
        'free(nil)                                        = <void>',
        'realloc(0x555555559ae0, 0)                       = nil',
        '_Znwm(16)                                        = 0x55555555d000',
        '_ZdlPvm(0x55555555d000, 16)                      = <void>',
        '--- SIGCHLD (Child exited) ---',
        '+++ exited (status 0) +++',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '2: 1 malloc 24 0x5555555592a0',
      '3: 1 calloc 4 100 0x5555555596c0',
      '4: 1 realloc 0x5555555592a0 200 0x555555559ae0',
      '5: 1 memalign 64 1000 0x555555559c00',
      '6: 1 memalign 64 128 0x55555555a000',
      '7: 1 valloc 100 0x55555555b000',
      '8: 1 pvalloc 100 0x55555555c000',
      '11: 1 malloc 24 0',
      '12: 1 free 0x5555555596c0',
      '13: 1 free 0',
      '14: 1 realloc 0x555555559ae0 0 0',
      '15: 1 malloc 16 0x55555555d000',
      '16: 1 free 0x55555555d000',
    ]);
    expect(r.result.skipped).toEqual({
      'function puts': 1,
      'posix_memalign (ltrace does not show the block it stores)': 1,
      'signals and exits': 2,
    });
    expect(r.warnings).toEqual([]);
  });

  it('reads pids (both -f styles) as threads, and completes unfinished calls where they resume', () => {
    const r = imp(
      [
        '4242 malloc(24) = 0x5555555592a0',
        '[pid 4243] malloc(10 <unfinished ...>',
        '[pid 4242] free(0x5555555592a0 <unfinished ...>',
        '[pid 4243] <... malloc resumed> ) = 0x7ffff0000b70',
        '[pid 4242] <... free resumed> ) = <void>',
        '4243 calloc(4, <unfinished ...>',
        '4242 puts("x" <unfinished ...>',
        '4243 <... calloc resumed> 100) = 0x7ffff0000c00',
        '4242 <... puts resumed> ) = 2',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 24 0x5555555592a0',
      '4: 2 malloc 10 0x7ffff0000b70',
      '5: 1 free 0x5555555592a0',
      '8: 2 calloc 4 100 0x7ffff0000c00',
    ]);
  });

  it('moves a free resumed after another thread got the address back before that allocation', () => {
    const r = imp(
      [
        '1 malloc(24) = 0x10',
        '1 free(0x10 <unfinished ...>',
        '2 malloc(24) = 0x10',
        '1 <... free resumed> ) = <void>',
        '2 free(0x10) = <void>',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 24 0x10',
      '4: 1 free 0x10',
      '3: 2 malloc 24 0x10',
      '5: 2 free 0x10',
    ]);
    expect(r.result.reordered).toBe(1);
  });

  it('reads timestamps as event times, and ignores -i addresses and -T durations', () => {
    const clock = imp(
      '10:00:00.000100 malloc(1) = 0x10 <0.000012>\n10:00:01.000100 free(0x10) = <void> <0.000003>\n',
      opts,
    );
    expect(clock.lines).toEqual(['1: @0 1 malloc 1 0x10', '2: @1000000000 1 free 0x10']);
    const epoch = imp(
      '4242 1700000000.000001 [0x401136] malloc(1) = 0x10\n4242 1700000000.000501 [0x401150] free(0x10) = <void>\n',
      opts,
    );
    expect(epoch.lines).toEqual(['1: @0 1 malloc 1 0x10', '2: @500000 1 free 0x10']);
    const relative = imp(
      '  0.000000 malloc(1) = 0x10\n  0.000250 malloc(2) = 0x20\n  0.000250 free(0x10) = <void>\n',
      opts,
    );
    expect(relative.lines).toEqual([
      '1: @0 1 malloc 1 0x10',
      '2: @250000 1 malloc 2 0x20',
      '3: @500000 1 free 0x10',
    ]);
    const midnight = imp('23:59:59.5 malloc(1) = 0x10\n00:00:00.5 free(0x10) = <void>\n', opts);
    expect(midnight.lines).toEqual(['1: @0 1 malloc 1 0x10', '2: @1000000000 1 free 0x10']);
  });

  it('names the file and line of malformed lines', () => {
    const cases: Array<[string, string]> = [
      ['malloc(24) = 0x10\nhello world\n', "t.log:2: not an ltrace line: 'hello world'"],
      ['malloc(x) = 0x10\n', "t.log:1: malloc: number expected at 'x) = 0x10'"],
      ['malloc(24) 0x10\n', "t.log:1: malloc: '= RESULT' expected at '0x10'"],
      ['malloc(24) = <void>\n', 't.log:1: malloc: a pointer expected as the result'],
      ['free(0x10) = 0\n', "t.log:1: free: '<void>' expected as the result"],
      ['calloc(4) = 0x10\n', 't.log:1: calloc: 2 arguments expected'],
      ['malloc(24) = 0x10 junk\n', "t.log:1: unexpected 'junk' after the result"],
      ['[pid 12 malloc(24) = 0x10\n', "t.log:1: malformed '[pid N]' prefix"],
      ['<... malloc resumed ) = 0x10\n', 't.log:1: malformed resumed line'],
    ];
    for (const [text, message] of cases) {
      const e = importError(text, opts, 't.log');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toContain(message);
    }
  });

  it('reports resumed calls that never started and unfinished calls never resumed', () => {
    const r = imp('1 <... malloc resumed> ) = 0x10\n2 malloc(8 <unfinished ...>\n', opts, 't.log');
    expect(r.lines).toEqual([]);
    expect(r.warnings).toEqual([
      "t.log:1: '<... malloc resumed>' without the unfinished malloc call of this thread before it: ignored",
      't.log:2: malloc(8 <unfinished ...> is never resumed (the log was cut short?): ignored',
    ]);
  });
});
