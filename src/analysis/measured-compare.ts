/**
 * The model against the measurement at a moment explained: the trace's `#:rss` sample nearest at
 * or before the moment's event (measured.ts), the replay's RSS at that sample, and whether the two
 * agree. They are compared as growth since the first sample, as the ground-truth tests do
 * (docs/recording.md, "The replay against the real process"): RssAnon less the recorder's own
 * memory (`rec=`), against the replay's RSS, each less its figure at the first sample, which
 * stands for what the process held before its first allocator call (its stacks, libraries'
 * data, a runtime's start-up). They agree within 5% of the measured growth + 512 KiB.
 *
 * A sample with only the process's whole RSS (`total=`, as heaptrack's imports have) is not
 * compared so: it is shown beside the replay's RSS, which counts only the allocator's memory, the
 * difference being the rest of the process (code, libraries, stacks, the recorder's own memory).
 * The growth comparison, made from RssAnon, leaves such samples out; its baseline is the first
 * sample that has RssAnon.
 */

import type { MeasuredSample, MeasuredSamples } from '../replay/measured.js';
import { shortBytes } from './units.js';

/** The tolerance: a share of the measured growth, and bytes. */
const SHARE = 0.05;
const SLACK = 512 * 1024;

/** The measurement at a moment: compared as growth (anon), or shown beside the replay (total). */
export type MeasuredComparison = AnonComparison | TotalBeside;

/** A sample with RssAnon, compared with the replay as growth since the first such sample. */
export interface AnonComparison {
  kind: 'anon';
  /** The sample compared: the last one at or before the moment's event. */
  sample: MeasuredSample;
  /** The first sample of the trace that has RssAnon, the baseline of both growths. */
  first: MeasuredSample;
  /** RssAnon less the recorder's own memory, less the same at the first sample. */
  measuredGrowth: number;
  /** The replay's RSS at the sample less its RSS at the first sample. */
  modelledGrowth: number;
  /** How far apart they may be: 5% of the measured growth + 512 KiB. */
  allowed: number;
  /** Whether they are further apart than that. */
  differs: boolean;
  /** When they differ: what the gap is and its usual reasons, in one line. */
  note?: string;
}

/**
 * A sample with only the process's whole RSS (`total=`): shown beside the replay's RSS, with no
 * verdict, as the two measure different things.
 */
export interface TotalBeside {
  kind: 'total';
  /** The sample: the last one at or before the moment's event. */
  sample: MeasuredSample;
  /** The process's whole resident memory. */
  total: number;
  /** The rest of the process: its whole RSS less the replay's RSS at the sample. */
  rest: number;
}

/** RssAnon less the recorder's own memory. */
function own(s: MeasuredSample): number {
  return s.anon! - (s.recorder ?? 0);
}

/** The comparison at event `event`, or undefined when no sample stands at or before it. */
export function compareMeasured(m: MeasuredSamples, event: number): MeasuredComparison | undefined {
  const i = m.atOrBefore(event);
  if (i < 0) return undefined;
  const sample = m.get(i);
  if (sample.anon === null) {
    const total = sample.total!;
    return { kind: 'total', sample, total, rest: total - sample.modelled };
  }
  const first = m.get(m.firstWithAnon());
  const measuredGrowth = own(sample) - own(first);
  const modelledGrowth = sample.modelled - first.modelled;
  const allowed = SHARE * Math.abs(measuredGrowth) + SLACK;
  const gap = measuredGrowth - modelledGrowth;
  const c: AnonComparison = {
    kind: 'anon',
    sample,
    first,
    measuredGrowth,
    modelledGrowth,
    allowed,
    differs: Math.abs(gap) > allowed,
  };
  if (c.differs) c.note = differenceNote(gap, allowed);
  return c;
}

/** What a gap between the measured and the modelled growth usually means. */
function differenceNote(gap: number, allowed: number): string {
  const by = `the process's RssAnon grew ${shortBytes(Math.abs(gap))} ${gap > 0 ? 'more' : 'less'} than the replay's RSS since the first sample (more than 5% + 512 KiB: ${shortBytes(allowed)})`;
  return gap > 0
    ? `${by}: usually memory the allocator does not own (thread stacks, the program's own mmaps, a language runtime's own pools such as pymalloc's arenas), or pages the program wrote that the trace's touch records miss`
    : `${by}: usually pages the replay counts as written that the program never wrote (--touch full), pages given back with madvise outside malloc, or pages swapped out`;
}

/** The words explain's text and the report share to present a comparison made at `event`. */
export function comparisonWords(
  c: MeasuredComparison,
  event: number,
  eventNumber: (n: number) => string,
): { where: string; mark: string; rec: string; total: string; signed: (n: number) => string } {
  const s = c.sample;
  const where =
    s.event === event
      ? 'at this event'
      : s.event < 0
        ? 'before the first event'
        : `after event ${eventNumber(s.event)}, the last before this moment`;
  return {
    where,
    mark: s.mark === null ? '' : `, mark ${s.mark}`,
    rec: s.recorder === null ? '' : `, of which the recorder's own ${shortBytes(s.recorder)}`,
    total: s.total === undefined ? '' : `; the whole RSS ${shortBytes(s.total)}`,
    signed,
  };
}

function signed(n: number): string {
  return n < 0 ? `-${shortBytes(-n)}` : shortBytes(n);
}

/**
 * What a sample with only the process's whole RSS says beside the replay, in the words explain's
 * text and the report share; and that the growth comparison leaves it out.
 */
export function totalBesideWords(c: TotalBeside): { beside: string; leftOut: string } {
  return {
    beside:
      c.rest < 0
        ? `the process's whole RSS ${shortBytes(c.total)} (total=, what top shows as RES), the replay's RSS of the allocator's memory ${shortBytes(c.sample.modelled)}: ${shortBytes(-c.rest)} more than all the process held, so the replay makes pages resident that the program did not write (without touch records it takes every requested byte as written: an upper bound)`
        : `the process's whole RSS ${shortBytes(c.total)} (total=, what top shows as RES), the replay's RSS of the allocator's memory ${shortBytes(c.sample.modelled)}: the difference, ${shortBytes(c.rest)}, is the rest of the process (code, libraries, stacks, the recorder's own memory)`,
    leftOut:
      'the sample has no RssAnon (anon=), so the growth comparison with the replay, which is made from RssAnon, leaves it out',
  };
}
