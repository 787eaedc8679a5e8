/**
 * Tests of the parse worker (src/trace/parse-worker.ts, used by readTraceFile for large files):
 * the sink sees exactly the calls and errors it sees when the trace is read in the calling thread.
 *
 * A worker runs compiled JavaScript, so these tests use the build in dist/ (`npm test` builds
 * first); their classes are dist's, hence the comparisons by name rather than instanceof.
 */

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import type * as Store from '../../src/trace/event-store.js';
import type * as Reader from '../../src/trace/reader.js';
import type * as Client from '../../src/trace/worker-client.js';
import type * as Binary from '../../src/trace/binary.js';
import type { RssSample, TraceEvent, TraceHeader, TraceSink } from '../../src/trace/types.js';

const { readTraceFile, readTraceText } = (await import(
  new URL('../../dist/trace/reader.js', import.meta.url).href
)) as typeof Reader;
const { BinaryTraceEncoder } = (await import(
  new URL('../../dist/trace/binary.js', import.meta.url).href
)) as typeof Binary;

/** The binary form of a text trace. */
function binary(text: string): Uint8Array {
  const parts: Uint8Array[] = [];
  const enc = new BinaryTraceEncoder((b) => parts.push(b.slice()));
  enc.end(readTraceText(text, 't', enc).lines);
  return new Uint8Array(Buffer.concat(parts));
}
const { TraceStore } = (await import(
  new URL('../../dist/trace/event-store.js', import.meta.url).href
)) as typeof Store;
const { prestartParseWorker } = (await import(
  new URL('../../dist/trace/worker-client.js', import.meta.url).href
)) as typeof Client;

const tmp = mkdtempSync(join(tmpdir(), 'ptsim-worker-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let tmpCount = 0;
function tmpFile(content: string | Uint8Array): string {
  const path = join(tmp, `t${tmpCount++}.trace`);
  writeFileSync(path, content);
  return path;
}

interface Read {
  calls: Array<['header', TraceHeader] | ['event', TraceEvent] | [string, unknown]>;
  result?: unknown;
  error?: { name: string; message: string };
}

/** Reads `path` in the worker or in this thread, recording every sink call and the outcome. */
async function read(
  path: string,
  worker: boolean,
  sinkError?: (ev: TraceEvent) => Error | undefined,
): Promise<Read> {
  const out: Read = { calls: [] };
  const sink: TraceSink = {
    header: (h) => out.calls.push(['header', h]),
    event: (ev) => {
      out.calls.push(['event', { ...ev }]);
      const e = sinkError?.(ev);
      if (e !== undefined) throw e;
    },
    touch: (r) =>
      out.calls.push(['touch', [r.line, r.token, r.id, [...r.pages.subarray(0, 2 * r.ranges)]]]),
    rss: (x) => out.calls.push(['rss', { ...x }]),
    touchesIncomplete: (line, detail) => out.calls.push(['incomplete', [line, detail]]),
    recordsEnd: () => out.calls.push(['end', null]),
    site: (r) => out.calls.push(['site', r]),
  };
  try {
    out.result = await readTraceFile(path, sink, { worker, displayName: 'shown.trace' });
  } catch (e) {
    const err = e as Error;
    out.error = { name: err.name, message: err.message };
  }
  return out;
}

/** A stored trace with each typed array as a hash of its bytes (quicker to compare). */
function digest(v: unknown): unknown {
  if (ArrayBuffer.isView(v))
    return createHash('sha1')
      .update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
      .digest('hex');
  if (Array.isArray(v)) return v.map(digest);
  if (v instanceof Map) return [...v].map(digest);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, digest(x)]));
  return v;
}

/** A sink's check that stalls the reading 0.1 s every 25,000 events (a slow sink). */
function slowSink(): () => undefined {
  let n = 0;
  return () => {
    if (++n % 25_000 === 0) {
      const until = Date.now() + 100;
      while (Date.now() < until);
    }
    return undefined;
  };
}

async function expectSame(path: string): Promise<Read> {
  const here = await read(path, false);
  const there = await read(path, true);
  expect(there).toEqual(here);
  return there;
}

