/**
 * A one-line progress bar on standard error, drawn only when it is a terminal and the work takes
 * more than a moment; otherwise silent, so that scripts and logs get clean output.
 */

export class Progress {
  private readonly start = Date.now();
  private shown = false;
  private readonly tty: boolean;

  constructor(
    private readonly label: string,
    private readonly write: (s: string) => void,
    tty: boolean = process.stderr.isTTY === true,
  ) {
    this.tty = tty;
  }

  update(done: number, total: number): void {
    if (!this.tty || Date.now() - this.start < 1000) return;
    const width = 30;
    const filled = total > 0 ? Math.round((done / total) * width) : 0;
    this.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`,
    );
    this.shown = true;
  }

  done(): void {
    if (this.shown) this.write('\r\x1b[K');
    this.shown = false;
  }
}
