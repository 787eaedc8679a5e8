/** A mistake on the command line: printed as one line with a pointer to --help, never a stack trace. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
