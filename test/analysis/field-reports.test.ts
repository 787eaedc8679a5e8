/**
 * The field reports of docs/field-reports/: for each bundled trace, ptsim explain names the cause
 * the page describes. Checked on explain()'s data (causes, pins, threshold history, remedies),
 * never on its wording. The generated traces must also be exactly what their generator writes.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explain, type MomentExplanation } from '../../src/analysis/explain.js';
import type { Cause } from '../../src/analysis/breakdown.js';
import { replayFile } from '../../src/replay/run-file.js';
import { FIELD_REPORT_TRACES } from '../gen/field-report-traces.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const trace = (name: string): string => join(ROOT, 'traces', name);

const MiB = 1 << 20;

const dir = mkdtempSync(join(tmpdir(), 'ptsim-field-reports-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Replays a trace's text and returns RSS at the end. */
async function rssOf(name: string, text: string): Promise<number> {
  const p = join(dir, name);
  writeFileSync(p, text);
  const run = await replayFile(p, { cores: 2 });
  return run.replayer!.finish().rss;
}

function bytesOf(m: MomentExplanation, cause: Cause): number {
  return m.causes.find((c) => c.cause === cause)!.bytes;
}

/** The remedy offered with this setting. */
function remedy(m: MomentExplanation, setting: string): MomentExplanation['remedies'][number] {
  const r = m.remedies.find((x) => x.setting === setting);
  if (r === undefined) throw new Error(`no remedy ${setting}`);
  return r;
}

/** Whether a setting was tried without saving anything, or not tried at all (its cause absent). */
function notOffered(m: MomentExplanation, setting: string): boolean {
  const r = m.tried.find((x) => x.setting === setting);
  return m.remedies.every((x) => x.setting !== setting) && (r === undefined || r.saved <= 0);
}

const TRIM_NOW = 'malloc_trim(0) at this moment';

async function explainAt(
  name: string,
  at: Array<'end' | 'peak' | number>,
): Promise<MomentExplanation[]> {
  const ex = await explain(trace(name), { settings: { cores: 2 }, at, parallel: 1 });
  return ex.moments;
}

describe('the generated field-report traces', () => {
  for (const [name, generate] of Object.entries(FIELD_REPORT_TRACES)) {
    it(`${name} is its generator's output`, () => {
      const text = generate();
      if (process.env['PTSIM_WRITE_TRACES'] === '1') writeFileSync(trace(name), text);
      expect(readFileSync(trace(name), 'utf8')).toBe(text);
      expect(text.length).toBeLessThan(1 << 20);
    });
  }
});

