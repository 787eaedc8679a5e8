/**
 * `ptsim explain` on a recording with call stacks (docs/explaining.md, "Allocation sites"): a C
 * program and a C++ one, built -O2 -fomit-frame-pointer -g, pin their heap with a block allocated
 * through a wrapper (xmalloc; operator new), and leave freed blocks of two known functions in the
 * tcache and in the fastbins; explain must name the function and file:line of the pin and of each
 * cause's holders, which the test reads from the SITE markers of the source.
 *
 * Needs a C (and C++) compiler and a symbolizer (addr2line or llvm-symbolizer): skipped, with the
 * reason, without them.
 */

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { explain, type Explanation } from '../../src/analysis/explain.js';
import { findSymbolizer } from '../../src/import/symbolize.js';
import { runs } from '../helpers/tools.js';
import { buildOptimised, markers, record, scratch } from './helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));

const missing = [
  spawnSync('cc', ['--version'], { stdio: 'ignore' }).status === 0 ? null : 'cc',
  findSymbolizer() !== null ? null : 'addr2line or llvm-symbolizer',
].filter((m) => m !== null);
if (missing.length > 0)
  console.warn(`test/record/explain-sites.test.ts skipped: ${missing.join(', ')} not installed`);
const noCxx = !runs('c++');
if (noCxx)
  console.warn('test/record/explain-sites.test.ts: its C++ case skipped, c++ not installed');
const noHeaptrack = !runs('heaptrack');
if (noHeaptrack)
  console.warn(
    'test/record/explain-sites.test.ts: its heaptrack case skipped, heaptrack not installed',
  );

/** `fn (…/SOURCE:LINE)` for a marker of a source (`fn(...)`, for C++'s parameter lists). */
function siteIn(source: string, fn: string, marker = fn): RegExp {
  const line = markers(source).get(marker);
  if (line === undefined) throw new Error(`no SITE ${marker} in ${source}`);
  const name = source.endsWith('.cpp') ? `${fn}\\([^)]*\\)` : fn;
  return new RegExp(`^${name} \\(\\S*programs/${source.replace('.', '\\.')}:${line}\\)$`);
}
const site = (fn: string, marker = fn): RegExp => siteIn('explain-sites.c', fn, marker);

/**
 * Builds the program (optimised, without frame pointers), records it with call stacks, and explains
 * the end: the moment, its pin in the main arena, and that pin with no wrapper folded.
 */
async function explainRecorded(source: string, compiler: string) {
  const rec = await record(buildOptimised(source, compiler), [], { stacks: 32, touches: false });
  expect(rec.exitCode).toBe(0);
  const file = rec.traces.find((t) => t.main)!.file;
  const mainPin = (x: Explanation) =>
    x.moments[0]!.pins.find((p) => p.arena === 0 && p.kind === 'live');
  const ex = await explain(file, { settings: {}, at: ['end'], whatIfs: false });
  const pin = mainPin(ex);
  expect(pin).toBeDefined();
  const unfolded = await explain(file, {
    settings: {},
    at: ['end'],
    whatIfs: false,
    sites: { wrappers: [] },
  });
  const raw = mainPin(unfolded);
  expect(raw).toBeDefined();
  return { m: ex.moments[0]!, pin: pin!, raw: raw! };
}

