/**
 * ptsim explain: its categories add up to the resident total exactly, its pin is the real highest
 * held chunk of the heap (found here by an independent walk), its remedies' figures are those of
 * separate replays with the same settings, and it names the right causes for the field reports.
 */

import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { explain } from '../../src/analysis/explain.js';
import { breakdown } from '../../src/analysis/breakdown.js';
import { findPins } from '../../src/analysis/pins.js';
import { St } from '../../src/core/chunks.js';
import { replayFile } from '../../src/replay/run-file.js';
import { MALLOPT_PARAMS } from '../../src/core/constants.js';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const dir = mkdtempSync(join(tmpdir(), 'ptsim-explain-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const TRACES = [
  join(ROOT, 'traces/field-report.trace'),
  join(ROOT, 'traces/thread-arenas.trace'),
  file('gen-a.trace', generateTrace({ seed: 'explain-a', events: 3000 })),
  file('gen-b.trace', generateTrace({ seed: 'explain-b', events: 3000 })),
  file('threads-a.trace', generateThreadedTrace({ seed: 'explain-t', events: 3000 })),
];

describe('the breakdown', () => {
  for (const path of TRACES) {
    it(`adds up to the resident total exactly: ${path.split('/').pop()}`, async () => {
      // At several moments, not only the end.
      for (const stopAfter of [50, 500, 1500, undefined]) {
        const run = await replayFile(path, { cores: 2, stopAfter });
        const r = run.replayer!;
        const b = breakdown(r.process);
        expect(b.residentBytes).toBe(r.kernel.residentPages * 4096);
        expect(b.residentPages).toBe(r.kernel.residentPages);
        // What is mapped but not resident is never negative, in all and for each cause.
        expect(b.mappedBytes).toBeGreaterThanOrEqual(b.residentBytes);
        for (const c of Object.values(b.causes))
          expect(c.mappedBytes).toBeGreaterThanOrEqual(c.bytes);
      }
    });
  }
});

describe('the pin', () => {
  for (const path of TRACES) {
    it(`is the highest chunk below the top that is not free in a bin: ${path.split('/').pop()}`, async () => {
      const run = await replayFile(path, { cores: 2 });
      const s = run.replayer!.process;
      const ck = s.ck;
      // An independent walk: every chunk of the main heap, sorted by address.
      const chunks: number[] = [];
      for (let h = 0; h < ck.highWater; h++) {
        const a = ck.addr[h]!;
        if (
          ck.state[h] === St.DEAD ||
          ck.state[h] === St.BINHDR ||
          a < s.kernel.brkBase ||
          a >= s.kernel.brkEnd
        )
          continue;
        chunks.push(h);
      }
      chunks.sort((x, y) => ck.addr[x]! - ck.addr[y]!);
      const topAt = chunks.indexOf(s.main.top);
      let expected = -1;
      for (let i = topAt - 1; i >= 0; i--) {
        const h = chunks[i]!;
        if (ck.state[h] !== St.BINNED && ck.size[h]! > 16) {
          expected = h;
          break;
        }
      }
      const pin = findPins(s).find((p) => p.arena === 0);
      if (expected < 0) expect(pin).toBeUndefined();
      else expect(pin?.chunk).toBe(expected);
    });
  }
});

describe('the remedies', () => {
  it('give the figures of separate replays with the same settings', async () => {
    for (const path of [TRACES[0]!, TRACES[2]!, TRACES[4]!]) {
      const ex = await explain(path, { settings: { cores: 2 }, at: ['end'], parallel: 1 });
      const m = ex.moments[0]!;
      for (const rem of m.remedies) {
        if (rem.id === 'malloc_trim') continue;
        const settings =
          rem.id === 'tcache_off'
            ? { cores: 2, extraTunables: 'glibc.malloc.tcache_count=0' }
            : {
                cores: 2,
                mallopts: [
                  [
                    MALLOPT_PARAMS[rem.setting.split('=')[0]!]!,
                    Number(rem.setting.split('=')[1]),
                  ] as [number, number],
                ],
              };
        const run = await replayFile(path, settings);
        const s = run.replayer!.finish();
        expect({ id: rem.id, rss: rem.rss, peak: rem.peakRss }).toEqual({
          id: rem.id,
          rss: s.rss,
          peak: s.peakRss,
        });
      }
    }
  });
});

describe('the field reports', () => {
  it('the dynamic mmap threshold and a pinned top: explained as such', async () => {
    const ex = await explain(TRACES[0]!, { settings: {}, at: ['end'], parallel: 1 });
    const m = ex.moments[0]!;
    expect(m.causes[0]!.cause).toBe('free-bins');
    expect(m.thresholds[0]).toMatchObject({
      event: 1,
      cause: 'dynamic threshold: free of an mmapped block',
      oldMmapThreshold: 131072,
      newMmapThreshold: 0x201000,
      heapAllocationsSince: 4,
    });
    expect(m.pins[0]).toMatchObject({ arena: 0, kind: 'live', token: 'config', bornEvent: 6 });
    expect(m.pins[0]!.heldBytes).toBeGreaterThanOrEqual(8 << 20);
    const best = m.remedies[0]!;
    expect(['mmap_threshold', 'trim_threshold', 'malloc_trim']).toContain(best.id);
    expect(best.saved).toBeGreaterThanOrEqual(8 << 20);
  });

  it('per-thread arenas: the free memory sits in eight arenas and one arena fixes it', async () => {
    const ex = await explain(TRACES[1]!, { settings: { cores: 4 }, at: ['end'], parallel: 1 });
    const m = ex.moments[0]!;
    const arenasHolding = m.arenas.filter(
      (a) => a.arena > 0 && a.causes['free-bins'].bytes >= 4 << 20,
    );
    expect(arenasHolding).toHaveLength(8);
    const one = m.remedies.find((r) => r.id === 'arena_max_1')!;
    expect(one.saved).toBeGreaterThan(27 << 20);
  });
});
