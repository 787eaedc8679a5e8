/**
 * Tests of the touch models of the replay (src/replay/replay.ts, docs/trace-format.md,
 * "Extensions"): what `recorded`, `full` and `none` write, where `#:touch` records stand and how
 * they are clipped, their mistakes, the `#:rss` samples kept beside the replay's own figures, and
 * the note for traces without touch records. That the figures are glibc's own is the
 * differential suite's business (test/diff/cases/touch-*.trace).
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fcParams } from '../helpers/fc.js';
import {
  ReplayError,
  Replayer,
  type ReplayOptions,
  type ReplaySummary,
  type TouchMode,
} from '../../src/replay/replay.js';
import { replaySink } from '../../src/replay/sink.js';
import { readTraceText } from '../../src/trace/reader.js';
import { maxTouchPage, type TraceEvent } from '../../src/trace/types.js';

interface Run {
  r: Replayer;
  summary: ReplaySummary;
  /** RSS after each event, as the replay reports it (onEvent). */
  rss: number[];
  error?: string;
}

const PAGE = 4096;

function replay(text: string, touch?: TouchMode, opts: ReplayOptions = {}): Run {
  const rss: number[] = [];
  const r: Replayer = new Replayer('t.trace', {
    cores: 2,
    ...opts,
    ...(touch === undefined ? {} : { touch }),
    onEvent: () => rss.push(r.kernel.residentPages * PAGE),
  });
  let error: string | undefined;
  try {
    readTraceText(text, 't.trace', r);
  } catch (e) {
    if (!(e instanceof ReplayError)) throw e;
    error = e.message;
  }
  const run: Run = { r, summary: r.finish(), rss };
  if (error !== undefined) run.error = error;
  return run;
}

/** The pages a replay has made resident beyond those of `base`, after each event. */
function extraPages(a: Run, base: Run): number[] {
  return a.rss.map((x, i) => (x - base.rss[i]!) / PAGE);
}

describe('the touch model a replay chooses', () => {
  it('is recorded for a trace that says it has touch records, full otherwise, or as asked', () => {
    const trace = '1 malloc 10 a\n';
    expect(replay(trace).summary.touch).toBe('full');
    expect(replay('# touches recorded\n' + trace).summary.touch).toBe('recorded');
    expect(replay('# touches recorded\n' + trace, 'none').summary.touch).toBe('none');
    expect(replay(trace, 'recorded').summary.touch).toBe('recorded');
  });
});

