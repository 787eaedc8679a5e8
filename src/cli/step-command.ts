/**
 * `ptsim step TRACE`: an interactive stepper. Commands come from standard input, a line each: on a
 * terminal with a prompt, or from a script or pipe without one. Each step is explained in one
 * plain sentence (src/analysis/stepper.ts).
 */

import { createInterface } from 'node:readline';
import { availableParallelism, cpus } from 'node:os';
import { Stepper, type Step } from '../analysis/stepper.js';
import { openTrace } from '../import/index.js';
import { defineCommand, type Print } from './command.js';
import { NO_EVENTS, UsageError, exitStatusHelp } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import { settingsNotes, traceGlibcNotes } from './settings-notes.js';
import { SETTINGS_HELP, SETTINGS_OPTIONS, settingsArgs } from './settings-options.js';
import {
  COLOUR,
  printable,
  PLAIN,
  VIEWS,
  momentLine,
  viewText,
  type Paint,
  type ViewName,
} from './show-format.js';
import { wantColour } from './show-command.js';
import { OP_NAMES, Op } from '../trace/types.js';

const COMMANDS_HELP = `Commands (a blank line repeats the last one):
  n, next [K]          replay the next event (or K events), each explained in a sentence
  b, back [K]          go back one event (or K), replayed from the latest checkpoint before it
  g, go N|start|end    go to just after event N (start: before the first event)
  c, continue          run to the next breakpoint or watched token, or the end
  break SPEC           stop continue at an event matching SPEC: op=NAME (free, malloc, ...),
                       token=T (the event takes or returns T), size=N or size>=N (bytes asked
                       for), arena=A (the block returned or freed is in arena A; -1 mmapped)
  delete [K]           delete breakpoint K (all of them without K)
  watch T              after each step, say where token T's block is; continue stops at events
                       naming T
  unwatch T            stop watching T
  info                 where the replay is, the breakpoints and the watched tokens
  show [VIEW]          a view of the state now: ${VIEWS.join(', ')} (default heap)
  help                 this list
  q, quit              leave`;

const STEP_HELP = `Usage: ptsim step TRACE [options]

Steps through TRACE event by event, forwards and back, explaining each step in one sentence
("free(b3): the 4128-byte chunk merged with the top; the top is 200 KiB, below the trim
threshold of 256 KiB, so nothing went back to the kernel"). Commands are read from standard
input, one a line: typed at the (ptsim) prompt on a terminal, or given by a script or a pipe
(printf 'next 3\\nshow bins\\n' | ptsim step TRACE). The whole trace is held in memory.

${COMMANDS_HELP}

Options:
  --color WHEN         auto (default: colour on a terminal, unless NO_COLOR is set), always, never
${SETTINGS_HELP}
${IMPORT_HELP}
  -h, --help           show this help

${exitStatusHelp({ replays: true })} A mistake in a stepper command is reported
and the stepper goes on; a mistake in the trace or glibc's abort stops the replay at that event,
and the status at the end says so (2 or 3).`;

interface Breakpoint {
  id: number;
  text: string;
  /** Whether it needs the step's outcome (the arena), not only the event. */
  arena: boolean;
  test: (s: Step | null, op: string, tokens: string[], size: number) => boolean;
}

/** Reads one breakpoint; throws a message for a malformed one. */
function parseBreak(spec: string, id: number): Breakpoint {
  const m = /^(op|token|size|arena)\s*(>=|=)\s*(\S+)$/.exec(spec.trim());
  if (m === null)
    throw new Error(`break takes op=NAME, token=T, size=N, size>=N or arena=A, not '${spec}'`);
  const [, what, rel, value] = m as unknown as [string, string, string, string];
  if (rel === '>=' && what !== 'size') throw new Error(`only size takes >= ('${spec}')`);
  const num = (): number => {
    if (!/^-?\d+$/.test(value)) throw new Error(`${what} needs a number, not '${value}'`);
    return Number(value);
  };
  const text = `${what}${rel}${value}`;
  switch (what) {
    case 'op':
      if (!OP_NAMES.includes(value))
        throw new Error(`unknown op '${value}' (ops: ${OP_NAMES.join(', ')})`);
      return { id, text, arena: false, test: (_s, op) => op === value };
    case 'token':
      return { id, text, arena: false, test: (_s, _op, tokens) => tokens.includes(value) };
    case 'size': {
      const n = num();
      return {
        id,
        text,
        arena: false,
        test: (_s, op, _t, size) => op !== 'free' && (rel === '>=' ? size >= n : size === n),
      };
    }
    default: {
      const n = num();
      return { id, text, arena: true, test: (s) => s !== null && s.arena === n };
    }
  }
}

