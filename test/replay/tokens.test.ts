/**
 * The replay's live tokens (src/replay/tokens.ts): blocks by token number, in an array that grows
 * (in place once it is big, core/growable.ts), and the tokens that lost their number, by key.
 */

import { describe, expect, it } from 'vitest';
import { NIL } from '../../src/core/chunks.js';
import { LiveTokens } from '../../src/replay/tokens.js';

describe('LiveTokens', () => {
  it('finds every block bound, past any growth, until it is unbound', () => {
    const t = new LiveTokens();
    const n = 300_000;
    // Handle 0 is a block like any other (the array keeps handle + 1).
    let fresh = 0;
    for (let id = 0; id < n; id++)
      if (t.bind(id, 0x1000 + 16 * id, '', n - 1 - id) === NIL) fresh++;
    expect(fresh).toBe(n);
    expect(t.size).toBe(n);
    expect([t.find(0, 0x1000, ''), t.find(n - 1, 0, ''), t.find(n, 0, '')]).toEqual([
      n - 1,
      0,
      NIL,
    ]);
    // A token bound again while live: the block it names is returned, nothing changes.
    expect(t.bind(7, 0x1070, '', 5)).toBe(n - 8);
    expect(t.unbind(n - 1, 0, '')).toBe(0);
    expect(t.unbind(n - 1, 0, '')).toBe(NIL);
    expect(t.find(n - 1, 0, '')).toBe(NIL);
    let sum = 0;
    let count = 0;
    t.forEachHandle((h) => {
      sum += h;
      count++;
    });
    expect(count).toBe(n - 1);
    expect(sum).toBe(((n - 1) * n) / 2);
  });

  it('keeps a token that lost its number by its key', () => {
    const t = new LiveTokens();
    t.bind(3, 0x5000, '', 42);
    t.keep(3, 0x5000, '', 42);
    expect(t.find(3, 0x5000, '')).toBe(42);
    expect(t.find(-1, 0x5000, '')).toBe(42);
    expect(t.unbind(-1, 0x5000, '')).toBe(42);
    expect(t.size).toBe(0);
  });
});
