/**
 * The one way the commands print numbers: counts with thousands separators and the right plural
 * ("1 page", "2 pages"), byte counts exact to the last byte with a readable unit beside them, and
 * sizes from a trace exact up to 2^64 - 1.
 *
 * Sizes reach the commands as doubles (the trace reader's and the model's), exact up to 2^53; above
 * that a double is the nearest one to the trace's number, and is printed as the exact integer it
 * holds (never `18446744073709552000`). Totals that may pass 2^53 are summed as bigints by whoever
 * sums them (stats' requested bytes) and printed here exactly.
 */

import { thousands } from '../analysis/units.js';

/** 1234567 -> "1,234,567"; exact for any integer a double or bigint holds. */
export function count(n: number | bigint): string {
  return thousands(n);
}

/** "1 event", "2 events", "1,024 pages": a count and its noun. */
export function plural(n: number | bigint, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 || n === 1n ? one : many}`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * A byte count in the largest binary unit that keeps it at 1 or more, with `digits` decimals:
 * "4.00 KiB", "15.86 MiB" (bytes below 1 KiB exactly: "100 B"). Tables use it, so that a column
 * shows small and large figures alike.
 */
export function scaledBytes(n: number | bigint, digits = 2): string {
  let v = Number(n);
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${count(n)} B` : `${v.toFixed(digits)} ${UNITS[u]}`;
}

/** 2101248 -> "2.00 MiB (2,101,248 B)"; below 1 KiB just "100 B". Exact for bigints. */
export function formatBytes(n: number | bigint): string {
  const exactText = `${count(n)} B`;
  if (Math.abs(Number(n)) < 1024) return exactText;
  return `${scaledBytes(n)} (${exactText})`;
}

/**
 * A size as the user typed it on the command line, when it was typed with a K, M or G suffix
 * (powers of 1024) that it is a whole multiple of: 65536 -> "64K" if the user wrote 64K.
 */
export function sizeAsTyped(n: number, suffixed: boolean): string {
  if (!suffixed || n === 0) return String(n);
  for (const [s, k] of [
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const)
    if (n % k === 0) return `${n / k}${s}`;
  return String(n);
}