describe('recorded: blocks of 4096 bytes or more get only the pages of their #:touch records', () => {
  // A 1 MiB block is mmapped on its own: page 0 holds its header, so glibc has written it.
  const big = '# touches recorded\n1 malloc 1048576 big\n';

  it('writes a large block only where its records say, a small one whole', () => {
    const trace = big + '1 malloc 4095 small\n1 malloc 8000 heap\n';
    const bare = replay(trace);
    const full = replay(trace, 'full');
    const none = replay(trace, 'none');
    // The big block: its header page only, in recorded as in none; full writes its 256 pages.
    expect(bare.rss[0]).toBe(none.rss[0]);
    expect(extraPages(full, bare)[0]).toBe(256);
    // 4095 bytes are written whole in recorded, as in full (glibc's headers at both ends make
    // its pages resident in none too); 8000 bytes in the heap are not: a page of them stays out.
    expect(bare.rss[1]! - bare.rss[0]!).toBe(full.rss[1]! - full.rss[0]!);
    expect(bare.rss[2]! - bare.rss[1]!).toBe(none.rss[2]! - none.rss[1]!);
    expect(full.rss[2]! - full.rss[1]!).toBe(bare.rss[2]! - bare.rss[1]! + PAGE);
  });

  it('applies a record after the event before it, counting in that event and the peak', () => {
    const bare = replay(big + '1 free big\n');
    const run = replay(big + '#:touch big 0-9,100,200-209\n1 free big\n');
    // Page 0 was resident already (the header): 9 + 1 + 10 more.
    expect(extraPages(run, bare)).toEqual([20, 0]);
    expect(run.summary.peakRss - bare.summary.peakRss).toBe(20 * PAGE);
    expect(run.summary.peakEvent).toBe(0);
    expect(run.summary.rss).toBe(bare.summary.rss);
  });

  it('adds up records over time, and applies them only in the recorded model', () => {
    const trace =
      big + '#:touch big 1-4\n1 malloc 10 x\n#:touch big 3-8\n1 malloc 10 y\n#:touch big 1-8\n';
    const bare = replay(big + '1 malloc 10 x\n1 malloc 10 y\n');
    expect(extraPages(replay(trace), bare)).toEqual([4, 4 + 4, 8]);
    expect(replay(trace, 'none').rss).toEqual(
      replay(big + '1 malloc 10 x\n1 malloc 10 y\n', 'none').rss,
    );
    expect(replay(trace, 'full').rss).toEqual(
      replay(big + '1 malloc 10 x\n1 malloc 10 y\n', 'full').rss,
    );
  });

  it('clips pages to the block: a page the block reaches in the recording but not here touches nothing', () => {
    // 200,000 bytes from offset 16 of their mapping end in page 48; a recording may have had
    // them start later in their first page, and reach page 49 (maxTouchPage).
    expect(maxTouchPage(200_000)).toBe(49);
    const b = '# touches recorded\n1 malloc 200000 b\n';
    const bare = replay(b);
    expect(extraPages(replay(b + '#:touch b 48\n'), bare)).toEqual([1]);
    const clipped = replay(b + '#:touch b 49\n');
    expect(clipped.error).toBeUndefined();
    expect(extraPages(clipped, bare)).toEqual([0]);
    expect(replay(b + '#:touch b 50\n').error).toBe(
      "t.trace:3: #:touch of b: page 50 is past the block's last requested byte (a block of 200000 bytes reaches page 49 at most)",
    );
  });

  it('does not write past the requested bytes of a heap block', () => {
    // Heap blocks after a raised threshold, in the top that follows them.
    const trace =
      '# touches recorded\n1 mallopt M_MMAP_THRESHOLD 4194304\n1 malloc 20000 a\n1 malloc 100000 b\n';
    const bare = replay(trace);
    const run = replay(trace + `#:touch b 0-${maxTouchPage(100_000)}\n`);
    const full = replay(trace, 'full');
    const p = run.r.process;
    let mem = 0;
    for (let h = 0; h < p.ck.highWater; h++) if (p.ck.req[h] === 100_000) mem = p.ck.addr[h]! + 16;
    const end = mem + 100_000;
    const after = end - (end % PAGE) + PAGE;
    // Every page of b's requested bytes is resident, as when the program writes them all...
    expect(run.r.kernel.residentIn(mem, end)).toBe(full.r.kernel.residentIn(mem, end));
    expect(run.r.kernel.residentIn(mem, end)).toBe(
      Math.ceil((end - (mem - (mem % PAGE))) / PAGE) * PAGE,
    );
    // ...and not one page after them.
    expect(run.r.kernel.residentIn(after, after + 16 * PAGE)).toBe(
      bare.r.kernel.residentIn(after, after + 16 * PAGE),
    );
  });

  it('lets realloc copy what glibc copies, and the program write a small new block whole', () => {
    const grow = '1 malloc 1048576 a\n1 realloc a 4194304 b\n';
    const rec = replay('# touches recorded\n' + grow);
    const none = replay(grow, 'none');
    const full = replay(grow, 'full');
    // Growing an mmapped block is mremap: nothing copied, nothing written in recorded or none.
    expect(rec.rss).toEqual(none.rss);
    expect(full.rss[1]).toBeGreaterThan(rec.rss[1]!);
    // A heap block grown and moved: glibc copies the old contents, in every model.
    const moved =
      '1 mallopt M_MMAP_THRESHOLD 33554432\n1 malloc 100000 a\n1 malloc 10 pin\n1 realloc a 300000 b\n';
    const movedRec = replay('# touches recorded\n' + moved);
    const movedNone = replay(moved, 'none');
    expect(movedRec.rss[3]! - movedRec.rss[2]!).toBe(movedNone.rss[3]! - movedNone.rss[2]!);
    expect(movedNone.rss[3]! - movedNone.rss[2]!).toBeGreaterThanOrEqual(24 * PAGE);
    // A small block grown in place: the program writes the new bytes, as in full.
    const small = '1 malloc 100 a\n1 realloc a 3000 a\n';
    expect(replay('# touches recorded\n' + small).rss).toEqual(replay(small, 'full').rss);
  });

  it('leaves calloc clearing to glibc: none in fresh mmapped memory', () => {
    const trace = '# touches recorded\n1 calloc 1024 1024 c\n#:touch c 5\n';
    const bare = replay('# touches recorded\n1 calloc 1024 1024 c\n');
    expect(extraPages(replay(trace), bare)).toEqual([1]);
    expect(bare.rss).toEqual(replay('1 calloc 1024 1024 c\n', 'none').rss);
  });
});

