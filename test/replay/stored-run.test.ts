/**
 * The replay without event objects: of a stored trace (Replayer.runStored, through the replay
 * sink's runStored and deliverStored), and of the parse worker's batches (Replayer.runBatch,
 * through EventBatch.deliver): the same replay as the one that hands every event to event(). Each
 * trace is replayed three ways, from the file in the calling thread (every event through
 * event()), from its stored copy and through the parse worker, and the three must end alike: the
 * summary (RSS, peak and its event, mallinfo2, system calls, live blocks, warnings, glibc's abort),
 * the warnings' texts and the message of a replay that stops.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  TraceStore,
  deliverStored,
  earliestMove,
  storedReadEvent,
  type Edits,
  type StoredTrace,
} from '../../src/trace/event-store.js';
import * as Reader from '../../src/trace/reader.js';
import { replayFile } from '../../src/replay/run-file.js';
import { Op, type TraceEvent, type TraceSink } from '../../src/trace/types.js';
import type { Replayer } from '../../src/replay/replay.js';
import { generateTrace } from '../gen/generate.js';
import { generateThreadedTrace } from '../gen/generate-threads.js';

// The parse worker runs compiled JavaScript: its reader is dist's (`npm test` builds first).
const worker = (await import(
  new URL('../../dist/trace/reader.js', import.meta.url).href
)) as typeof Reader;

const dir = mkdtempSync(join(tmpdir(), 'ptsim-stored-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function file(text: string): string {
  const p = join(dir, `t${files++}.trace`);
  writeFileSync(p, text);
  return p;
}

/**
 * The generators name blocks b0, b1, ...: tokens without a key, which runStored leaves to
 * event(). Here most become pointers (keys), as in a recorded trace; every `keep`-th stays a
 * name, so that both ways take turns.
 */
function withPointers(text: string, keep = 7): string {
  return text
    .split('\n')
    .map((line) =>
      line.startsWith('#') && !line.startsWith('#:touch')
        ? line
        : line.replace(/\bb(\d+)\b/g, (name, n: string) =>
            Number(n) % keep === 0 ? name : `0x${(0x10000 + 16 * Number(n)).toString(16)}`,
          ),
    )
    .join('\n');
}

async function stored(path: string): Promise<StoredTrace> {
  const s = new TraceStore(1e9);
  await Reader.readTraceFile(path, s);
  const t = s.finish();
  expect(t).not.toBeNull();
  return t!;
}

interface Outcome {
  summary: unknown;
  failure: string | null;
  warnings: string[];
  /** Events replayed without event objects (runStored or runBatch). */
  fast: number;
  /** Every chunk of the model at the end: address, size and state. */
  heap: string;
}

type Way = 'events' | 'stored' | 'batches';

/** Every chunk the model holds, where it is, its size and state: the same replay leaves the same heap. */
function heapOf(r: Replayer): string {
  const ck = r.process.ck;
  const out: string[] = [];
  for (let h = 0; h < ck.highWater; h++) out.push(`${ck.addr[h]}:${ck.size[h]}:${ck.state[h]}`);
  return out.join(' ');
}

/** The replay of the file one of the three ways. */
async function replayed(path: string, way: Way, glibc?: string): Promise<Outcome> {
  const out: Outcome = { summary: null, failure: null, warnings: [], fast: 0, heap: '' };
  const t = way === 'stored' ? await stored(path) : null;
  const r = await replayFile(path, {
    cores: 2,
    ...(glibc !== undefined ? { glibc } : {}),
    onWarning: (w) => out.warnings.push(w),
    source: (sink) => {
      if (way === 'events') {
        // Every event through event(): the calling thread's reader, which has no batches.
        sink.runStored = undefined;
        sink.runBatch = undefined;
        return Reader.streamTraceFile(path, path, sink);
      }
      const runS = sink.runStored!.bind(sink);
      sink.runStored = (st, at, stop) => {
        const from = at.i;
        try {
          runS(st, at, stop);
        } finally {
          out.fast += at.i - from;
        }
      };
      const runB = sink.runBatch!.bind(sink);
      sink.runBatch = (b, at) => {
        const from = at.index;
        try {
          runB(b, at);
        } finally {
          out.fast += at.index - from;
        }
      };
      return way === 'stored'
        ? deliverStored(t!, sink)
        : worker.readTraceFile(path, sink, { worker: true });
    },
  });
  out.summary = r.replayer?.finish() ?? null;
  out.failure = r.failure?.message ?? null;
  out.heap = r.replayer === null ? '' : heapOf(r.replayer);
  return out;
}

/** The replay of the trace every event through event(), then from its stored copy and in batches. */
async function threeWays(text: string, glibc?: string): Promise<[Outcome, Outcome, Outcome]> {
  const path = file(text);
  return [
    await replayed(path, 'events', glibc),
    await replayed(path, 'stored', glibc),
    await replayed(path, 'batches', glibc),
  ];
}

