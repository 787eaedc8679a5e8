/**
 * glibc 2.36 malloc constants for x86_64 (malloc/malloc.c, malloc/arena.c,
 * sysdeps/generic/malloc-size.h, sysdeps/generic/malloc-machine.h), and the size arithmetic built
 * on them; and the names and numbers of mallopt's parameters (malloc/malloc.h).
 *
 * Sizes are plain numbers. Every size the allocator handles in practice is far below 2^53, so
 * doubles are exact; a request above PTRDIFF_MAX is refused before any arithmetic.
 */

export const SIZE_SZ = 8;
export const MALLOC_ALIGNMENT = 16;
export const MALLOC_ALIGN_MASK = 15;
/** Two words: prev_size and size. */
export const CHUNK_HDR_SZ = 16;
export const MINSIZE = 32;

/** Flag bits kept in the low bits of a chunk's size word. */
export const PREV_INUSE = 0x1;
export const IS_MMAPPED = 0x2;
export const NON_MAIN_ARENA = 0x4;

export const NBINS = 128;
const MIN_LARGE_SIZE = 1024;
export const NFASTBINS = 10;
export const BINMAPSIZE = 4;
/** The unsorted bin is bin 1; it also serves as the arena's initial (size 0) top. */
export const UNSORTED_BIN = 1;

const TCACHE_MAX_BINS = 64;
/* TCACHE_FILL_COUNT (7; 16 from 2.43) and the large bins of 2.42 on are the release's: profile.ts. */
export const MAX_TCACHE_COUNT = 65535;
/* sizeof (tcache_perthread_struct) differs between releases: profile.ts, tcacheStructSize. */

export const DEFAULT_MMAP_THRESHOLD = 128 * 1024;
/** Upper limit of the *dynamic* mmap threshold: 4 MiB * sizeof (long). */
export const DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * 8;
export const DEFAULT_TRIM_THRESHOLD = 128 * 1024;
/** malloc-machine.h's 128 KiB wins over malloc.c's 0 (the 2.36 manual is wrong about this). */
export const DEFAULT_TOP_PAD = 128 * 1024;
export const DEFAULT_MMAP_MAX = 65536;
/** 64 * SIZE_SZ / 4 */
export const DEFAULT_MXFAST = 128;
/** 80 * SIZE_SZ / 4 */
export const MAX_FAST_SIZE = 160;
export const FASTBIN_CONSOLIDATION_THRESHOLD = 65536;
/** _int_malloc gives up sorting the unsorted bin after this many chunks. */
export const MAX_ITERS = 10000;

/** Non-main heaps (arena.c). */
export const HEAP_MIN_SIZE = 32 * 1024;
export const HEAP_MAX_SIZE = 2 * DEFAULT_MMAP_THRESHOLD_MAX;
/* sizeof (heap_info) and sizeof (struct malloc_state) differ between releases: profile.ts. */

/** The brk-failure fallback's 1 MiB unit (see sysmalloc for the 2.36 argument swap). */
export const MMAP_AS_MORECORE_SIZE = 1024 * 1024;

export const PAGE_SIZE = 4096;

/** PTRDIFF_MAX as a double: 2^63 (2^63 - 1 is not representable). Requests >= this fail. */
export const PTRDIFF_LIMIT = 2 ** 63;
export const SIZE_MAX_PLUS_1 = 2 ** 64;

/** request2size: the chunk size that serves a request of `req` bytes. */
export function request2size(req: number): number {
  return req + SIZE_SZ + MALLOC_ALIGN_MASK < MINSIZE
    ? MINSIZE
    : Math.floor((req + SIZE_SZ + MALLOC_ALIGN_MASK) / 16) * 16;
}

/** checked_request2size: 0 for a request above PTRDIFF_MAX, else request2size. */
export function checkedRequest2size(req: number): number {
  return req >= PTRDIFF_LIMIT ? 0 : request2size(req);
}

