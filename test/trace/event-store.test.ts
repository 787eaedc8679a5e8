/**
 * The trace held in memory for explain's replays, and the checkpoints they resume from: a stored
 * trace delivers exactly the events its reader delivered (every field, token numbers included),
 * from its start or from any event; its edits deliver the events in their new order, numbered
 * again as editedIndex says; and a replay resumed from a checkpoint ends exactly as the replay it
 * was taken from, which the what-ifs run on copies of never changes.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpoint } from '../../src/analysis/checkpoint.js';
import { breakdown } from '../../src/analysis/breakdown.js';
import {
  TraceStore,
  deliverStored,
  earliestMove,
  earliestMoves,
  editedIndex,
  lastUse,
  momentIndex,
  storedEvent,
  type Edits,
  type StoredTrace,
} from '../../src/trace/event-store.js';
import { libcFree } from '../../src/core/api.js';
import { openTrace } from '../../src/import/index.js';
import { replayFile } from '../../src/replay/run-file.js';
import type { Replayer } from '../../src/replay/replay.js';
import { SiteTable } from '../../src/trace/site-table.js';
import { Op, type TraceEvent, type TraceSink } from '../../src/trace/types.js';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const dir = mkdtempSync(join(tmpdir(), 'ptsim-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const HEAPTRACK = [
  'v 10400 3',
  'x 9 /tmp/ht/p',
  'I 1000 5e2922',
  'R 3a0',
  '+ 18 8 55b476ac31d0',
  '+ 190 9 55b476ac32b0',
  'c 1',
  'R 3b8',
  '- 55b476ac31d0',
  '+ c8 a 55b476ac34b0',
  'c 2a',
  '- 55b476ac32b0',
  '- 55b476ac34b0',
  'R 3b0',
  '',
].join('\n');

const TRACES = [
  join(ROOT, 'traces/field-report.trace'),
  join(ROOT, 'traces/thread-arenas.trace'),
  join(ROOT, 'traces/gcc-cc1.trace.gz'),
  file('gen.trace', generateTrace({ seed: 'store-a', events: 4000 })),
  file('threads.trace', generateThreadedTrace({ seed: 'store-t', events: 4000 })),
  // A recording's records among the events: touches of large blocks, samples.
  file('gen-touches.trace', generateTrace({ seed: 'store-r', events: 4000, touches: true })),
  // Comments among the events (the line numbers jump), and tokens without a key.
  file(
    'comments.trace',
    '# a header\n1 malloc 10 a\n# between\n\n1 malloc 20 0x10\n1 free a\n1 realloc 0x10 30 b\n1 free b\n',
  ),
  file('h.raw', HEAPTRACK),
  // Touch records and samples, one before the first event.
  file(
    'records.trace',
    [
      '# touches recorded',
      '#:rss anon=0',
      '1 malloc 10000 a',
      '#:touch a 0-1',
      '#:rss anon=8192 heap=8192',
      '1 malloc 20 b',
      '#:rss @3 total=3698688',
      '1 free b',
      '#:touch a 2',
      '1 free a',
      '#:rss @5 anon=4096 total=7340032 mark=end',
      '',
    ].join('\n'),
  ),
  // A recording whose touch records stop covering every page part way (the replay's model changes
  // there: a stored copy must change it at the same event).
  file(
    'incomplete.trace',
    [
      '# touches recorded',
      '1 malloc 10000 a',
      '1 malloc 50000 c',
      '#:touch a 0',
      '1 free a',
      '# touches incomplete from here: pagemap could not be read',
      '1 malloc 20000 b',
      '1 free c',
      '1 free b',
      '',
    ].join('\n'),
  ),
  // Tokens that are not ASCII.
  file('utf8.trace', '1 malloc 10 café\n1 malloc 20 ü\n1 free café\n1 realloc ü 40 naïve\n'),
];

/** A copy of each event and record a reader (or a stored trace) delivers, in order. */
async function eventsOf(deliver: (sink: TraceSink) => Promise<unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  await deliver({
    header: () => {},
    event: (ev) => out.push({ ...ev }),
    touch: (rec) =>
      out.push({
        line: rec.line,
        token: rec.token,
        key: rec.key,
        id: rec.id,
        pages: [...rec.pages.slice(0, 2 * rec.ranges)],
        ranges: rec.ranges,
        maxPage: rec.maxPage,
      }),
    rss: (sample) => out.push({ rss: { ...sample } }),
    touchesIncomplete: (line, detail) => out.push({ incomplete: line, detail }),
    recordsEnd: () => out.push('end'),
  });
  return out;
}