/** Checks that the three ways end alike; returns the stored and batch ways. */
async function expectSame(text: string, glibc?: string): Promise<[Outcome, Outcome]> {
  const [a, b, c] = await threeWays(text, glibc);
  for (const x of [b, c]) {
    expect(x.summary).toEqual(a.summary);
    expect(x.failure).toBe(a.failure);
    expect(x.warnings).toEqual(a.warnings);
    expect(x.heap).toBe(a.heap);
  }
  expect(a.fast).toBe(0);
  return [b, c];
}

const events = (text: string): number => text.split('\n').filter((l) => /^\d/.test(l)).length;

describe('the replay without event objects', () => {
  for (const seed of ['r1', 'r2', 'r3', 'r4']) {
    it(`ends as the replay of the file: generated trace ${seed}`, async () => {
      const text = withPointers(generateTrace({ seed, events: 4000, touches: seed === 'r2' }));
      // Most events took the way without event objects (every seventh token is a name).
      for (const out of await expectSame(text))
        expect(out.fast).toBeGreaterThan(events(text) * 0.5);
    });
  }

  // Other releases: 2.28's tcache without its double-free check, 2.43's lazy tcache without
  // fastbins (core/profile.ts).
  for (const glibc of ['2.28', '2.31', '2.43']) {
    it(`ends as the replay of the file: glibc ${glibc}`, async () => {
      const text = withPointers(generateTrace({ seed: `g${glibc}`, events: 3000 }));
      for (const out of await expectSame(text, glibc)) {
        expect(out.summary).toMatchObject({ glibc });
        expect(out.fast).toBeGreaterThan(events(text) * 0.5);
      }
    });
  }

  for (const seed of ['t1', 't2']) {
    it(`ends as the replay of the file: threads, ${seed}`, async () => {
      const text = withPointers(
        generateThreadedTrace({ seed, events: 4000, maxThreads: 6, touches: seed === 't2' }),
      );
      for (const out of await expectSame(text))
        expect(out.fast).toBeGreaterThan(events(text) * 0.5);
    });
  }

  it('takes every common event of a trace of pointers', async () => {
    const text = withPointers(generateTrace({ seed: 'all', events: 3000, mallopts: false }), 1e9);
    const outs = await expectSame(text);
    const common = text
      .split('\n')
      .filter((l) => /^\d+ (malloc|calloc|memalign|free|realloc) /.test(l) && !/ 0$/.test(l));
    for (const out of outs) expect(out.fast).toBeGreaterThanOrEqual(common.length * 0.9);
  });

  const P = (n: number): string => `0x${(0x10000 + 16 * n).toString(16)}`;
  const lines = (...ls: string[]): string => ['# ptsim trace v1', ...ls, ''].join('\n');

  it('records the abort of a double free glibc detects, with its event and line', async () => {
    const [out] = await expectSame(
      lines(`1 malloc 24 ${P(1)}`, `1 malloc 24 ${P(2)}`, `1 free ${P(1)}`, `1 free ${P(1)}`),
    );
    expect(out.summary).toMatchObject({ abort: { event: 3, line: 5 } });
  });

  it('stops at a double free glibc does not detect, naming the line of the first free', async () => {
    // Seven frees fill the tcache; the chunk freed again is not at the top of its fastbin.
    const fill = [1, 2, 3, 4, 5, 6, 7].map((n) => `1 malloc 24 ${P(n)}`);
    const free = [1, 2, 3, 4, 5, 6, 7].map((n) => `1 free ${P(n)}`);
    const [out] = await expectSame(
      lines(
        ...fill,
        `1 malloc 24 ${P(8)}`,
        `1 malloc 24 ${P(9)}`,
        ...free,
        `1 free ${P(8)}`,
        `1 free ${P(9)}`,
        `1 free ${P(8)}`,
      ),
    );
    expect(out.failure).toMatch(/already freed at line 18/);
  });

  it('stops at a free of a token never allocated', async () => {
    const [out] = await expectSame(lines(`1 malloc 24 ${P(1)}`, `1 free ${P(5)}`));
    expect(out.failure).toMatch(/:3: free of 0x10050, which is not a live block/);
  });

  it('stops at a token returned again while live', async () => {
    const [out] = await expectSame(lines(`1 malloc 24 ${P(1)}`, `1 malloc 40 ${P(1)}`));
    expect(out.failure).toMatch(/:3: token 0x10010 is reused while still live/);
  });

  it('follows calls that fail in the model and tokens kept by a failed realloc', async () => {
    const huge = 2 ** 62;
    await expectSame(
      lines(
        `1 malloc 100 ${P(1)}`,
        `1 malloc ${huge} ${P(2)}`,
        `1 free ${P(2)}`,
        `1 realloc ${P(1)} ${huge} ${P(3)}`,
        `1 malloc 50 ${P(4)}`,
        `1 free ${P(4)}`,
        `1 free ${P(1)}`,
        `1 realloc 0 200 ${P(5)}`,
        `1 realloc ${P(5)} 0 0`,
        `1 malloc 30 ${P(6)}`,
      ),
    );
  });

  it('switches threads, starts new ones and follows exits', async () => {
    await expectSame(
      lines(
        `1 malloc 100 ${P(1)}`,
        `2 malloc 100 ${P(2)}`,
        `1 free ${P(2)}`,
        `2 realloc ${P(1)} 400 ${P(3)}`,
        `2 exit`,
        `1 free ${P(3)}`,
        `3 malloc 60 ${P(4)}`,
        `2 malloc 60 ${P(5)}`,
        `1 free ${P(4)}`,
        `2 free ${P(5)}`,
      ),
    );
  });
});

