/**
 * The version profiles (src/core/profile.ts): which profile a version string gets, and the layout
 * facts each profile carries, as glibc's source of that release fixes them (malloc/arena.c's
 * heap_info, struct malloc_state).
 */

import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PROFILE,
  GLIBC_PROFILES,
  firstTopOffset,
  profileFor,
  tcacheMaxBins,
  tcacheStructSize,
} from '../../src/core/profile.js';
import { largeCsize2tidx } from '../../src/core/constants.js';

describe('profileFor', () => {
  it('gives a modelled version its own profile, without a note', () => {
    for (const p of GLIBC_PROFILES) {
      expect(profileFor(p.version)).toEqual({ profile: p });
      expect(profileFor(`glibc-${p.version}`)?.profile).toBe(p);
      expect(profileFor(`${p.version}.1`)?.profile).toBe(p);
      expect(profileFor(p.debian)?.profile).toBe(p);
    }
    expect(DEFAULT_PROFILE.version).toBe('2.36');
  });

  it('gives another version the nearest profile, the older one on a tie, and says so', () => {
    const nearest = (v: string): string | undefined => profileFor(v)?.profile.version;
    expect(nearest('2.28')).toBe('2.31');
    expect(nearest('2.33')).toBe('2.31');
    expect(nearest('2.34')).toBe('2.36');
    expect(nearest('2.35')).toBe('2.36');
    expect(nearest('2.38')).toBe('2.36');
    expect(nearest('2.39')).toBe('2.41');
    expect(nearest('2.42')).toBe('2.41');
    expect(nearest('2.44')).toBe('2.44');
    expect(nearest('2.45')).toBe('2.44');
    expect(nearest('3.0')).toBe('2.44');
    expect(profileFor('2.39')?.note).toBe(
      'glibc 2.39 has no profile of its own: replayed as glibc 2.41, the nearest modelled version (2.31, 2.36, 2.41, 2.43, 2.44)',
    );
  });

  it('refuses what is not a version', () => {
    for (const v of ['', 'bookworm', '2', 'v2.36', '2.x']) expect(profileFor(v)).toBeUndefined();
  });
});

describe('the layout each profile carries', () => {
  it("puts a thread arena's first chunk after heap_info and malloc_state, 16-aligned for its user data", () => {
    // 2.31: heap_info is four words (32 bytes); 2.35 on, five and padding (48). malloc_state: 2200.
    expect(firstTopOffset(profileFor('2.31')!.profile)).toBe(2240);
    expect(firstTopOffset(profileFor('2.36')!.profile)).toBe(0x8d0);
    expect(firstTopOffset(profileFor('2.41')!.profile)).toBe(0x8d0);
    // 2.43 dropped the fastbins from malloc_state: 2112 bytes, so 48 + 2112 = 2160.
    expect(firstTopOffset(profileFor('2.43')!.profile)).toBe(2160);
    expect(firstTopOffset(profileFor('2.44')!.profile)).toBe(2160);
  });

  it('sizes the tcache struct by its bins: 64 up to 2.41, 76 from 2.42 (a uint16_t and a pointer each)', () => {
    expect(tcacheStructSize(profileFor('2.36')!.profile)).toBe(640);
    expect(tcacheStructSize(profileFor('2.43')!.profile)).toBe(760);
    expect(tcacheMaxBins(profileFor('2.44')!.profile)).toBe(76);
  });
});

describe('large_csize2tidx', () => {
  it('gives each power of two above 1040 a bin, up to 4 MiB', () => {
    // From glibc 2.43's definition: TCACHE_SMALL_BINS + clz (1040) - clz (nb), 32-bit clz.
    expect(largeCsize2tidx(1056)).toBe(64);
    expect(largeCsize2tidx(2047)).toBe(64);
    expect(largeCsize2tidx(2048)).toBe(65);
    expect(largeCsize2tidx(4 * 1024 * 1024 - 16)).toBe(75);
    expect(largeCsize2tidx(4 * 1024 * 1024)).toBe(76);
  });
});
