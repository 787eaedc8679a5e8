/**
 * `ptsim show TRACE --at N|end|peak [VIEW]`: the allocator's state at one moment, in pwndbg's
 * vocabulary, or as JSON (the same state as data).
 */

import { showAt, type ShowMoment } from '../analysis/show.js';
import { defineCommand } from './command.js';
import { GlibcAborted, NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import { settingsNotes, traceGlibcNotes } from './settings-notes.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, parseNumber, settingsArgs } from './settings-options.js';
import { COLOUR, PLAIN, VIEWS, momentLine, viewText, type ViewName } from './show-format.js';

const SHOW_HELP = `Usage: ptsim show TRACE [--at N|end|peak] [VIEW] [options]

Replays TRACE up to a moment and shows the allocator's state there, in pwndbg's words. VIEW is
one of:
  heap       every chunk, heap by heap: Allocated chunk, Free chunk (tcachebins), Top chunk, ...
             with its address, size and flag bits, and for a live block its token, the bytes asked
             for, malloc_usable_size and its offset (the default view)
  chunks     one line a chunk: arena, heap, offset, size, state, usable size, token
  bins       tcachebins, fastbins, unsortedbin, smallbins and largebins, each list from its head
  tcache     each thread's tcachebins
  fastbins   each arena's fastbins
  arenas     each arena: top, last_remainder, system_mem, its heaps
  maps       a simulated /proc/self/maps of the allocator's memory, each mapping with smaps's
             Size, Rss and Anonymous

Addresses are the simulation's (the break starts at 0x555555559000 unless the trace or
--brk-base says otherwise); offsets from each heap's start match the real glibc's.

Options:
  --at WHEN            end (default), peak (the event after which RSS was highest) or an event
                       index: the state after that event
  --json               print the whole state as one JSON object (docs/show-and-step.md)
  --color WHEN         auto (default: colour on a terminal, unless NO_COLOR is set), always, never
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

${exitStatusHelp({ replays: true })} An --at past the trace's last event is a mistake
(status 2); when glibc aborts first, the state shown is the one before the abort.`;

/** An --at value. */
function parseAt(text: string): ShowMoment {
  if (text === 'end' || text === 'peak') return text;
  if (!/^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(text))
    throw new UsageError(`--at takes end, peak or an event index (0 or more), not '${text}'`);
  return parseNumber(text, '--at');
}

/** Whether to colour: --color, then NO_COLOR, then whether standard output is a terminal. */
export function wantColour(flag: string | undefined): boolean {
  if (flag === 'always') return true;
  if (flag === 'never') return false;
  if (flag !== undefined && flag !== 'auto')
    throw new UsageError(`--color takes auto, always or never, not '${flag}'`);
  const noColor = process.env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return process.stdout.isTTY === true;
}

export const showCommand = defineCommand({
  name: 'show',
  help: SHOW_HELP,
  options: {
    at: { type: 'string' },
    json: { type: 'boolean', default: false },
    color: { type: 'string' },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { out, warn }) {
    if (positionals.length === 0) throw new UsageError('show needs a TRACE file');
    if (positionals.length > 2)
      throw new UsageError(`show takes a TRACE and one VIEW, got: ${positionals.join(' ')}`);
    const path = positionals[0]!;
    const which = (positionals[1] ?? 'heap') as ViewName;
    if (!VIEWS.includes(which))
      throw new UsageError(`unknown view '${positionals[1]}' (views: ${VIEWS.join(', ')})`);
    const at = parseAt(values.at ?? 'end');
    if (at === 'peak' && path === '-')
      throw new UsageError('--at peak reads the trace twice: give a file, not -');
    const paint = wantColour(values.color) ? COLOUR : PLAIN;
    const settings = settingsArgs(values);
    for (const n of settingsNotes(settings, true)) warn(n);
    for (const n of await traceGlibcNotes(path, [settings], importArgs(values))) warn(n);
    const shown = await showAt(path, at, {
      settings,
      import: importArgs(values),
      displayName: path === '-' ? '<stdin>' : path,
      onWarning: warn,
    });
    if (shown.events === 0) warn(`${path}: ${NO_EVENTS}`);
    if (values.json) out(JSON.stringify(shown.view) + '\n');
    else {
      const moment = typeof at === 'number' ? 'event' : at;
      out(
        paint.title(
          momentLine(shown.view, moment) +
            (shown.glibc !== undefined ? `; modelled on glibc ${shown.glibc}` : ''),
        ) +
          '\n\n' +
          viewText(shown.view, which, paint),
      );
    }
    if (shown.abort !== undefined) throw new GlibcAborted(path, shown.abort);
    return 0;
  },
});
