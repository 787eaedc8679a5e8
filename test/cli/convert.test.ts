/**
 * `ptsim convert`: every format's samples written as native traces read back as exactly the
 * events imported (tokens, keys, token numbers, sizes, threads, times; only line numbers differ,
 * since they are the native file's), the same header, plain and gzip; and the command's errors.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { CONVERT_HELP, convertCommand } from '../../src/cli/convert-command.js';
import { UsageError } from '../../src/cli/errors.js';
import { openTrace } from '../../src/import/index.js';
import { readTraceFile } from '../../src/trace/reader.js';
import type { TraceEvent, TraceHeader, TraceSink } from '../../src/trace/types.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ptsim-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, data: string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

function collector(): { sink: TraceSink; events: TraceEvent[]; header: TraceHeader[] } {
  const events: TraceEvent[] = [];
  const header: TraceHeader[] = [];
  return {
    events,
    header,
    sink: { header: (h) => void header.push(h), event: (ev) => void events.push({ ...ev }) },
  };
}

async function convert(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await convertCommand.run(
    args,
    (s) => void (out += s),
    (s) => void (err += s),
  );
  return { code, out, err };
}

/** Samples of every line form of every format (see the importer tests for each one's meaning). */
const SAMPLES: Record<string, string> = {
  mtrace: [
    '= Start',
    '@ ./a.out:(main+0x1e)[0x555555555169] + 0x5555555592a0 0x10',
    '@ ./a.out:(main+1e)[0x1169] + 0x5555555592c0 0x20',
    '@ [0x7ffff7e4a123] < 0x5555555592a0',
    '@ [0x7ffff7e4a123] > 0x555555559700 0x100',
    '! 0x555555559700 0xffffffffffffffff',
    '+ (nil) 0x7fffffffffffffff',
    '- 0x5555555592c0',
    '- 0x123456',
    '+ 0x1234567890abcdef0 0x8',
    '= End',
    '',
  ].join('\n'),
  logalloc: [
    '18545 18545 malloc(32)=0x7f90495120e0',
    '18545 18546 calloc(1,148)=0x7f9049537480',
    '18545 18545 realloc(0x7f90495120e0,64)=0x7f9049536680',
    '18545 18547 posix_memalign(256,240)=0x7f9049583300',
    '18545 18545 aligned_alloc(64,128)=#7',
    '18545 18545 valloc(100)=0x7f9049591000',
    '18545 18545 jemalloc_stats()',
    '18600 18600 malloc(1)=0x10',
    '18545 18546 free(0x7f9049536680)',
    '18545 18545 free(#7)',
    '18545 18545 free(0x0)',
    '',
  ].join('\n'),
  ltrace: [
    '4242 10:00:00.000001 malloc(24) = 0x5555555592a0',
    '4242 10:00:00.000002 a.out->calloc(4, 100) = 0x5555555596c0',
    '4243 10:00:00.000003 malloc(10 <unfinished ...>',
    '4242 10:00:00.000004 free(0x5555555592a0) = <void>',
    '4243 10:00:00.000005 <... malloc resumed> ) = 0x5555555592a0',
    '4242 10:00:00.000006 memalign(64, 1000) = 0x555555559c00',
    '4242 10:00:00.000007 pvalloc(1) = 0x55555555c000',
    '4242 10:00:00.000008 _Znwm(16) = nil',
    '4243 +++ exited (status 0) +++',
    '',
  ].join('\n'),
  heaptrack: [
    'v 10400 3',
    'x 9 /tmp/ht/p',
    'X ./p arg',
    '+ 18 8 55b476ac31d0',
    'c 1',
    '+ 190 9 55b476ac32b0',
    'c 2a',
    '- 55b476ac31d0',
    '- 55b476ac3680',
    '',
  ].join('\n'),
  malloclab: ['20000', '2', '5', '1', 'a 0 512', 'a 1 128', 'r 0 640', 'f 1', 'f 0', ''].join('\n'),
  native: [
    '# env MALLOC_ARENA_MAX=2',
    '# nprocs 4',
    '# pid 42',
    '@5 1 malloc 24 a',
    '2 mallopt M_MMAP_THRESHOLD 131072',
    '1 malloc_trim 0',
    '1 free a',
    '2 exit',
    '',
  ].join('\n'),
};

