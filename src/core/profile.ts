/**
 * glibc version profiles: what differs between the glibc releases the model follows, as data.
 *
 * The model is one allocator. Where a release changed a glibc function, the module that models
 * that function reads the field of the profile that says how, once per call or when the process
 * starts (never a comparison of version strings per event). Each field names the release that
 * changed it and the glibc function it touches.
 *
 * A profile is "proven" when the differential suite replays identically against Debian's build of
 * that release (docs/glibc-versions.md says on which traces). A profile without such a build is
 * "unverified": written from glibc's source history alone, and every output that names it says so.
 */

import { MALLOC_ALIGNMENT } from './constants.js';

export interface GlibcProfile {
  /** The release, as gnu_get_libc_version() reports it: "2.36". */
  readonly version: string;
  /** The Debian build the profile is proven against; null for an unverified profile. */
  readonly debian: string | null;
  /** sizeof (heap_info): 32 up to 2.34; 2.35 added `pagesize` (48). new_heap, heap_trim. */
  readonly heapInfoSize: number;
  /** sizeof (struct malloc_state). _int_new_arena. */
  readonly mallocStateSize: number;
  /**
   * Up to 2.34 the dynamic loader copies the GLIBC_TUNABLES entry of the environment with __sbrk
   * before main (tunables_strdup, elf/dl-tunables.c): the main heap starts after it.
   */
  readonly loaderCopiesTunables: boolean;
  /** tcache_key_initialize asks getrandom for the tcache key (2.34 on; before, the key was the tcache's address). */
  readonly randomTcacheKey: boolean;
  /** glibc.malloc.hugetlb exists (2.35 on). ptmalloc_init. */
  readonly hugetlbTunable: boolean;
  /**
   * MALLOC_CHECK_ and glibc.malloc.check switch malloc's own checking hooks on (up to 2.33); from
   * 2.34 they need libc_malloc_debug.so. ptmalloc_init.
   */
  readonly mallocCheckInLibc: boolean;
  /** mallinfo2 exists (2.33 on); before, only mallinfo and its int fields. */
  readonly mallinfo2: boolean;
  /**
   * The largest mmap threshold mallopt and the tunables accept (do_set_mmap_threshold): up to
   * 2.34, HEAP_MAX_SIZE / 2 (a larger value is refused, and nothing changes); no limit since.
   */
  readonly mmapThresholdLimit: number;
  /**
   * Up to 2.33 __malloc_hook and __realloc_hook start as malloc_hook_ini and realloc_hook_ini
   * (malloc/hooks.c), which the process's first malloc or realloc clears; while they are set, a
   * calloc goes through the hook and clears the whole block itself (__libc_calloc).
   */
  readonly initHooks: boolean;
  /** __libc_calloc takes a cached chunk from the tcache, as malloc does (2.41 on). */
  readonly callocFromTcache: boolean;
  /**
   * _int_free_create_chunk puts a freed chunk of small-bin size at the head of its small bin, not
   * in the unsorted bin (2.41 on).
   */
  readonly freeSmallToSmallbin: boolean;
  /**
   * _mid_memalign first looks through the tcache bin of the request's size for a chunk that is
   * already aligned, and takes it from where it sits in the list (2.38 on).
   */
  readonly memalignFromTcache: boolean;
  /**
   * _int_memalign gives the chunk before the aligned block back with _int_free_merge_chunk (merged
   * with its free neighbours, never into the tcache or a fastbin), and the room after it whenever
   * it is at least MINSIZE or borders a free chunk or the top (2.39 on). Before: both through
   * _int_free, the tail only when larger than MINSIZE.
   */
  readonly memalignMergesRemainders: boolean;
  /**
   * _int_memalign gives the room after the aligned block back only when it is at least MINSIZE,
   * whatever follows it (2.43 on).
   */
  readonly memalignTailNeedsMinsize: boolean;
  /**
   * __libc_realloc returns the block as it is when the request fits its usable size with less than
   * 16 bytes to spare (a page, for an mmapped chunk), before anything else (2.38 on).
   */
  readonly reallocWithinPadding: boolean;
  /**
   * sysmalloc_mmap_fallback is called with its size arguments swapped (2.35 to 2.37, fixed in
   * 2.38): when the break cannot grow, the main arena maps at least a page, not 1 MiB.
   */
  readonly mmapFallbackSwapped: boolean;
  /**
   * sysmalloc_mmap_fallback maps nb + top_pad + MINSIZE rounded to pages (at least 1 MiB), without
   * adding the old top back in (2.43 on).
   */
  readonly mmapFallbackFromRequest: boolean;
  /**
   * __libc_realloc keeps an mmapped block whose usable size is within a page of the request
   * (2.38 to 2.42; from 2.43 only the 16-byte rule of reallocWithinPadding applies to it).
   */
  readonly reallocMmappedWithinPage: boolean;
  /** __libc_pvalloc rounds with `& -(pagesize - 1)`, keeping bit 0 of an odd size (2.30 to 2.42). */
  readonly pvallocKeepsOddBit: boolean;
  /**
   * Fastbins exist (up to 2.42). Without them (2.43 on) there is no malloc_consolidate and no
   * _int_free: __libc_free hands what the tcache does not take to _int_free_chunk, and the
   * allocator's own frees (realloc's old chunk and remainder, sysmalloc's old top, a thread's
   * tcache at exit) go straight to _int_free_chunk, never to the tcache.
   */
  readonly fastbins: boolean;
  /** Chunks each tcache bin holds by default: TCACHE_FILL_COUNT, 7 (16 from 2.43). */
  readonly tcacheFillCount: number;
  /**
   * Tcache bins for large chunks after the 64 small ones (2.42 on: 12, each for a power-of-two
   * range of sizes up to 4 MiB, used only when glibc.malloc.tcache_max asks for them).
   * sizeof (tcache_perthread_struct) is 10 bytes a bin (a uint16_t and a pointer).
   */
  readonly tcacheLargeBins: number;
  /**
   * The tcache is a static dummy until the thread's first free of a cacheable chunk
   * (tcache_free_init) or until _int_malloc would stash a chunk in it (tcache_init (av)); malloc
   * no longer allocates it (MAYBE_INIT_TCACHE is gone, 2.43 on). A failed tcache_init is not
   * retried.
   */
  readonly lazyTcache: boolean;
  /**
   * tcache_init (av) asks _int_malloc for request2size (sizeof (tcache_perthread_struct)) bytes,
   * which _int_malloc pads again: a 0x310 chunk where tcache_init (NULL) gets 0x300 (2.43; 2.44
   * passes the size itself).
   */
  readonly tcacheInitPadsTwice: boolean;
  /**
   * _int_malloc caches exact fits it finds in the unsorted bin and returns one at the end, and
   * glibc.malloc.tcache_unsorted_limit bounds that (up to 2.43; 2.44 returns the first exact fit).
   */
  readonly unsortedStash: boolean;
  /**
   * An mmapped chunk has a heap chunk's layout: the mapping keeps CHUNK_HDR_SZ after the chunk,
   * whose size is the mapping's less its offset and 16 (mmap_set_chunk, 2.43 on); before, the
   * chunk ran to the mapping's end. _int_memalign then aligns an mmapped chunk without a lead of
   * MINSIZE.
   */
  readonly mmapChunkTailHeader: boolean;
  /**
   * arena_get2 fixes the arena limit, once narenas reaches arena_test, at max (online CPUs,
   * arena_test) (2.44); before, once narenas exceeds arena_test, at 8 per online CPU.
   */
  readonly arenaLimitPerCpu: boolean;
  /**
   * Bytes of each count in tcache_perthread_struct: a char up to 2.29, a uint16_t from 2.30. With
   * chars the struct is 576 bytes (a 0x250 chunk, not 0x290), glibc.malloc.tcache_count has no
   * upper limit, and a bin holds at most 128 chunks (the signed count wraps). tcache_init,
   * do_set_tcache_count, tcache_put.
   */
  readonly tcacheCountBytes: 1 | 2;
  /**
   * _int_free looks for a chunk whose key word marks it as cached in its tcache bin, and aborts
   * with "free(): double free detected in tcache 2" (2.29 on). Before, a double free into a bin
   * with room is taken, and the bin's list is corrupt.
   */
  readonly tcacheDoubleFreeCheck: boolean;
  /**
   * __malloc_info counts each arena's top chunk in its "rest" total (2.31 on), and writes its
   * <size> lines without the stray indentation of a continued string literal (2.31 on).
   */
  readonly mallocInfoCountsTop: boolean;
  /** glibc.malloc.mxfast exists (2.30 on). ptmalloc_init. */
  readonly mxfastTunable: boolean;
  /**
   * glibc.malloc.mmap_max (MALLOC_MMAP_MAX_) refuses a negative value (elf/dl-tunables.list,
   * minval 0, 2.34 on); before, a negative value is taken and no chunk is ever mmapped.
   */
  readonly mmapMaxTunableNonNegative: boolean;
  /**
   * The tunables take a value only if it is a number to its last character, and ignore a
   * GLIBC_TUNABLES string whose last name has no '=' or that has a value with '=' in it, all of
   * it (elf/dl-tunables.c, tunable_initialize and parse_tunables_string, 2.39 on). Before, a
   * number ends at its first other character, and the string is read up to what does not parse.
   */
  readonly strictTunables: boolean;
  /**
   * arena_get2 sets the arena limit from the CPUs of the process's affinity mask (__get_nprocs in
   * 2.34, __get_nprocs_sched in 2.35 and in the 2.36 tag), not from the CPUs online as 2.28 to
   * 2.33, Debian's 2.36 and 2.39 on do. The replay takes them from the trace's
   * `# cpus_allowed`.
   */
  readonly arenaLimitFromAffinity: boolean;
}