/** A trace of `n` events: pointer tokens, named tokens, times, every operation. */
function trace(n: number): string {
  const lines = ['# pid 42', '# env MALLOC_ARENA_MAX=2', '# nprocs 4'];
  for (let i = 0; i < n; i++) {
    const t = i % 3 === 0 ? `name${i >> 1}` : `0x${(0x55d0c2a4f2a0 + 16 * (i >> 1)).toString(16)}`;
    const prev =
      i % 3 === 0
        ? `name${(i >> 1) - 1}`
        : `0x${(0x55d0c2a4f2a0 + 16 * ((i >> 1) - 1)).toString(16)}`;
    if (i % 2 === 0)
      lines.push(
        `${i % 7 === 0 ? `@${i} ` : ''}1 ${i % 10 === 0 ? 'calloc 2' : 'malloc'} ${i % 500} ${t}`,
      );
    else if (i % 11 === 1) lines.push(`2 realloc ${prev} ${i % 300} ${t}`);
    else lines.push(`1 free ${prev}`);
    if (i % 1000 === 999)
      lines.push(
        '1 mallopt M_MMAP_THRESHOLD 131072',
        '1 malloc_trim 0',
        '3 exit',
        '# a comment',
        '',
      );
  }
  return lines.join('\n') + '\n';
}

/**
 * `trace(n)` with records: touches of live blocks and samples, some before the first event, and
 * now and then a `# touches incomplete from here`.
 */
function traceWithRecords(n: number): string {
  const out = ['# touches recorded', '#:rss anon=4096 mark=start'];
  const live: string[] = [];
  let lines = 0;
  for (const line of trace(n).split('\n')) {
    out.push(line);
    const m = /(?:malloc|calloc 2|realloc \S+) \d+ (\S+)$/.exec(line);
    if (m !== null) live.push(m[1]!);
    const f = /(?:free|realloc) (\S+)/.exec(line);
    if (f !== null) live.splice(live.indexOf(f[1]!), 1);
    if (out.length % 5 === 0 && live.length > 0) {
      const t = live[out.length % live.length]!;
      out.push(
        `#:touch ${t} ${out.length % 3 === 0 ? '-' : `0,${out.length % 4}-${(out.length % 4) + 2}`}`,
      );
    }
    if (++lines % 9001 === 0) out.push(`# touches incomplete from here: at ${lines}`);
    if (out.length % 13 === 0) {
      // Some with the whole RSS (total=) too, some with it alone.
      const k = out.length;
      const anon = k % 7 === 0 ? '' : ` anon=${k * 4096}`;
      const total = k % 3 === 0 || anon === '' ? ` total=${k * 8192}` : '';
      out.push(
        `#:rss @${k}${anon}${total}${k % 2 ? ' heap=7' : ''}${k % 26 === 0 ? ' mark=m' + k : ''}`,
      );
    }
  }
  return out.join('\n') + '\n';
}

/** `trace(n)` with call stacks: a `#:stack` record before each new stack's first use, `^ID` fields. */
function traceWithStacks(n: number): string {
  const out = ['#:map 0x400000 0x500000 0x0 /bin/prog'];
  let defined = 0;
  for (const line of trace(n).split('\n')) {
    if (/ (malloc|calloc|realloc|free) /.test(line)) {
      const id = line.length % 37;
      while (defined <= id) out.push(`#:stack ${defined} 0x${(0x401000 + defined++).toString(16)}`);
      out.push(`${line} ^${id}`);
    } else out.push(line);
  }
  out.push('#:sym 0x401000 /src/p.c:3 main');
  return out.join('\n') + '\n';
}