/** The events without their line numbers, which name lines of different files. */
/** Events without their line numbers, and without the native reader's exact spelling of sizes
 *  above 2^53 (the importers hold sizes as doubles; n1 and n2 are compared either way). */
function withoutLines(events: TraceEvent[]): Array<Omit<TraceEvent, 'line'>> {
  return events.map(({ line: _line, exact1: _e1, exact2: _e2, ...rest }) => rest);
}

describe('ptsim convert', () => {
  for (const [format, text] of Object.entries(SAMPLES)) {
    it(`round-trips ${format}: import -> native text -> native reader gives the same events`, async () => {
      const input = file(`in-${format}.log`, text);
      const imported = collector();
      await openTrace(input, imported.sink, { from: format, onWarning: () => {} });
      expect(imported.events.length).toBeGreaterThan(2);
      for (const gzip of [false, true]) {
        const output = join(dir, `out-${format}${gzip ? '.gz' : ''}.trace`);
        const r = await convert([input, '-o', output, ...(gzip ? ['--gzip'] : [])]);
        expect(r.code).toBe(0);
        expect(r.err).toContain(
          `ptsim: converted ${imported.events.length} events from ${input} (${format}) to ${output}`,
        );
        const raw = readFileSync(output);
        expect(raw[0] === 0x1f && raw[1] === 0x8b).toBe(gzip);
        const back = collector();
        await readTraceFile(output, back.sink);
        expect(withoutLines(back.events)).toEqual(withoutLines(imported.events));
        // The facts must survive; the comment text is the converted file's own.
        const facts = (h: TraceHeader[]): unknown =>
          h.map(({ env, nprocs, facts }) => ({ env, nprocs, facts }));
        expect(facts(back.header)).toEqual(facts(imported.header));
      }
    });
  }

  it('keeps the touch records, samples and where touches became incomplete, in their places', async () => {
    const text = [
      '# pid 7',
      '# touches recorded',
      '#:rss @5 anon=4096 mark=start',
      '@10 1 malloc 100000 0x7f0000000010',
      '#:touch 0x7f0000000010 0-3,7',
      '@20 1 malloc 9000 buf',
      '#:rss anon=0x10000 heap=8192 other=1 rec=4096',
      '#:touch buf -',
      '#  touches incomplete from here:   a sandbox ',
      '@30 1 free 0x7f0000000010',
      '#:rss @31 total=0x40000',
      '#:rss total=3 anon=2',
      '',
    ].join('\n');
    const output = join(dir, 'recorded.trace');
    expect((await convert([file('recorded-in.trace', text), '-o', output])).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(
      [
        '# pid 7',
        '# touches recorded',
        '#:rss @5 anon=4096 mark=start',
        '@10 1 malloc 100000 0x7f0000000010',
        '#:touch 0x7f0000000010 0-3,7',
        '@20 1 malloc 9000 buf',
        '#:rss anon=65536 heap=8192 rec=4096',
        '#:touch buf -',
        '# touches incomplete from here: a sandbox',
        '@30 1 free 0x7f0000000010',
        '#:rss @31 total=262144',
        '#:rss anon=2 total=3',
        '',
      ].join('\n'),
    );
    const calls = async (path: string): Promise<unknown[]> => {
      const log: unknown[] = [];
      await readTraceFile(path, {
        header: (h) => log.push(['header', h.touchesRecorded, [...h.facts]]),
        event: (ev) => log.push(['event', ev.index, ev.time, ev.recordsFollow === true]),
        touch: (r) => log.push(['touch', r.token, [...r.pages.subarray(0, 2 * r.ranges)]]),
        rss: (x) => log.push(['rss', x.time, x.anon, x.total, x.heap, x.mark]),
        recordsEnd: () => log.push(['end']),
      });
      return log;
    };
    expect(await calls(output)).toEqual(await calls(join(dir, 'recorded-in.trace')));
  });

  it("writes heaptrack's resident sizes as samples of the whole RSS, which read back the same", async () => {
    const raw = [
      'v 10400 3',
      'R 100',
      'I 2000 5e2922',
      '+ 18 0 10',
      'c 2',
      'R 3b8',
      '- 10',
      '',
    ].join('\n');
    const output = join(dir, 'ht.trace');
    expect((await convert([file('ht.raw', raw), '--from', 'heaptrack', '-o', output])).code).toBe(
      0,
    );
    // 0x100 pages of 4096 bytes (no I yet) before the first event; 0x3b8 of 8192 after the
    // allocation, at the time of `c 2` (2 ms).
    expect(readFileSync(output, 'utf8')).toBe(
      [
        '# from heaptrack',
        '#:rss @0 total=1048576',
        '@0 1 malloc 24 0x10',
        '#:rss @2000000 total=7798784',
        '@2000000 1 free 0x10',
        '',
      ].join('\n'),
    );
    const samples = async (path: string, from?: string): Promise<unknown[]> => {
      const log: unknown[] = [];
      await openTrace(
        path,
        {
          header: () => {},
          event: (ev) => log.push(['event', ev.index, ev.recordsFollow === true]),
          rss: (x) => log.push(['rss', x.time, x.anon, x.total, x.heap, x.rec, x.mark]),
          recordsEnd: () => log.push(['end']),
        },
        { from },
      );
      return log;
    };
    const imported = await samples(join(dir, 'ht.raw'), 'heaptrack');
    expect(imported).toEqual([
      ['rss', 0, -1, 1048576, -1, -1, ''],
      ['end'],
      ['event', 0, true],
      ['rss', 2000000, -1, 7798784, -1, -1, ''],
      ['end'],
      ['event', 1, false],
    ]);
    expect(await samples(output)).toEqual(imported);
  });

  it('keeps call stack, mapping and symbol records where they stood: converting again changes nothing', async () => {
    // The reader may deliver such a record before the event line above it; written there, each
    // pass moved it one event up.
    const input = join(ROOT, 'traces/sites.trace');
    const once = join(dir, 'sites-1.trace');
    const twice = join(dir, 'sites-2.trace');
    expect((await convert([input, '-o', once])).code).toBe(0);
    expect((await convert([once, '-o', twice])).code).toBe(0);
    expect(readFileSync(twice, 'utf8')).toBe(readFileSync(once, 'utf8'));
    const body = (path: string): string[] =>
      readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l !== '' && (!l.startsWith('#') || l.startsWith('#:')));
    expect(body(once)).toEqual(body(input));
  });

  it('writes readable native text, facts of the recording first', async () => {
    const output = join(dir, 'lab.trace');
    expect((await convert([file('lab.rep', SAMPLES['malloclab']!), '-o', output])).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(
      '# from malloclab\n# malloclab heap 20000 ids 2 requests 5 weight 1\n1 malloc 512 id0\n1 malloc 128 id1\n1 realloc id0 640 id0\n1 free id1\n1 free id0\n',
    );
  });

  it('writes sizes between 2^53 and 2^64 - 1 as the trace spelled them', async () => {
    // Their doubles are rounded (9007199254740993 is 2^53 as a double): the reader keeps them exact.
    const text =
      '1 malloc 9007199254740993 a\n1 calloc 3 18446744073709551533 b\n1 realloc a 18446744073709551600 c\n1 memalign 16 0x20000000000001 d\n1 malloc_trim 9007199254740999\n1 malloc 24 e\n';
    const output = join(dir, 'huge.trace');
    expect((await convert([file('huge-in.trace', text), '-o', output])).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toBe(
      '1 malloc 9007199254740993 a\n1 calloc 3 18446744073709551533 b\n1 realloc a 18446744073709551600 c\n1 memalign 16 9007199254740993 d\n1 malloc_trim 9007199254740999\n1 malloc 24 e\n',
    );
  });

  it('writes long outputs gzip-compressed in blocks that read back as one stream', async () => {
    let text = '';
    for (let i = 0; i < 120000; i++)
      text += `+ 0x${(0x100000 + 16 * i).toString(16)} 0x${(i % 4096).toString(16)}\n- 0x${(0x100000 + 16 * i).toString(16)}\n`;
    const input = file('long.log', text);
    const output = join(dir, 'long.trace.gz');
    const r = await convert([input, '-o', output, '--gzip', '--from', 'mtrace']);
    expect(r.code).toBe(0);
    const plain = gunzipSync(readFileSync(output)).toString('utf8').split('\n');
    expect(plain.length).toBe(1 + 240000 + 1);
    expect(plain[240000]).toBe(`1 free 0x${(0x100000 + 16 * 119999).toString(16)}`);
    let n = 0;
    await readTraceFile(output, {
      header() {},
      event: () => {
        n++;
      },
    });
    expect(n).toBe(240000);
  });

  it('reports warnings and what it left out', async () => {
    const r = await convert([file('w.log', SAMPLES['logalloc']!), '-o', join(dir, 'w.trace')]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(
      'ptsim: left out: 1 function jemalloc_stats, 1 calls of other processes',
    );
    expect(r.err).toContain('ptsim: warning: ');
  });

  it('stops with the file and line of a mistake, and leaves no output behind', async () => {
    const output = join(dir, 'bad.trace');
    const r = await convert([
      file('bad.log', '+ 0x10 0x10\n+ 0x10 zz\n'),
      '-o',
      output,
      '--from',
      'mtrace',
    ]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`ptsim: ${join(dir, 'bad.log')}:2: 'zz' is not a size\n`);
    expect(existsSync(output)).toBe(false);
    const strict = await convert([
      file('strict.log', '+ 0x10 0x10\n- 0x20\n'),
      '-o',
      output,
      '--strict',
    ]);
    expect(strict.code).toBe(2);
    expect(strict.err).toContain(
      'strict.log:2: free of 0x20, which was never allocated in this log: skipped (--strict)',
    );
    // A native trace's touch record a replay would stop at.
    for (const [body, detail] of [
      ['#:touch a 0', '#:touch of a, which is not a live block'],
      ['#:touch b 9', "#:touch of b: page 9 is past the block's last requested byte"],
    ]) {
      const touched = await convert([
        file(
          'touched.trace',
          `# touches recorded\n1 malloc 9000 a\n1 malloc 9000 b\n1 free a\n${body}\n`,
        ),
        '-o',
        output,
      ]);
      expect(touched.code).toBe(2);
      expect(touched.err).toContain(`ptsim: ${join(dir, 'touched.trace')}:5: ${detail}`);
      expect(existsSync(output)).toBe(false);
    }
    const missing = await convert([join(dir, 'nope.log'), '-o', output]);
    expect(missing.code).toBe(2);
    expect(missing.err).toBe(`ptsim: ${join(dir, 'nope.log')}: no such file\n`);
  });

  it('explains itself and refuses wrong command lines', async () => {
    expect((await convert(['--help'])).out).toBe(CONVERT_HELP + '\n');
    for (const opt of ['-o, --output', '--gzip', '--from', '--strict', '--pid'])
      expect(CONVERT_HELP).toContain(opt);
    const input = file('u.log', SAMPLES['mtrace']!);
    await expect(convert([input])).rejects.toThrow(
      new UsageError('convert needs -o OUT (- for standard output)'),
    );
    await expect(convert(['-o', 'x'])).rejects.toThrow(UsageError);
    await expect(convert([input, 'other', '-o', 'x'])).rejects.toThrow(
      /convert takes one IN, got 2/,
    );
    await expect(convert([input, '-o', 'x', '--from', 'valgrind'])).rejects.toThrow(
      /--from: unknown format 'valgrind' \(known: native, mtrace, logalloc, ltrace, heaptrack, malloclab\)/,
    );
    await expect(convert([input, '-o', 'x', '--pid', 'abc'])).rejects.toThrow(
      /--pid: 'abc' is not a process id/,
    );
    await expect(convert([input, '-o', input])).rejects.toThrow(/cannot write over its input/);
  });
});
