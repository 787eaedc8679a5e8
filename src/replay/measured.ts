/**
 * The `#:rss` samples of a trace (docs/trace-format.md): what the recorded process measured of its
 * own resident memory, kept by the replay beside its own figure at the same point of the trace, so
 * that a reader can set the model against the measurement.
 *
 * A sample stands after an event (or before the first one): the modelled figure beside it is the
 * replay's RSS after that event, once the records that follow the event (its touches) are
 * applied, the figure the replay reports for the event. Samples are kept in typed arrays (a long
 * recording has a sample every 100 ms or so); marks, rare, in a map.
 */

import type { RssSample } from '../trace/types.js';

/** One sample, as summaries show it. Bytes are bytes. */
export interface MeasuredSample {
  /** The index of the event the sample follows, -1 before the first event. */
  event: number;
  /** Its line in the trace. */
  line: number;
  /** Its @TIME in nanoseconds, or -1. */
  time: number;
  /** The process's anonymous resident memory (RssAnon), when the sample has it (`anon=`). */
  anon: number | null;
  /**
   * The process's whole resident memory (VmRSS, what top shows as RES: code, libraries, stacks
   * and the recorder's own memory included), present when the sample has it (`total=`).
   */
  total?: number;
  /** The resident part of the allocator's own memory, when the recorder measured it. */
  heap: number | null;
  /** The part of anon that was the recorder's own memory, when the recorder said (`rec=`). */
  recorder: number | null;
  /** The name the program gave the point where it asked for the sample. */
  mark: string | null;
  /** The replay's RSS at the same point. */
  modelled: number;
}

export class MeasuredSamples {
  /** Samples kept. */
  count = 0;
  private event = new Float64Array(16);
  private line = new Float64Array(16);
  private time = new Float64Array(16);
  private anon = new Float64Array(16);
  private total = new Float64Array(16);
  private heap = new Float64Array(16);
  private rec = new Float64Array(16);
  private modelled = new Float64Array(16);
  private readonly marks = new Map<number, string>();
  /** Samples from this index on wait for their modelled figure (see settle). */
  private unsettled = 0;

  /** Keeps a sample that follows event `event` (-1: before the first event). */
  add(event: number, s: RssSample): void {
    const i = this.count++;
    if (i === this.event.length) this.grow();
    this.event[i] = event;
    this.line[i] = s.line;
    this.time[i] = s.time;
    this.anon[i] = s.anon;
    this.total[i] = s.total ?? -1;
    this.heap[i] = s.heap;
    this.rec[i] = s.rec ?? -1;
    this.modelled[i] = 0;
    if (s.mark !== '') this.marks.set(i, s.mark);
  }

  /** Gives the samples kept since the last call the replay's RSS at this point. */
  settle(rss: number): void {
    for (let i = this.unsettled; i < this.count; i++) this.modelled[i] = rss;
    this.unsettled = this.count;
  }

  /** The anon figure of sample i, or -1 when it has none. */
  anonOf(i: number): number {
    return this.anon[i]!;
  }

  /** The total figure of sample i, or -1 when it has none. */
  totalOf(i: number): number {
    return this.total[i]!;
  }

  /** Sample i as an object. */
  get(i: number): MeasuredSample {
    const anon = this.anon[i]!;
    const heap = this.heap[i]!;
    const rec = this.rec[i]!;
    const total = this.total[i]!;
    const x: MeasuredSample = {
      event: this.event[i]!,
      line: this.line[i]!,
      time: this.time[i]!,
      anon: anon < 0 ? null : anon,
      heap: heap < 0 ? null : heap,
      recorder: rec < 0 ? null : rec,
      mark: this.marks.get(i) ?? null,
      modelled: this.modelled[i]!,
    };
    if (total >= 0) x.total = total;
    return x;
  }

  /** The index of the last sample that follows event `event` or an earlier one (-1: none). */
  atOrBefore(event: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.event[mid]! <= event) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /**
   * The index of the first sample with the highest anon figure; when no sample has one, of the
   * first with the highest total (-1 when there is no sample).
   */
  peak(): number {
    const by = this.firstWithAnon() >= 0 ? this.anon : this.total;
    let best = -1;
    for (let i = 0; i < this.count; i++) if (best < 0 || by[i]! > by[best]!) best = i;
    return best;
  }

  /** The index of the first sample that has an anon figure (-1: none has). */
  firstWithAnon(): number {
    for (let i = 0; i < this.count; i++) if (this.anon[i]! >= 0) return i;
    return -1;
  }

  private grow(): void {
    const n = this.event.length * 2;
    const bigger = (a: Float64Array): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.event = bigger(this.event);
    this.line = bigger(this.line);
    this.time = bigger(this.time);
    this.anon = bigger(this.anon);
    this.total = bigger(this.total);
    this.heap = bigger(this.heap);
    this.rec = bigger(this.rec);
    this.modelled = bigger(this.modelled);
  }
}