/** The stepper's session: commands in, text out. */
class Session {
  private readonly breaks: Breakpoint[] = [];
  private nextBreak = 1;
  private lastCommand = '';

  constructor(
    private readonly st: Stepper,
    private readonly out: Print,
    private readonly err: Print,
    private readonly paint: Paint,
  ) {}

  private where(): string {
    const p = this.st.position;
    if (p < 0) return `before the first event (of ${this.st.events})`;
    return `after event ${p} of ${this.st.events} (line ${this.st.eventAt(p)!.line})`;
  }

  private printStep(s: Step): void {
    this.out(`${this.paint.addr(`[${s.event}]`)} ${printable(s.sentence)}\n`);
  }

  private afterMove(): void {
    const stop = this.st.stop;
    if (stop !== null && this.st.position === stop.event - 1) this.err(`ptsim: ${stop.message}\n`);
    else if (this.st.position === this.st.events - 1) this.out('at the end of the trace\n');
    for (const t of this.st.watches) this.out(`watch ${printable(this.st.whereIs(t))}\n`);
  }

  private number(text: string | undefined, dflt: number): number {
    if (text === undefined) return dflt;
    if (!/^\d+$/.test(text)) throw new Error(`'${text}' is not a count`);
    return Number(text);
  }

  /** Runs one command line; false to leave. */
  run(line: string): boolean {
    let text = line.trim();
    if (text === '') text = this.lastCommand;
    if (text === '') return true;
    this.lastCommand = text;
    const [cmd, ...args] = text.split(/\s+/) as [string, ...string[]];
    try {
      switch (cmd) {
        case 'n':
        case 'next': {
          const steps = this.st.next(this.number(args[0], 1));
          for (const s of steps) this.printStep(s);
          if (steps.length === 0 && this.st.stop === null) this.out('at the end of the trace\n');
          else this.afterMove();
          return true;
        }
        case 'b':
        case 'back': {
          const k = this.number(args[0], 1);
          const target = this.st.position - k;
          const s = this.st.goTo(Math.max(-1, target));
          if (s !== null) this.printStep(s);
          this.out(`now ${this.where()}\n`);
          this.afterMove();
          return true;
        }
        case 'g':
        case 'go': {
          const a = args[0];
          if (a === undefined) throw new Error('go takes an event index, start or end');
          const n = a === 'start' ? -1 : a === 'end' ? this.st.events - 1 : this.number(a, 0);
          if (n >= this.st.events)
            throw new Error(
              `the trace has ${this.st.events} events: give 0 to ${this.st.events - 1}`,
            );
          const s = this.st.goTo(n);
          if (s !== null) this.printStep(s);
          if (s === null) this.out(`now ${this.where()}\n`);
          this.afterMove();
          return true;
        }
        case 'c':
        case 'continue': {
          const watches = this.st.watches;
          let hit = '';
          // Breakpoints on an arena need the step's outcome; the others only the event.
          const byArena = this.breaks.filter((b) => b.arena);
          const s = this.st.runUntil(
            (ev) => {
              const op = OP_NAMES[ev.op]!;
              const tokens = [ev.in, ev.out].filter((t) => t !== '');
              const size =
                ev.op === Op.calloc ? ev.n1 * ev.n2 : ev.op === Op.memalign ? ev.n2 : ev.n1;
              for (const b of this.breaks)
                if (!b.arena && b.test(null, op, tokens, size)) {
                  hit = `breakpoint ${b.id} (${b.text})`;
                  return true;
                }
              const w = watches.find((t) => tokens.includes(t));
              if (w !== undefined) {
                hit = `watched token ${w}`;
                return true;
              }
              return false;
            },
            byArena.length === 0
              ? null
              : (step) => {
                  const b = byArena.find((x) => x.test(step, '', [], 0));
                  if (b !== undefined) hit = `breakpoint ${b.id} (${b.text})`;
                  return b !== undefined;
                },
          );
          if (s !== null) this.printStep(s);
          if (hit !== '') this.out(`stopped at ${hit}\n`);
          this.afterMove();
          return true;
        }
        case 'break': {
          if (args.length === 0) throw new Error('break takes op=NAME, token=T, size=N or arena=A');
          const b = parseBreak(args.join(' '), this.nextBreak);
          this.nextBreak++;
          this.breaks.push(b);
          this.out(`breakpoint ${b.id}: ${b.text}\n`);
          return true;
        }
        case 'delete': {
          if (args.length === 0) this.breaks.length = 0;
          else {
            const id = this.number(args[0], 0);
            const i = this.breaks.findIndex((b) => b.id === id);
            if (i < 0) throw new Error(`no breakpoint ${id}`);
            this.breaks.splice(i, 1);
          }
          return true;
        }
        case 'watch': {
          if (args[0] === undefined) throw new Error('watch takes a token');
          this.st.watch(args[0]);
          this.out(`watch ${printable(this.st.whereIs(args[0]))}\n`);
          return true;
        }
        case 'unwatch': {
          if (args[0] === undefined || !this.st.unwatch(args[0]))
            throw new Error(`not watching '${args[0] ?? ''}'`);
          return true;
        }
        case 'info': {
          this.out(`${this.st.trace}: ${this.where()}\n`);
          for (const b of this.breaks) this.out(`breakpoint ${b.id}: ${b.text}\n`);
          for (const t of this.st.watches) this.out(`watch ${printable(this.st.whereIs(t))}\n`);
          return true;
        }
        case 'show': {
          const v = (args[0] ?? 'heap') as ViewName;
          if (!VIEWS.includes(v))
            throw new Error(`unknown view '${args[0]}' (views: ${VIEWS.join(', ')})`);
          const view = this.st.view();
          const moment = this.st.position === this.st.events - 1 ? 'end' : 'event';
          this.out(
            this.paint.title(momentLine(view, moment)) + '\n\n' + viewText(view, v, this.paint),
          );
          return true;
        }
        case 'help':
        case 'h':
        case '?':
          this.out(COMMANDS_HELP + '\n');
          return true;
        case 'q':
        case 'quit':
        case 'exit':
          return false;
        default:
          throw new Error(`unknown command '${cmd}' (type help for the list)`);
      }
    } catch (e) {
      if (!(e instanceof Error) || e.name !== 'Error') throw e;
      this.err(`ptsim: ${e.message}\n`);
      return true;
    }
  }
}