/** Only the events of what eventsOf gives. */
function only(xs: unknown[]): TraceEvent[] {
  return xs.filter((x): x is TraceEvent => typeof x === 'object' && x !== null && 'op' in x);
}

async function store(path: string): Promise<StoredTrace> {
  const s = new TraceStore(1e9);
  const run = await replayFile(path, { cores: 2, tee: s });
  expect(run.failure).toBeNull();
  const t = s.finish();
  expect(t).not.toBeNull();
  return t!;
}

describe('a stored trace', () => {
  for (const path of TRACES) {
    it(`delivers what its reader delivered: ${path.split('/').pop()}`, async () => {
      const t = await store(path);
      const read = await eventsOf((sink) => openTrace(path, sink));
      const again = await eventsOf((sink) => deliverStored(t, sink));
      expect(again.length).toBe(read.length);
      expect(again).toEqual(read);
      // From an event on, too (the texts, reallocs and records before it are counted right).
      const events = only(read);
      const from = Math.floor(events.length * 0.6);
      const tail = await eventsOf((sink) => deliverStored(t, sink, undefined, from));
      expect(tail).toEqual(read.slice(read.indexOf(events[from]!)));
      // And a replay of it is the replay of the file.
      const a = (await replayFile(path, { cores: 2 })).replayer!.finish();
      const b = (
        await replayFile(path, { cores: 2, source: (sink) => deliverStored(t, sink) })
      ).replayer!.finish();
      expect(b).toEqual(a);
    });
  }

  it("keeps the call stacks: each event's and the site records, edited or not", async () => {
    const path = join(ROOT, 'traces/sites.trace');
    const t = await store(path);
    /** Each event's stack as the site table names it, from a delivery. */
    const stacks = async (deliver: (sink: TraceSink) => Promise<unknown>): Promise<string[]> => {
      const table = new SiteTable();
      const evs: Array<[number, string]> = [];
      await deliver({
        header: () => {},
        event: (ev) => {
          table.noteEvent(ev);
          evs.push([ev.index, ev.out]);
        },
        site: (rec) => table.add(rec),
      });
      return evs.map(
        ([i, token]) =>
          `${token} ${table
            .frames(table.siteOfEvent(i))
            .map((f) => f.symbols.map((x) => x.fn).join('/'))
            .join(' < ')}`,
      );
    };
    const read = await stacks((sink) => openTrace(path, sink));
    expect(read[40]).toBe('config xmalloc < load_config < main');
    expect(await stacks((sink) => deliverStored(t, sink))).toEqual(read);
    // Moved, the allocation keeps its stack; the trims inserted have none.
    const move = earliestMove(t, 40)!;
    const moved = await stacks((sink) => deliverStored(t, sink, { move, trimEvery: 10 }));
    expect(moved[editedIndex({ move, trimEvery: 10 }, 40)]).toBe(read[40]);
    // The first trim follows event 9 of the trace as given.
    expect(moved[editedIndex({ move, trimEvery: 10 }, 9) + 1]).toBe(' ');
    // Neither the 40 frees nor the 8 trims have a stack.
    expect(moved.filter((x) => x === ' ')).toHaveLength(48);
  });

  it('gives up beyond its limit, and on events it cannot keep', () => {
    const s = new TraceStore(2);
    const ev: TraceEvent = {
      index: 0,
      line: 1,
      time: -1,
      tid: 1,
      op: Op.malloc,
      n1: 1,
      n2: 0,
      param: 0,
      in: '',
      out: 'a',
      inKey: 0,
      outKey: -1,
      inId: -1,
      outId: 0,
    };
    s.add(ev);
    s.add({ ...ev, index: 1, line: 2, out: 'b', outId: 1 });
    expect(s.finish()?.count).toBe(2);
    s.add({ ...ev, index: 2, line: 3, out: 'c', outId: 2 });
    expect(s.finish()).toBeNull();
    const odd = new TraceStore(10);
    odd.add({ ...ev, in: 'x', inKey: -1 });
    expect(odd.finish()).toBeNull();
  });
});

