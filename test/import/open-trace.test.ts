/**
 * openTrace, the one entry point: files in every format, recognised or named, plain or
 * compressed (gzip in-process, zstd and xz through their programs), chunked reading, and the
 * errors for what cannot be read.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createImporter,
  importText,
  openTrace,
  type OpenTraceOptions,
} from '../../src/import/index.js';
import { LineSplitter, type LineHandler } from '../../src/import/lines.js';
import { TraceReadError } from '../../src/trace/reader.js';
import { TraceSyntaxError } from '../../src/trace/types.js';
import { collect } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-import-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, data: string | Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

async function open(
  path: string,
  opts: OpenTraceOptions = {},
): Promise<{ lines: string[]; format: string; warnings: string[] }> {
  const c = collect();
  const warnings: string[] = [];
  const r = await openTrace(path, c.sink, { onWarning: (m) => warnings.push(m), ...opts });
  return { lines: c.lines, format: r.format, warnings };
}

function have(program: string): boolean {
  return spawnSync(program, ['--version'], { stdio: 'ignore' }).error === undefined;
}

const MTRACE =
  '= Start\n@ ./a.out:[0x1169] + 0x5555555592a0 0x10\n@ ./a.out:[0x1170] - 0x5555555592a0\n= End\n';
const EXPECTED = ['2: 1 malloc 16 0x5555555592a0', '3: 1 free 0x5555555592a0'];

describe('openTrace', () => {
  it('recognises the format of a file, or takes the one given', async () => {
    expect(await open(file('m.log', MTRACE))).toEqual({
      lines: EXPECTED,
      format: 'mtrace',
      warnings: [],
    });
    expect((await open(file('m2.log', MTRACE), { from: 'mtrace' })).lines).toEqual(EXPECTED);
    const native = await open(file('n.trace', '1 malloc 24 a\n1 free a\n'));
    expect(native).toEqual({
      lines: ['1: 1 malloc 24 a', '2: 1 free a'],
      format: 'native',
      warnings: [],
    });
  });

  it('reads gzip-compressed logs of every kind', async () => {
    expect(await open(file('m.log.gz', gzipSync(MTRACE)))).toEqual({
      lines: EXPECTED,
      format: 'mtrace',
      warnings: [],
    });
    expect((await open(file('n.gz', gzipSync('1 malloc 24 a\n')))).format).toBe('native');
  });

  it.skipIf(!have('zstd'))(
    'reads zstd-compressed logs through the zstd program (heaptrack --raw writes them)',
    async () => {
      const plain = file('h.raw', 'v 10400 3\n+ 18 8 10\nc 5\n- 10\n');
      execFileSync('zstd', ['-q', '-f', plain, '-o', `${plain}.zst`]);
      expect(await open(`${plain}.zst`)).toEqual({
        lines: ['2: @0 1 malloc 24 0x10', '4: @5000000 1 free 0x10'],
        format: 'heaptrack',
        warnings: [],
      });
      // A native trace compressed with zstd.
      const n = file('n2.trace', '1 malloc 24 a\n');
      execFileSync('zstd', ['-q', '-f', n, '-o', `${n}.zst`]);
      expect(await open(`${n}.zst`)).toEqual({
        lines: ['1: 1 malloc 24 a'],
        format: 'native',
        warnings: [],
      });
      // Corrupt data is reported with the program's own message.
      const bad = file(
        'bad.zst',
        Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.from('not really zstd')]),
      );
      await expect(openTrace(bad, collect().sink)).rejects.toThrow(
        /bad\.zst: zstd data is corrupt or truncated \(zstd -dc: /,
      );
    },
  );

  it.skipIf(!have('xz'))('reads xz-compressed logs through the xz program', async () => {
    const plain = file('m3.log', MTRACE);
    execFileSync('xz', ['-k', '-f', plain]);
    expect((await open(`${plain}.xz`)).lines).toEqual(EXPECTED);
  });

  it('gives the same lines and events whatever the chunks the input comes in', () => {
    const text =
      '1 1 malloc(42)=#1\r\n1 2 malloc(24)=0x20\n\n1 1 realloc(#1,64)=#1\n1 2 free(0x20)\n1 1 free(#1)';
    const whole = collect();
    importText(text, 'x', whole.sink, { from: 'logalloc' });
    expect(whole.lines).toEqual([
      '1: 1 malloc 42 #1',
      '2: 2 malloc 24 0x20',
      '4: 1 realloc #1 64 #1',
      '5: 2 free 0x20',
      '6: 1 free #1',
    ]);
    const bytes = Buffer.from(text);
    for (const size of [1, 2, 3, 7, 16]) {
      const lines: string[] = [];
      const handler: LineHandler = {
        line: (b, s, e, no, last) =>
          void lines.push(`${no}${last ? '!' : ''}:${b.toString('latin1', s, e)}`),
      };
      const splitter = new LineSplitter(handler, 'x');
      for (let i = 0; i < bytes.length; i += size)
        splitter.push(Buffer.from(bytes.subarray(i, Math.min(bytes.length, i + size))));
      expect(splitter.end()).toBe(6);
      expect(lines).toEqual([
        '1:1 1 malloc(42)=#1',
        '2:1 2 malloc(24)=0x20',
        '3:',
        '4:1 1 realloc(#1,64)=#1',
        '5:1 2 free(0x20)',
        '6!:1 1 free(#1)',
      ]);
      const chunked = collect();
      const importer = createImporter('logalloc', 'x', chunked.sink);
      const split = new LineSplitter(importer, 'x');
      for (let i = 0; i < bytes.length; i += size)
        split.push(Buffer.from(bytes.subarray(i, Math.min(bytes.length, i + size))));
      importer.end(split.end());
      expect(chunked.lines).toEqual(whole.lines);
    }
  });

  it('rejects a line longer than 16 MiB as the native reader does', () => {
    const splitter = new LineSplitter({ line() {} }, 'big.log');
    const chunk = Buffer.alloc(1 << 20, 0x61);
    expect(() => {
      for (let i = 0; i < 17; i++) splitter.push(chunk);
    }).toThrow('big.log:1: line is longer than 16 MiB: is this a text trace?');
  });

  it('streams a log larger than its chunks and the detection sample', async () => {
    let text = '';
    for (let i = 0; i < 60000; i++)
      text += `@ ./a.out:(main+1e)[0x1169] + 0x${(0x10000 + i * 16).toString(16)} 0x${(i % 500).toString(16)}\n`;
    for (let i = 0; i < 60000; i++) text += `- 0x${(0x10000 + i * 16).toString(16)}\n`;
    const c = collect();
    const r = await openTrace(file('big.log', text), c.sink);
    expect(r).toMatchObject({ format: 'mtrace', events: 120000, lines: 120000, warnings: 0 });
    expect(c.lines[59999]).toBe(
      `60000: 1 malloc ${59999 % 500} 0x${(0x10000 + 59999 * 16).toString(16)}`,
    );
    expect(c.lines[119999]).toBe(`120000: 1 free 0x${(0x10000 + 59999 * 16).toString(16)}`);
  });

  it('reports what it cannot read, with the file name', async () => {
    await expect(openTrace(join(dir, 'missing.log'), collect().sink)).rejects.toThrow(
      new TraceReadError(join(dir, 'missing.log'), 'no such file'),
    );
    await expect(
      openTrace(file('x.txt', 'hello world\nnot a trace\n'), collect().sink),
    ).rejects.toThrow(
      /x\.txt: cannot tell which format this is \(it starts with 'hello world'\); give --from native\|mtrace\|logalloc\|ltrace\|heaptrack\|malloclab/,
    );
    await expect(
      openTrace(file('y.txt', '+ 0x10 0x10\n'), collect().sink, { from: 'valgrind' }),
    ).rejects.toThrow(/y\.txt: unknown format 'valgrind'/);
    await expect(
      openTrace(file('z.gz', Buffer.concat([gzipSync(MTRACE).subarray(0, 20)])), collect().sink, {
        from: 'mtrace',
      }),
    ).rejects.toThrow(/z\.gz: gzip data is corrupt or truncated/);
    const e = await openTrace(file('bad.log', '+ 0x10 0x10\n+ 0x10 zz\n'), collect().sink, {
      from: 'mtrace',
      displayName: 'shown.log',
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TraceSyntaxError);
    expect((e as Error).message).toBe("shown.log:2: 'zz' is not a size");
  });

  it('delivers every call before a line it cannot read, as the native reader does', async () => {
    // Each log: two calls, then a broken line; read from a file and from memory.
    const logs: Array<[string, string, string]> = [
      [
        'mtrace',
        '= Start\n@ ./a.out:[0x1] + 0x10 0x10\n@ ./a.out:[0x1] - 0x10\n@ ./a.out:[0x1] + 0x10 zz\n',
        "'zz' is not a size",
      ],
      ['heaptrack', 'I 1000 5e2922\n+ 18 0 10\n- 10\n+ 18 8 zz\n', 'malformed allocation record'],
      ['heaptrack', '+ 18 0 10\nR 3b8\n- 10\nR zz\n', 'malformed resident size record'],
    ];
    for (const [k, [from, log, why]] of logs.entries()) {
      const c = collect();
      const e = await openTrace(file(`stop-${k}.log`, log), c.sink, { from }).catch(
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(TraceSyntaxError);
      expect((e as Error).message).toContain(why);
      expect(c.lines, `${from} from a file`).toHaveLength(2);
      const m = collect();
      expect(() => importText(log, `stop-${k}.log`, m.sink, { from })).toThrow(why);
      expect(m.lines, `${from} from memory`).toEqual(c.lines);
    }
    // A corrupt end of a compressed log: the calls before it too.
    const whole =
      '= Start\n' + '@ ./a.out:[0x1] + 0x10 0x10\n@ ./a.out:[0x1] - 0x10\n'.repeat(4000);
    const gz = gzipSync(whole);
    const c = collect();
    await expect(
      openTrace(file('cut.gz', gz.subarray(0, gz.length - 40)), c.sink, { from: 'mtrace' }),
    ).rejects.toThrow(/corrupt or truncated/);
    expect(c.lines.length).toBeGreaterThan(0);
    // Every call of the lines read is delivered: the last one is a whole line's call.
    const read = c.lines.length;
    expect(c.lines[read - 1]).toBe(
      `${read + 1}: ${read % 2 === 1 ? '1 malloc 16 0x10' : '1 free 0x10'}`,
    );
  });

  it('passes errors of the sink through unchanged', async () => {
    const boom = new Error('sink says no');
    const sink = {
      header() {},
      event() {
        throw boom;
      },
    };
    await expect(openTrace(file('m4.log', MTRACE), sink)).rejects.toBe(boom);
    await expect(openTrace(file('n4.trace', '1 malloc 1 a\n'), sink)).rejects.toBe(boom);
  });

  it('numbers tokens (inId, outId) as the native reader does', async () => {
    const imported = collect();
    await openTrace(
      file('m5.log', '+ 0x10 0x1\n+ 0x20 0x1\n- 0x10\n< 0x20\n> 0x30 0x5\n+ 0x40 0x1\n- 0x30\n'),
      imported.sink,
    );
    const native = collect();
    await openTrace(
      file(
        'm5.trace',
        '1 malloc 1 0x10\n1 malloc 1 0x20\n1 free 0x10\n1 realloc 0x20 5 0x30\n1 malloc 1 0x40\n1 free 0x30\n',
      ),
      native.sink,
    );
    const ids = (evs: typeof native.events): Array<[number | undefined, number | undefined]> =>
      evs.map((e) => [e.inId, e.outId]);
    expect(ids(imported.events)).toEqual(ids(native.events));
  });
});