describe('the parse worker', () => {
  it('delivers the same call stacks and site records as reading in this thread', async () => {
    const text = traceWithStacks(3000);
    const r = await expectSame(tmpFile(text));
    const events = r.calls.filter((c) => c[0] === 'event').map((c) => c[1] as TraceEvent);
    expect(events.filter((e) => e.site !== -1).length).toBeGreaterThan(2000);
    expect(r.calls.filter((c) => c[0] === 'site')).toHaveLength(text.match(/^#:/gm)!.length);
  });

  it('delivers the same header, events and result as reading in this thread', async () => {
    const text = trace(300);
    const r = await expectSame(tmpFile(text));
    expect(r.calls[0]![0]).toBe('header');
    expect(r.calls.filter((c) => c[0] === 'event')).toHaveLength(r.calls.length - 1);
    await expectSame(tmpFile(gzipSync(text)));
  });

  it('streams a trace of many batches, holding the worker back while the sink is slow', async () => {
    // 100,000 events: six batches of 16,384, more than may wait for the sink at once (4).
    const path = tmpFile(gzipSync(trace(100_000), { level: 1 }));
    const slow = slowSink();
    const here = await read(path, false);
    const there = await read(path, true, slow);
    expect(there.result).toEqual(here.result);
    expect(there.calls.length).toBe(here.calls.length);
    expect(there.calls).toEqual(here.calls);
  });

  it('delivers the records among the events in the same order, across batches', async () => {
    const text = traceWithRecords(40_000);
    const r = await expectSame(tmpFile(text));
    const kinds = new Set(r.calls.map((c) => c[0]));
    expect([...kinds].sort()).toEqual(['end', 'event', 'header', 'incomplete', 'rss', 'touch']);
    const samples = r.calls.filter((c) => c[0] === 'rss').map((c) => c[1] as RssSample);
    expect(samples.filter((x) => x.total! > 0 && x.anon < 0).length).toBeGreaterThan(100);
    expect(samples.filter((x) => x.total! > 0 && x.anon > 0).length).toBeGreaterThan(100);
    expect(r.calls.length).toBeGreaterThan(2 * 16384);
    expect(
      r.calls.filter((c) => c[0] === 'event' && (c[1] as TraceEvent).recordsFollow).length,
    ).toBe(r.calls.filter((c) => c[0] === 'end').length - 1);
    await expectSame(tmpFile(gzipSync(text)));
    await expectSame(tmpFile('#:rss anon=1\n#:rss anon=2 mark=x\n'));
  });

  it('delivers sizes above 2^53 exactly, across batches, on their own events only', async () => {
    // Each huge size rides on a record before its event; the batches must leave room for both.
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++)
      lines.push(
        i % 997 === 0
          ? `1 calloc ${i % 2 === 0 ? '3' : '9007199254740993'} 0x${(0xffffffffff000000n + BigInt(i)).toString(16)} b${i}`
          : `1 malloc ${i % 3 === 0 ? String(2n ** 64n - BigInt(i)) : '24'} a${i}`,
      );
    const path = tmpFile(lines.join('\n') + '\n');
    const read = await expectSame(path);
    expect(read.error).toBeUndefined();
    const events = read.calls.filter((c) => c[0] === 'event').map((c) => c[1] as TraceEvent);
    expect(events).toHaveLength(20_000);
    for (const [i, ev] of events.entries()) {
      if (i % 997 === 0) {
        expect(ev.exact1).toBe(i % 2 === 0 ? undefined : 9007199254740993n);
        expect(ev.exact2).toBe(0xffffffffff000000n + BigInt(i));
      } else if (i % 3 === 0 && i > 0) {
        expect(ev.exact1).toBe(2n ** 64n - BigInt(i));
        expect(ev.exact2).toBeUndefined();
      } else {
        expect(ev.exact1 ?? ev.exact2).toBeUndefined();
      }
    }
  });

  it('delivers the header of a trace without events, and of an empty file', async () => {
    await expectSame(tmpFile('# pid 1\n# exe /bin/true\n'));
    await expectSame(tmpFile(''));
  });

  it('reports a syntax error after delivering every event before it', async () => {
    const r = await expectSame(tmpFile(trace(50) + '1 mallocc 10 x\n1 malloc 10 y\n'));
    expect(r.error?.name).toBe('TraceSyntaxError');
    expect(r.error?.message).toMatch(/^shown\.trace:\d+: unknown operation 'mallocc'/);
    const long = await expectSame(tmpFile(gzipSync(trace(40_000) + '1 free\n')));
    expect(long.error?.message).toMatch(/^shown\.trace:\d+: free takes PTR, got 0 arguments$/);
    const record = await expectSame(tmpFile(traceWithRecords(30_000) + '#:touch 0x1 x\n'));
    expect(record.error?.message).toMatch(/^shown\.trace:\d+: #:touch: malformed page list 'x'/);
  });

  it('decodes a binary trace, plain or compressed, as this thread does: events, records, stacks', async () => {
    for (const text of [traceWithRecords(20_000), traceWithStacks(3000), trace(100_000)]) {
      const bin = binary(text);
      const plain = await expectSame(tmpFile(bin));
      expect(plain.calls.length).toBeGreaterThan(3000);
      // The same calls as the text gives.
      expect(plain).toEqual(await read(tmpFile(text), false));
      await expectSame(tmpFile(gzipSync(bin, { level: 1 })));
    }
    // A damaged one: every event before the damaged block, then the same error.
    const bin = binary(trace(100_000));
    const cut = await expectSame(tmpFile(bin.subarray(0, bin.length >> 1)));
    expect(cut.error?.message).toMatch(/^shown\.trace: binary trace cut short at byte \d+/);
    expect(cut.calls.length).toBeGreaterThan(30_000);
  });

  it('reports files it cannot read', async () => {
    const missing = await expectSame(join(tmp, 'missing.trace'));
    expect(missing.error).toEqual({ name: 'TraceReadError', message: 'shown.trace: no such file' });
    const gz = gzipSync(trace(1000));
    const corrupt = await expectSame(tmpFile(gz.subarray(0, gz.length - 100)));
    expect(corrupt.error?.message).toMatch(/^shown\.trace: gzip data is corrupt or truncated/);
  });

  it('keeps the copy of the trace a sink asks for (TraceSink.copy) as this thread would', async () => {
    for (const text of [traceWithRecords(20_000), traceWithStacks(3000)]) {
      const path = tmpFile(gzipSync(text, { level: 1 }));
      const here = new TraceStore(1e7);
      await readTraceFile(path, here, { worker: false });
      const there = new TraceStore(1e7);
      await readTraceFile(path, there, { worker: true });
      const copy = there.finish();
      expect(copy).not.toBeNull();
      expect(digest(copy)).toEqual(digest(here.finish()));
      expect(copy!.count).toBeGreaterThan(3000);
    }
    // Beyond its limit, the copy is given up, there as here.
    const path = tmpFile(trace(5000));
    const small = new TraceStore(100);
    await readTraceFile(path, small, { worker: true });
    expect(small.finish()).toBeNull();
    // A reading stopped early hands no copy over: none is kept.
    const stopped = new TraceStore(1e7);
    const boom = new Error('boom');
    const sink: TraceSink = {
      header: (h) => stopped.header(h),
      event: (ev) => {
        stopped.event(ev);
        if (ev.index === 2000) throw boom;
      },
      copy: stopped.copy,
    };
    await expect(readTraceFile(path, sink, { worker: true })).rejects.toBe(boom);
    expect(stopped.finish()).toBeNull();
  });

  it('passes an error thrown by the sink through unchanged, and stops the worker', async () => {
    const path = tmpFile(gzipSync(trace(200_000), { level: 1 }));
    const boom = new Error('boom');
    let seen = 0;
    const t0 = Date.now();
    const sink: TraceSink = {
      header() {},
      event(ev) {
        seen++;
        if (ev.index === 20_000) throw boom;
      },
    };
    await expect(readTraceFile(path, sink, { worker: true })).rejects.toBe(boom);
    expect(seen).toBe(20_001);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('started ahead of need, takes its file when asked and reads it as one started for it', async () => {
    const text = traceWithRecords(20_000);
    const path = tmpFile(gzipSync(text, { level: 1 }));
    const fresh = await read(path, true);
    prestartParseWorker();
    // Time for it to load and wait, as it does while the command loads.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ahead = await read(path, true);
    expect(ahead).toEqual(fresh);
    expect(ahead.calls.length).toBeGreaterThan(20_000);
    // Taken at once too, and only once: the next reading starts a worker of its own.
    prestartParseWorker();
    const [a, b] = await Promise.all([read(path, true), read(path, true)]);
    expect(a).toEqual(fresh);
    expect(b).toEqual(fresh);
    // Held back while the sink is slow (the count of batches in flight is shared with it).
    const many = tmpFile(gzipSync(trace(100_000), { level: 1 }));
    const slow = slowSink();
    const here = await read(many, false);
    prestartParseWorker();
    expect(await read(many, true, slow)).toEqual(here);
    // Its errors are those of any worker.
    prestartParseWorker();
    expect(await read(join(tmp, 'missing.trace'), true)).toEqual(
      await read(join(tmp, 'missing.trace'), false),
    );
  });

  it('started ahead of need and never asked, does not keep the process alive', () => {
    const client = new URL('../../dist/trace/worker-client.js', import.meta.url).href;
    // A script file: a worker takes its parent's options (execArgv), and --input-type is refused
    // by one that runs a file.
    const script = join(tmp, 'ahead.mjs');
    writeFileSync(
      script,
      `const m = await import(${JSON.stringify(client)});\n` +
        `m.prestartParseWorker();\n` +
        // Long enough for the worker to have started and be waiting for its input.
        `setTimeout(() => console.log('started'), 500);\n`,
    );
    const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 20_000 });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('started\n');
  });
});
