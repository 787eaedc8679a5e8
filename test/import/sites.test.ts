/**
 * Importers keep the call sites their formats have (docs/importing.md): mtrace's caller, ltrace
 * -w's frames, heaptrack's stack tree and module map; and a conversion to the native format keeps
 * them, reading back to the same stacks and the same stack per event.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importText } from '../../src/import/index.js';
import { NativeTraceWriter } from '../../src/import/native-writer.js';
import { readTraceText } from '../../src/trace/reader.js';
import type { SiteRecord, StackRecord, SymRecord, TraceEvent } from '../../src/trace/types.js';
import { imp } from './helpers.js';

const stacks = (sites: SiteRecord[]): StackRecord[] =>
  sites.filter((s): s is StackRecord => s.kind === 'stack');
const syms = (sites: SiteRecord[]): Map<number, SymRecord['frames']> =>
  new Map(sites.filter((s): s is SymRecord => s.kind === 'sym').map((s) => [s.addr, s.frames]));

/** The function named at each frame of the stack of event `ev`. */
function functions(sites: SiteRecord[], ev: TraceEvent): string[] {
  const stack = stacks(sites).find((s) => s.id === ev.site);
  if (stack === undefined) return [];
  const names = syms(sites);
  return stack.frames.map((a) => names.get(a)?.[0]?.fn ?? '?');
}

describe('mtrace: the caller', () => {
  const r = imp(
    [
      '= Start',
      '@ ./a.out:(main+1e)[0x1169] + 0x5555555592a0 0x10',
      '@ ./a.out:(make_name+0x12)[0x1200] + 0x5555555592c0 0x20',
      '@ ./a.out:(main+1e)[0x1169] + 0x5555555592e0 0x20',
      '@ [0x7ffff7e4a123] < 0x5555555592a0',
      '@ [0x7ffff7e4a123] > 0x555555559700 0x100',
      '+ 0x555555559800 0x30',
      '@ ./a.out:(main+40)[0x118b] - 0x5555555592c0',
      '= End',
      '',
    ].join('\n'),
    { from: 'mtrace' },
  );

  it('gives each distinct caller one stack, and each call its caller', () => {
    expect(r.events.map((e) => e.site)).toEqual([0, 1, 0, 2, -1, 3]);
    expect(stacks(r.sites).map((s) => s.frames.length)).toEqual([1, 1, 1, 1]);
    expect(r.events.map((e) => functions(r.sites, e))).toEqual([
      ['main'],
      ['make_name'],
      ['main'],
      ['[0x7ffff7e4a123]'], // no function named: the caller as written
      [],
      ['main'],
    ]);
    // The object stands as the file, the line unknown.
    expect(syms(r.sites).get(stacks(r.sites)[1]!.frames[0]!)).toEqual([
      { fn: 'make_name', file: './a.out', line: 0 },
    ]);
  });
});

describe('ltrace -w: the frames after each call', () => {
  const r = imp(
    [
      'malloc(24)                                  = 0x5555555592a0',
      ' > /usr/lib/x86_64-linux-gnu/libc.so.6(malloc+0) [0x7ffff7e5d6a0]',
      ' > /tmp/a.out(xmalloc+0x12) [0x5555555551d2]',
      ' > /tmp/a.out(main+0x2f) [0x55555555509f]',
      'strlen("abc")                               = 3',
      ' > /tmp/a.out(main+0x40) [0x5555555550b0]',
      'malloc(32)                                  = 0x5555555592c0',
      ' > /tmp/a.out(xmalloc+0x12) [5555555551d2]',
      ' > /tmp/a.out(main+0x2f) [55555555509f]',
      'free(0x5555555592a0)                        = <void>',
      'malloc(40)                                  = 0x5555555592f0',
      '',
    ].join('\n'),
    { from: 'ltrace' },
  );

  it('makes them the call stack, without the called function, once per distinct stack', () => {
    expect(r.lines).toEqual([
      '1: 1 malloc 24 0x5555555592a0',
      '7: 1 malloc 32 0x5555555592c0',
      '10: 1 free 0x5555555592a0',
      '11: 1 malloc 40 0x5555555592f0',
    ]);
    expect(r.events.map((e) => e.site)).toEqual([0, 0, -1, -1]);
    expect(stacks(r.sites)).toHaveLength(1);
    expect(stacks(r.sites)[0]!.frames).toEqual([0x5555555551d2, 0x55555555509f]);
    expect(functions(r.sites, r.events[0]!)).toEqual(['xmalloc', 'main']);
    expect(syms(r.sites).get(0x55555555509f)).toEqual([
      { fn: 'main', file: '/tmp/a.out', line: 0 },
    ]);
  });
});