describe('# touches incomplete from here', () => {
  // 1 MiB blocks are mmapped on their own: page 0 holds the header, the rest is the program's.
  const before = '# touches recorded\n1 malloc 1048576 a\n#:touch a 0-9\n1 malloc 10 x\n';
  const incomplete = '# touches incomplete from here: /proc/self/pagemap could not be read\n';
  const after = '1 malloc 1048576 b\n#:touch b 0-4\n1 realloc b 2097152 c\n1 malloc 10 y\n';

  function run(text: string, touch?: TouchMode): Run & { warnings: string[] } {
    const warnings: string[] = [];
    return { ...replay(text, touch, { onWarning: (w) => warnings.push(w) }), warnings };
  }

  it('recorded: says so once, then writes the live large blocks whole, and every later block', () => {
    const r = run(before + incomplete + after + incomplete);
    expect(r.warnings).toEqual([
      "t.trace:5: the recording's touch records are incomplete from here (/proc/self/pagemap could not be read); from this point the replay takes blocks of 4096 bytes or more as written whole, an upper bound (--touch full)",
    ]);
    expect(r.summary.warnings).toBe(1);
    expect(r.summary.touch).toBe('recorded');
    const full = run(before + incomplete + after, 'full');
    const rec = run(before + after);
    // Before the line, the records; from the event before it on, the full model's pages.
    expect(r.rss[0]).toBe(rec.rss[0]);
    expect(r.rss[0]).toBeLessThan(full.rss[0]!);
    expect(r.rss.slice(1)).toEqual(full.rss.slice(1));
    expect(r.summary.peakRss).toBe(full.summary.peakRss);
    expect(r.summary.rss).toBe(full.summary.rss);
    // Without the line, b and c have only their records.
    expect(rec.rss[3]).toBeLessThan(full.rss[3]!);
  });

  it('changes nothing in the full and none models, which do not read the records', () => {
    for (const mode of ['full', 'none'] as const) {
      const r = run(before + incomplete + after, mode);
      expect(r.warnings).toEqual([]);
      expect(r.rss).toEqual(run(before + after, mode).rss);
    }
  });

  it('before the first event: incomplete from the start', () => {
    const head = '# touches recorded\n# touches incomplete from here\n';
    const r = run(head + '1 malloc 1048576 a\n#:touch a 0-9\n');
    expect(r.warnings).toEqual([
      "t.trace:2: the recording's touch records are incomplete from here; from this point the replay takes blocks of 4096 bytes or more as written whole, an upper bound (--touch full)",
    ]);
    expect(r.rss).toEqual(run('1 malloc 1048576 a\n', 'full').rss);
  });

  it('still checks the records after it', () => {
    expect(run(before + incomplete + '#:touch zz 0\n').error).toBe(
      't.trace:6: #:touch of zz, which is not a live block (never allocated, or freed or reallocated since)',
    );
  });
});

