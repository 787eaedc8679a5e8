/**
 * The event object a trace reader fills and hands to its sink, reused for every line.
 *
 * Its tokens are held as keys (token-key.ts): a token that has a key (NULL, or a pointer written
 * `0x...`, which is nearly every token of a recorded trace) costs no string at all, and a consumer
 * that indexes tokens by key, like the replay loop, never makes one. `in` and `out` are still
 * there for every other consumer: they are accessors that make the text from the key when read
 * (own, enumerable properties, so that `{ ...ev }` copies them as plain strings). Tokens without a
 * key keep their text as read. The reader also numbers the tokens (inId, outId: token-numbers.ts).
 */

import { keyedTokenText, NO_KEY, tokenKey } from './token-key.js';
import { NULL_TOKEN, type OpCode, type TraceEvent, type TraceSink } from './types.js';

export class ReadEvent implements TraceEvent {
  index = 0;
  line = 0;
  time = -1;
  tid = 0;
  op: OpCode = 0;
  n1 = 0;
  n2 = 0;
  /** Set only while the sink has an event with a size above 2^53 (TraceEvent.exact1). */
  exact1: bigint | undefined = undefined;
  exact2: bigint | undefined = undefined;
  declare out: string;
  declare in: string;
  param = 0;
  inKey = 0;
  outKey = 0;
  inId = -1;
  outId = -1;
  /** true, or undefined rather than false: a copy of an event without records has no such key. */
  recordsFollow: boolean | undefined = undefined;
  /** The call stack's number (`^ID`), -1 when the line has none. */
  site = -1;
  /** The texts of tokens without a key (NULL_TOKEN otherwise). */
  #inText = NULL_TOKEN;
  #outText = NULL_TOKEN;

  /**
   * The `in` and `out` accessors, defined on each instance. The same functions serve every
   * instance, so that all share one hidden class (closures per instance would give each its own,
   * and make every access to the event slow).
   */
  static readonly #tokenAccessors: PropertyDescriptorMap = {
    out: {
      enumerable: true,
      get(this: ReadEvent): string {
        const k = this.outKey;
        return k > 0 ? keyedTokenText(k) : k === NO_KEY ? this.#outText : NULL_TOKEN;
      },
      set(this: ReadEvent, text: string): void {
        this.setOut(tokenKey(text), text);
      },
    },
    in: {
      enumerable: true,
      get(this: ReadEvent): string {
        const k = this.inKey;
        return k > 0 ? keyedTokenText(k) : k === NO_KEY ? this.#inText : NULL_TOKEN;
      },
      set(this: ReadEvent, text: string): void {
        this.setIn(tokenKey(text), text);
      },
    },
  };

  constructor() {
    Object.defineProperties(this, ReadEvent.#tokenAccessors);
  }

  /**
   * Sets the token the call takes: its key, and its text when the key is NO_KEY (the text is read
   * only then, so it is written only then: a store fewer for nearly every event).
   */
  setIn(key: number, text: string): void {
    this.inKey = key;
    if (key === NO_KEY) this.#inText = text;
  }

  /** Sets the token the call returns: its key, and its text when the key is NO_KEY. */
  setOut(key: number, text: string): void {
    this.outKey = key;
    if (key === NO_KEY) this.#outText = text;
  }
  /**
   * Hands the event to `sink` as operation `op`, as the readers do: `recordsFollow` set only while
   * the sink has it (when records follow), and sizes above 2^53 (exact1, exact2), set for this
   * event only, cleared once it is handed on.
   */
  handTo(sink: TraceSink, op: OpCode, followed: boolean): void {
    this.op = op;
    if (followed) {
      this.recordsFollow = true;
      sink.event(this);
      this.recordsFollow = undefined;
    } else sink.event(this);
    if (this.exact1 !== undefined || this.exact2 !== undefined)
      this.exact1 = this.exact2 = undefined;
  }
}
