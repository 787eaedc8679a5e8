/**
 * Helpers of the importer tests: import a log held in a string and get its events as short
 * readable lines (`LINE: native event line`), its header, and its warnings.
 */

import { importText, type OpenTraceOptions, type OpenTraceResult } from '../../src/import/index.js';
import { eventLine } from '../../src/import/native-writer.js';
import type { SiteRecord, TraceEvent, TraceHeader, TraceSink } from '../../src/trace/types.js';

export interface Imported {
  /** `LINE: [@TIME ]TID OP ARGS` per event, the event as a native trace would write it. */
  lines: string[];
  /** Copies of the events (the importer reuses one object). */
  events: TraceEvent[];
  header: TraceHeader | null;
  warnings: string[];
  result: OpenTraceResult;
  /** The site records (call stacks, mappings, symbols), in order. */
  sites: SiteRecord[];
}

export function collect(): {
  sink: TraceSink;
  events: TraceEvent[];
  lines: string[];
  header: { h: TraceHeader | null };
  sites: SiteRecord[];
} {
  const sites: SiteRecord[] = [];
  const events: TraceEvent[] = [];
  const lines: string[] = [];
  const header = { h: null as TraceHeader | null };
  return {
    events,
    lines,
    header,
    sites,
    sink: {
      site(rec) {
        if (header.h === null) throw new Error('site record before the header');
        sites.push(rec);
      },
      header(h) {
        if (header.h !== null) throw new Error('header delivered twice');
        if (events.length > 0) throw new Error('header after an event');
        header.h = h;
      },
      event(ev) {
        if (header.h === null) throw new Error('event before the header');
        if (ev.index !== events.length)
          throw new Error(`event index ${ev.index}, expected ${events.length}`);
        events.push({ ...ev });
        lines.push(`${ev.line}: ${eventLine(ev)}`);
      },
    },
  };
}

export function imp(text: string, opts: OpenTraceOptions = {}, name = 'log.txt'): Imported {
  const c = collect();
  const warnings: string[] = [];
  const result = importText(text, name, c.sink, { onWarning: (m) => warnings.push(m), ...opts });
  return {
    lines: c.lines,
    events: c.events,
    header: c.header.h,
    warnings,
    result,
    sites: c.sites,
  };
}

/** The error an import of `text` throws (fails the test when it does not throw). */
export function importError(text: string, opts: OpenTraceOptions = {}, name = 'log.txt'): Error {
  try {
    imp(text, opts, name);
  } catch (e) {
    return e as Error;
  }
  throw new Error('the import did not fail');
}