describe('#:touch mistakes', () => {
  const at = (line: string): string =>
    `# touches recorded\n1 malloc 100000 a\n1 malloc 0 z\n${line}\n`;

  it('reports a record of a token that is not live, with file and line, in every model', () => {
    for (const mode of ['recorded', 'full', 'none'] as const) {
      expect(replay(at('#:touch b 0'), mode).error).toBe(
        't.trace:4: #:touch of b, which is not a live block (never allocated, or freed or reallocated since)',
      );
      expect(replay(at('1 free a\n#:touch a 0'), mode).error).toMatch(
        /^t\.trace:5: #:touch of a, which is not a live block/,
      );
      expect(replay(at('1 realloc a 200000 a2\n#:touch a 0'), mode).error).toMatch(
        /^t\.trace:5: #:touch of a, which is not a live block/,
      );
      expect(replay(at('#:touch a 25'), mode).error).toBeUndefined();
      expect(replay(at('#:touch a 26'), mode).error).toBe(
        "t.trace:4: #:touch of a: page 26 is past the block's last requested byte (a block of 100000 bytes reaches page 25 at most)",
      );
      expect(replay(at('#:touch z 0'), mode).error).toBe(
        "t.trace:4: #:touch of z: page 0 is past the block's last requested byte (it has none: 0 bytes requested)",
      );
      expect(replay(at('#:touch z -'), mode).error).toBeUndefined();
    }
  });

  it('ignores a record of a block the model could not allocate (warned about already)', () => {
    const warnings: string[] = [];
    const run = replay(
      '# touches recorded\n1 malloc 3000000 a\n#:touch a 0-700\n1 free a\n',
      undefined,
      {
        kernel: { maxBrk: 1 << 20, maxMapping: 1 << 20 },
        onWarning: (w) => warnings.push(w),
      },
    );
    expect(run.error).toBeUndefined();
    expect(warnings).toHaveLength(1);
  });

  it('finds the block of a token that lost its number (a realloc the model failed)', () => {
    const run = replay(
      '# touches recorded\n1 malloc 100000 a\n1 realloc a 3000000 b\n#:touch a 1-3\n1 free a\n',
      undefined,
      { kernel: { maxBrk: 1 << 20, maxMapping: 1 << 20 }, onWarning: () => {} },
    );
    expect(run.error).toBeUndefined();
    const bare = replay(
      '# touches recorded\n1 malloc 100000 a\n1 realloc a 3000000 b\n1 free a\n',
      undefined,
      {
        kernel: { maxBrk: 1 << 20, maxMapping: 1 << 20 },
        onWarning: () => {},
      },
    );
    // The free keeps the heap block's pages resident.
    expect(extraPages(run, bare)).toEqual([0, 3, 3]);
  });

  it('takes records from any producer: without keys or numbers, the replay finds the block itself', () => {
    const trace =
      '# touches recorded\n1 malloc 100000 0x7f00\n1 malloc 70000 buf\n#:touch 0x7f00 1-3\n#:touch buf 2\n1 free buf\n';
    const r = new Replayer('t.trace', { cores: 2 });
    const rss: number[] = [];
    readTraceText(trace, 't.trace', {
      header: (h) => r.header(h),
      event: (ev: TraceEvent) => {
        const { inKey: _a, outKey: _b, inId: _c, outId: _d, ...rest } = { ...ev };
        r.event(rest);
        rss.push(r.kernel.residentPages);
      },
      touch: (rec) =>
        r.touch({
          line: rec.line,
          token: rec.token,
          pages: rec.pages,
          ranges: rec.ranges,
          maxPage: rec.maxPage,
        }),
      recordsEnd: () => r.recordsEnd(),
    });
    expect(r.finish().rss).toBe(replay(trace).summary.rss);
    expect(r.finish().peakRss).toBe(replay(trace).summary.peakRss);
  });
});

