/**
 * `ptsim show`'s moment: replays a trace up to an event (an index, its end, or the event after
 * which its RSS peaked) and takes the heap view there (heap-view.ts).
 */

import { DEFAULT_PROFILE, glibcLabel } from '../core/profile.js';
import { MomentOutOfRange } from './explain.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import type { Replayer } from '../replay/replay.js';
import type { TraceEvent } from '../trace/types.js';
import { heapView, TokenBook, type HeapView } from './heap-view.js';

/** end, peak, or an event index. */
export type ShowMoment = 'end' | 'peak' | number;

export interface ShowOptions {
  settings: ReplaySettings;
  import?: ImportSettings;
  displayName?: string;
  onWarning?: (msg: string) => void;
}

export interface ShownView {
  view: HeapView;
  /** Events in the trace replayed (up to the moment, or all of them for end and peak). */
  events: number;
  /** Set when glibc aborted at or before the moment: the view is of the state before the abort. */
  abort?: { message: string; event: number; line: number };
  /** The release modelled, when it is not the default: "2.41", "2.35 (unverified)". */
  glibc?: string;
}

async function replayTo(
  path: string,
  opts: ShowOptions,
  stopAfter: number | undefined,
): Promise<{ r: Replayer; book: TokenBook; event: number; line: number }> {
  const book = new TokenBook();
  let event = -1;
  let line = 0;
  const run = await replayFile(path, {
    ...opts.settings,
    import: opts.import,
    displayName: opts.displayName,
    onWarning: opts.onWarning,
    stopAfter,
    observe: (ev: TraceEvent, r: Replayer) => {
      // The event glibc aborted at changed nothing the view shows.
      if (r.aborted) return;
      book.see(ev);
      event = ev.index;
      line = ev.line;
    },
  });
  const r = run.replayer;
  if (r === null) throw run.failure ?? new Error(`${path}: nothing to replay`);
  if (run.failure !== null) throw run.failure;
  return { r, book, event, line };
}

/** The heap view of a trace at a moment. */
export async function showAt(path: string, at: ShowMoment, opts: ShowOptions): Promise<ShownView> {
  let stopAfter: number | undefined;
  if (at === 'peak') {
    const first = await replayTo(path, opts, undefined);
    const sum = first.r.finish();
    if (sum.abort !== undefined) return shown(first, sum.events, sum.abort);
    stopAfter = sum.peakEvent < 0 ? undefined : sum.peakEvent;
  } else if (typeof at === 'number') stopAfter = at;
  const run = await replayTo(path, opts, stopAfter);
  const sum = run.r.finish();
  if (typeof at === 'number' && run.event < at && sum.abort === undefined)
    throw new MomentOutOfRange(at, sum.events);
  return shown(run, sum.events, sum.abort);
}

function shown(
  run: { r: Replayer; book: TokenBook; event: number; line: number },
  events: number,
  abort: ShownView['abort'],
): ShownView {
  const view = heapView(run.r, run.book, run.event, run.line);
  const out: ShownView = abort === undefined ? { view, events } : { view, events, abort };
  const profile = run.r.process.profile;
  if (profile !== DEFAULT_PROFILE) out.glibc = glibcLabel(profile);
  return out;
}