describe('RSS over time kept by the replay (Replayer.rssOverTime)', () => {
  /** The integral of RSS over time, as an observer of every event computes it. */
  async function observed(path: string, stopAfter?: number): Promise<unknown> {
    let area = 0;
    let first = -1;
    let last = -1;
    let lastRss = 0;
    await replayFile(path, {
      cores: 2,
      ...(stopAfter !== undefined ? { stopAfter } : {}),
      observe: (ev, r) => {
        const t = ev.time >= 0 ? ev.time : ev.index;
        if (last >= 0) area += lastRss * (t - last);
        else first = t;
        last = t;
        lastRss = r.kernel.residentPages * 4096;
      },
    });
    return { area, first, last, lastRss };
  }

  /** The same kept by the replay, read each of the three ways; checks that all agree. */
  async function kept(path: string, stopAfter?: number): Promise<unknown> {
    const t = await stored(path);
    const sources = [
      (sink: TraceSink) => Reader.streamTraceFile(path, path, sink),
      (sink: TraceSink) => deliverStored(t, sink),
      (sink: TraceSink) => worker.readTraceFile(path, sink, { worker: true }),
    ];
    const out: unknown[] = [];
    for (const source of sources) {
      const r = await replayFile(path, {
        cores: 2,
        rssOverTime: true,
        ...(stopAfter !== undefined ? { stopAfter } : {}),
        source,
      });
      out.push({ ...r.replayer!.rssOverTime });
    }
    expect(out[1]).toEqual(out[0]);
    expect(out[2]).toEqual(out[0]);
    return out[0];
  }

  /** Times before the events: increasing, irregular. */
  function timed(text: string): string {
    let t = 1000;
    return text
      .split('\n')
      .map((l) => (/^\d/.test(l) ? `@${(t += 1 + ((t * 7) % 13))} ${l}` : l))
      .join('\n');
  }

  for (const [name, text] of [
    ['a trace without times', withPointers(generateTrace({ seed: 'o1', events: 3000 }))],
    ['a trace with times', timed(withPointers(generateTrace({ seed: 'o2', events: 3000 })))],
    [
      'threads, with times',
      timed(withPointers(generateThreadedTrace({ seed: 'o3', events: 3000, maxThreads: 5 }))),
    ],
  ] as const) {
    it(`is the integral an observer of every event makes: ${name}`, async () => {
      const path = file(text);
      const o = (await observed(path)) as { area: number };
      expect(o.area).toBeGreaterThan(0);
      expect(await kept(path)).toEqual(o);
      // Stopping after an event, too.
      expect(await kept(path, 1777)).toEqual(await observed(path, 1777));
    });
  }

  it('counts the state glibc aborted in, as an observer sees it', async () => {
    const path = file(
      timed(
        [
          '# ptsim trace v1',
          '1 malloc 5000 0x10010',
          '1 malloc 24 0x10020',
          '1 free 0x10020',
          '1 free 0x10020',
          '',
        ].join('\n'),
      ),
    );
    expect(await kept(path)).toEqual(await observed(path));
  });
});

