/**
 * The ways a command ends other than with its result, each printed in one line by the command
 * skeleton (command.ts): a mistake on the command line, a mistake in the trace, glibc's abort.
 */

/** A mistake on the command line: printed as one line with a pointer to --help, never a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
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
    (e.name === 'ReplayError' || e.name === 'TraceSyntaxError' || e.name === 'TraceReadError')
  );
}

/** glibc would have aborted the replayed program: its message, the event and the trace line; exit status 3. */
export class GlibcAborted extends Error {
  constructor(file: string, abort: { message: string; event: number; line: number }) {
    super(`glibc would abort at event ${abort.event} (${file}:${abort.line}): ${abort.message}`);
    this.name = 'GlibcAborted';
  }
}