/** Raw data with its stack tree and module map, as heaptrack 1.4 writes them. */
const RAW = [
  'v 10400 3',
  'x 9 /tmp/ht/p',
  'X ./p',
  'm 1 -',
  'm 1 x 55b475155000 0 700 1000 229 2000 dc 3dd0 270',
  'm 1f /lib/x86_64-linux-gnu/libc.so.6 7f0000000000 0 25388 26000 1550fc',
  't 55b475155100 0',
  't 7f0000028249 1',
  't 55b47515618a 2',
  't 55b4751561d8 3',
  '+ 18 4 55b476ac31d0',
  't 55b47515619d 2',
  '+ 190 5 55b476ac32b0',
  '+ 20 4 55b476ac34b0',
  '+ 30 0 55b476ac3500',
  '- 55b476ac31d0',
  '',
].join('\n');

describe('heaptrack raw data: the stack tree and the modules', () => {
  const r = imp(RAW, { from: 'heaptrack' });

  it('gives each allocation the stack of its node, return addresses innermost first', () => {
    expect(r.events.map((e) => e.site)).toEqual([0, 1, 0, -1, -1]);
    const s = stacks(r.sites);
    // heaptrack writes each return address minus one
    expect(s[0]!.frames).toEqual([0x55b4751561d9, 0x55b47515618b, 0x7f000002824a, 0x55b475155101]);
    expect(s[1]!.frames).toEqual([0x55b47515619e, 0x7f000002824a, 0x55b475155101]);
  });

  it('lists each loadable segment of each module, the executable by its name', () => {
    const maps = r.sites.filter((x) => x.kind === 'map');
    expect(maps.map((m) => [m.start, m.end, m.path])).toEqual([
      [0x55b475155000, 0x55b475155700, '/tmp/ht/p'],
      [0x55b475156000, 0x55b475156229, '/tmp/ht/p'],
      [0x55b475157000, 0x55b4751570dc, '/tmp/ht/p'],
      [0x55b475158dd0, 0x55b475159040, '/tmp/ht/p'],
      [0x7f0000000000, 0x7f0000025388, '/lib/x86_64-linux-gnu/libc.so.6'],
      [0x7f0000026000, 0x7f000017b0fc, '/lib/x86_64-linux-gnu/libc.so.6'],
    ]);
  });
});

describe('convert to the native format', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'ptsim-sites-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  for (const [from, text] of [
    ['heaptrack', RAW],
    ['mtrace', '@ ./a.out:(main+1e)[0x1169] + 0x10 0x10\n@ ./a.out:(f+2)[0x1180] - 0x10\n'],
  ] as const) {
    it(`keeps ${from}'s stacks, and the stack of each event`, () => {
      const out = join(tmp, `${from}.trace`);
      const w = new NativeTraceWriter(out);
      importText(text, 'in.log', w, { from });
      w.close();
      const before = imp(text, { from });
      const sites: SiteRecord[] = [];
      const events: TraceEvent[] = [];
      readTraceText(readFileSync(out), 'out.trace', {
        header: () => {},
        event: (ev) => events.push({ ...ev }),
        site: (rec) => sites.push(rec),
      });
      expect(events.map((e) => e.site)).toEqual(before.events.map((e) => e.site));
      const strip = (x: SiteRecord[]) => x.map((s) => ({ ...s, line: 0 }));
      expect(strip(sites)).toEqual(strip(before.sites));
      expect(stacks(sites).length).toBeGreaterThan(0);
    });
  }
});
