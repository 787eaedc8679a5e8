/**
 * Tests of token keys (src/trace/token-key.ts): which tokens get a key, that keys name tokens one to
 * one, and that the key made from the bytes and the key made from the text agree.
 */

import fc from 'fast-check';
import { fcParams } from '../helpers/fc.js';
import { describe, expect, it } from 'vitest';
import { NO_KEY, keyedTokenText, tokenKey, tokenKeyOf } from '../../src/trace/token-key.js';

const bytesKey = (t: string): number => {
  const b = Buffer.from(` ${t} `, 'latin1');
  return tokenKeyOf(b, 1, 1 + t.length);
};

describe('token keys', () => {
  it('gives NULL the key 0, in every spelling of zero', () => {
    for (const t of ['0', '00', '0x0', '0X0', '0x0000000000000000']) expect(bytesKey(t)).toBe(0);
    expect(tokenKey('')).toBe(0);
  });

  it('keys pointers written 0x and lower-case hex without leading zeros by their value', () => {
    expect(bytesKey('0x1')).toBe(1);
    expect(bytesKey('0x55d0c2a4f2a0')).toBe(0x55d0c2a4f2a0);
    expect(bytesKey('0xfffffffffffff')).toBe(2 ** 52 - 1);
    expect(tokenKey('0x7f3a2c000b70')).toBe(0x7f3a2c000b70);
  });

  it('gives no key to other tokens', () => {
    for (const t of [
      'a',
      'buf1',
      '0x',
      '0x01',
      '0X1',
      '0xA',
      '0x1g',
      '12',
      '0x10000000000000',
      'x0x1',
      '0xé',
    ]) {
      expect(bytesKey(t)).toBe(NO_KEY);
      expect(tokenKey(t)).toBe(NO_KEY);
    }
  });

  it('agrees between bytes and text, and gives the text back from the key', () => {
    const token = fc.oneof(
      fc.stringMatching(/^0x[0-9a-f]{1,14}$/),
      fc.stringMatching(/^0[xX]?[0-9a-fA-F]{0,4}$/),
      fc.stringMatching(/^[!-~]{1,16}$/),
    );
    fc.assert(
      fc.property(token, (t) => {
        const k = bytesKey(t);
        if (k !== 0) expect(tokenKey(t)).toBe(k);
        if (k > 0) expect(keyedTokenText(k)).toBe(t);
        if (k === NO_KEY) expect(/^0x[1-9a-f][0-9a-f]{0,12}$/.test(t)).toBe(false);
      }),
      fcParams({ numRuns: 2000 }),
    );
  });
});
