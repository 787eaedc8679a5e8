/**
 * The malloclab importer on hand-made `.rep` files: requests, header checks, and malformed input.
 */

import { describe, expect, it } from 'vitest';
import { NO_KEY } from '../../src/trace/token-key.js';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { imp, importError } from './helpers.js';

const opts = { from: 'malloclab' };

describe('malloclab importer', () => {
  it('keeps sizes above 2^53 exactly', () => {
    const r = imp('0\n2\n3\n1\na 0 18446744073709551615\na 1 16\nf 1\n', opts, 't.rep');
    expect(r.lines).toEqual([
      '5: 1 malloc 18446744073709551615 id0',
      '6: 1 malloc 16 id1',
      '7: 1 free id1',
    ]);
    expect(r.events[0]!.n1).toBe(2 ** 64);
  });

  it('reads the header and every request', () => {
    const r = imp('20000\n2\n5\n1\na 0 512\na 1 128\nr 0 640\nf 1\nf 0\n', opts, 't.rep');
    expect(r.lines).toEqual([
      '5: 1 malloc 512 id0',
      '6: 1 malloc 128 id1',
      '7: 1 realloc id0 640 id0',
      '8: 1 free id1',
      '9: 1 free id0',
    ]);
    expect(r.events[0]!.outKey).toBe(NO_KEY);
    expect(r.header?.facts.get('malloclab')).toBe('heap 20000 ids 2 requests 5 weight 1');
    expect(r.warnings).toEqual([]);
  });

  it('accepts blank lines, tabs and leading blanks', () => {
    expect(imp(' 0\n\n1\n\t2 \n1\n\na\t0\t10\n f 0\n', opts).lines).toEqual([
      '7: 1 malloc 10 id0',
      '8: 1 free id0',
    ]);
  });

  it('checks the header against the file', () => {
    const short = imp('0\n1\n3\n1\na 0 10\nf 0\n', opts, 't.rep');
    expect(short.warnings).toEqual([
      't.rep:6: the header announces 3 requests but the file has 2 (cut short?)',
    ]);
    expect(() => imp('0\n1\n3\n1\na 0 10\nf 0\n', { ...opts, strict: true })).toThrow(
      TraceSyntaxError,
    );
    const long = imp('0\n1\n1\n1\na 0 10\nf 0\n', opts, 't.rep');
    expect(long.warnings).toEqual(['t.rep:6: the header announces 1 requests but the file has 2']);
    const ids = imp('0\n1\n2\n1\na 3 10\nf 3\n', opts, 't.rep');
    expect(ids.warnings).toEqual([
      "t.rep:5: block id 3 is not below the header's number of ids (1)",
      "t.rep:6: block id 3 is not below the header's number of ids (1)",
    ]);
    expect(imp('0\n1\n', opts, 't.rep').warnings).toEqual([
      't.rep:2: the file ends inside the four header lines of a malloclab trace (cut short?)',
    ]);
  });

  it('reports a free of an id not allocated, and an id allocated twice', () => {
    const r = imp('0\n2\n3\n1\nf 1\na 0 10\na 0 20\n', opts, 't.rep');
    expect(r.lines).toEqual(['6: 1 malloc 10 id0', '7: 1 free id0', '7: 1 malloc 20 id0']);
    expect(r.warnings).toEqual([
      't.rep:5: free of id1, which was never allocated in this log: skipped',
      't.rep:7: id0 is handed out again but was never freed since line 6; taken as freed just before',
    ]);
  });

  it('names the file and line of malformed lines', () => {
    const cases: Array<[string, string]> = [
      [
        '0\n1\nx\n1\n',
        "t.rep:3: header line 3 of a malloclab trace should be the number of requests (one number), not 'x'",
      ],
      ['0\n1\n1\n1\nm 0 10\n', "t.rep:5: not a malloclab request: 'm 0 10'"],
      ['0\n1\n1\n1\na x 10\n', "t.rep:5: block id expected at 'x 10'"],
      ['0\n1\n1\n1\na 0\n', "t.rep:5: size in bytes expected after the id in 'a 0'"],
      ['0\n1\n1\n1\nf 0 10\n', "t.rep:5: unexpected '10' at the end of the request"],
    ];
    for (const [text, message] of cases) {
      const e = importError(text, opts, 't.rep');
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect(e.message).toContain(message);
    }
  });
});