describe('the field reports, explained', () => {
  it('field-report.trace: the dynamic mmap threshold sent four 2 MiB blocks to the heap, and a small block pins them', async () => {
    const [m] = await explainAt('field-report.trace', ['end']);
    // Nearly all of RSS is free memory in the bins, held below the live `config` block.
    expect(m!.causes[0]!.cause).toBe('free-bins');
    expect(bytesOf(m!, 'free-bins')).toBeGreaterThan(0.99 * m!.residentBytes);
    expect(m!.thresholds).toHaveLength(1);
    expect(m!.thresholds[0]).toMatchObject({
      token: 'warmup',
      cause: 'dynamic threshold: free of an mmapped block',
      oldMmapThreshold: 128 << 10,
      newMmapThreshold: 0x201000,
      newTrimThreshold: 0x402000,
      heapAllocationsSince: 4,
    });
    expect(m!.pins[0]).toMatchObject({ arena: 0, kind: 'live', token: 'config', holdsTop: true });
    expect(m!.pins[0]!.heldBytes).toBe(bytesOf(m!, 'free-bins') + bytesOf(m!, 'fragmentation'));
    // A fixed threshold gives it all back; so does malloc_trim; so would allocating config first.
    expect(remedy(m!, 'M_MMAP_THRESHOLD=131072').saved).toBeGreaterThan(0.99 * m!.residentBytes);
    expect(remedy(m!, TRIM_NOW).saved).toBeGreaterThan(0.99 * m!.residentBytes);
    expect(
      remedy(m!, 'config allocated earlier (event 6 moved before event 0)').saved,
    ).toBeGreaterThan(0.98 * m!.residentBytes);
    // Freeing config would not: it would only go into the tcache.
    expect(m!.pins[0]!.freed).toMatchObject({ saved: 0, went: 'tcache' });
    expect(notOffered(m!, 'glibc.malloc.tcache_count=0')).toBe(true);
  });

  it('load-test.trace: RSS holds at its peak because the raised trim threshold keeps the heap top', async () => {
    const [end, peak] = await explainAt('load-test.trace', ['end', 'peak']);
    // Holds at the peak: the end is as resident as the peak, although nearly nothing is live.
    expect(end!.residentBytes).toBe(peak!.residentBytes);
    expect(bytesOf(end!, 'live-requested')).toBeLessThan(0.001 * end!.residentBytes);
    // One threshold change, early: the free of the mmapped file buffer, after which every body
    // of the load test (400 of them) came from the heap.
    expect(end!.thresholds).toHaveLength(1);
    const t = end!.thresholds[0]!;
    expect(t).toMatchObject({
      cause: 'dynamic threshold: free of an mmapped block',
      token: 'file8',
      oldMmapThreshold: 128 << 10,
      heapAllocationsSince: 400,
    });
    expect(t.event).toBeLessThan(peak!.event / 10);
    expect(t.newMmapThreshold).toBeGreaterThan(12 * MiB);
    // The biggest cause is the top chunk, bigger than the default trim threshold (so it would
    // have been trimmed) but smaller than the raised one (so it is kept).
    expect(end!.causes[0]!.cause).toBe('free-top');
    const top = end!.causes.find((c) => c.cause === 'free-top')!;
    expect(top.mappedBytes).toBeGreaterThan(t.oldTrimThreshold);
    expect(top.mappedBytes).toBeLessThan(t.newTrimThreshold);
    expect(bytesOf(end!, 'free-top') + bytesOf(end!, 'free-bins')).toBeGreaterThan(
      0.99 * end!.residentBytes,
    );
    // A fixed threshold brings it down; the tcache is not the cause.
    const fixed = remedy(end!, 'M_MMAP_THRESHOLD=131072');
    expect(fixed.saved).toBeGreaterThan(0.99 * end!.residentBytes);
    expect(fixed.extraSyscalls).toBeGreaterThan(400);
    expect(notOffered(end!, 'glibc.malloc.tcache_count=0')).toBe(true);
  });

  it('pinned-top.trace: the late summary block pins the top; no threshold is involved', async () => {
    const [m] = await explainAt('pinned-top.trace', ['end']);
    expect(m!.thresholds).toHaveLength(0);
    expect(m!.causes[0]!.cause).toBe('free-bins');
    expect(m!.pins).toHaveLength(1);
    expect(m!.pins[0]).toMatchObject({
      arena: 0,
      kind: 'live',
      token: 'summary',
      requested: 72,
      holdsTop: true,
    });
    expect(m!.pins[0]!.heldBytes).toBeGreaterThan(0.95 * m!.residentBytes);
    // malloc_trim helps, now or now and then, and so does allocating the summary first; no
    // setting does, and freeing the summary then would not either: it would go into the tcache.
    expect(m!.remedies[0]!.setting).toBe(TRIM_NOW);
    expect(remedy(m!, TRIM_NOW).saved).toBeGreaterThan(0.9 * m!.residentBytes);
    expect(m!.remedies.map((r) => r.id).sort()).toEqual(['move_pin', 'trim_every', 'trim_now']);
    expect(
      remedy(m!, 'summary allocated earlier (event 3119 moved before event 0)').saved,
    ).toBeGreaterThan(0.9 * m!.residentBytes);
    for (const s of [
      'M_MMAP_THRESHOLD=131072',
      'M_TRIM_THRESHOLD=0',
      'glibc.malloc.tcache_count=0',
    ])
      expect(notOffered(m!, s)).toBe(true);
    expect(m!.pins[0]!.freed).toMatchObject({ saved: 0, went: 'tcache' });
    // And it really is the summary: allocated at start-up instead, it pins nothing, and the freed
    // tree goes back to the kernel by itself.
    const text = readFileSync(trace('pinned-top.trace'), 'utf8');
    const early = text
      .replace('1 malloc 72 summary\n', '')
      .replace('1 malloc 2048 config\n', '1 malloc 2048 config\n1 malloc 72 summary\n');
    expect(early).not.toBe(text);
    expect(await rssOf('pinned-early.trace', early)).toBeLessThan(0.1 * m!.residentBytes);
  });

  it('fastbins-tcache.trace: the freed table sits in fastbins and the tcache, unmerged', async () => {
    const [m] = await explainAt('fastbins-tcache.trace', ['end']);
    expect(m!.thresholds).toHaveLength(0);
    expect(m!.causes[0]!.cause).toBe('free-fastbins');
    expect(bytesOf(m!, 'free-fastbins')).toBeGreaterThan(0.95 * m!.residentBytes);
    expect(bytesOf(m!, 'free-tcache')).toBeGreaterThan(0);
    expect(bytesOf(m!, 'free-bins')).toBe(0);
    // The chunk at the top of the table is itself a freed one that glibc keeps.
    expect(['fastbin', 'tcache']).toContain(m!.pins[0]!.kind);
    // malloc_trim consolidates the fastbins and gives the pages back; no fastbins at all gives
    // back part of it; turning the tcache off alone changes nothing, the fastbins take its chunks.
    expect(m!.remedies[0]!.setting).toBe(TRIM_NOW);
    expect(remedy(m!, TRIM_NOW).saved).toBeGreaterThan(0.9 * m!.residentBytes);
    expect(remedy(m!, 'M_MXFAST=0').saved).toBeGreaterThan(0.5 * m!.residentBytes);
    expect(notOffered(m!, 'glibc.malloc.tcache_count=0')).toBe(true);
  });

  it('malloc-trim.trace: malloc_trim(0) gives back pages in the middle of the main heap, not the rest', async () => {
    const [before, after] = await explainAt('malloc-trim.trace', [27, 'end']);
    expect(before!.event).toBe(27);
    expect(after!.residentBytes).toBeLessThan(before!.residentBytes);
    // What the trim did at that moment is what the malloc_trim remedy predicted there.
    expect(remedy(before!, TRIM_NOW).rss).toBe(after!.residentBytes);
    const main = (m: MomentExplanation): MomentExplanation['arenas'][number] =>
      m.arenas.find((a) => a.arena === 0)!;
    const thread = (m: MomentExplanation): MomentExplanation['arenas'][number] =>
      m.arenas.find((a) => a.arena === 1)!;
    // Main arena: most of the free chunks' pages and the top's pages are gone ...
    expect(main(after!).causes['free-bins'].pages).toBeLessThan(
      main(before!).causes['free-bins'].pages / 5,
    );
    expect(main(after!).causes['free-top'].bytes).toBeLessThan(4096);
    // ... but not all: the first page of each free chunk and the pages shared with live blocks stay.
    expect(main(after!).causes['free-bins'].bytes).toBeGreaterThan(0);
    // The tcache's chunks are untouched.
    expect(main(after!).causes['free-tcache']).toEqual(main(before!).causes['free-tcache']);
    expect(main(after!).causes['free-tcache'].bytes).toBeGreaterThan(6 * 1000);
    // The thread's arena: its top is not trimmed by malloc_trim at all.
    expect(thread(after!).residentBytes).toBe(thread(before!).residentBytes);
    expect(thread(after!).causes['free-top'].bytes).toBeGreaterThan(100000);
  });

  it('thread-arenas.trace: eight arenas each keep 4 MiB below a session record; one arena fixes it', async () => {
    const [m] = await explainAt('thread-arenas.trace', ['end']);
    const holding = m!.arenas.filter((a) => a.arena > 0 && a.causes['free-bins'].bytes >= 4 * MiB);
    expect(holding).toHaveLength(8);
    // Each of those arenas is pinned by its worker's session record.
    const pins = m!.pins.filter((p) => p.arena > 0);
    expect(pins).toHaveLength(8);
    for (const p of pins) {
      expect(p.kind).toBe('live');
      expect(p.token).toMatch(/^w\dsession$/);
      expect(p.heldBytes).toBeGreaterThanOrEqual(4 * MiB);
    }
    expect(m!.thresholds).toHaveLength(0);
    const one = remedy(m!, 'M_ARENA_MAX=1');
    const two = remedy(m!, 'M_ARENA_MAX=2');
    expect(one.saved).toBeGreaterThan(27 * MiB);
    expect(two.saved).toBeGreaterThan(23 * MiB);
    expect(one.saved).toBeGreaterThan(two.saved);
    expect(notOffered(m!, 'M_MMAP_THRESHOLD=131072')).toBe(true);
  });
});