describe('#:rss samples', () => {
  const trace = [
    '# touches recorded',
    '#:rss anon=1000 mark=start',
    '1 malloc 1048576 a',
    '#:rss @10 anon=50000 heap=4096',
    '#:touch a 1-9',
    '1 malloc 10 b',
    '1 free a',
    '#:rss anon=9000000 mark=end rec=12288',
  ].join('\n');

  it('keeps every sample with the replay RSS at the same point: after the event and its records', () => {
    const run = replay(trace);
    const m = run.r.measured;
    expect(m.count).toBe(3);
    expect([0, 1, 2].map((i) => m.get(i))).toEqual([
      {
        event: -1,
        line: 2,
        time: -1,
        anon: 1000,
        heap: null,
        recorder: null,
        mark: 'start',
        modelled: 0,
      },
      {
        event: 0,
        line: 4,
        time: 10,
        anon: 50000,
        heap: 4096,
        recorder: null,
        mark: null,
        modelled: run.rss[0],
      },
      {
        event: 2,
        line: 8,
        time: -1,
        anon: 9000000,
        heap: null,
        recorder: 12288,
        mark: 'end',
        modelled: run.rss[2],
      },
    ]);
    // The sample after event 0 stands before the touch record, yet sees it: the event's figure.
    expect(run.rss[0]).toBe(replay(trace, 'none').rss[0]! + 9 * PAGE);
    expect(run.summary.measured).toEqual({ samples: 3, last: m.get(2), peak: m.get(2) });
  });

  it('tells observers which sample follows each event', () => {
    const seen: Array<[number, number]> = [];
    const r = new Replayer('t.trace', {
      cores: 2,
      observe: (ev, rr) =>
        seen.push([ev.index, rr.eventSample < 0 ? -1 : rr.measured.anonOf(rr.eventSample)]),
    });
    readTraceText(trace, 't.trace', r);
    expect(seen).toEqual([
      [0, 50000],
      [1, -1],
      [2, 9000000],
    ]);
  });

  it('leaves the summary without measurements for a trace without samples', () => {
    expect(replay('1 malloc 1 a\n').summary.measured).toBeUndefined();
  });
});

describe('the note for a trace without touch records', () => {
  it('is given for blocks of 1 MiB or more replayed with the full model only', () => {
    const big = '1 malloc 1048576 a\n1 free a\n';
    expect(replay(big).r.touchNote()).toBe(
      't.trace has blocks of 1 MiB or more but no touch records, so its RSS is an upper bound (the replay takes every requested byte as written); `ptsim record` records the pages each large block really touches',
    );
    expect(replay('1 realloc 0 2000000 a\n').r.touchNote()).not.toBeNull();
    expect(replay('1 malloc 1048575 a\n').r.touchNote()).toBeNull();
    expect(replay(big, 'none').r.touchNote()).toBeNull();
    expect(replay('# touches recorded\n' + big, 'full').r.touchNote()).toBeNull();
    expect(replay('# touches recorded\n' + big).r.touchNote()).toBeNull();
  });
});

/**
 * Random traces of blocks small and large, heap and mmapped, with touch records of random pages
 * each block can reach, and every call that writes: malloc, calloc, memalign, realloc (grown,
 * shrunk, moved), free, malloc_trim.
 */
