/**
 * Tests of token numbers (src/trace/token-numbers.ts) and of the numbers the reader gives: a token
 * keeps its number from the event that returns it to the next event that takes it, and numbers
 * are reused, so that they stay as few as the tokens returned and not yet taken.
 */

import fc from 'fast-check';
import { fcParams } from '../helpers/fc.js';
import { describe, expect, it } from 'vitest';
import { readTraceText } from '../../src/trace/reader.js';
import { NO_KEY } from '../../src/trace/token-key.js';
import { NO_NUMBER, TokenNumbers } from '../../src/trace/token-numbers.js';
import type { TraceEvent } from '../../src/trace/types.js';

describe('TokenNumbers', () => {
  it('numbers tokens from their return to their next take, one number per token at a time', () => {
    const step = fc.record({ take: fc.boolean(), token: fc.integer({ min: 0, max: 30 }) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 300 }), (steps) => {
        const numbers = new TokenNumbers();
        const model = new Map<number, number>(); // token -> number
        let most = 0;
        for (const { take, token } of steps) {
          // Tokens 0..9 have no key (named), 10.. are pointers; token 0 stands for NULL.
          const key = token === 0 ? 0 : token < 10 ? NO_KEY : 0x1000 + token;
          const text = token > 0 && token < 10 ? `t${token}` : '';
          if (take) {
            expect(numbers.takeIn(key, text)).toBe(model.get(token) ?? NO_NUMBER);
            model.delete(token);
          } else {
            const n = numbers.numberOut(key, text);
            if (token === 0) expect(n).toBe(NO_NUMBER);
            else if (model.has(token)) expect(n).toBe(model.get(token));
            else {
              expect([...model.values()]).not.toContain(n);
              model.set(token, n);
            }
          }
          most = Math.max(most, model.size);
          expect(numbers.size).toBe(model.size);
        }
        expect(numbers.limit).toBe(most);
      }),
      fcParams({ numRuns: 500 }),
    );
  });
});

describe('the numbers the reader gives', () => {
  it('follow the rule on every operation', () => {
    const events: TraceEvent[] = [];
    const text = [
      '1 malloc 10 0x10',
      '1 malloc 10 a',
      '1 free 0x10',
      '1 calloc 1 1 0x20',
      '1 realloc a 5 0x10',
      '1 free 0',
      '1 free zz',
      '1 realloc 0 5 0',
      '1 exit',
    ].join('\n');
    readTraceText(text, 't', { header() {}, event: (ev) => events.push({ ...ev }) });
    expect(events.map((e) => [e.inId, e.outId])).toEqual([
      [-1, 0], // 0x10 gets 0
      [-1, 1], // a gets 1
      [0, -1], // 0x10 gives 0 up
      [-1, 0], // 0x20 gets 0 again
      [1, 1], // a gives 1 up, 0x10 gets it
      [-1, -1],
      [-1, -1], // a token never returned has no number
      [-1, -1],
      [-1, -1],
    ]);
  });
});
