/**
 * `--timeline FILE` and its companions: a replaying command samples the replay (analysis/
 * timeline.ts) and writes the samples as CSV or JSON lines, chosen by the file's extension.
 */

import { closeSync, openSync, readSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_TIMELINE_SAMPLES,
  TIMELINE_LINE_MAX_BYTES,
  TimelineSampler,
  encodeTimelineLine,
  formatTimeline,
  timelineFormatOf,
  timelineHeader,
  timelineLineEvent,
  type SpilledEnd,
  type TimelineFormat,
  type TimelineOptions,
  type TimelineSample,
} from '../analysis/timeline.js';
import type { Replayer } from '../replay/replay.js';
import type { RunResult } from '../replay/run-file.js';
import type { TraceEvent } from '../trace/types.js';
import { UsageError } from './errors.js';
import { OutputFile } from './output.js';
import { parseNumber } from './settings-options.js';

export const TIMELINE_OPTIONS = {
  timeline: { type: 'string' },
  'timeline-every': { type: 'string' },
  'timeline-every-time': { type: 'string' },
  'timeline-samples': { type: 'string' },
} as const;

export const TIMELINE_HELP = `  --timeline FILE      write RSS, heap, mmapped bytes, live bytes, resident bytes by cause, the
                       mmap and trim thresholds and the recording's #:rss samples along the
                       replay to FILE: CSV (.csv) or JSON lines (.jsonl, .ndjson); see
                       docs/explaining.md
  --timeline-every N   sample every N events (default 1)
  --timeline-every-time T
                       sample every T of trace time (the trace's @TIME; 500us, 10ms, 2s, or
                       nanoseconds); a trace without times counts events instead
  --timeline-samples K keep at most K samples, the peak and the last event included, doubling
                       the interval as needed (default ${DEFAULT_TIMELINE_SAMPLES}; 0: keep every sample)`;

interface TimelineValues {
  timeline?: string;
  'timeline-every'?: string;
  'timeline-every-time'?: string;
  'timeline-samples'?: string;
}

interface TimelineRequest {
  path: string;
  format: TimelineFormat;
  options: TimelineOptions;
}

const UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };

/** A span of trace time: a number with ns, us, ms or s (nanoseconds without a unit). */
function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)?\s*$/.exec(text);
  if (m === null)
    throw new UsageError(
      `${what}: '${text}' is not a duration (for example 500us, 10ms, 2s, or nanoseconds)`,
    );
  const v = Number(m[1]) * UNITS[m[2] ?? 'ns']!;
  if (!(v >= 1)) throw new UsageError(`${what}: the interval must be at least 1 ns`);
  return v;
}

/** The timeline a command line asks for, or null; every mistake is found before the replay starts. */
export function timelineArgs(values: TimelineValues): TimelineRequest | null {
  const path = values.timeline;
  const every = values['timeline-every'];
  const everyTime = values['timeline-every-time'];
  const samples = values['timeline-samples'];
  if (path === undefined) {
    if (every !== undefined || everyTime !== undefined || samples !== undefined)
      throw new UsageError(
        '--timeline-every, --timeline-every-time and --timeline-samples go with --timeline FILE',
      );
    return null;
  }
  const format = timelineFormatOf(path);
  if (format === null)
    throw new UsageError(
      `--timeline ${path}: the file name must end in .csv (CSV) or .jsonl / .ndjson (JSON lines)`,
    );
  if (every !== undefined && everyTime !== undefined)
    throw new UsageError('--timeline-every and --timeline-every-time exclude each other');
  const options: TimelineOptions = {};
  if (every !== undefined) {
    const n = parseNumber(every, '--timeline-every');
    if (n < 1) throw new UsageError('--timeline-every must be 1 or more');
    options.every = n;
  }
  if (everyTime !== undefined)
    options.everyTime = parseDuration(everyTime, '--timeline-every-time');
  if (samples !== undefined) {
    const k = parseNumber(samples, '--timeline-samples');
    if (k !== 0 && k < 4)
      throw new UsageError('--timeline-samples must be 0 (no limit) or at least 4');
    options.samples = k;
  }
  return { path, format, options };
}

/**
 * Runs a replay with the timeline's observe hook (when one is asked for) and writes the samples to
 * the timeline's file, which the caller commits or discards (output.ts). The file is opened
 * first, so that a path that cannot be written fails before a long replay. A timeline with no
 * limit of samples (a sample after every event, by default) is not held in memory: its samples go
 * to a spill file as they become final, and from there to the timeline's file at the end, the
 * peak's mark put in on the way (spilled()).
 */