const GLIBC_2_36: GlibcProfile = {
  version: '2.36',
  debian: '2.36-9+deb12u14',
  heapInfoSize: 48,
  mallocStateSize: 2200,
  loaderCopiesTunables: false,
  randomTcacheKey: true,
  hugetlbTunable: true,
  mallocCheckInLibc: false,
  mallinfo2: true,
  mmapThresholdLimit: Number.POSITIVE_INFINITY,
  initHooks: false,
  callocFromTcache: false,
  freeSmallToSmallbin: false,
  memalignFromTcache: false,
  memalignMergesRemainders: false,
  memalignTailNeedsMinsize: false,
  reallocWithinPadding: false,
  mmapFallbackSwapped: true,
  mmapFallbackFromRequest: false,
  reallocMmappedWithinPage: false,
  pvallocKeepsOddBit: true,
  fastbins: true,
  tcacheFillCount: 7,
  tcacheLargeBins: 0,
  lazyTcache: false,
  tcacheInitPadsTwice: false,
  unsortedStash: true,
  mmapChunkTailHeader: false,
  arenaLimitPerCpu: true,
  tcacheCountBytes: 2,
  tcacheDoubleFreeCheck: true,
  mallocInfoCountsTop: true,
  mxfastTunable: true,
  mmapMaxTunableNonNegative: true,
  strictTunables: false,
  arenaLimitFromAffinity: false,
};

