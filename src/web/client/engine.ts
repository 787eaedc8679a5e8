/**
 * The visualizer's engine, run in a worker: reads a trace from bytes (native format, gzip or not),
 * holds it in a Stepper (src/analysis/stepper.ts, the engine of `ptsim step`) with checkpoints,
 * samples the figures along one first pass, then answers each move with the heap view, the step's
 * sentence and the resident pages at that event. A what-if replays the trace held in memory with
 * other settings and returns its figures. No DOM here.
 */

import { heapView } from '../../analysis/heap-view.js';
import { Stepper } from '../../analysis/stepper.js';
import { ThresholdHistory } from '../../analysis/thresholds.js';
import { TimelineSampler, type TimelineSample } from '../../analysis/timeline.js';
import { MALLOPT_PARAMS } from '../../core/constants.js';
import { PAGE_SIZE } from '../../kernel/kernel.js';
import { replaySink, type ReplaySettings } from '../../replay/sink.js';
import { BinaryTraceReader, isBinaryTrace } from '../../trace/binary.js';
import { TraceParser } from '../../trace/parser.js';
import type { PageStrip, Reply, Request, Series } from './protocol.js';

/** Samples kept along the trace for the charts. */
const SAMPLES = 1200;
/** Cells at most in a mapping's strip of resident pages. */
const STRIP_CELLS = 256;

/**
 * Settings written as on the command line, separated by blanks or commas: `M_NAME=VALUE`
 * (mallopt), `glibc.malloc.NAME=VALUE` (a tunable) or `MALLOC_NAME_=VALUE` (an environment
 * variable). A number may end in K, M or G.
 */
function parseSettings(text: string): ReplaySettings {
  const out: ReplaySettings = {};
  const tunables: string[] = [];
  for (const item of text.split(/[\s,]+/).filter((s) => s !== '')) {
    const m = /^([A-Za-z_][\w.]*)=(\S+)$/.exec(item);
    if (m === null) throw new Error(`'${item}' is not NAME=VALUE`);
    const [, name, raw] = m as unknown as [string, string, string];
    const num = /^(-?\d+)([KMG]?)$/i.exec(raw);
    const value =
      num === null
        ? NaN
        : Number(num[1]) * 1024 ** ['', 'K', 'M', 'G'].indexOf(num[2]!.toUpperCase());
    if (name.startsWith('glibc.')) {
      if (Number.isNaN(value)) throw new Error(`${name}: '${raw}' is not a number`);
      tunables.push(`${name}=${value}`);
    } else if (name.startsWith('MALLOC_')) {
      out.env = [...(out.env ?? []), [name, raw]];
    } else {
      const param = MALLOPT_PARAMS[name.startsWith('M_') ? name : `M_${name}`];
      if (param === undefined) throw new Error(`'${name}' is not a mallopt parameter`);
      if (Number.isNaN(value)) throw new Error(`${name}: '${raw}' is not a number`);
      out.mallopts = [...(out.mallopts ?? []), [param, value]];
    }
  }
  if (tunables.length > 0) out.extraTunables = tunables.join(':');
  return out;
}

function seriesOf(samples: TimelineSample[]): Series {
  return {
    event: samples.map((s) => s.event),
    rss: samples.map((s) => s.rss),
    heap: samples.map((s) => s.heap),
    mmapped: samples.map((s) => s.mmapped),
    live: samples.map((s) => s.live),
    mmapThreshold: samples.map((s) => s.mmapThreshold),
    trimThreshold: samples.map((s) => s.trimThreshold),
  };
}

/** The bytes of a trace, gunzipped when they start with gzip's magic bytes. */
async function traceBytes(bytes: Uint8Array): Promise<Uint8Array> {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>])
      .stream()
      .pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  const magic = [...bytes.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join('');
  const packer = magic.startsWith('28b52ffd')
    ? 'zstd'
    : magic.startsWith('fd377a585a00')
      ? 'xz'
      : magic.startsWith('425a68')
        ? 'bzip2'
        : null;
  if (packer !== null)
    throw new Error(
      `the trace is compressed with ${packer}, which the page cannot read: decompress it first, or open it with ptsim web FILE`,
    );
  return bytes;
}

export class Engine {
  private st: Stepper | null = null;
  private name = '';

  constructor(private readonly post: (r: Reply) => void) {}

