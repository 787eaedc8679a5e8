/**
 * Token keys: a number that names a trace token exactly, so that a consumer can index live tokens
 * without making or hashing strings (see TraceEvent.inKey and outKey).
 *
 *  - 0 is the key of NULL_TOKEN (every spelling of zero: `0`, `00`, `0x0`, `0X000`, ...);
 *  - a token written as a recorder prints a pointer, `0x` and 1 to 13 lower-case hex digits
 *    without leading zeros (`0x55d0c2a4f2a0`), has its value as key, at most 2^52 - 1, exact
 *    in a double;
 *  - any other token has key -1 (no key): it is known by its text only.
 *
 * Keys above 0 are therefore one-to-one with the texts they stand for, and the text comes back with
 * keyedTokenText. Two tokens are equal exactly when both have the same key above 0, or both have
 * no key and the same text.
 */

/** The key of tokens that have none. */
export const NO_KEY = -1;

/** Most hex digits of a keyed token: 13 digits are at most 2^52 - 1. */
const MAX_DIGITS = 13;

/** The key of the token b[s, e) (its bytes as in the trace, e > s). */
export function tokenKeyOf(b: Uint8Array, s: number, e: number): number {
  const first = b[s + 2]!;
  if (b[s] !== 0x30 || b[s + 1] !== 0x78 || e - s < 3 || e - s > MAX_DIGITS + 2 || first === 0x30) {
    return isZeroSpelling(b, s, e) ? 0 : NO_KEY;
  }
  let v = 0;
  for (let i = s + 2; i < e; i++) {
    const c = b[i]!;
    let d = c - 0x30;
    if (d >>> 0 > 9) {
      d = c - 0x61;
      if (d >>> 0 > 5) return NO_KEY;
      d += 10;
    }
    v = v * 16 + d;
  }
  return v;
}

/** True when the bytes spell the number zero (`0`, `00`, `0x0`, `0X0000`): a NULL pointer token. */
function isZeroSpelling(b: Uint8Array, s: number, e: number): boolean {
  if (b[s] !== 0x30) return false;
  let i = s;
  if (e - s > 2 && (b[s + 1]! | 0x20) === 0x78) i = s + 2;
  for (; i < e; i++) if (b[i] !== 0x30) return false;
  return true;
}

/** The key of a token given as text (NULL_TOKEN, '', has key 0). */
export function tokenKey(text: string): number {
  if (text === '') return 0;
  const n = text.length;
  if (
    n < 3 ||
    n > MAX_DIGITS + 2 ||
    text.charCodeAt(0) !== 0x30 ||
    text.charCodeAt(1) !== 0x78 ||
    text.charCodeAt(2) === 0x30
  )
    return NO_KEY;
  let v = 0;
  for (let i = 2; i < n; i++) {
    const c = text.charCodeAt(i);
    let d = c - 0x30;
    if (d >>> 0 > 9) {
      d = c - 0x61;
      if (d >>> 0 > 5) return NO_KEY;
      d += 10;
    }
    v = v * 16 + d;
  }
  return v;
}

/** The text of the token whose key is `key` (above 0). */
export function keyedTokenText(key: number): string {
  return `0x${key.toString(16)}`;
}
