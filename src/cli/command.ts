/**
 * The skeleton of every ptsim subcommand. A command declares its name, its --help text, its options
 * (as node:util parseArgs declares them) and its own logic; the skeleton parses the command line,
 * answers -h/--help, draws the progress bar, and ends the command the way every command ends:
 *
 * - a mistake on the command line is a UsageError, thrown to the caller (ptsim.ts prints it in one
 *   line with a pointer to --help, exit status 2); parseArgs's own complaints become UsageErrors;
 * - a mistake in the trace (TraceSyntaxError, TraceReadError, ReplayError) is printed as its one
 *   line, `ptsim: FILE:LINE: ...`, exit status 2; so is a mistake in another input (InputError:
 *   an output that cannot be written, a configuration file that does not parse, ...);
 * - glibc's abort (GlibcAborted) is printed as its one line, exit status 3;
 * - anything else is a bug in ptsim and goes on with its stack trace.
 *
 * A string option's value may be a negative number (`--at -1`): it is taken as the value (and
 * refused by the option's own check, in its own words), not as an unknown option.
 */

import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GlibcAborted, InputError, UsageError, isTraceMistake } from './errors.js';
import { Progress } from './progress.js';

/** Where a command writes: standard output or standard error, as text. */
export type Print = (s: string) => void;

type Options = NonNullable<ParseArgsConfig['options']>;

const HELP_OPTION = { help: { type: 'boolean', short: 'h', default: false } } as const;

type Config<O extends Options> = {
  args: string[];
  options: O & typeof HELP_OPTION;
  allowPositionals: boolean;
  strict: true;
};

/** The command line as the command's logic gets it: parsed by its declaration. */
interface CommandArgs<O extends Options> {
  values: ReturnType<typeof parseArgs<Config<O>>>['values'];
  positionals: string[];
  /** What `split` set apart from the options (record's COMMAND); empty otherwise. */
  rest: string[];
  /** The command line as given, after the command's name. */
  argv: string[];
}

/** What the command's logic writes with. */
export interface CommandIO {
  /** Standard output; writing finishes the progress bar first. */
  out: Print;
  /** Standard error; writing finishes the progress bar first. */
  err: Print;
  /**
   * Progress of long work (done out of total), drawn on a terminal only; a new label starts a new
   * bar. Needs the declaration's `progress`.
   */
  progress: (done: number, total: number, label?: string) => void;
  /** Standard error, as `ptsim: warning: MESSAGE`. */
  warn: (message: string) => void;
  /**
   * Reports a trace or input mistake or glibc's abort in its one line and returns its exit status
   * (2 or 3), for a command that goes on to print what it has; anything else is thrown on.
   */
  fail: (e: unknown) => number;
}

/** A command as it declares itself. */
interface CommandSpec<O extends Options> {
  /** The word after `ptsim`. */
  name: string;
  /** What `ptsim NAME --help` prints. */
  help: string;
  /** Its options, as parseArgs declares them; -h/--help is added. */
  options: O;
  /** False for a command that takes no positional arguments among its options (default: true). */
  positionals?: boolean;
  /** The first label of the progress bar, for a command that reports progress. */
  progress?: string;
  /** Sets apart the arguments that are not the command's own, before the options are parsed. */
  split?: (argv: string[]) => { options: string[]; rest: string[] };
  /** The command's own logic; returns the exit status. */
  run(args: CommandArgs<O>, io: CommandIO): Promise<number>;
}

/** A command, ready to run. */
export interface Command {
  readonly name: string;
  readonly help: string;
  /** Runs the command on its arguments; returns the exit status, throws a UsageError for a mistake on the command line. */
  run(argv: string[], out: Print, err: Print): Promise<number>;
}

/** node:util parseArgs's errors for an unknown option, a missing value, ... */
function isParseArgsError(e: unknown): e is Error {
  return e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS');
}

/**
 * The arguments with each negative number that follows a string option joined to it
 * (`--at -1` -> `--at=-1`, `-o -1` stays apart only for boolean options), so that parseArgs takes
 * it as the option's value.
 */
function joinNegativeValues(args: string[], options: Options): string[] {
  const takesValue = (a: string): boolean => {
    if (a.startsWith('--')) return !a.includes('=') && options[a.slice(2)]?.type === 'string';
    if (/^-[A-Za-z]$/.test(a))
      return Object.values(options).some((o) => o.short === a[1] && o.type === 'string');
    return false;
  };
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    if (next !== undefined && /^-[0-9.]/.test(next) && takesValue(a)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A command from its declaration: the skeleton around the command's own logic. */
export function defineCommand<const O extends Options>(spec: CommandSpec<O>): Command {
  return {
    name: spec.name,
    help: spec.help,
    async run(argv: string[], out: Print, err: Print): Promise<number> {
      const { options, rest } = spec.split?.(argv) ?? { options: argv, rest: [] };
      let parsed: ReturnType<typeof parseArgs<Config<O>>>;
      try {
        const config: Config<O> = {
          args: joinNegativeValues(options, spec.options),
          options: { ...spec.options, ...HELP_OPTION },
          allowPositionals: spec.positionals ?? true,
          strict: true,
        };
        parsed = parseArgs(config);
      } catch (e) {
        throw isParseArgsError(e) ? new UsageError(e.message) : e;
      }
      if ((parsed.values as { help?: boolean }).help === true) {
        out(spec.help + '\n');
        return 0;
      }

      let label = spec.progress;
      let bar = label !== undefined ? new Progress(label, err) : null;
      const finish = (): void => bar?.done();
      const io: CommandIO = {
        out: (s) => {
          finish();
          out(s);
        },
        err: (s) => {
          finish();
          err(s);
        },
        progress: (done, total, what = label) => {
          if (what === undefined)
            throw new Error(`ptsim internal error: ${spec.name} reports progress without a label`);
          if (bar === null || what !== label) {
            bar?.done();
            bar = new Progress(what, err);
            label = what;
          }
          bar.update(done, total);
        },
        warn: (m) => io.err(`ptsim: warning: ${m}\n`),
        fail: (e) => {
          if (e instanceof GlibcAborted) {
            io.err(`ptsim: ${e.message}\n`);
            return 3;
          }
          if (isTraceMistake(e) || e instanceof InputError) {
            io.err(`ptsim: ${e.message}\n`);
            return 2;
          }
          throw e;
        },
      };
      try {
        return await spec.run(
          { values: parsed.values, positionals: parsed.positionals, rest, argv },
          io,
        );
      } catch (e) {
        if (e instanceof UsageError) throw e;
        return io.fail(e);
      } finally {
        finish();
      }
    },
  };
}