const traces = fc
  .array(
    fc.record({
      op: fc.constantFrom(
        'malloc',
        'calloc',
        'memalign',
        'realloc',
        'free',
        'touch',
        'touch',
        'trim',
      ),
      size: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 4096, max: 3_000_000 })),
      pick: fc.nat(),
      pages: fc.array(fc.tuple(fc.nat(), fc.nat({ max: 8 })), { maxLength: 4 }),
    }),
    { minLength: 1, maxLength: 60 },
  )
  .chain((steps) =>
    fc.constantFrom(0, 65536, 4194304).map((threshold) => {
      const lines = ['# touches recorded'];
      if (threshold > 0) lines.push(`1 mallopt M_MMAP_THRESHOLD ${threshold}`);
      const live: Array<[string, number]> = [];
      let n = 0;
      for (const st of steps) {
        const k = live.length === 0 ? -1 : st.pick % live.length;
        switch (st.op) {
          case 'malloc':
          case 'calloc':
          case 'memalign': {
            const t = `t${n++}`;
            if (st.op === 'malloc') lines.push(`1 malloc ${st.size} ${t}`);
            else if (st.op === 'calloc') lines.push(`1 calloc 1 ${st.size} ${t}`);
            else lines.push(`1 memalign 64 ${st.size} ${t}`);
            live.push([t, st.size]);
            break;
          }
          case 'realloc':
            if (k < 0 || st.size === 0) break;
            lines.push(`1 realloc ${live[k]![0]} ${st.size} t${n}`);
            live[k] = [`t${n++}`, st.size];
            break;
          case 'free':
            if (k < 0) break;
            lines.push(`1 free ${live[k]![0]}`);
            live.splice(k, 1);
            break;
          case 'touch': {
            if (k < 0) break;
            const [t, size] = live[k]!;
            const most = maxTouchPage(size);
            if (most < 0) break;
            const ranges = st.pages.map(([a, len]) => {
              const from = a % (most + 1);
              return `${from}-${Math.min(most, from + len)}`;
            });
            lines.push(`#:touch ${t} ${ranges.length === 0 ? '-' : ranges.join(',')}`);
            break;
          }
          case 'trim':
            lines.push('1 malloc_trim 0');
            break;
        }
      }
      lines.push('1 malloc 1 last');
      return lines.join('\n') + '\n';
    }),
  );

describe('the three models bound each other', () => {
  it('none <= recorded <= full in RSS after every event, and in the peak', () => {
    fc.assert(
      fc.property(traces, (trace) => {
        const none = replay(trace, 'none');
        const rec = replay(trace, 'recorded');
        const full = replay(trace, 'full');
        for (const run of [none, rec, full]) expect(run.error).toBeUndefined();
        expect(rec.rss).toHaveLength(none.rss.length);
        expect(full.rss).toHaveLength(none.rss.length);
        for (let i = 0; i < none.rss.length; i++) {
          if (!(none.rss[i]! <= rec.rss[i]! && rec.rss[i]! <= full.rss[i]!))
            expect([none.rss[i], rec.rss[i], full.rss[i]], `after event ${i}`).toEqual('ordered');
        }
        expect(none.summary.peakRss).toBeLessThanOrEqual(rec.summary.peakRss);
        expect(rec.summary.peakRss).toBeLessThanOrEqual(full.summary.peakRss);
        // The allocator's decisions do not depend on what the program writes.
        expect(rec.summary.mallinfo2).toEqual(full.summary.mallinfo2);
        expect(none.summary.brk).toBe(full.summary.brk);
      }),
      fcParams({ numRuns: 150 }),
    );
  });
});

describe('a kernel without the zero page (`# zero_page no`, written by the recorder)', () => {
  // glibc's realloc copies the old block; a page it reads that was never written maps the zero
  // page on most kernels (not resident), a frame of its own on others (resident).
  const moved = (header: string, zeroPage?: boolean): number => {
    const text = `# ptsim trace v1\n${header}1 mallopt M_MMAP_THRESHOLD 8388608\n1 malloc 200000 a\n1 malloc 10 pin\n1 realloc a 400000 b\n`;
    const rs = replaySink('t.trace', {
      touch: 'none',
      ...(zeroPage === undefined ? {} : { zeroPage }),
    });
    readTraceText(text, 't.trace', rs.sink);
    return rs.replayer!.finish().rss / PAGE;
  };

  it("makes the pages realloc's copy reads resident, and only then", () => {
    const usual = moved('');
    expect(moved('# zero_page yes\n')).toBe(usual);
    // 200,000 bytes read: 49 to 50 pages, of which the first (the block's header) and the last
    // (the next chunk's header) were resident already.
    const extra = moved('# zero_page no\n') - usual;
    expect(extra).toBeGreaterThanOrEqual(47);
    expect(extra).toBeLessThanOrEqual(48);
  });

  it('is what --zero-page says, whatever the trace says', () => {
    const usual = moved('');
    const without = moved('# zero_page no\n');
    expect(moved('', false)).toBe(without);
    expect(moved('# zero_page no\n', true)).toBe(usual);
  });
});