const GLIBC_2_31: GlibcProfile = {
  ...GLIBC_2_36,
  version: '2.31',
  debian: '2.31-13+deb11u11',
  heapInfoSize: 32,
  loaderCopiesTunables: true,
  randomTcacheKey: false,
  hugetlbTunable: false,
  mallocCheckInLibc: true,
  mallinfo2: false,
  mmapThresholdLimit: 32 * 1024 * 1024,
  initHooks: true,
  mmapFallbackSwapped: false,
  mmapMaxTunableNonNegative: false,
};

/*
 * The unverified profiles: what each release's malloc/malloc.c, malloc/arena.c and
 * elf/dl-tunables.{c,list} change against its neighbour, from the release tags of glibc's history;
 * no Debian build of them can be had to prove them.
 */

/** 2.28 (RHEL 8, Debian 10): 2.31 less the 2.29 to 2.31 changes. */
const GLIBC_2_28: GlibcProfile = {
  ...GLIBC_2_31,
  version: '2.28',
  debian: null,
  tcacheCountBytes: 1,
  tcacheDoubleFreeCheck: false,
  mallocInfoCountsTop: false,
  mxfastTunable: false,
  // The rounding quirk of __libc_pvalloc came with 2.30.
  pvallocKeepsOddBit: false,
};

