/**
 * Tests of the token table (src/trace/token-table.ts) against a Map, with keys crowded into
 * few slots so that probing, growth and backward-shift deletion are all exercised.
 */

import fc from 'fast-check';
import { fcParams } from '../helpers/fc.js';
import { describe, expect, it } from 'vitest';
import { NO_KEY } from '../../src/trace/token-key.js';
import { NONE, TokenTable } from '../../src/trace/token-table.js';

type Step = { op: 'set' | 'add' | 'delete' | 'get'; key: number; h: number };

describe('TokenTable', () => {
  it('behaves like a Map under random binds, lookups and deletions', () => {
    const key = fc.oneof(
      fc.integer({ min: 1, max: 64 }),
      fc.integer({ min: 1, max: 64 }).map((k) => k * 16 + 0x55d0c2a40000),
      fc.integer({ min: 1, max: 2 ** 52 - 1 }),
      fc.constant(NO_KEY),
    );
    const step = fc.record({
      op: fc.constantFrom<Step['op']>('set', 'add', 'add', 'delete', 'get'),
      key,
      h: fc.integer({ min: 0, max: 1000 }),
    });
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 400 }),
        fc.integer({ min: 1, max: 8 }),
        (steps, cap) => {
          const t = new TokenTable(cap);
          const model = new Map<string, number>();
          for (const { op, key: k, h } of steps) {
            // Tokens without a key are told apart by their text.
            const text = k === NO_KEY ? `t${h % 5}` : '';
            const id = k === NO_KEY ? text : String(k);
            if (op === 'set') {
              t.set(k, text, h);
              model.set(id, h);
            } else if (op === 'add') {
              expect(t.add(k, text, h)).toBe(model.get(id) ?? NONE);
              if (!model.has(id)) model.set(id, h);
            } else if (op === 'delete') {
              expect(t.delete(k, text)).toBe(model.get(id) ?? NONE);
              model.delete(id);
            } else {
              expect(t.get(k, text)).toBe(model.get(id) ?? NONE);
            }
            expect(t.size).toBe(model.size);
          }
          for (const [id, h] of model) {
            const k = id.startsWith('t') ? NO_KEY : Number(id);
            expect(t.get(k, k === NO_KEY ? id : '')).toBe(h);
          }
          const handles: number[] = [];
          t.forEachValue((h) => handles.push(h));
          expect(handles.sort((a, b) => a - b)).toEqual([...model.values()].sort((a, b) => a - b));
        },
      ),
      fcParams({ numRuns: 500 }),
    );
  });

  it('keeps working through many allocations and frees', () => {
    const t = new TokenTable();
    const live: number[] = [];
    let next = 0x5000;
    let wrong = 0;
    for (let i = 0; i < 200_000; i++) {
      if (live.length > 0 && (i % 3 === 2 || live.length > 5000)) {
        const at = (i * 7919) % live.length;
        const k = live[at]!;
        live[at] = live[live.length - 1]!;
        live.pop();
        if (t.delete(k, '') !== (k & 0xffff)) wrong++;
      } else {
        const k = 0x7f0000000000 + 16 * next++;
        t.set(k, '', k & 0xffff);
        live.push(k);
      }
    }
    expect(wrong).toBe(0);
    expect(t.size).toBe(live.length);
    for (const k of live) expect(t.get(k, '')).toBe(k & 0xffff);
  });
});
