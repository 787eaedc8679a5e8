/**
 * The ways a command ends other than with its result, each printed in one line by the command
 * skeleton (command.ts): a mistake on the command line, a mistake in the trace or another input,
 * glibc's abort. The exit statuses are every command's (EXIT_STATUS_HELP).
 */

/**
 * The exit statuses every command but record keeps, as its --help states them: 0 done, 2 a mistake
 * in an input or on the command line, 3 glibc would have aborted (commands that replay).
 * `outputs` names the files the command writes, which a failed run leaves as they were.
 */
export function exitStatusHelp(o: { replays: boolean; outputs?: string }): string {
  const lines = [
    'Exit status: 0 when the command did its work; 2 for a mistake on the command line or in an',
    'input (a trace line that does not parse, a free of a block that is not live, a file that',
    'cannot be read or written), reported in one line after whatever could be done before it' +
      (o.replays ? ';' : '.'),
  ];
  if (o.replays)
    lines.push(
      "3 when the replay reproduces glibc's abort (its message, event and trace line are reported).",
    );
  if (o.outputs !== undefined)
    lines.push(
      `Output files (${o.outputs}) are put in place only when the status is ${o.replays ? '0 or 3' : '0'};`,
      'a failed or interrupted run leaves an existing file as it was, and no partial one.',
    );
  return lines.join('\n');
}

/** The warning for a trace without events (empty, or comments only): nothing was replayed. */
export const NO_EVENTS =
  'no events: the trace is empty or holds only comments, so nothing was replayed';

/** A mistake on the command line: printed as one line with a pointer to --help, never a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * A mistake in what the command was given, other than the shape of its command line: an output
 * that cannot be written, an --at past the trace's end, a configuration file that does not parse.
 * Printed as its one line, exit status 2 (without the pointer to --help of a UsageError).
 */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}

/** An output file that cannot be written: one line, exit status 2. */
export class OutputError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'OutputError';
  }
}

/**
 * A mistake in the trace (a line that does not parse, a free of a block that is not live, a file
 * that cannot be read): reported as one line with its file and line, exit status 2. Checked by
 * name, since one found in a worker thread comes back as a plain Error carrying the name.
 */
export function isTraceMistake(e: unknown): e is Error {
  return (
    e instanceof Error &&
    (e.name === 'ReplayError' ||
      e.name === 'TraceSyntaxError' ||
      e.name === 'TraceReadError' ||
      e.name === 'InputError')
  );
}

/** glibc would have aborted the replayed program: its message, the event and the trace line; exit status 3. */
export class GlibcAborted extends Error {
  constructor(file: string, abort: { message: string; event: number; line: number }) {
    super(`glibc would abort at event ${abort.event} (${file}:${abort.line}): ${abort.message}`);
    this.name = 'GlibcAborted';
  }
}