/** 2.34 (RHEL 9): the hooks and the malloc checking gone, the random tcache key; heap_info still 32 bytes. */
const GLIBC_2_34: GlibcProfile = {
  ...GLIBC_2_31,
  version: '2.34',
  debian: null,
  randomTcacheKey: true,
  mallocCheckInLibc: false,
  mallinfo2: true,
  initHooks: false,
  mmapMaxTunableNonNegative: true,
  arenaLimitFromAffinity: true,
};

const GLIBC_2_41: GlibcProfile = {
  ...GLIBC_2_36,
  version: '2.41',
  debian: '2.41-12+deb13u5',
  callocFromTcache: true,
  freeSmallToSmallbin: true,
  memalignFromTcache: true,
  memalignMergesRemainders: true,
  reallocWithinPadding: true,
  reallocMmappedWithinPage: true,
  mmapFallbackSwapped: false,
  strictTunables: true,
};

/**
 * 2.35 (Ubuntu 22.04): malloc as in 2.36 (2.36 changed only the text of malloc's assertion
 * failures), but the arena limit counts the CPUs of the affinity mask, as the 2.36 tag does and
 * Debian's 2.36 does not.
 */
const GLIBC_2_35: GlibcProfile = {
  ...GLIBC_2_36,
  version: '2.35',
  debian: null,
  arenaLimitFromAffinity: true,
};

/** 2.39 (Ubuntu 24.04): 2.41 less calloc from the tcache and freed small chunks to their small bins. */
const GLIBC_2_39: GlibcProfile = {
  ...GLIBC_2_41,
  version: '2.39',
  debian: null,
  callocFromTcache: false,
  freeSmallToSmallbin: false,
};

const GLIBC_2_43: GlibcProfile = {
  ...GLIBC_2_41,
  version: '2.43',
  debian: '2.43-7',
  mallocStateSize: 2112,
  mmapFallbackFromRequest: true,
  reallocMmappedWithinPage: false,
  pvallocKeepsOddBit: false,
  memalignTailNeedsMinsize: true,
  fastbins: false,
  tcacheFillCount: 16,
  tcacheLargeBins: 12,
  lazyTcache: true,
  tcacheInitPadsTwice: true,
  mmapChunkTailHeader: true,
};

const GLIBC_2_44: GlibcProfile = {
  ...GLIBC_2_43,
  version: '2.44',
  debian: '2.44-3',
  tcacheInitPadsTwice: false,
  unsortedStash: false,
  arenaLimitPerCpu: false,
};

/** The profiles by version, oldest first. */
export const GLIBC_PROFILES: ReadonlyArray<GlibcProfile> = [
  GLIBC_2_28,
  GLIBC_2_31,
  GLIBC_2_34,
  GLIBC_2_35,
  GLIBC_2_36,
  GLIBC_2_39,
  GLIBC_2_41,
  GLIBC_2_43,
  GLIBC_2_44,
];