describe('edits', () => {
  it('insert malloc_trim(0) every N events, numbered as editedIndex says', async () => {
    const path = TRACES[3]!;
    const t = await store(path);
    const read = only(await eventsOf((sink) => openTrace(path, sink)));
    const edits: Edits = { trimEvery: 7 };
    const got = only(await eventsOf((sink) => deliverStored(t, sink, edits)));
    expect(got.map((e) => e.index)).toEqual(got.map((_, k) => k));
    expect(got.length).toBe(read.length + Math.floor(read.length / 7));
    for (const e of read)
      expect({ ...got[editedIndex(edits, e.index)]!, index: e.index }).toEqual(e);
    const trims = got.filter((e) => e.op === Op.mallocTrim);
    // After events 6, 13, 20, ...: on the thread and line of the event before.
    expect(trims.length).toBe(Math.floor(read.length / 7));
    expect(trims[0]).toMatchObject({ index: 7, n1: 0, tid: read[6]!.tid, line: read[6]!.line });
  });

  it('move an allocation earlier, with a number of its own that its free takes', async () => {
    const text = [
      '1 malloc 100 a',
      '1 malloc 100 b',
      '1 free a',
      '1 malloc 100 c',
      '1 malloc 30 pin',
      '1 free b',
      '1 free c',
      '1 free pin',
      '',
    ].join('\n');
    const path = file('move.trace', text);
    const t = await store(path);
    const move = earliestMove(t, 4)!;
    expect(move).toMatchObject({ from: 4, to: 0, takenAt: 7 });
    expect(move.id).toBeGreaterThan(t.maxId);
    const got = only(await eventsOf((sink) => deliverStored(t, sink, { move })));
    expect(got.map((e) => `${e.op === Op.free ? 'free ' + e.in : 'malloc ' + e.out}`)).toEqual([
      'malloc pin',
      'malloc a',
      'malloc b',
      'free a',
      'malloc c',
      'free b',
      'free c',
      'free pin',
    ]);
    expect(got.map((e) => e.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (let i = 0; i < 8; i++) expect(got[editedIndex({ move }, i)]!.line).toBe(i + 1);
    expect(got[0]!.outId).toBe(move.id);
    expect(got[7]!.inId).toBe(move.id);
    // The replay of it is the replay of the same trace written in that order.
    const moved = file(
      'moved.trace',
      ['1 malloc 30 pin', ...text.split('\n').filter((l) => l !== '1 malloc 30 pin')].join('\n'),
    );
    const a = (await replayFile(moved, { cores: 2 })).replayer!.finish();
    const b = (
      await replayFile(path, { cores: 2, source: (sink) => deliverStored(t, sink, { move }) })
    ).replayer!.finish();
    expect({ ...b, peakEvent: 0 }).toEqual({ ...a, peakEvent: 0 });
  });

  it('move an allocation with touch records: they name it by its new number', async () => {
    const text = [
      '# touches recorded',
      '1 malloc 100 a',
      '1 malloc 8000 big',
      '#:touch big 0',
      '1 free a',
      '1 malloc 5000 pin',
      '#:touch pin 0-1',
      '#:rss anon=20480',
      '1 free big',
      '#:touch pin 1',
      '1 free pin',
      '',
    ].join('\n');
    const path = file('move-touch.trace', text);
    const t = await store(path);
    const move = earliestMove(t, 3)!;
    expect(move).toMatchObject({ from: 3, to: 0, takenAt: 5 });
    const got = await eventsOf((sink) => deliverStored(t, sink, { move }));
    // The records after the moved allocation follow the event before its old place.
    const touches = got.filter(
      (x): x is { token: string; id: number } =>
        typeof x === 'object' && x !== null && 'pages' in x,
    );
    expect(touches.map((x) => [x.token, x.id === move.id])).toEqual([
      ['big', false],
      ['pin', true],
      ['pin', true],
    ]);
    // The same as the trace written in that order, in the recorded touch model.
    const moved = file(
      'moved-touch.trace',
      text
        .split('\n')
        .filter((l) => l !== '1 malloc 5000 pin')
        .join('\n')
        .replace('# touches recorded\n', '# touches recorded\n1 malloc 5000 pin\n'),
    );
    const a = (await replayFile(moved, { cores: 2 })).replayer!.finish();
    const b = (
      await replayFile(path, { cores: 2, source: (sink) => deliverStored(t, sink, { move }) })
    ).replayer!.finish();
    expect(a.touch).toBe('recorded');
    expect({ ...b, peakEvent: 0 }).toEqual({ ...a, peakEvent: 0 });
  });

  it('insert a free after an event: its last use by the touch records, later records of it left out', async () => {
    const text = [
      '# touches recorded',
      '1 malloc 8000 big',
      '#:touch big 0',
      '2 malloc 5000 pin',
      '#:touch pin 0',
      '1 malloc 100 a',
      '#:touch pin 1',
      '1 free a',
      '1 free big',
      '#:touch pin 0-1',
      '1 malloc 200 b',
      '',
    ].join('\n');
    const path = file('free-touch.trace', text);
    const t = await store(path);
    const pin = storedEvent(t, 1);
    // Named last by the records after event 2 (up to event 3), by those after event 4 (up to 5).
    expect(lastUse(t, 1, pin.id, 3)).toBe(2);
    expect(lastUse(t, 1, pin.id, 5)).toBe(4);
    const free = { after: 2, born: 1, tid: 2, key: pin.key, id: pin.id, token: pin.token };
    const edits: Edits = { free };
    const got = await eventsOf((sink) => deliverStored(t, sink, edits));
    const evs = only(got);
    expect(evs.map((e) => e.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(evs[3]).toMatchObject({ op: Op.free, tid: 2, in: 'pin', inId: pin.id });
    // The trace's events keep their lines, one place later after the free.
    expect([0, 1, 2, 3, 4, 5].map((i) => evs[editedIndex(edits, i)]!.line)).toEqual([
      2, 4, 6, 8, 9, 11,
    ]);
    expect(momentIndex(edits, 2)).toBe(3);
    expect(momentIndex(edits, 5)).toBe(6);
    // The record of pin after the free is gone; those before it stay.
    const touches = got.filter(
      (x): x is { token: string } => typeof x === 'object' && x !== null && 'pages' in x,
    );
    expect(touches.map((x) => x.token)).toEqual(['big', 'pin', 'pin']);
    // The same as the trace written with the free, and without the record after it.
    const lines = text.split('\n');
    lines.splice(7, 0, '2 free pin');
    lines.splice(lines.indexOf('#:touch pin 0-1'), 1);
    const freed = file('freed-touch.trace', lines.join('\n'));
    const a = (await replayFile(freed, { cores: 2 })).replayer!.finish();
    const b = (
      await replayFile(path, { cores: 2, source: (sink) => deliverStored(t, sink, edits) })
    ).replayer!.finish();
    expect(a.touch).toBe('recorded');
    expect(a.events).toBe(7);
    expect({ ...b, peakEvent: 0 }).toEqual({ ...a, peakEvent: 0 });
  });

  it('move no further back than the thread started, or than the token was last named', async () => {
    const text = [
      '1 malloc 10 x',
      '2 malloc 10 y',
      '1 free x',
      '2 exit',
      '2 malloc 10 z',
      '1 malloc 10 x',
      '2 malloc 10 w',
      '',
    ].join('\n');
    const t = await store(file('limits.trace', text));
    // Thread 2's second life starts at event 4.
    expect(earliestMove(t, 6)).toMatchObject({ to: 4 });
    // x was freed at event 2.
    expect(earliestMove(t, 5)).toMatchObject({ to: 3 });
    // z is the first event of its thread's life: nowhere to go.
    expect(earliestMove(t, 4)).toBeNull();
    // The same with pointers for tokens (keys: the columns are read, not the events).
    const keyed = await store(
      file(
        'limits-keyed.trace',
        text.replace(
          / ([xyzw])$/gm,
          (_m, c: string) => ` 0x${(0x1000 + c.charCodeAt(0)).toString(16)}`,
        ),
      ),
    );
    expect(earliestMove(keyed, 6)).toMatchObject({ to: 4 });
    expect(earliestMove(keyed, 5)).toMatchObject({ to: 3 });
    expect(earliestMove(keyed, 4)).toBeNull();
    // Together, in one scan: the same.
    expect(earliestMoves(t, [6, 5, 4, 6])).toEqual(
      new Map([
        [6, earliestMove(t, 6)],
        [5, earliestMove(t, 5)],
        [4, null],
      ]),
    );
  });

  it('move several allocations in one scan as each alone, threads, exits, reallocs and all', async () => {
    // Most tokens pointers (keyed), every fifth a name; threads that exit and come back.
    for (const seed of ['moves-a', 'moves-b', 'moves-c']) {
      const text = generateThreadedTrace({ seed, events: 4000 })
        .split('\n')
        .map((line) =>
          line.startsWith('#')
            ? line
            : line.replace(/\bb(\d+)\b/g, (name, n: string) =>
                Number(n) % 5 === 0 ? name : `0x${(0x10000 + 16 * Number(n)).toString(16)}`,
              ),
        )
        .join('\n');
      const t = await store(file(`${seed}.trace`, text));
      const allocations: number[] = [];
      for (let i = 0; i < t.count; i++) {
        const op = storedEvent(t, i).op;
        if (op === Op.malloc || op === Op.calloc || op === Op.realloc) allocations.push(i);
      }
      const picked = allocations.filter((_, k) => k % Math.ceil(allocations.length / 25) === 0);
      expect(picked.length).toBeGreaterThan(10);
      const together = earliestMoves(t, picked);
      const moved = picked.filter((i) => earliestMove(t, i) !== null);
      expect(moved.length).toBeGreaterThan(3);
      for (const i of picked)
        expect(together.get(i), `${seed}: allocation ${i}`).toEqual(earliestMove(t, i));
    }
  });
});

/** The trace of TRACES with this file name. */
function named(n: string): string {
  return TRACES.find((p) => p.endsWith(`/${n}`))!;
}

/** A sink that hands everything to a replay. */
function into(r: Replayer): TraceSink {
  return {
    header: () => {},
    event: (ev) => r.event(ev),
    touch: (rec) => r.touch(rec),
    rss: (sample) => r.rss(sample),
    recordsEnd: () => r.recordsEnd(),
  };
}

describe('checkpoints', () => {
  it('resume to the same end, and what is done on a copy leaves the original alone', async () => {
    for (const path of [
      'thread-arenas.trace',
      'gen.trace',
      'threads.trace',
      'records.trace',
      'gen-touches.trace',
    ].map(named)) {
      const t = await store(path);
      const k = Math.floor(t.count / 3);
      let copy: Replayer | null = null;
      const run = await replayFile(path, {
        cores: 2,
        observe: (ev, r) => {
          if (ev.index === k) copy = checkpoint(r);
        },
      });
      const whole = run.replayer!;
      const end = whole.finish();
      const wholeBreakdown = breakdown(whole.process);
      // A what-if on another copy: every live chunk freed.
      const other = checkpoint(whole);
      for (let h = 0; h < other.process.ck.highWater; h++)
        if (other.process.ck.state[h] === 0 && other.process.ck.born[h]! >= 0) {
          try {
            libcFree(other.process, h);
          } catch {
            // glibc's own chunks among them: not the point.
          }
        }
      expect(whole.finish()).toEqual(end);
      expect(breakdown(whole.process)).toEqual(wholeBreakdown);
      // The copy taken a third of the way resumes to the very same end.
      const resumed: Replayer = copy!;
      resumed.observeWith(undefined);
      await deliverStored(t, into(resumed), undefined, k + 1);
      expect(resumed.finish()).toEqual(end);
      expect(breakdown(resumed.process)).toEqual(wholeBreakdown);
    }
  });

  it('a copy taken right after a sample shows its observer each later event as the replay did', async () => {
    for (const path of ['records.trace', 'gen-touches.trace'].map(named)) {
      const t = await store(path);
      // The events a sample follows (the first few).
      const after = new Set(
        t.records
          .filter((g) => g.after >= 0 && g.records.some((x) => x.kind === 'rss'))
          .map((g) => g.after)
          .slice(0, 4),
      );
      expect(after.size).toBeGreaterThan(0);
      const seen = (ev: TraceEvent, r: Replayer): string =>
        `${ev.index} ${r.eventSample < 0 ? '-' : r.measured.anonOf(r.eventSample)} ${r.kernel.residentPages} ${r.lastBlock}`;
      const whole: string[] = [];
      const copies = new Map<number, Replayer>();
      const run = await replayFile(path, {
        cores: 2,
        observe: (ev, r) => {
          whole.push(seen(ev, r));
          if (after.has(ev.index)) copies.set(ev.index, checkpoint(r));
        },
      });
      expect(run.failure).toBeNull();
      expect(copies.size).toBe(after.size);
      for (const [k, copy] of copies) {
        const resumed: string[] = [];
        copy.observeWith((ev, r) => resumed.push(seen(ev, r)));
        await deliverStored(t, into(copy), undefined, k + 1);
        expect(resumed).toEqual(whole.slice(k + 1));
      }
    }
  });
});