describe('an observer of a few events (ReplayOptions.observeAt)', () => {
  it('sees those events, in the state an observer of every event sees them in', async () => {
    const path = file(withPointers(generateThreadedTrace({ seed: 'w1', events: 3000 })));
    const at = [0, 5, 6, 700, 1499, 2222];
    const look = (ev: TraceEvent, r: Replayer): string =>
      `${ev.index} ${ev.line} ${ev.op} ${ev.tid} ${r.kernel.residentPages} ${r.kernel.brkEnd} ${r.lastBlock}`;
    const every: string[] = [];
    await replayFile(path, {
      cores: 2,
      stopAfter: 2222,
      observe: (ev, r) => {
        if (at.includes(ev.index)) every.push(look(ev, r));
      },
    });
    expect(every).toHaveLength(at.length);
    const t = await stored(path);
    const ways: Array<[(sink: TraceSink) => Promise<unknown>, boolean]> = [
      [(sink) => Reader.streamTraceFile(path, path, sink), false],
      [(sink) => deliverStored(t, sink), true],
      [(sink) => worker.readTraceFile(path, sink, { worker: true }), true],
    ];
    for (const [source, withoutObjects] of ways) {
      const few: string[] = [];
      let fast = 0;
      const r = await replayFile(path, {
        cores: 2,
        stopAfter: 2222,
        observeAt: at,
        observe: (ev, rr) => few.push(look(ev, rr)),
        source: (sink) => {
          for (const k of ['runStored', 'runBatch'] as const) {
            const run = sink[k]?.bind(sink);
            if (run === undefined) continue;
            sink[k] = ((...args: [never, { i?: number; index?: number }, never]) => {
              const place = args[1];
              const from = place.i ?? place.index!;
              (run as (...a: unknown[]) => void)(...args);
              fast += (place.i ?? place.index!) - from;
            }) as never;
          }
          return source(sink);
        },
      });
      expect(few).toEqual(every);
      expect(r.replayer!.finish().events).toBe(2223);
      // Through the store and the batches, the events in between took the way without objects.
      if (withoutObjects) expect(fast).toBeGreaterThan(1500);
      else expect(fast).toBe(0);
    }
  });
});

describe('an edited delivery without event objects (deliverStored with Edits)', () => {
  it('replays between the edits as the delivery event by event does', async () => {
    const path = file(withPointers(generateThreadedTrace({ seed: 'e1', events: 3000 })));
    const t = await stored(path);
    // A block born at event b, freed early instead, right after an event a few later (one of the
    // common kinds, after another of the same thread, so that a run without event objects would
    // pass it) while the block is still live.
    const plain = (k: number): boolean => {
      const e = storedReadEvent(t, k);
      const before = storedReadEvent(t, k - 1);
      return (
        (e.op === Op.malloc || e.op === Op.free) &&
        e.inKey !== -1 &&
        e.outKey !== -1 &&
        before.inKey !== -1 &&
        before.outKey !== -1 &&
        before.tid === e.tid
      );
    };
    let b = 400;
    let after = -1;
    for (; after < 0; b++) {
      const e = storedReadEvent(t, b);
      if (!(e.op === Op.malloc && e.outKey > 0)) continue;
      for (let k = b + 5; k < b + 40; k++) {
        const x = storedReadEvent(t, k);
        if (x.op === Op.free && x.inId === e.outId) break;
        if (plain(k)) {
          after = k;
          break;
        }
      }
    }
    b--;
    const ev = storedReadEvent(t, b);
    const free = {
      after,
      born: b,
      tid: ev.tid,
      key: ev.outKey,
      id: ev.outId,
      token: ev.out,
    };
    const move = earliestMove(t, 2500);
    expect(move).not.toBeNull();
    // Each edit, the events the replay goes to (the block freed early is freed again later, a
    // free of a token that is not live), and how many of them at least take the way without
    // event objects.
    const edits: Array<[Edits, number, number]> = [
      [{ trimEvery: 97 }, 2999, 2000],
      [{ move: move! }, 2999, 2000],
      [{ free }, free.after + 300, 200],
      [{ move: move!, trimEvery: 50 }, 2999, 2000],
    ];
    const at = [3, 404, 410, 1200, 2499, 2500, 2501, 2700];
    const look = (e: TraceEvent, r: Replayer): string =>
      `${e.index} ${e.line} ${e.op} ${r.kernel.residentPages} ${r.kernel.brkEnd} ${r.lastBlock}`;
    for (const [edit, stopAfter, least] of edits) {
      const outcomes: unknown[] = [];
      for (const withoutObjects of [false, true]) {
        const seen: string[] = [];
        let fast = 0;
        const r = await replayFile(path, {
          cores: 2,
          stopAfter,
          observeAt: at,
          observe: (e, rr) => seen.push(look(e, rr)),
          source: (sink) => {
            const run = sink.runStored!.bind(sink);
            sink.runStored = withoutObjects
              ? (st, place, stop, shift) => {
                  const from = place.i;
                  run(st, place, stop, shift);
                  fast += place.i - from;
                }
              : undefined;
            return deliverStored(t, sink, edit);
          },
        });
        if (withoutObjects) expect(fast).toBeGreaterThan(least);
        outcomes.push({
          summary: r.replayer!.finish(),
          failure: r.failure?.message ?? null,
          seen,
        });
      }
      expect(outcomes[1]).toEqual(outcomes[0]);
    }
  });
});