/** The profile a replay uses unless told otherwise. */
export const DEFAULT_PROFILE: GlibcProfile = GLIBC_2_36;

/** TCACHE_SMALL_BINS: the tcache bins of chunk sizes 32 to 1040, one per 16 bytes. */
export const TCACHE_SMALL_BINS = 64;

/** TCACHE_MAX_BINS of a release: the small bins and the large ones. */
export function tcacheMaxBins(p: GlibcProfile): number {
  return TCACHE_SMALL_BINS + p.tcacheLargeBins;
}

/** Offset of a first heap's top chunk: after heap_info and malloc_state, so that chunk2mem is 16-aligned. */
export function firstTopOffset(p: GlibcProfile): number {
  const end = p.heapInfoSize + p.mallocStateSize;
  const misalign = (end + 16) % MALLOC_ALIGNMENT;
  return misalign > 0 ? end + MALLOC_ALIGNMENT - misalign : end;
}

function parseVersion(v: string): [number, number] | undefined {
  const m = /^(?:glibc[- ]?)?(\d+)\.(\d+)(?:\.\d+)?(?:-.*)?$/i.exec(v.trim());
  return m === null ? undefined : [Number(m[1]), Number(m[2])];
}

/**
 * sizeof (tcache_perthread_struct): a count (a char up to 2.29, a uint16_t from 2.30) and an entry
 * pointer per bin: 576 bytes up to 2.29, 640 to 2.41, 760 from 2.42 (76 bins).
 */
export function tcacheStructSize(p: GlibcProfile): number {
  return tcacheMaxBins(p) * (p.tcacheCountBytes + 8);
}

/** True for a profile no real build has proven yet. */
export function isUnverified(p: GlibcProfile): boolean {
  return p.debian === null;
}

/** The version as outputs name it: "2.36", or "2.35 (unverified)". */
export function glibcLabel(p: GlibcProfile): string {
  return isUnverified(p) ? `${p.version} (unverified)` : p.version;
}

/** What a replay on an unverified profile says, once. */
export function unverifiedNote(p: GlibcProfile): string {
  return `glibc ${p.version} is modelled from glibc's source history and not yet proven against a real build of it (unverified)`;
}

/**
 * The profile for a version string ("2.31", "2.35", "glibc-2.41", "2.36-9+deb12u14"): its own,
 * else the one whose rules it follows, with a note saying so: the newest modelled release at or
 * below it, as each release keeps what the one before it did unless it changed it (2.37 and 2.38
 * get 2.36's, without what those two changed). A version older than every profile gets the
 * oldest. Undefined when the string is not a version.
 */
export function profileFor(version: string): { profile: GlibcProfile; note?: string } | undefined {
  const want = parseVersion(version);
  if (want === undefined) return undefined;
  const key = want[0] * 1000 + want[1];
  const keyOf = (p: GlibcProfile): number => {
    const [major, minor] = parseVersion(p.version)!;
    return major * 1000 + minor;
  };
  let best = GLIBC_PROFILES[0]!;
  for (const p of GLIBC_PROFILES) if (keyOf(p) <= key) best = p;
  if (keyOf(best) === key) return { profile: best };
  const asked = `${want[0]}.${want[1]}`;
  const modelled = GLIBC_PROFILES.map((p) => p.version).join(', ');
  if (key < keyOf(best)) {
    // Before the oldest profile: 2.26 and 2.27 have a tcache, older releases none.
    const tcache = key < 2026 ? ' (it has no tcache, which the model always has)' : '';
    return {
      profile: best,
      note: `glibc ${asked} is older than every modelled version (${modelled}): replayed as glibc ${glibcLabel(best)}, the oldest${tcache}`,
    };
  }
  return {
    profile: best,
    note: `glibc ${asked} has no profile of its own: replayed as glibc ${glibcLabel(best)}, the newest modelled version before it, whose rules it keeps except what it changed itself (modelled: ${modelled})`,
  };
}