export const stepCommand = defineCommand({
  name: 'step',
  help: STEP_HELP,
  options: {
    color: { type: 'string' },
    ...SETTINGS_OPTIONS,
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { out, err, warn }) {
    if (positionals.length !== 1)
      throw new UsageError(
        positionals.length === 0
          ? 'step needs a TRACE file'
          : `step takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`,
      );
    const path = positionals[0]!;
    if (path === '-')
      throw new UsageError('step reads its commands from standard input: give the trace as a file');
    const paint = wantColour(values.color) ? COLOUR : PLAIN;
    const settings = settingsArgs(values);
    for (const n of settingsNotes(settings, true)) warn(n);
    for (const n of await traceGlibcNotes(path, [settings], importArgs(values))) warn(n);
    const st = await Stepper.read(
      path,
      (sink) =>
        openTrace(path, sink, { ...importArgs(values), displayName: path, onWarning: warn }),
      {
        settings,
        onWarning: warn,
        fallbackCores: cpus().length,
        fallbackAllowedCores: availableParallelism(),
      },
    );
    if (st.events === 0) warn(`${path}: ${NO_EVENTS}`);
    const tty = process.stdin.isTTY === true;
    const session = new Session(st, out, err, paint);
    out(`${path}: ${st.events} events; before the first one. Type help for the commands.\n`);
    const rl = createInterface({
      input: process.stdin,
      output: tty ? process.stdout : undefined,
      terminal: tty,
    });
    if (tty) {
      rl.setPrompt('(ptsim) ');
      rl.prompt();
    }
    for await (const line of rl) {
      if (!session.run(line)) break;
      if (tty) rl.prompt();
    }
    rl.close();
    // The stop was reported when the replay reached it.
    const stop = st.stop;
    return stop === null ? 0 : stop.kind === 'abort' ? 3 : 2;
  },
});