  async handle(req: Request): Promise<void> {
    try {
      if (req.type === 'load') await this.load(req.name, new Uint8Array(req.bytes), req.settings);
      else if (req.type === 'goto') this.goTo(req.event);
      else this.whatIf(req.settings);
    } catch (e) {
      this.post({ type: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  }

  private async load(name: string, raw: Uint8Array, settings: string): Promise<void> {
    const t0 = performance.now();
    const bytes = await traceBytes(raw);
    const warnings: string[] = [];
    const sampler = new TimelineSampler({ samples: SAMPLES });
    const thresholds = new ThresholdHistory();
    let firstPass = true;
    const st = await Stepper.read(
      name,
      (sink) => {
        // The binary form, or the text in pieces, as a reader gives them (the parser keeps no
        // reference to them).
        if (isBinaryTrace(bytes)) {
          const b = new BinaryTraceReader(name, sink);
          b.push(bytes);
          b.finish();
          return;
        }
        const p = new TraceParser(name, sink);
        for (let i = 0; i < bytes.length; i += 1 << 20) p.push(bytes.subarray(i, i + (1 << 20)));
        p.end();
      },
      {
        settings: parseSettings(settings),
        fallbackCores: navigator.hardwareConcurrency,
        onWarning: (w) => {
          if (warnings.length < 50) warnings.push(w);
        },
        observe: (ev, r) => {
          if (!firstPass || r.aborted) return;
          sampler.observe(ev, r);
          thresholds.observe(ev, r);
        },
      },
    );
    st.goTo(st.events - 1);
    firstPass = false;
    const series = seriesOf(sampler.finish());
    this.st = st;
    this.name = name;
    const stop = st.stop === null ? null : `event ${st.stop.event}: ${st.stop.message}`;
    st.goTo(-1);
    this.post({
      type: 'loaded',
      name,
      events: st.events,
      last: st.last,
      checkpointEvery: st.checkpointInterval,
      series,
      thresholds: thresholds.changes,
      stop,
      warnings,
      millis: performance.now() - t0,
    });
    this.goTo(-1);
  }

  private goTo(event: number): void {
    const st = this.st;
    if (st === null) throw new Error('no trace loaded');
    const t0 = performance.now();
    const target = Math.max(-1, Math.min(event, st.last));
    // The sentence of the event shown, also when the page asks for the event it is at.
    if (target === st.position && target >= 0) st.goTo(target - 1);
    const step = st.goTo(target);
    const view = st.view();
    view.trace = this.name;
    this.post({
      type: 'state',
      pos: st.position,
      step,
      view,
      pages: this.pages(),
      millis: performance.now() - t0,
    });
  }

  /** The resident pages of each mapping, in at most STRIP_CELLS cells. */
  private pages(): PageStrip[] {
    const r = this.st!.replayer;
    const k = r.kernel;
    const views = heapView(r, null, -1, 0).maps.filter((m) => !m.perms.startsWith('---'));
    return views.map((m) => {
      const pages = Math.ceil(m.size / PAGE_SIZE);
      const cell = Math.ceil(pages / STRIP_CELLS) * PAGE_SIZE;
      const cells: number[] = [];
      for (let a = m.start; a < m.end; a += cell) {
        const e = Math.min(m.end, a + cell);
        cells.push(Math.round((255 * k.residentIn(a, e)) / (e - a)));
      }
      return { name: m.name, start: m.start, size: m.size, cell, cells };
    });
  }

  private whatIf(settings: string): void {
    const st = this.st;
    if (st === null) throw new Error('no trace loaded');
    const parsed = parseSettings(settings);
    const sampler = new TimelineSampler({ samples: SAMPLES });
    const rs = replaySink(st.trace, {
      ...parsed,
      fallbackCores: navigator.hardwareConcurrency,
      observe: (ev, r) => {
        if (!r.aborted) sampler.observe(ev, r);
      },
    });
    try {
      st.feed(rs.sink);
    } catch (e) {
      // glibc's abort or a mistake: the figures up to it.
      if (!(e instanceof Error)) throw e;
    }
    const r = rs.replayer;
    const sum = r?.finish();
    this.post({
      type: 'whatif',
      settings,
      series: seriesOf(sampler.finish()),
      peakRss: sum?.peakRss ?? 0,
      finalRss: sum?.rss ?? 0,
    });
  }
}