export async function replayWithTimeline(
  req: TimelineRequest | null,
  run: (observe?: (ev: TraceEvent, r: Replayer) => void) => Promise<RunResult>,
): Promise<{ result: RunResult; file: OutputFile | null }> {
  if (req === null) return { result: await run(undefined), file: null };
  const file = OutputFile.open(req.path, '--timeline');
  let spill: OutputFile | null = null;
  try {
    if (req.options.samples === 0) {
      // Beside the timeline's own temporary file, on the disk the user chose; in the system's
      // temporary directory when the timeline is written in place (a device, a pipe).
      spill = OutputFile.open(
        file.writePath !== file.path ? req.path : join(tmpdir(), `ptsim-timeline-${process.pid}`),
        '--timeline',
      );
      const out = new Lines(spill, req.format);
      const sampler = new TimelineSampler({ ...req.options, spill: (x) => out.addSample(x) });
      const result = await run(sampler.observe);
      out.flush();
      spilled(spill.writePath, sampler.finishSpilled(), file, req.format);
      spill.discard();
      return { result, file };
    }
    const sampler = new TimelineSampler(req.options);
    const result = await run(sampler.observe);
    file.write(formatTimeline(sampler.finish(), req.format));
    return { result, file };
  } catch (e) {
    spill?.discard();
    file.discard();
    throw e;
  }
}

/**
 * Lines gathered into blocks of a MiB before they are written. Samples are encoded into the block
 * directly (encodeTimelineLine), without a string: a timeline of every event has millions of
 * lines, whose strings cost their building, a call into Node's native code each to copy them
 * into the block, and the collector. (Gathered as one string of a MiB, the block was a tree of the
 * lines' pieces that lived on until it was written, which the collector copied at each of its
 * young-generation passes: half the time of such a timeline.)
 */
class Lines {
  private readonly buf = Buffer.allocUnsafe(1 << 20);
  private used = 0;
  constructor(
    private readonly file: OutputFile,
    private readonly format: TimelineFormat,
  ) {}
  /** A sample's line. */
  addSample(x: TimelineSample): void {
    if (TIMELINE_LINE_MAX_BYTES > this.buf.length - this.used) this.flush();
    this.used = encodeTimelineLine(x, this.format, this.buf, this.used);
  }
  /** Text (the header). */
  add(text: string): void {
    // At most 3 bytes a UTF-16 unit in UTF-8.
    if (3 * text.length > this.buf.length - this.used) {
      this.flush();
      if (3 * text.length > this.buf.length) {
        this.file.write(text);
        return;
      }
    }
    this.used += this.buf.write(text, this.used, 'utf8');
  }
  /** Bytes b[from, to) as they are. */
  addBytes(b: Buffer, from: number, to: number): void {
    if (to - from > this.buf.length - this.used) {
      this.flush();
      if (to - from > this.buf.length) {
        this.file.write(b.subarray(from, to));
        return;
      }
    }
    this.used += b.copy(this.buf, this.used, from, to);
  }
  flush(): void {
    if (this.used > 0) this.file.write(this.buf.subarray(0, this.used));
    this.used = 0;
  }
}

/**
 * Writes the timeline from its spill file (the lines of the samples handed on) and its end: the
 * header, the lines with the peak's sample put in place or in order, then the samples held. The
 * spill file's bytes are copied as they are: only the lines read until the peak's place is found
 * are looked at (their event, the first field).
 */
function spilled(path: string, end: SpilledEnd, file: OutputFile, format: TimelineFormat): void {
  const out = new Lines(file, format);
  out.add(timelineHeader(format));
  let peak: TimelineSample | null = end.peak?.sample ?? null;
  const place = end.peak?.place;
  /** Whether the line buf[from, nl) goes out as it is (else the peak's sample replaces it). */
  const keep = (buf: Buffer, from: number, nl: number): boolean => {
    if (peak === null) return true;
    const event = timelineLineEvent(buf.toString('latin1', from, nl), format);
    if (place === 'replace' && event === peak.event) {
      out.addSample(peak);
      peak = null;
      return false;
    }
    if (place === 'insert' && event > peak.event) {
      out.addSample(peak);
      peak = null;
    }
    return true;
  };
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    // buf[0, held) is a line begun in the last read, completed by the next (the lines are short).
    let held = 0;
    for (;;) {
      if (held === buf.length) throw new Error('ptsim internal error: a timeline line of a MiB');
      const n = readSync(fd, buf, held, buf.length - held, null);
      if (n === 0) break;
      const filled = held + n;
      let from = 0;
      while (peak !== null) {
        const nl = buf.indexOf(10, from);
        if (nl < 0 || nl >= filled) break;
        if (keep(buf, from, nl)) out.addBytes(buf, from, nl + 1);
        from = nl + 1;
      }
      // Once the peak is in its place, whole lines go on in one copy.
      const last = buf.lastIndexOf(10, filled - 1);
      if (peak === null && last >= from) {
        out.addBytes(buf, from, last + 1);
        from = last + 1;
      }
      held = filled - from;
      buf.copyWithin(0, from, filled);
    }
    // The spill file ends with a newline: nothing is left over.
  } finally {
    closeSync(fd);
  }
  // Inserted after every sample handed on: none came later.
  if (peak !== null) out.addSample(peak);
  for (const x of end.tail) out.addSample(x);
  out.flush();
}