describe.skipIf(missing.length > 0)('explain names the code of a recorded program', () => {
  it('names the pin, the tcache and the fastbin holders by function and file:line', async () => {
    const { m, pin, raw } = await explainRecorded('explain-sites.c', 'cc');

    // The pin: the block keep_config allocated through xmalloc (folded), called from main.
    expect(pin.site?.site).toMatch(site('keep_config'));
    expect(pin.site!.chain[0]).toBe(pin.site!.site);
    expect(pin.site!.chain[1]).toMatch(site('main'));

    const causes = new Map(m.sites!.causes.map((c) => [c.cause, c]));
    const tcache = causes.get('tcache')!.sites[0]!;
    expect(tcache.key).toMatch(site('fill_cache'));
    expect(tcache.blocks).toBe(7);
    expect(tcache.bytes).toBe(7 * 48);
    const fast = causes.get('fastbins')!.sites[0]!;
    expect(fast.key).toMatch(site('make_small'));
    expect(fast.blocks).toBe(13);
    expect(fast.bytes).toBe(13 * 48);
    expect(causes.get('live')!.sites.map((s) => s.key)).toContainEqual(
      expect.stringMatching(site('keep_config')),
    );

    // Without folding xmalloc, the pin's site is xmalloc itself.
    expect(raw.site?.site).toMatch(site('xmalloc'));
    expect(raw.site!.chain[1]).toMatch(site('keep_config'));
  }, 120_000);

  it.skipIf(noCxx)(
    'names them in a C++ program, operator new folded into its caller (skipped without c++)',
    async () => {
      const cxx = (fn: string, marker = fn): RegExp => siteIn('explain-sites.cpp', fn, marker);
      const { m, pin, raw } = await explainRecorded('explain-sites.cpp', 'c++');
      expect(pin.site?.site).toMatch(cxx('keep_config'));
      expect(pin.site!.chain[1]).toMatch(/^main \(\S*programs\/explain-sites\.cpp:\d+\)$/);
      expect(pin.site!.chain[1]).toContain(`:${markers('explain-sites.cpp').get('main')})`);
      const causes = new Map(m.sites!.causes.map((c) => [c.cause, c]));
      const tcache = causes.get('tcache')!.sites[0]!;
      expect(tcache.key).toMatch(cxx('fill_cache'));
      expect([tcache.blocks, tcache.bytes]).toEqual([7, 7 * 48]);
      const fast = causes.get('fastbins')!.sites[0]!;
      expect(fast.key).toMatch(cxx('make_small'));
      expect([fast.blocks, fast.bytes]).toEqual([13, 13 * 48]);

      // Without folding, operator new itself is the site of every block.
      expect(raw.site?.site).toMatch(/^operator new\(unsigned long\)/);
      expect(raw.site!.chain[1]).toMatch(cxx('keep_config'));
    },
    120_000,
  );

  it.skipIf(noHeaptrack)(
    "names them through heaptrack's raw data, read as it is and converted (skipped without heaptrack)",
    async () => {
      const dir = scratch('explain-heaptrack');
      const raw = join(dir, 'explain-sites');
      const h = spawnSync(
        'heaptrack',
        ['--raw', '-o', raw, buildOptimised('explain-sites.c', 'cc')],
        {
          encoding: 'utf8',
        },
      );
      expect(h.status, h.stderr).toBe(0);
      const converted = join(dir, 'explain-sites.trace');
      const c = spawnSync(
        process.execPath,
        [join(HERE, '../../dist/bin/main.js'), 'convert', `${raw}.raw.zst`, '-o', converted],
        { encoding: 'utf8' },
      );
      expect(c.status, c.stderr).toBe(0);
      // heaptrack loads libstdc++ into the program, whose emergency pool (a block of about 70 KiB,
      // allocated first) is freed last, at exit: a free that big consolidates the fastbins. The
      // moment explained is the one before it, when the program's own frees are done.
      const events = readFileSync(converted, 'utf8')
        .split('\n')
        .filter((l) => /^(@\d+ )?\d+ \w/.test(l));
      expect(events[events.length - 1]).toMatch(/ free /);
      const at = events.length - 2;
      for (const file of [`${raw}.raw.zst`, converted]) {
        const ex = await explain(file, { settings: {}, at: [at], whatIfs: false });
        const m = ex.moments[0]!;
        const pin = m.pins.find((p) => p.arena === 0 && p.kind === 'live');
        expect(pin!.site?.site, file).toMatch(site('keep_config'));
        expect(pin!.site!.chain[1]).toMatch(site('main'));
        const causes = new Map(m.sites!.causes.map((x) => [x.cause, x]));
        const tcache = causes.get('tcache')!.sites[0]!;
        expect(tcache.key).toMatch(site('fill_cache'));
        expect([tcache.blocks, tcache.bytes]).toEqual([7, 7 * 48]);
        const fast = causes.get('fastbins')!.sites[0]!;
        expect(fast.key).toMatch(site('make_small'));
        expect([fast.blocks, fast.bytes]).toEqual([13, 13 * 48]);
      }
    },
    120_000,
  );
});
