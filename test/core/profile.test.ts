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
  glibcLabel,
  isUnverified,
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
      if (p.debian !== null) expect(profileFor(p.debian)?.profile).toBe(p);
    }
    expect(DEFAULT_PROFILE.version).toBe('2.36');
  });

  it('gives another version the newest profile at or below it, and says so', () => {
    const picked = (v: string): string | undefined => profileFor(v)?.profile.version;
    const modelled = GLIBC_PROFILES.map((p) => p.version).join(', ');
    // 2.29 and 2.30 keep 2.28's rules but what they changed; 2.32, 2.33 keep 2.31's (heap_info
    // 32 bytes, the loader's sbrk); 2.37 and 2.38 2.36's; 2.40 2.39's; 2.42 2.41's; a release
    // after every profile the newest's.
    expect(
      ['2.29', '2.30', '2.32', '2.33', '2.37', '2.38', '2.40', '2.42', '2.99'].map(picked),
    ).toEqual([
      '2.28',
      '2.28',
      '2.31',
      '2.31',
      '2.36',
      '2.36',
      '2.39',
      '2.41',
      GLIBC_PROFILES.at(-1)!.version,
    ]);
    expect(profileFor('2.38')?.note).toBe(
      `glibc 2.38 has no profile of its own: replayed as glibc 2.36, the newest modelled version before it, whose rules it keeps except what it changed itself (modelled: ${modelled})`,
    );
    expect(profileFor('2.33')?.note).toMatch(/replayed as glibc 2\.31,/);
    // Older than every profile: the oldest, and before 2.26 the note says there is no tcache.
    expect(picked('2.27')).toBe('2.28');
    expect(profileFor('2.27')?.note).toBe(
      `glibc 2.27 is older than every modelled version (${modelled}): replayed as glibc 2.28 (unverified), the oldest`,
    );
    expect(profileFor('2.17')?.note).toMatch(
      /the oldest \(it has no tcache, which the model always has\)$/,
    );
  });

  it('marks the profiles no real build proves', () => {
    const unverified = GLIBC_PROFILES.filter(isUnverified).map((p) => p.version);
    expect(unverified).toEqual(['2.28', '2.34', '2.35', '2.39']);
    expect(glibcLabel(profileFor('2.35')!.profile)).toBe('2.35 (unverified)');
    expect(glibcLabel(profileFor('2.36')!.profile)).toBe('2.36');
  });

  it('refuses what is not a version', () => {
    for (const v of ['', 'bookworm', '2', 'v2.36', '2.x']) expect(profileFor(v)).toBeUndefined();
  });
});

describe('the layout each profile carries', () => {
  it("puts a thread arena's first chunk after heap_info and malloc_state, 16-aligned for its user data", () => {
    // 2.31: heap_info is four words (32 bytes); 2.35 on, five and padding (48). malloc_state: 2200.
    expect(firstTopOffset(profileFor('2.28')!.profile)).toBe(2240);
    expect(firstTopOffset(profileFor('2.31')!.profile)).toBe(2240);
    expect(firstTopOffset(profileFor('2.34')!.profile)).toBe(2240);
    expect(firstTopOffset(profileFor('2.35')!.profile)).toBe(0x8d0);
    expect(firstTopOffset(profileFor('2.36')!.profile)).toBe(0x8d0);
    expect(firstTopOffset(profileFor('2.41')!.profile)).toBe(0x8d0);
    // 2.43 dropped the fastbins from malloc_state: 2112 bytes, so 48 + 2112 = 2160.
    expect(firstTopOffset(profileFor('2.43')!.profile)).toBe(2160);
    expect(firstTopOffset(profileFor('2.44')!.profile)).toBe(2160);
  });

  it('sizes the tcache struct by its bins: 64 up to 2.41, 76 from 2.42 (a count and a pointer each)', () => {
    expect(tcacheStructSize(profileFor('2.28')!.profile)).toBe(576);
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
