/**
 * Recognising a format from the first lines of a log.
 */

import { describe, expect, it } from 'vitest';
import { detectFormat } from '../../src/import/index.js';

describe('format detection', () => {
  const samples: Array<[string, string]> = [
    ['native', '# pid 42\n# env MALLOC_ARENA_MAX=2\n1 malloc 24 a\n1 free a\n'],
    ['native', '@1000 1 malloc 24 0x10\n@2000 2 free 0x10\n2 exit\n'],
    ['native', ''],
    ['native', '# only comments\n\n'],
    ['native', '1 mallco 24 a\n1 fre a\n'], // a broken native trace: the native reader says what is wrong
    ['mtrace', '= Start\n@ ./a.out:(main+0x1e)[0x555555555169] + 0x5555555592a0 0x10\n'],
    ['mtrace', '@ ./a.out:[0x1169] + 0x5555555592c0 0x20\n@ ./a.out:[0x1170] - 0x5555555592c0\n'],
    ['mtrace', '+ 0x10 0x10\n< 0x10\n> 0x20 0x40\n! 0x20 0x7fffffffffffffff\n- 0x20\n'],
    [
      'logalloc',
      '18545 18545 malloc(32)=0x7f90495120e0\n18545 18545 jemalloc_stats()\n18545 18545 free(0x7f90495120e0)\n',
    ],
    ['logalloc', '1 1 malloc(42)=#1\n1 1 free(#1)\n'],
    ['logalloc', '13663 malloc(42)=0x7f0c33502040\n'],
    [
      'ltrace',
      'malloc(24)                      = 0x5555555592a0\nfree(0x5555555592a0)            = <void>\n',
    ],
    [
      'ltrace',
      '__libc_start_main(0x401136, 1, 0x7ffd3c8e1a28, 0x4011d0 <unfinished ...>\nputs("hi") = 3\na.out->malloc(24) = 0x10\n+++ exited (status 0) +++\n',
    ],
    [
      'ltrace',
      '[pid 4243] malloc(10 <unfinished ...>\n[pid 4242] free(0x10) = <void>\n[pid 4243] <... malloc resumed> ) = 0x20\n',
    ],
    ['ltrace', '4242 12:00:00.000001 malloc(10) = 0x20\n'],
    [
      'heaptrack',
      'v 10400 3\nx 9 /tmp/ht/p\nX ./p\nI 1000 5e2922\nm 1 -\nt 7f7fe9797b9f 0\n+ 11c00 4 55b476ab1530\n- 55b476ab1530\nc 1\n',
    ],
    ['heaptrack', '+ 18 8 55b476ac31d0\n- 55b476ac31d0\n'],
    ['heaptrack', 'v 10400 3\ns 5 main\na 18 1\n+ 0\n'], // interpreted: recognised, then refused by the importer
    ['malloclab', '20000\n2\n5\n1\na 0 512\na 1 128\nr 0 640\nf 1\nf 0\n'],
    ['malloclab', '0\n1\n0\n1\n'],
  ];
  for (const [format, text] of samples) {
    it(`recognises ${format}: ${JSON.stringify(text.slice(0, 40))}`, () => {
      expect(detectFormat(text)).toBe(format);
    });
  }

  it('does not guess when nothing fits', () => {
    expect(detectFormat('hello world\nthis is not a trace\n')).toBeUndefined();
    expect(detectFormat('\x00\x01\x02binary')).toBeUndefined();
  });

  it('ignores a last line cut off by the sample', () => {
    expect(detectFormat('+ 0x10 0x10\n- 0x10\n+ 0x2')).toBe('mtrace');
  });
});
