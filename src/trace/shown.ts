/**
 * Text from an input as an error message shows it: control characters escaped (a binary file's
 * bytes never reach the terminal raw), long text shortened. Used by the trace parser and every
 * importer.
 */

/** `text` with each control character written as \xNN. */
export function escapeControls(text: string): string {
  return text.replace(/\p{Cc}/gu, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Bytes start..end of `b` as UTF-8, control characters escaped, at most `max` characters. */
export function shownBytes(b: Buffer, start: number, end: number, max: number): string {
  const t = escapeControls(b.toString('utf8', start, Math.min(end, start + max * 4)));
  return t.length > max ? t.slice(0, max) + '...' : t;
}
