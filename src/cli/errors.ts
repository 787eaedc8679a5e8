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
  return e instanceof Error && (e.name === 'ReplayError' || e.name === 'TraceSyntaxError' || e.name === 'TraceReadError');
}
