/**
 * Call stacks recorded with `ptsim record --stacks` (docs/recording.md, "Call stacks"): C and C++
 * programs built -O2 -fomit-frame-pointer -g are recorded, replayed, and their live blocks
 * attributed to sites (src/analysis/sites.ts); each known allocation site must come out with its
 * function and its file:line, which the test reads from the SITE markers of the sources, through
 * a wrapper (xmalloc, operator new), and from a function inlined into its caller. A trace with
 * stacks must replay exactly as the same trace without them.
 *
 * Needs a C and a C++ compiler and a symbolizer (addr2line or llvm-symbolizer): skipped, with the
 * reason, without them.
 */

import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { attributeSites, type SiteOptions } from '../../src/analysis/sites.js';
import { findSymbolizer } from '../../src/import/symbolize.js';
import { Replayer, type EventRecord } from '../../src/replay/replay.js';
import { readTraceText } from '../../src/trace/reader.js';
import { SiteTable } from '../../src/trace/site-table.js';
import { traceEnv } from '../diff/harness.js';
import { buildOptimised, markers, program, record, scratch } from './helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));

function runs(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
}

const missing = [
  runs('cc') ? null : 'cc',
  runs('c++') ? null : 'c++',
  findSymbolizer() !== null ? null : 'addr2line or llvm-symbolizer',
].filter((m) => m !== null);
if (missing.length > 0)
  console.warn(`test/record/sites.test.ts skipped: ${missing.join(', ')} not installed`);
if (!runs('heaptrack'))
  console.warn('test/record/sites.test.ts: the heaptrack test skipped: heaptrack not installed');

/** Replays a trace to its end, with its site table; the fidelity log too. */
function replay(text: string): { r: Replayer; table: SiteTable; log: EventRecord[] } {
  const log: EventRecord[] = [];
  const r = new Replayer('sites.trace', {
    env: Object.entries(traceEnv(text)),
    cores: cpus().length,
    onEvent: (e) => log.push(e),
  });
  const table = new SiteTable();
  readTraceText(text, 'sites.trace', {
    header: (h) => r.header(h),
    event: (ev) => {
      table.noteEvent(ev);
      r.event(ev);
    },
    touch: (t) => r.touch(t),
    rss: (x) => r.rss(x),
    recordsEnd: () => r.recordsEnd(),
    site: (s) => table.add(s),
  });
  r.finish();
  return { r, table, log };
}

function groups(text: string, opts: SiteOptions = {}) {
  const { r, table } = replay(text);
  return attributeSites(r.process, table, { causes: ['live'], ...opts }).groups;
}

