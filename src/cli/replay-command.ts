/**
 * `ptsim replay TRACE`: replays a trace through the model and reports what glibc would have done.
 */

import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import type { EventRecord, ReplaySummary } from '../replay/replay.js';
import { replayFile } from '../replay/run-file.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsArgs } from './settings-options.js';
import { arenaReports } from '../core/stats.js';
import { formatSummary } from './format.js';
import { plural } from './numbers.js';
import { defineCommand } from './command.js';
import { GlibcAborted, NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { TextOutput } from './output.js';
import { settingsNotes } from './settings-notes.js';
import {
  TIMELINE_HELP,
  TIMELINE_OPTIONS,
  replayWithTimeline,
  timelineArgs,
} from './timeline-options.js';

const REPLAY_HELP = `Usage: ptsim replay TRACE [options]

Replays TRACE (a ptsim trace, text or binary, or another tool's log, see docs/importing.md; plain
or compressed; - reads standard input) through a model of glibc 2.36's malloc on x86_64 (or of the release
--glibc names) and reports where the memory went: resident memory at the end and at its peak, the
heap, mmapped chunks, mallinfo2, system calls and page faults.

Options:
  --events FILE        write the fidelity log to FILE: one JSON object per event (- for stdout)
  --json               print the summary as one JSON object instead of text
  --stats              also print what malloc_stats() would print at the end
  --info               also print what malloc_info() would print at the end
${TIMELINE_HELP}
${SETTINGS_HELP}
  --check              check the heap's invariants after every event (slow; for debugging ptsim)
${IMPORT_HELP}
  -h, --help           show this help

Settings apply in glibc's order: the environment (GLIBC_TUNABLES, MALLOC_*_) when malloc
initialises, then --mallopt calls, then the trace's own mallopt lines. The trace's '# env' lines
form the environment unless overridden: --tunables replaces GLIBC_TUNABLES, --env replaces a
variable of the same name.

A trace made by 'ptsim record' says which pages of each large block the program touched (#:touch
records) and what the process measured of its own memory (#:rss samples): --touch recorded, the
default for such a trace, writes only those pages; the summary shows the samples beside the
replay's RSS at the same points. Without touch records, the RSS of a trace with big blocks is an
upper bound (see docs/trace-format.md).

A mistake in the trace stops the replay; the summary then covers the events before it.

${exitStatusHelp({ replays: true, outputs: '--events, --timeline' })}`;

/** The fidelity log's line for one event. */
function eventLine(rec: EventRecord): string {
  let line = `{"i":${rec.i},"op":"${rec.op}","tid":${rec.tid}`;
  if (rec.ptr === null) line += ',"ptr":null';
  else if (rec.arena !== undefined)
    line += `,"arena":${rec.arena},"heap":${rec.heap},"off":${rec.off},"usable":${rec.usable}`;
  return `${line},"brk":${rec.brk}}\n`;
}

export const replayCommand = defineCommand({
  name: 'replay',
  help: REPLAY_HELP,
  options: {
    events: { type: 'string' },
    json: { type: 'boolean', default: false },
    stats: { type: 'boolean', default: false },
    info: { type: 'boolean', default: false },
    ...TIMELINE_OPTIONS,
    ...SETTINGS_OPTIONS,
    check: { type: 'boolean', default: false },
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { out, err, warn, fail }) {
    if (positionals.length !== 1) {
      throw new UsageError(
        positionals.length === 0
          ? 'replay needs a TRACE file (- for standard input)'
          : `replay takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`,
      );
    }
    const trace = positionals[0]!;
    const importSettings = importArgs(values);
    const settings = settingsArgs(values);
    const timeline = timelineArgs(values);
    const displayName = trace === '-' ? '<stdin>' : trace;
    for (const n of settingsNotes(settings)) warn(n);
    // Options checked: the outputs can be opened (nothing existing is touched until the end).
    const log = values.events !== undefined ? TextOutput.open(values.events, '--events') : null;
    const warnings: string[] = [];
    const onWarning = (m: string): void => {
      if (warnings.length < 100) warnings.push(`ptsim: warning: ${m}`);
    };
    let replayed;
    try {
      replayed = await replayWithTimeline(timeline, (observe) =>
        replayFile(trace, {
          ...settings,
          import: importSettings,
          displayName,
          checkLevel: values.check ? 2 : 0,
          onEvent: log === null ? undefined : (rec) => log.write(eventLine(rec)),
          ready: log === null ? undefined : () => log.ready(),
          onWarning,
          observe,
        }),
      );
    } catch (e) {
      log?.discard();
      throw e;
    }
    const { result: run, file: timelineFile } = replayed;
    for (const n of run.notes) warnings.unshift(`ptsim: warning: ${n}`);
    for (const w of warnings) err(w + '\n');
    const r = run.replayer;
    let status = 0;
    if (run.failure !== null) {
      // A mistake in the trace ends the replay; the summary covers the events before it.
      status = fail(run.failure);
      if (r !== null)
        err(
          `ptsim: replay stopped; the summary below covers the ${plural(r.finish().events, 'event')} before it\n`,
        );
    }
    // The outputs are kept when the replay reached its end (the trace's, or glibc's abort).
    if (status === 0) {
      await log?.commit();
      timelineFile?.commit();
    } else {
      log?.discard();
      timelineFile?.discard();
      const dropped = [values.events, timeline?.path].filter((p) => p !== undefined && p !== '-');
      if (dropped.length > 0 && r !== null)
        err(`ptsim: not written, as the replay did not reach the end: ${dropped.join(', ')}\n`);
    }
    if (r === null) return status;
    const note = r.touchNote();
    if (note !== null) err(`ptsim: note: ${note}\n`);
    const summary: ReplaySummary = r.finish();
    if (status === 0 && summary.events === 0) warn(`${displayName}: ${NO_EVENTS}`);
    const arenas = arenaReports(r.process);
    const cores = r.process.ncores;
    if (values.json) out(JSON.stringify({ ...summary, cores, arenas }) + '\n');
    else
      out(
        formatSummary(
          displayName,
          summary,
          run.header,
          cores,
          arenas,
          r.process.mp.arenaMax,
          r.process.mp.arenaTest,
        ),
      );
    if (values.stats) out(r.stats());
    if (values.info) out(r.info());
    if (summary.abort !== undefined) throw new GlibcAborted(displayName, summary.abort);
    return status;
  },
});
