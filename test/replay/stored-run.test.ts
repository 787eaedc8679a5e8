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
import { TraceStore, deliverStored, type StoredTrace } from '../../src/trace/event-store.js';
import * as Reader from '../../src/trace/reader.js';
import { replayFile } from '../../src/replay/run-file.js';
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
}

type Way = 'events' | 'stored' | 'batches';

/** The replay of the file one of the three ways. */
async function replayed(path: string, way: Way): Promise<Outcome> {
  const out: Outcome = { summary: null, failure: null, warnings: [], fast: 0 };
  const t = way === 'stored' ? await stored(path) : null;
  const r = await replayFile(path, {
    cores: 2,
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
  return out;
}

/** The replay of the trace every event through event(), then from its stored copy and in batches. */
async function threeWays(text: string): Promise<[Outcome, Outcome, Outcome]> {
  const path = file(text);
  return [
    await replayed(path, 'events'),
    await replayed(path, 'stored'),
    await replayed(path, 'batches'),
  ];
}

/** Checks that the three ways end alike; returns the stored and batch ways. */
async function expectSame(text: string): Promise<[Outcome, Outcome]> {
  const [a, b, c] = await threeWays(text);
  for (const x of [b, c]) {
    expect(x.summary).toEqual(a.summary);
    expect(x.failure).toBe(a.failure);
    expect(x.warnings).toEqual(a.warnings);
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
