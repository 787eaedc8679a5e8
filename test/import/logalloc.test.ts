/**
 * The logalloc importer on hand-made logs: raw and munged forms, every function, processes and
 * threads, late frees of other threads, and malformed lines.
 */

import { describe, expect, it } from 'vitest';
import { NO_KEY } from '../../src/trace/token-key.js';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { imp, importError } from './helpers.js';

const opts = { from: 'logalloc' };

describe('logalloc importer', () => {
  it('keeps sizes above 2^53 exactly', () => {
    const r = imp(
      [
        '1 1 malloc(18446744073709551615)=0x0',
        '1 1 calloc(18446744073709551615,2)=0x0',
        '1 1 memalign(16,9007199254740993)=0x0',
        '1 1 malloc(32)=0x7f90495120e0',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 18446744073709551615 0',
      '2: 1 calloc 18446744073709551615 2 0',
      '3: 1 memalign 16 9007199254740993 0',
      '4: 1 malloc 32 0x7f90495120e0',
    ]);
    expect(r.events[2]!.exact1).toBeUndefined();
    expect(r.events[3]!.exact1).toBeUndefined();
  });

  it('reads every function of a raw log', () => {
    const r = imp(
      [
        '18545 18545 malloc(32)=0x7f90495120e0',
        '18545 18545 calloc(1,148)=0x7f9049537480',
        '18545 18545 realloc(0x7f90495120e0,64)=0x7f9049536680',
        '18545 18545 posix_memalign(256,240)=0x7f9049583300',
        '18545 18545 aligned_alloc(64,128)=0x7f9049584000',
        '18545 18545 memalign(4096,10)=0x7f9049590000',
        '18545 18545 valloc(100)=0x7f9049591000',
        '18545 18545 jemalloc_stats()',
        '18545 18545 free(0x7f9049536680)',
        '18545 18545 free(0x0)',
        '18545 18545 malloc(1099511627776)=0x0',
        '18545 18545 realloc(0x0,10)=0x7f9049536680',
        '18545 18545 realloc(0x7f9049537480,0)=0x0',
        '',
      ].join('\n'),
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 32 0x7f90495120e0',
      '2: 1 calloc 1 148 0x7f9049537480',
      '3: 1 realloc 0x7f90495120e0 64 0x7f9049536680',
      '4: 1 memalign 256 240 0x7f9049583300',
      '5: 1 memalign 64 128 0x7f9049584000',
      '6: 1 memalign 4096 10 0x7f9049590000',
      '7: 1 valloc 100 0x7f9049591000',
      '9: 1 free 0x7f9049536680',
      '10: 1 free 0',
      '11: 1 malloc 1099511627776 0',
      '12: 1 realloc 0 10 0x7f9049536680',
      '13: 1 realloc 0x7f9049537480 0 0',
    ]);
    expect(r.result.skipped).toEqual({ 'function jemalloc_stats': 1 });
    expect(r.header?.facts.get('pid')).toBe('18545');
    expect(r.warnings).toEqual([]);
  });

  it('reads the munged form: slots are tokens by their text, reused once freed', () => {
    const r = imp(
      '1 1 malloc(42)=#1\n1 1 malloc(24)=#2\n1 1 realloc(#1,64)=#1\n1 2 free(#1)\n1 1 malloc(8)=#1\n',
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 42 #1',
      '2: 1 malloc 24 #2',
      '3: 1 realloc #1 64 #1',
      '4: 2 free #1',
      '5: 1 malloc 8 #1',
    ]);
    expect(r.events[0]!.outKey).toBe(NO_KEY);
  });

  it('reads the early form without thread ids', () => {
    expect(
      imp('13663 malloc(42)=0x7f0c33502040\n13663 free(0x7f0c33502040)\n', opts).lines,
    ).toEqual(['1: 1 malloc 42 0x7f0c33502040', '2: 1 free 0x7f0c33502040']);
  });

  it('numbers threads in order of appearance', () => {
    const r = imp(
      '5 140245 malloc(1)=0x10\n5 140999 malloc(2)=0x20\n5 140245 free(0x20)\n5 7 free(0x10)\n',
      opts,
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 1 0x10',
      '2: 2 malloc 2 0x20',
      '3: 1 free 0x20',
      '4: 3 free 0x10',
    ]);
  });

  it('imports one process: the first by default, or the one given', () => {
    const log =
      '100 100 malloc(1)=0x10\n200 200 malloc(2)=0x10\n100 100 free(0x10)\n200 201 free(0x10)\n';
    const first = imp(log, opts, 'l.log');
    expect(first.lines).toEqual(['1: 1 malloc 1 0x10', '3: 1 free 0x10']);
    expect(first.result.skipped).toEqual({ 'calls of other processes': 2 });
    expect(first.warnings).toEqual([
      'l.log: 2 calls of other processes (pid 200) were left out; this import is of pid 100 (choose another with --pid)',
    ]);
    const second = imp(log, { ...opts, pid: 200 });
    expect(second.lines).toEqual(['2: 1 malloc 2 0x10', '4: 2 free 0x10']);
    expect(second.header?.facts.get('pid')).toBe('200');
  });

  it('moves a free logged late by another thread before the allocation that reused the address', () => {
    const r = imp(
      [
        '1 10 malloc(16)=0x100',
        '1 11 malloc(16)=0x100', // thread 11 got 0x100 back before thread 10's free was logged
        '1 12 malloc(32)=0x200',
        '1 10 free(0x100)', // the late free
        '1 11 free(0x100)',
        '',
      ].join('\n'),
      opts,
      'l.log',
    );
    expect(r.lines).toEqual([
      '1: 1 malloc 16 0x100',
      '4: 1 free 0x100',
      '2: 2 malloc 16 0x100',
      '3: 3 malloc 32 0x200',
      '5: 2 free 0x100',
    ]);
    expect(r.result.reordered).toBe(1);
    expect(r.warnings).toEqual([
      'l.log: note: 1 free was logged after the allocation that got the address back (first at line 4); each was moved before that allocation',
    ]);
  });

  it('reports a reused address when no late free can explain it', () => {
    // The free comes from the thread that reused the address: it cannot have happened before.
    const same = imp(
      '1 10 malloc(16)=0x100\n1 11 malloc(16)=0x100\n1 11 free(0x100)\n',
      opts,
      'l.log',
    );
    expect(same.lines).toEqual([
      '1: 1 malloc 16 0x100',
      '2: 2 free 0x100',
      '2: 2 malloc 16 0x100',
      '3: 2 free 0x100',
    ]);
    expect(same.warnings[0]).toBe(
      'l.log:2: 0x100 is handed out again but was never freed since line 1; taken as freed just before',
    );
    // The freeing thread logged something in between: its free came after that, so not before the reuse.
    const busy = imp(
      '1 10 malloc(16)=0x100\n1 11 malloc(16)=0x100\n1 10 malloc(8)=0x300\n1 10 free(0x100)\n',
      opts,
      'l.log',
    );
    expect(busy.result.reordered).toBe(0);
    expect(busy.warnings[0]).toMatch(/^l\.log:2: 0x100 is handed out again/);
    // No free at all before the end.
    const never = imp('1 10 malloc(16)=0x100\n1 11 malloc(16)=0x100\n', opts, 'l.log');
    expect(never.lines).toEqual([
      '1: 1 malloc 16 0x100',
      '2: 2 free 0x100',
      '2: 2 malloc 16 0x100',
    ]);
    expect(() =>
      imp('1 10 malloc(16)=0x100\n1 11 malloc(16)=0x100\n', { ...opts, strict: true }),
    ).toThrow(TraceSyntaxError);
  });

  it('skips frees of pointers never seen, or stops on them with strict', () => {
    const r = imp('1 1 free(0x500)\n1 1 malloc(1)=0x10\n', opts, 'l.log');
    expect(r.lines).toEqual(['2: 1 malloc 1 0x10']);
    expect(r.warnings).toEqual([
      'l.log:1: free of 0x500, which was never allocated in this log: skipped',
    ]);
    expect(importError('1 1 free(0x500)\n', { ...opts, strict: true }, 'l.log').message).toBe(
      'l.log:1: free of 0x500, which was never allocated in this log: skipped (--strict)',
    );
  });

  it('names the file and line of malformed lines', () => {
    const cases: Array<[string, string]> = [
      ['1 1 malloc(1)=0x10\nhello\n', "l.log:2: not a logalloc line: 'hello'"],
      ['1 1 malloc 24\n', 'l.log:1: not a logalloc line'],
      ['1 1 malloc(x)=0x10\n', "l.log:1: number expected at 'x)=0x10'"],
      ['1 1 calloc(1)=0x10\n', 'l.log:1: 2 arguments expected'],
      ['1 1 malloc(1,2)=0x10\n', "l.log:1: ')' expected at ',2)=0x10'"],
      ['1 1 malloc(1)\n', "l.log:1: '=RESULT' expected after the call"],
      ['1 1 malloc(1)=zz\n', "l.log:1: pointer expected as the result at 'zz'"],
      ['1 1 free(0x10)=0x10\n', "l.log:1: unexpected '=0x10' at the end of the line"],
      ['1 1 free(#)\n', "l.log:1: slot number expected after '#'"],
    ];
    for (const [text, message] of cases) {
      const e = importError(text, opts, 'l.log');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toContain(message);
    }
  });

  it('drops an incomplete last line with a warning', () => {
    const r = imp('1 1 malloc(1)=0x10\n1 1 mallo', opts, 'l.log');
    expect(r.lines).toEqual(['1: 1 malloc 1 0x10']);
    expect(r.warnings[0]).toMatch(/^l\.log:2: the last line is incomplete/);
  });
});
