/**
 * Token numbers: small integers that a trace reader gives the tokens it reads, so that a consumer
 * can keep per-token state in arrays instead of hash tables (see TraceEvent.inId and outId). The
 * reader does the hashing, on its own thread when it has one (parse-worker.ts), and the replay
 * only indexes an array.
 *
 * The rule, applied to each event in trace order, is purely syntactic:
 *  - the token a call returns (`out`) keeps its number if it has one, else gets one: the most
 *    recently released number, or a new one;
 *  - the token a call takes (`in`: PTR of free, OLD of realloc) gives its number up: the event
 *    carries the number it had (or -1 if it had none), and the number may be given to another
 *    token from the next token numbered on;
 *  - NULL never has a number (-1).
 * So a token's number is fixed from the event that returns it until the next event that takes it,
 * and numbers stay as few as the tokens returned and not yet taken.
 */

import { grown } from '../core/release.js';
import { NONE, TokenTable } from './token-table.js';

/** The number of NULL, and of a taken token that had none. */
export const NO_NUMBER = -1;

export class TokenNumbers {
  private readonly table = new TokenTable();
  /** Released numbers, the most recent last. */
  private released = new Int32Array(1024);
  private nReleased = 0;
  /** Numbers ever given: the next new one. */
  private next = 0;

  /** Numbers in use (tokens returned and not taken since). */
  get size(): number {
    return this.table.size;
  }

  /** How many numbers were ever given: every number is below this. */
  get limit(): number {
    return this.next;
  }

  /** The number of the token a call returns (key and, for a token without a key, text). */
  numberOut(key: number, text: string): number {
    if (key === 0) return NO_NUMBER;
    const n = this.nReleased > 0 ? this.released[this.nReleased - 1]! : this.next;
    const old = this.table.add(key, text, n);
    if (old !== NONE) return old;
    if (this.nReleased > 0) this.nReleased--;
    else this.next++;
    return n;
  }

  /** The number the token has now (NO_NUMBER if none), which it keeps. */
  lookup(key: number, text: string): number {
    if (key === 0) return NO_NUMBER;
    const n = this.table.get(key, text);
    return n === NONE ? NO_NUMBER : n;
  }

  /** The number the token a call takes had (NO_NUMBER if none), which it gives up. */
  takeIn(key: number, text: string): number {
    if (key === 0) return NO_NUMBER;
    const n = this.table.delete(key, text);
    if (n === NONE) return NO_NUMBER;
    if (this.nReleased === this.released.length) {
      this.released = grown(this.released, this.released.length * 2);
    }
    this.released[this.nReleased++] = n;
    return n;
  }
}
