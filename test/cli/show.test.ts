/**
 * `ptsim show` as a user runs it: the JSON's live blocks at an event equal those the native
 * replayer's fidelity log implies there (arena, heap, off, usable: the log's own meaning), plain
 * text when piped, colour when asked, and one line for each mistake.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { HeapView } from '../../src/analysis/heap-view.js';
import { readTraceText } from '../../src/trace/reader.js';
import { Op } from '../../src/trace/types.js';
import { inProcess } from '../helpers/cli.js';
import { runNative } from '../helpers/native.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const MAIN = join(ROOT, 'dist/bin/main.js');
const dir = mkdtempSync(join(tmpdir(), 'ptsim-show-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function ptsim(
  args: string[],
  env: Record<string, string> = {},
): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('ptsim show --json agrees with real glibc', () => {
  // Several threads, so several arenas and heaps.
  const TRACE = join(ROOT, 'traces/thread-arenas.trace');
  const text = readFileSync(TRACE, 'utf8');
  const evs: Array<{ op: number; n1: number; in: string; out: string }> = [];
  readTraceText(text, 'trace', {
    header: () => {},
    event: (ev) => evs.push({ op: ev.op, n1: ev.n1, in: ev.in, out: ev.out }),
  });

  it.each([40, Math.floor(evs.length / 2), evs.length - 1])(
    'the live blocks after event %i',
    (at) => {
      const nat = runNative(TRACE, { peak: false });
      const live = new Map<string, string>();
      for (let i = 0; i <= at; i++) {
        const ev = evs[i]!;
        const rec = nat.events[i]!;
        if (ev.op === Op.free || ev.op === Op.realloc) live.delete(ev.in);
        if (rec['arena'] !== undefined)
          live.set(
            ev.out,
            `${ev.out} ${JSON.stringify([rec['arena'], rec['heap'], rec['off'], rec['usable']])}`,
          );
      }
      const r = ptsim(['show', TRACE, '--at', String(at), '--json']);
      expect(r.code).toBe(0);
      const view = JSON.parse(r.out) as HeapView;
      expect(view.event).toBe(at);
      const got = view.chunks
        .filter((c) => c.state === 'live')
        .map((c) => `${c.token} ${JSON.stringify([c.arena, c.heap, c.off, c.usable])}`)
        .sort();
      expect(got.length).toBeGreaterThan(0);
      expect(got).toEqual([...live.values()].sort());
      // More than one arena has blocks by then.
      if (at === evs.length - 1)
        expect(new Set(view.chunks.map((c) => c.arena)).size).toBeGreaterThan(1);
    },
  );
});

describe('ptsim show in a terminal and in a pipe', () => {
  const t = join(dir, 'small.trace');
  writeFileSync(t, '1 malloc 24 a\n1 malloc 24 b\n1 free a\n1 malloc 200000 big\n');

  it('prints pwndbg-style views, plain when piped', () => {
    const heap = ptsim(['show', t, '--at', '2']);
    expect(heap.code).toBe(0);
    expect(heap.out).not.toContain('\x1b[');
    // a's 32-byte chunk went to the tcache; its pointer is 0x2a0 past the initial break.
    expect(heap.out).toContain(
      'Free chunk (tcachebins) | PREV_INUSE\nAddr: 0x555555559290\nSize: 0x20 (with flag bits: 0x21)',
    );
    const bins = ptsim(['show', t, '--at', '2', 'tcache']);
    expect(bins.out).toContain('0x20 [  1]: 0x5555555592a0 ◂— 0');
    const maps = ptsim(['show', t, 'maps']);
    // The heap: 132 KiB from the initial break; big: 200,000 bytes + 16 of header, page-rounded.
    expect(maps.out).toMatch(
      /^555555559000-55555557a000 rw-p 00000000 00:00 0 +\[heap\]\nSize: +132 kB\n/m,
    );
    expect(maps.out).toMatch(/rw-p 00000000 00:00 0 +mmapped chunk\nSize: +196 kB\nRss: +196 kB/);
  });

  it('lists the fastbins where the release has them, and says when it has none', async () => {
    // Ten 24-byte blocks freed: seven fill the tcache's 0x20 list, three go to the 0x20 fastbin
    // (the differential suite's tcache and fastbin cases); glibc 2.43 has no fastbins.
    const f = join(dir, 'fast.trace');
    const lines = [];
    for (let i = 0; i < 10; i++) lines.push(`1 malloc 24 p${i}`);
    for (let i = 0; i < 10; i++) lines.push(`1 free p${i}`);
    writeFileSync(f, lines.join('\n') + '\n');
    const now = await inProcess(['show', f, 'fastbins']);
    expect(now.code).toBe(0);
    // p7, p8 and p9's chunks, 0x20 apart after the tcache's 0x290 bytes, the last freed first.
    expect(now.out).toContain(
      '\n0x20: 0x5555555593b0 —▸ 0x555555559390 —▸ 0x555555559370 ◂— 0\n0x30: 0x0\n',
    );
    const later = await inProcess(['show', f, 'fastbins', '--glibc', '2.43']);
    expect(later.code).toBe(0);
    expect(later.out).toContain('fastbins\nnone in this release (glibc 2.43 removed them)\n');
    expect(later.out).not.toContain('0x20:');
    const bins = await inProcess(['show', f, 'bins', '--glibc', '2.43']);
    expect(bins.out).toContain('fastbins\nnone in this release (glibc 2.43 removed them)\n');
    const json = await inProcess(['show', f, '--json', '--glibc', '2.43']);
    expect((JSON.parse(json.out) as HeapView).fastbins).toBe(false);
    expect((JSON.parse((await inProcess(['show', f, '--json'])).out) as HeapView).fastbins).toBe(
      true,
    );
  });

  it('colours with --color always, and never with NO_COLOR', () => {
    expect(ptsim(['show', t, '--color', 'always']).out).toContain('\x1b[');
    expect(ptsim(['show', t, '--color', 'auto'], { NO_COLOR: '1' }).out).not.toContain('\x1b[');
  });

  it('at the peak, the event after which RSS was highest', () => {
    const peak = JSON.parse(ptsim(['show', t, '--at', 'peak', '--json']).out) as HeapView;
    // The 200,000-byte block is mmapped and written in full: the peak is at its malloc, event 3.
    expect(peak.event).toBe(3);
  });

  it('ends each mistake in one line with status 2', () => {
    const far = ptsim(['show', t, '--at', '9']);
    expect(far.code).toBe(2);
    expect(far.err).toBe(
      `ptsim: --at 9: the trace has 4 events: give end, peak or an event index from 0 to 3\n`,
    );
    const view = ptsim(['show', t, 'vis']);
    expect(view.code).toBe(2);
    expect(view.err.split('\n')[0]).toBe(
      "ptsim: unknown view 'vis' (views: heap, bins, tcache, fastbins, arenas, chunks, maps)",
    );
    const at = ptsim(['show', t, '--at', 'later']);
    expect(at.code).toBe(2);
    expect(at.err.split('\n')[0]).toBe(
      "ptsim: --at takes end, peak or an event index (0 or more), not 'later'",
    );
    const colour = ptsim(['show', t, '--color', 'sometimes']);
    expect(colour.code).toBe(2);
  });
});
