/**
 * ptsim explain beside the recording's own measurement: at each moment explained, the trace's
 * `#:rss` sample at or before it, the replay's RSS there, and a note when the two grew apart by
 * more than 5% + 512 KiB since the first sample (the ground-truth tests' criterion). The trace is
 * written by hand so that every figure follows from its numbers.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explain } from '../../src/analysis/explain.js';
import type { AnonComparison, MeasuredComparison } from '../../src/analysis/measured-compare.js';
import { explainCommand } from '../../src/cli/explain-command.js';
import { replayCommand } from '../../src/cli/replay-command.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dir = mkdtempSync(join(tmpdir(), 'ptsim-explain-measured-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/*
 * The replay: malloc(512 KiB) is above the mmap threshold (128 KiB), a chunk of 512 KiB + 16
 * bytes, 129 pages, all written (--touch full); the tcache's own block, allocated first from the
 * main heap, and the top chunk's header make 1 page there. 130 pages: 532,480 bytes. The small
 * blocks after it come from that same page.
 *
 * The samples: 4 MiB before the first event, of which 64 KiB are the recorder's; after event 0,
 * 4 MiB + 532,480 bytes (grown exactly as the replay); after event 2, 13 MiB (grown 9 MiB).
 */
const TRACE = [
  '#:rss anon=4194304 rec=65536',
  '1 malloc 524288 a',
  '#:rss anon=4726784 rec=65536 mark=big',
  '1 malloc 100 b',
  '1 free b',
  '#:rss anon=13631488 rec=65536',
  '1 malloc 200 c',
  '',
].join('\n');
const MODELLED = 130 * 4096;

/** The comparison made from RssAnon (fails the test for a sample of the whole RSS alone). */
function anonComparison(c: MeasuredComparison | undefined): AnonComparison {
  expect(c?.kind).toBe('anon');
  return c as AnonComparison;
}

async function run(argv: string[], command = explainCommand): Promise<string> {
  let out = '';
  const code = await command.run(
    argv,
    (s) => void (out += s),
    (s) => void (out += s),
  );
  expect(code).toBe(0);
  return out;
}

