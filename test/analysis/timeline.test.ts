/**
 * Timelines: a long trace stays within its budget of samples, evenly spread, with the peak and the
 * last event always kept and measured like the replay's own summary; sampling by events and by
 * trace time; the CSV and JSON-lines files `ptsim replay --timeline` writes.
 */

import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CAUSES, type Cause } from '../../src/analysis/breakdown.js';
import {
  TIMELINE_COLUMNS,
  TimelineSampler,
  formatTimeline,
  type TimelineOptions,
  type TimelineSample,
} from '../../src/analysis/timeline.js';
import { replayCommand } from '../../src/cli/replay-command.js';
import { replayFile } from '../../src/replay/run-file.js';
import { fcParams } from '../helpers/fc.js';
import { generateTrace } from '../gen/generate.js';

const dir = mkdtempSync(join(tmpdir(), 'ptsim-timeline-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const LONG = file(
  'long.trace',
  generateTrace({ seed: 'timeline-long', events: 60_000, maxLiveBytes: 64 << 20 }),
);
const SHORT = file('short.trace', generateTrace({ seed: 'timeline-short', events: 2_000 }));
// The same kind of trace with @TIME stamps, irregular: bursts and pauses.
const TIMED = file(
  'timed.trace',
  (() => {
    let t = 0;
    let k = 0;
    return generateTrace({ seed: 'timeline-timed', events: 20_000 })
      .split('\n')
      .map((line) => {
        if (line === '' || line.startsWith('#')) return line;
        t += k++ % 500 < 400 ? 1_000 : 250_000;
        return `@${t} ${line}`;
      })
      .join('\n');
  })(),
);

async function sample(
  path: string,
  opts: TimelineOptions,
): Promise<{
  samples: TimelineSample[];
  sampler: TimelineSampler;
  summary: ReturnType<NonNullable<Awaited<ReturnType<typeof replayFile>>['replayer']>['finish']>;
}> {
  const sampler = new TimelineSampler(opts);
  const run = await replayFile(path, { cores: 2, observe: sampler.observe });
  expect(run.failure).toBeNull();
  const summary = run.replayer!.finish();
  return { samples: sampler.finish(), sampler, summary };
}

function regular(samples: TimelineSample[]): TimelineSample[] {
  return samples.filter((x) => x.mark === '');
}

/** SHORT with an #:rss sample after every 97th event (anon = 1000 + the event's index). */
const MEASURED = file(
  'measured.trace',
  (() => {
    const out: string[] = [];
    let k = 0;
    for (const line of generateTrace({ seed: 'timeline-short', events: 2_000 }).split('\n')) {
      out.push(line);
      if (line === '' || line.startsWith('#')) continue;
      if (k % 97 === 0) out.push(`#:rss anon=${1000 + k}`);
      k++;
    }
    return out.join('\n');
  })(),
);

describe('the measured column', () => {
  it("carries the recording's anon figure at the events a sample follows, null elsewhere", async () => {
    const { samples } = await sample(MEASURED, { samples: 0 });
    expect(samples).toHaveLength(2000);
    expect(samples.filter((x) => x.measuredAnon !== null).map((x) => x.event)).toEqual(
      Array.from({ length: 21 }, (_, i) => 97 * i),
    );
    for (const x of samples)
      expect(x.measuredAnon).toBe(x.event % 97 === 0 ? 1000 + x.event : null);
  });

  it('carries the whole RSS (total=) in its own column, anon empty where the sample has none', async () => {
    const path = file(
      'total.trace',
      [
        '#:rss total=4096',
        '1 malloc 100 a',
        '#:rss total=8192',
        '1 malloc 200 b',
        '#:rss anon=300 total=12288',
        '1 free a',
        '',
      ].join('\n'),
    );
    const { samples } = await sample(path, { samples: 0 });
    expect(samples.map((x) => [x.event, x.measuredAnon, x.measuredTotal])).toEqual([
      [0, null, 8192],
      [1, 300, 12288],
      [2, null, null],
    ]);
    const csv = formatTimeline(samples, 'csv').split('\n');
    const col = TIMELINE_COLUMNS.indexOf('measured_total');
    expect(TIMELINE_COLUMNS[col - 1]).toBe('measured_anon');
    expect(csv.slice(1, 4).map((l) => l.split(',').slice(col - 1, col + 1))).toEqual([
      ['', '8192'],
      ['300', '12288'],
      ['', ''],
    ]);
  });

  it('keeps the measured events when the grid coarsens, as far as one per cell allows', async () => {
    const every = await sample(MEASURED, { samples: 0 });
    const events = every.samples.filter((x) => x.mark === '' || x.mark === 'last').length;
    for (const budget of [8, 30, 100]) {
      const { samples, sampler } = await sample(MEASURED, { samples: budget });
      const kept = samples.filter((x) => x.measuredAnon !== null).map((x) => x.event);
      // A cell holds a measured event whenever one fell in it: as many as the cells allow.
      const cells = new Set(
        every.samples
          .filter((x) => x.measuredAnon !== null)
          .map((x) => Math.floor(x.event / sampler.interval)),
      );
      expect(kept.length).toBeGreaterThanOrEqual(Math.min(cells.size, samples.length - 2));
      for (const e of kept) expect(e % 97).toBe(0);
      expect(events).toBeGreaterThan(samples.length);
    }
  });
});

describe('the timeline sampler', () => {
  it('keeps its budget on a long trace, evenly spread, with the peak and the last event', async () => {
    for (const budget of [50, 300, 2000]) {
      const { samples, sampler, summary } = await sample(LONG, { samples: budget });
      expect(samples.length).toBeLessThanOrEqual(budget);
      // Coarsening halves the samples at most once past the budget: at least a third remains
      // whenever the trace had more events than the budget.
      expect(samples.length).toBeGreaterThan(Math.min(summary.events, budget) / 3);
      // In event order, one per grid cell of the final interval.
      for (let i = 1; i < samples.length; i++)
        expect(samples[i]!.event).toBeGreaterThan(samples[i - 1]!.event);
      const cells = regular(samples).map((x) => Math.floor(x.event / sampler.interval));
      expect(new Set(cells).size).toBe(cells.length);
      // The peak: the replay's own peak event and RSS.
      const peak = samples.filter((x) => x.mark.includes('peak'));
      expect(peak).toHaveLength(1);
      expect(peak[0]!.event).toBe(summary.peakEvent);
      expect(peak[0]!.rss).toBe(summary.peakRss);
      expect(Math.max(...samples.map((x) => x.rss))).toBe(summary.peakRss);
      // The last event, measured in full.
      const last = samples[samples.length - 1]!;
      expect(last.mark).toContain('last');
      expect(last.event).toBe(summary.events - 1);
      expect(last.rss).toBe(summary.rss);
      expect(last.mmapped).toBe(summary.mmapped);
      expect(last.live).toBe(summary.liveBytes);
      let resident = 0;
      for (const c of CAUSES) resident += last.causes![c];
      expect(resident).toBe(summary.rss);
    }
  });

  it('measures every sample of a short trace in full, and equals a replay stopped at each sampled event', async () => {
    const { samples } = await sample(SHORT, { samples: 0, every: 97 });
    expect(samples.every((x) => x.live !== null && x.causes !== null)).toBe(true);
    for (const x of samples.filter((_, i) => i % 5 === 0)) {
      const run = await replayFile(SHORT, { cores: 2, stopAfter: x.event });
      const r = run.replayer!;
      const s = r.finish();
      expect(x.rss).toBe(s.rss);
      expect(x.live).toBe(s.liveBytes);
      expect(x.heap).toBe(r.process.arenas.reduce((n, a) => n + a.systemMem, 0));
      expect(x.mmapped).toBe(s.mmapped);
      expect(x.mmapThreshold).toBe(r.process.mp.mmapThreshold);
      expect(x.trimThreshold).toBe(r.process.mp.trimThreshold);
    }
  });

  it('samples every N events, or every event without a budget', async () => {
    const all = await sample(SHORT, { samples: 0 });
    expect(all.samples).toHaveLength(all.summary.events);
    const every = await sample(SHORT, { samples: 0, every: 100 });
    // One sample at each multiple of 100; the others are the peak and the last event.
    expect(every.samples.filter((x) => x.event % 100 === 0)).toHaveLength(
      Math.ceil(every.summary.events / 100),
    );
    for (const x of every.samples.filter((y) => y.event % 100 !== 0)) expect(x.mark).not.toBe('');
  });

  it('samples by trace time', async () => {
    const { samples, sampler, summary } = await sample(TIMED, { everyTime: 50_000, samples: 400 });
    expect(sampler.timed).toBe(true);
    expect(samples.length).toBeLessThanOrEqual(400);
    const cells = regular(samples).map((x) => Math.floor(x.time / sampler.interval));
    expect(new Set(cells).size).toBe(cells.length);
    // Time stamps are the trace's, and a pause of 250 us is a gap in the samples, not a run of them.
    expect(samples[samples.length - 1]!.event).toBe(summary.events - 1);
    expect(samples[0]!.time).toBeGreaterThan(0);
  });

  it('refuses settings that cannot work', () => {
    expect(() => new TimelineSampler({ every: 0 })).toThrow();
    expect(() => new TimelineSampler({ samples: 2 })).toThrow();
    expect(() => new TimelineSampler({ every: 2, everyTime: 5 })).toThrow();
  });
});

describe('timeline files', () => {
  function lines(p: string): string[] {
    return readFileSync(p, 'utf8').trimEnd().split('\n');
  }

  it('writes CSV with a header row, and JSON lines, from ptsim replay --timeline', async () => {
    const out: string[] = [];
    const quiet = (s: string): void => void out.push(s);
    const csv = join(dir, 't.csv');
    expect(
      await replayCommand.run(
        [LONG, '--cores', '2', '--timeline', csv, '--timeline-samples', '100'],
        quiet,
        quiet,
      ),
    ).toBe(0);
    const rows = lines(csv);
    expect(rows[0]).toBe(TIMELINE_COLUMNS.join(','));
    expect(rows.length - 1).toBeLessThanOrEqual(100);
    for (const row of rows.slice(1)) expect(row.split(',')).toHaveLength(TIMELINE_COLUMNS.length);
    const last = rows[rows.length - 1]!.split(',');
    expect(last[TIMELINE_COLUMNS.indexOf('mark')]).toContain('last');

    for (const ext of ['jsonl', 'ndjson']) {
      const p = join(dir, `t.${ext}`);
      expect(
        await replayCommand.run(
          [LONG, '--cores', '2', '--timeline', p, '--timeline-samples', '100'],
          quiet,
          quiet,
        ),
      ).toBe(0);
      const objs = lines(p).map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(objs).toHaveLength(rows.length - 1);
      for (const o of objs) expect(Object.keys(o)).toEqual([...TIMELINE_COLUMNS]);
      // The same samples as the CSV file.
      expect(objs.map((o) => o['rss'])).toEqual(rows.slice(1).map((r) => Number(r.split(',')[2])));
    }
  });

  it('writes a timeline with no limit of samples through a spill file: the file the samples kept in memory make', async () => {
    // Peaks at the first event, in the middle (between two samples of a coarser grid) and at
    // the last event: the peak's sample replaces one handed on, goes in among them, or stays held.
    const small = (n: number, from: number): string[] =>
      Array.from({ length: n }, (_, i) => `1 malloc ${16 + (i % 7) * 8} s${from + i}`);
    const peakFirst = file(
      'peak-first.trace',
      ['1 malloc 1000000 big', '1 free big', ...small(40, 0), ''].join('\n'),
    );
    const peakMiddle = file(
      'peak-middle.trace',
      [...small(50, 0), '1 malloc 1000000 big', '1 free big', ...small(40, 50), ''].join('\n'),
    );
    const peakLast = file(
      'peak-last.trace',
      [...small(30, 0), '1 malloc 1000000 big', ''].join('\n'),
    );
    // Spill files of megabytes, read back in several pieces, lines cut across them: the peak
    // after the first megabyte.
    const peakLate = file(
      'peak-late.trace',
      [...small(25_000, 0), '1 malloc 1000000 big', '1 free big', ...small(5_000, 25_000), ''].join(
        '\n',
      ),
    );
    const cases: Array<[string, TimelineOptions, string[]]> = [
      [peakLate, {}, []],
      [peakLate, { every: 7 }, ['--timeline-every', '7']],
      [SHORT, {}, []],
      [SHORT, { every: 7 }, ['--timeline-every', '7']],
      [MEASURED, { every: 10 }, ['--timeline-every', '10']],
      [TIMED, { everyTime: 50_000 }, ['--timeline-every-time', '50us']],
      [peakFirst, {}, []],
      [peakFirst, { every: 3 }, ['--timeline-every', '3']],
      [peakMiddle, {}, []],
      [peakMiddle, { every: 7 }, ['--timeline-every', '7']],
      [peakLast, {}, []],
      [peakLast, { every: 4 }, ['--timeline-every', '4']],
    ];
    const quiet = (): void => {};
    for (const [trace, opts, args] of cases) {
      const kept = await sample(trace, { ...opts, samples: 0 });
      for (const format of ['csv', 'jsonl'] as const) {
        const p = join(dir, `spilled.${format}`);
        const argv = [trace, '--cores', '2', '--timeline', p, '--timeline-samples', '0', ...args];
        expect(await replayCommand.run(argv, quiet, quiet)).toBe(0);
        expect(readFileSync(p, 'utf8'), `${trace} ${args.join(' ')} ${format}`).toBe(
          formatTimeline(kept.samples, format),
        );
      }
    }
    // The spill files are gone.
    expect(readdirSync(dir).filter((f) => f.includes('.tmp'))).toEqual([]);
    // Each peak case puts the peak where it should: among the samples handed on or held.
    const places: string[] = [];
    for (const [trace, opts] of [...cases.slice(0, 2), ...cases.slice(6)]) {
      const handed: TimelineSample[] = [];
      const sampler = new TimelineSampler({
        ...opts,
        samples: 0,
        spill: (x) => handed.push({ ...x }),
      });
      await replayFile(trace, { cores: 2, observe: sampler.observe });
      const end = sampler.finishSpilled();
      // Held at the end: the current cell's sample and the last event's, with the peak at most.
      expect(end.tail.length).toBeLessThanOrEqual(3);
      places.push(end.peak?.place ?? 'held');
    }
    expect(places).toEqual([
      'replace',
      'insert',
      'replace',
      'replace',
      'replace',
      'insert',
      'held',
      'held',
    ]);
  });

  it('formats what was not measured as empty CSV fields and JSON nulls', () => {
    const x: TimelineSample = {
      event: 3,
      time: 3,
      rss: 4096,
      measuredAnon: null,
      measuredTotal: null,
      heap: 135168,
      mmapped: 0,
      live: null,
      causes: null,
      mmapThreshold: 131072,
      trimThreshold: 131072,
      mark: '',
    };
    expect(formatTimeline([x], 'csv').split('\n')[1]).toBe(
      '3,3,4096,135168,0,,,,,,,,,,131072,131072,,,',
    );
    expect(JSON.parse(formatTimeline([x], 'jsonl'))).toMatchObject({
      measured_anon: null,
      measured_total: null,
      live_bytes: null,
      resident_free_top: null,
      mark: '',
    });
  });

  it('writes every number of a line as String() writes it', () => {
    const values = fc.oneof(
      fc.nat(),
      fc.maxSafeNat(),
      fc.constantFrom(0, 9, 10, 99, 100, 2 ** 31, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -1, 1e21, 0.5),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
    );
    fc.assert(
      fc.property(fc.array(values, { minLength: 19, maxLength: 19 }), (v) => {
        const causes = Object.fromEntries(CAUSES.map((c, k) => [c, v[6 + k]!])) as Record<
          Cause,
          number
        >;
        const at = 6 + CAUSES.length;
        const x: TimelineSample = {
          event: v[0]!,
          time: v[1]!,
          rss: v[2]!,
          heap: v[3]!,
          mmapped: v[4]!,
          live: v[5]!,
          causes,
          mmapThreshold: v[at]!,
          trimThreshold: v[at + 1]!,
          measuredAnon: v[at + 2]!,
          measuredTotal: v[at + 3]!,
          mark: 'peak last',
        };
        const fields = v.slice(0, at + 4).map((n) => String(n));
        expect(formatTimeline([x], 'csv').split('\n')[1]).toBe([...fields, 'peak last'].join(','));
        const obj = JSON.parse(formatTimeline([x], 'jsonl')) as Record<string, unknown>;
        expect(Object.values(obj)).toEqual([
          ...v.slice(0, at + 4).map((n) => JSON.parse(String(n)) as unknown),
          'peak last',
        ]);
      }),
      fcParams({ numRuns: 300 }),
    );
  });

  it('writes each JSON line as the object of the columns, and each CSV line as their values', async () => {
    const { samples } = await sample(MEASURED, { samples: 0, every: 50 });
    // Samples with and without the breakdown, live bytes, a measurement and marks.
    expect(samples.some((x) => x.causes !== null) && samples.some((x) => x.causes === null)).toBe(
      true,
    );
    expect(samples.some((x) => x.measuredAnon !== null)).toBe(true);
    expect(samples.some((x) => x.mark.includes('peak'))).toBe(true);
    const jsonl = formatTimeline(samples, 'jsonl').trimEnd().split('\n');
    const csv = formatTimeline(samples, 'csv').trimEnd().split('\n').slice(1);
    samples.forEach((x, i) => {
      const row: Record<string, number | string | null> = {
        event: x.event,
        time: x.time,
        rss: x.rss,
        heap: x.heap,
        mmapped: x.mmapped,
        live_bytes: x.live,
      };
      for (const c of CAUSES) row[`resident_${c.replace(/-/g, '_')}`] = x.causes?.[c] ?? null;
      row['mmap_threshold'] = x.mmapThreshold;
      row['trim_threshold'] = x.trimThreshold;
      row['measured_anon'] = x.measuredAnon;
      row['measured_total'] = x.measuredTotal;
      row['mark'] = x.mark;
      expect(Object.keys(row)).toEqual([...TIMELINE_COLUMNS]);
      expect(jsonl[i]).toBe(JSON.stringify(row));
      expect(csv[i]).toBe(TIMELINE_COLUMNS.map((k) => row[k] ?? '').join(','));
    });
  });

  it('refuses other extensions and stray options before replaying', async () => {
    const noop = (): void => {};
    await expect(
      replayCommand.run([SHORT, '--timeline', join(dir, 't.txt')], noop, noop),
    ).rejects.toThrow(/\.csv.*\.jsonl/);
    await expect(replayCommand.run([SHORT, '--timeline-every', '10'], noop, noop)).rejects.toThrow(
      /--timeline FILE/,
    );
    await expect(
      replayCommand.run(
        [
          SHORT,
          '--timeline',
          join(dir, 'x.csv'),
          '--timeline-every',
          '5',
          '--timeline-every-time',
          '1ms',
        ],
        noop,
        noop,
      ),
    ).rejects.toThrow(/exclude/);
    // A path that cannot be written is one line and status 2, found before the replay.
    let err = '';
    let out = '';
    const status = await replayCommand.run(
      [SHORT, '--timeline', join(dir, 'no-such-dir', 'x.csv')],
      (s) => void (out += s),
      (s) => void (err += s),
    );
    expect(status).toBe(2);
    expect(err).toBe(
      `ptsim: --timeline ${join(dir, 'no-such-dir', 'x.csv')}: cannot write it: no such directory\n`,
    );
    expect(out).toBe('');
  });
});