describe.skipIf(missing.length > 0)('call stacks of a recorded program', () => {
  it('C: names the function and file:line of each site, through a wrapper and an inlined function', async () => {
    const bin = buildOptimised('sites.c', 'cc');
    const lines = markers('sites.c');
    const rec = await record(bin, [], { stacks: 32, touches: false });
    expect(rec.exitCode).toBe(0);
    expect(rec.main).toMatch(/^# stacks 32$/m);
    expect(rec.main).toMatch(/^#:map 0x[0-9a-f]+ 0x[0-9a-f]+ 0x[0-9a-f]+ .*sites-c$/m);
    // Each distinct stack once: the five copies share one stack and one record.
    const stackIds = [...rec.main.matchAll(/^#:stack (\d+) /gm)].map((m) => m[1]);
    expect(new Set(stackIds).size).toBe(stackIds.length);

    const g = groups(rec.main);
    const at = (fn: string) => g.find((x) => x.fn === fn);
    const copy = at('copy_name');
    expect(copy).toBeDefined();
    expect(copy!.file.endsWith('programs/sites.c')).toBe(true);
    expect(copy!.line).toBe(lines.get('copy_name'));
    expect(copy!.blocks).toBe(5);
    expect(copy!.chain[1]).toMatch(/^main \(.*sites\.c:\d+\)$/);
    expect(at('xmalloc')).toBeUndefined(); // folded into its caller

    const table = at('build_table');
    expect(table).toMatchObject({ line: lines.get('build_table'), blocks: 3 });
    expect(table!.requested).toBe(1000 + 1001 + 1002);
    expect(table!.bytes).toBeGreaterThanOrEqual(3 * 1008);

    const inl = at('inline_alloc');
    expect(inl).toMatchObject({ line: lines.get('inline_alloc'), blocks: 1 });
    expect(inl!.chain[1]).toBe(`uses_inline (${inl!.file}:${lines.get('uses_inline')})`);

    // The freed block is not live; without folding, xmalloc is the site of the copies.
    expect(at('main')).toBeUndefined();
    const raw = groups(rec.main, { wrappers: [] });
    expect(raw.find((x) => x.fn === 'xmalloc')).toMatchObject({
      line: lines.get('xmalloc'),
      blocks: 5,
    });
    expect(raw.find((x) => x.fn === 'copy_name')).toBeUndefined();

    // Grouped by function and by file.
    const byFn = groups(rec.main, { by: 'function' });
    expect(byFn.find((x) => x.key === 'copy_name')?.blocks).toBe(5);
    const byFile = groups(rec.main, { by: 'file' });
    const file = byFile.find((x) => x.key.endsWith('programs/sites.c'));
    expect(file?.blocks).toBe(5 + 3 + 1);
  });

  it('C++: folds operator new and the allocator into the code that asked', async () => {
    const bin = buildOptimised('sites.cpp', 'c++');
    const lines = markers('sites.cpp');
    const rec = await record(bin, [], { stacks: 32, touches: false });
    expect(rec.exitCode).toBe(0);
    const g = groups(rec.main);
    const list = g.find((x) => x.fn === 'make_list(int)');
    expect(list).toMatchObject({ line: lines.get('make_list'), blocks: 10 });
    expect(list!.requested).toBe(10 * 16);
    const obj = g.find((x) => x.fn === 'make_vec(int)' && x.line === lines.get('make_vec_object'));
    expect(obj?.blocks).toBe(1);
    // The vector's buffer: allocated in reserve (inlined into make_vec), whose chain goes on to
    // make_vec's line.
    const buffer = g.find((x) => x.requested === 4000);
    expect(buffer).toBeDefined();
    expect(buffer!.chain.join('\n')).toContain(`sites.cpp:${lines.get('make_vec_reserve')})`);
    expect(g.some((x) => x.fn.startsWith('operator new'))).toBe(false);
  });

  it('threads and forked children: every allocating call has its stack, every stack is defined', async () => {
    for (const name of ['threads', 'fork']) {
      const dir = scratch(`stacks-${name}`);
      const rec = await record(program(name), [dir], { stacks: 24 });
      expect(rec.exitCode).toBe(0);
      expect(rec.text.size).toBeGreaterThan(name === 'fork' ? 1 : 0);
      for (const [file, text] of rec.text) {
        const allocating =
          text.match(/^@\d+ \d+ (malloc|calloc|realloc|memalign|valloc|pvalloc) .*$/gm) ?? [];
        expect(allocating.length, file).toBeGreaterThan(0);
        expect(
          allocating.filter((l) => !/ \^\d+$/.test(l)),
          file,
        ).toEqual([]);
        // Reading the trace checks that each stack is defined once, before its first use.
        const { table } = replay(text);
        expect(table.hasSites).toBe(true);
      }
    }
  });

  it('a trace with stacks replays exactly as without them', async () => {
    const bin = buildOptimised('sites.c', 'cc');
    const rec = await record(bin, [], { stacks: 16, freeStacks: true });
    expect(rec.main).toMatch(/^# free_stacks recorded$/m);
    expect(rec.main).toMatch(/^\S+ \d+ free 0x[0-9a-f]+ \^\d+$/m);
    const plain = rec.main
      .split('\n')
      .filter((l) => !/^#:(stack|map|sym) /.test(l))
      .map((l) => l.replace(/ \^\d+$/, ''))
      .join('\n');
    expect(plain).not.toMatch(/\^\d/);
    const a = replay(rec.main).log;
    const b = replay(plain).log;
    expect(a.length).toBeGreaterThan(5);
    expect(a).toEqual(b);
  });

  // heaptrack's raw data of the same program, converted: the same sites come out.
  it.skipIf(!runs('heaptrack'))('heaptrack --raw, converted, names the same sites', () => {
    const bin = buildOptimised('sites.c', 'cc');
    const lines = markers('sites.c');
    const dir = scratch('heaptrack');
    const raw = join(dir, 'sites');
    const h = spawnSync('heaptrack', ['--raw', '-o', raw, bin], { encoding: 'utf8' });
    expect(h.status, h.stderr).toBe(0);
    const out = join(dir, 'sites.trace');
    const c = spawnSync(
      process.execPath,
      [join(HERE, '../../dist/bin/main.js'), 'convert', `${raw}.raw.zst`, '-o', out],
      { encoding: 'utf8' },
    );
    expect(c.status, c.stderr).toBe(0);
    const g = groups(readFileSync(out, 'utf8'));
    const at = (fn: string) => g.find((x) => x.fn === fn);
    expect(at('copy_name')).toMatchObject({ line: lines.get('copy_name'), blocks: 5 });
    expect(at('build_table')).toMatchObject({ line: lines.get('build_table'), blocks: 3 });
    expect(at('inline_alloc')).toMatchObject({ line: lines.get('inline_alloc'), blocks: 1 });
  });
});