/** csize2tidx: tcache bin of a chunk size. */
export function csize2tidx(size: number): number {
  return Math.floor((size - MINSIZE + MALLOC_ALIGNMENT - 1) / MALLOC_ALIGNMENT);
}

/** tidx2usize: the largest request a tcache bin serves. */
function tidx2usize(idx: number): number {
  return idx * MALLOC_ALIGNMENT + MINSIZE - SIZE_SZ;
}

/** MAX_TCACHE_SIZE = tidx2usize(63) = 1032. */
export const MAX_TCACHE_SIZE = tidx2usize(TCACHE_MAX_BINS - 1);
/** MAX_TCACHE_SMALL_SIZE (2.42 on) = tidx2csize(63) = 1040: the largest chunk of a small tcache bin. */
export const MAX_TCACHE_SMALL_SIZE = (TCACHE_MAX_BINS - 1) * MALLOC_ALIGNMENT + MINSIZE;

/**
 * large_csize2tidx (2.42 on): the large tcache bin of a chunk size above 1040, one bin per
 * power of two (1041..2047 in bin 64, 2048..4095 in 65, ...).
 */
export function largeCsize2tidx(nb: number): number {
  return TCACHE_MAX_BINS + bitWidth(nb) - bitWidth(MAX_TCACHE_SMALL_SIZE);
}

function bitWidth(n: number): number {
  return n < 2 ** 32 ? 32 - Math.clz32(n) : 32 + bitWidth(Math.floor(n / 2 ** 32));
}

export function fastbinIndex(size: number): number {
  return (size >>> 4) - 2;
}

export function inSmallbinRange(size: number): boolean {
  return size < MIN_LARGE_SIZE;
}

export function smallbinIndex(size: number): number {
  return size >>> 4;
}

/** largebin_index_64 */
export function largebinIndex(size: number): number {
  const s6 = Math.floor(size / 64);
  if (s6 <= 48) return 48 + s6;
  const s9 = Math.floor(size / 512);
  if (s9 <= 20) return 91 + s9;
  const s12 = Math.floor(size / 4096);
  if (s12 <= 10) return 110 + s12;
  const s15 = Math.floor(size / 32768);
  if (s15 <= 4) return 119 + s15;
  const s18 = Math.floor(size / 262144);
  if (s18 <= 2) return 124 + s18;
  return 126;
}

export function binIndex(size: number): number {
  return inSmallbinRange(size) ? smallbinIndex(size) : largebinIndex(size);
}

/** set_max_fast: the global_max_fast value for an M_MXFAST setting (0..160). */
export function maxFastFor(value: number): number {
  return value < SIZE_SZ ? SIZE_SZ * 2 : Math.floor((value + SIZE_SZ) / 16) * 16;
}

export function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

export function alignDown(n: number, a: number): number {
  return Math.floor(n / a) * a;
}

/** glibc's powerof2(): true for 0 as well. */
export function powerof2(n: number): boolean {
  return n === 0 || (n > 0 && Number.isInteger(Math.log2(n)));
}

/**
 * glibc's mallopt parameter numbers (malloc/malloc.h), named without their M_ prefix. NLBLKS, GRAIN
 * and KEEP are defined there for compatibility and ignored by __libc_mallopt.
 */
export const M = {
  MXFAST: 1,
  NLBLKS: 2,
  GRAIN: 3,
  KEEP: 4,
  TRIM_THRESHOLD: -1,
  TOP_PAD: -2,
  MMAP_THRESHOLD: -3,
  MMAP_MAX: -4,
  CHECK_ACTION: -5,
  PERTURB: -6,
  ARENA_TEST: -7,
  ARENA_MAX: -8,
} as const;

/** The same parameters by their full names (M_MMAP_THRESHOLD, ...), as a trace or a command line writes them. */
export const MALLOPT_PARAMS: Readonly<Record<string, number>> = Object.fromEntries(
  Object.entries(M).map(([name, value]) => [`M_${name}`, value]),
);