describe('explain beside the measured RSS', () => {
  it('agrees where the process grew as the replay: the figures, no note', async () => {
    const p = file('agree.trace', TRACE);
    const ex = await explain(p, { settings: {}, at: [0, 1], whatIfs: false });
    for (const m of ex.moments) {
      expect(m.residentBytes).toBe(MODELLED);
      const c = anonComparison(m.measured);
      // Event 1 has no sample of its own: the one after event 0 stands for it.
      expect(c.sample).toMatchObject({ event: 0, line: 3, mark: 'big', anon: 4726784 });
      expect(c.sample.modelled).toBe(MODELLED);
      expect(c.first).toMatchObject({ event: -1, line: 1, anon: 4 * MiB, modelled: 0 });
      expect(c.measuredGrowth).toBe(MODELLED);
      expect(c.modelledGrowth).toBe(MODELLED);
      // 5% of 532,480 + 512 KiB.
      expect(c.allowed).toBeCloseTo(26624 + 512 * KiB, 6);
      expect(c.differs).toBe(false);
      expect(c.note).toBeUndefined();
    }
    const text = await run([p, '--at', '0', '--at', '1', '--no-what-if']);
    expect(text).toContain(
      "measured: RssAnon 4.51 MiB, of which the recorder's own 64.0 KiB (#:rss sample at this event, line 3, mark big); the replay 520.0 KiB there",
    );
    expect(text).toContain('#:rss sample after event 0, the last before this moment, line 3');
    expect(text).toContain(
      'measured 520.0 KiB less the recorder, modelled 520.0 KiB: they agree within 5% + 512 KiB (538.0 KiB)',
    );
    expect(text).not.toContain('they differ');
  });

  it('says when they differ, by how much, and the usual reasons', async () => {
    const p = file('differ.trace', TRACE);
    const ex = await explain(p, { settings: {}, at: ['end'], whatIfs: false });
    const m = ex.moments[0]!;
    expect(m.event).toBe(3);
    const c = anonComparison(m.measured);
    // The end (event 3) has no sample of its own: the one after event 2.
    expect(c.sample).toMatchObject({ event: 2, line: 6, anon: 13 * MiB, modelled: MODELLED });
    // 13 MiB - 64 KiB - (4 MiB - 64 KiB) = 9 MiB, against the replay's 532,480 bytes.
    expect(c.measuredGrowth).toBe(9 * MiB);
    expect(c.modelledGrowth).toBe(MODELLED);
    expect(c.allowed).toBeCloseTo(0.05 * 9 * MiB + 512 * KiB, 6);
    expect(c.differs).toBe(true);
    // 9 MiB - 520 KiB = 8.49 MiB more measured; allowed 471,859 + 524,288 = 972.8 KiB.
    expect(c.note).toContain(
      "the process's RssAnon grew 8.49 MiB more than the replay's RSS since the first sample (more than 5% + 512 KiB: 972.8 KiB)",
    );
    expect(c.note).toContain('thread stacks');
    expect(c.note).toContain('pymalloc');
    const text = await run([p, '--at', 'end', '--no-what-if']);
    expect(text).toContain('(#:rss sample after event 2, the last before this moment, line 6)');
    expect(text).toContain('measured 9.00 MiB less the recorder, modelled 520.0 KiB: they differ');
    expect(text).toContain(`  note: ${c.note}`);
    const json = JSON.parse(await run([p, '--at', 'end', '--no-what-if', '--json'])) as {
      moments: Array<{ measured: { measuredGrowth: number; differs: boolean; note: string } }>;
    };
    expect(json.moments[0]!.measured).toMatchObject({
      measuredGrowth: 9 * MiB,
      differs: true,
      note: c.note,
    });
  });

  it('says when the replay grew more than the process', async () => {
    const p = file('less.trace', TRACE.replace('anon=4726784', 'anon=4194304'));
    const ex = await explain(p, { settings: {}, at: [0], whatIfs: false });
    const c = anonComparison(ex.moments[0]!.measured);
    // Measured growth 0: allowed 512 KiB, and the replay grew 520 KiB.
    expect(c.measuredGrowth).toBe(0);
    expect(c.differs).toBe(true);
    expect(c.note).toContain("grew 520.0 KiB less than the replay's RSS");
    expect(c.note).toContain('madvise');
  });

  it('leaves samples of the whole RSS alone out of the growth comparison', async () => {
    // A total-only sample first: the baseline is the first sample with RssAnon (line 2).
    const p = file('mixed.trace', `#:rss total=99999999\n${TRACE}`);
    const ex = await explain(p, { settings: {}, at: [0], whatIfs: false });
    const c = anonComparison(ex.moments[0]!.measured);
    expect(c.first).toMatchObject({ event: -1, line: 2, anon: 4 * MiB });
    expect(c.first.total).toBeUndefined();
    expect(c.measuredGrowth).toBe(MODELLED);
    expect(c.differs).toBe(false);
  });

  it('shows a sample of the whole RSS alone beside the replay, as the rest of the process, with no verdict', async () => {
    // heaptrack's samples: total= only. 8 MiB before the first event, 8 MiB + 532,480 after it.
    const p = file(
      'total.trace',
      [
        '#:rss total=8388608',
        '1 malloc 524288 a',
        '#:rss @5 total=8921088 mark=big',
        '1 malloc 100 b',
        '',
      ].join('\n'),
    );
    const ex = await explain(p, { settings: {}, at: [0, 1], whatIfs: false });
    for (const m of ex.moments) {
      const c = m.measured!;
      expect(c.kind).toBe('total');
      if (c.kind !== 'total') continue;
      expect(c.sample).toMatchObject({ event: 0, line: 3, anon: null, total: 8921088 });
      expect(c.total).toBe(8921088);
      expect(c.rest).toBe(8921088 - MODELLED);
    }
    const text = await run([p, '--at', '0', '--no-what-if']);
    expect(text).toContain(
      "measured: the process's whole RSS 8.51 MiB (total=, what top shows as RES), the replay's RSS of the allocator's memory 520.0 KiB: the difference, 8.00 MiB, is the rest of the process (code, libraries, stacks, the recorder's own memory) (#:rss sample at this event, line 3, mark big)",
    );
    expect(text).toContain('the sample has no RssAnon (anon=), so the growth comparison');
    expect(text).not.toContain('RssAnon 8');
    expect(text).not.toContain('they differ');
    expect(text).not.toContain('they agree');
  });

  it('says so when the replay holds more than the whole process measured', async () => {
    // A whole RSS of 256 KiB after a block of 512 KiB written whole (--touch full): the program
    // wrote less of it than the replay takes as written.
    const p = file('under.trace', ['1 malloc 524288 a', '#:rss total=262144', ''].join('\n'));
    const ex = await explain(p, { settings: {}, at: [0], whatIfs: false });
    const c = ex.moments[0]!.measured!;
    expect(c.kind).toBe('total');
    if (c.kind === 'total') expect(c.rest).toBe(262144 - MODELLED);
    const text = await run([p, '--at', '0', '--no-what-if']);
    expect(text).toContain(
      "the replay's RSS of the allocator's memory 520.0 KiB: 264.0 KiB more than all the process held, so the replay makes pages resident that the program did not write",
    );
    expect(text).not.toContain('is the rest of the process');
    const replay = await run([p], replayCommand);
    expect(replay).toMatch(
      /whole RSS 256\.00 KiB \(262,144 B\); replay .*, 264\.00 KiB \(270,336 B\) more than the whole process held/,
    );
  });

  it('shows nothing of it for a trace without samples', async () => {
    const p = file('none.trace', TRACE.replace(/^#:rss.*\n/gm, ''));
    const ex = await explain(p, { settings: {}, at: ['end', 0], whatIfs: false });
    for (const m of ex.moments) expect(m.measured).toBeUndefined();
    const text = await run([p, '--no-what-if']);
    expect(text).not.toContain('measured:');
    expect(text).not.toContain('RssAnon');
  });
});
