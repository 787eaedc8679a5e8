/**
 * The allocator's state: glibc's `struct malloc_state` (one per arena), `struct malloc_par` (the
 * process-wide `mp_`), each thread's tcache, and the process object that holds them all with the
 * chunk store and the simulated kernel.
 *
 * Field names follow glibc's so that a reader of malloc.c finds each one where they expect it.
 */

import type { Kernel } from '../kernel/kernel.js';
import {
  DEFAULT_PROFILE,
  firstTopOffset,
  tcacheMaxBins,
  TCACHE_SMALL_BINS,
  type GlibcProfile,
} from './profile.js';
import { ChunkStore, NIL, NOT_NULL, St } from './chunks.js';
import {
  BINMAPSIZE,
  DEFAULT_MMAP_MAX,
  DEFAULT_MMAP_THRESHOLD,
  DEFAULT_TOP_PAD,
  DEFAULT_TRIM_THRESHOLD,
  MAX_TCACHE_SIZE,
  MAX_TCACHE_SMALL_SIZE,
  NBINS,
  NFASTBINS,
  UNSORTED_BIN,
} from './constants.js';

/** struct malloc_par (mp_): tunable parameters and mmap statistics, shared by all arenas. */
interface MallocPar {
  /** Free top memory above this is given back by free() (systrim / heap_trim). */
  trimThreshold: number;
  /** Extra bytes requested from the system whenever the heap grows (and kept when trimming). */
  topPad: number;
  /** Requests of at least this chunk size are served by mmap when the top is too small. */
  mmapThreshold: number;
  arenaTest: number;
  arenaMax: number;
  /** THP page size when glibc.malloc.hugetlb=1 (0: off). */
  thpPagesize: number;
  /** Huge page size for MAP_HUGETLB when glibc.malloc.hugetlb >= 2 (0: off). */
  hpPagesize: number;
  /** Chunks currently mmapped. */
  nMmaps: number;
  /** mmap is not used for chunks once nMmaps reaches this. */
  nMmapsMax: number;
  maxNMmaps: number;
  /** Set when the program fixed a threshold itself: free() of an mmapped chunk no longer raises them. */
  noDynThreshold: boolean;
  mmappedMem: number;
  maxMmappedMem: number;
  /** First address the main arena got from sbrk (0 until then). */
  sbrkBase: number;
  /** Number of (small) tcache bins in use (tcache_bins; from 2.42 tcache_small_bins). */
  tcacheBins: number;
  /**
   * tcache_max_bytes: up to 2.41 the largest request cached; from 2.42 one more than the largest
   * chunk size cached (a large chunk size when glibc.malloc.tcache_max asks for large bins).
   */
  tcacheMaxBytes: number;
  /** Chunks each tcache bin holds at most. */
  tcacheCount: number;
  /** Unsorted chunks _int_malloc may sort while filling the tcache before returning one (0: no limit). */
  tcacheUnsortedLimit: number;
}

function defaultMallocPar(p: GlibcProfile): MallocPar {
  return {
    trimThreshold: DEFAULT_TRIM_THRESHOLD,
    topPad: DEFAULT_TOP_PAD,
    mmapThreshold: DEFAULT_MMAP_THRESHOLD,
    arenaTest: 8,
    arenaMax: 0,
    thpPagesize: 0,
    hpPagesize: 0,
    nMmaps: 0,
    nMmapsMax: DEFAULT_MMAP_MAX,
    maxNMmaps: 0,
    noDynThreshold: false,
    mmappedMem: 0,
    maxMmappedMem: 0,
    sbrkBase: 0,
    tcacheBins: TCACHE_SMALL_BINS,
    // 2.42 on: MAX_TCACHE_SMALL_SIZE + 1, a chunk size.
    tcacheMaxBytes: p.tcacheLargeBins > 0 ? MAX_TCACHE_SMALL_SIZE + 1 : MAX_TCACHE_SIZE,
    tcacheCount: p.tcacheFillCount,
    tcacheUnsortedLimit: 0,
  };
}

/** One non-main heap (arena.c's heap_info): an aligned 64 MiB reservation, partly accessible. */
export interface HeapInfo {
  /** Start of the reservation (heap_info lives here). */
  start: number;
  /** Bytes in use from start (heap_info.size). */
  size: number;
  /** Bytes made accessible with mprotect so far (heap_info.mprotect_size). */
  mprotectSize: number;
  /** Position in the arena's chain: 0 for the heap holding the arena's header. */
  number: number;
  prev: HeapInfo | null;
  /** The arena this heap belongs to (heap_info.ar_ptr). */
  arena: Arena;
  /**
   * Once a later heap exists: the size-0 fencepost chunk that ends this heap (heap_trim finds it
   * at the heap's end when it deletes the later heap). NIL while this heap holds the top.
   */
  fence: number;
}

/**
 * The headers the last coalescing free of an arena merged away, which glibc leaves in memory
 * (inside the merged chunk) and reads again if the program frees one of those chunks a second
 * time: the freed chunk's own header when it merged into the free chunk before it (x), and the
 * header of the free chunk (or top) after it that it absorbed (n). An address of -1: none. Valid
 * while the arena's `rewrites` still equals `epoch`.
 */
export interface MergedHeaders {
  epoch: number;
  x: number;
  xSize: number;
  xFlags: number;
  xPrevSize: number;
  n: number;
  nSize: number;
  nFlags: number;
}

/** struct malloc_state: one arena. */
export class Arena {
  /** 0 for the main arena, k for the k-th arena created after it. */
  readonly index: number;
  /** Handle of bin 0's header; bin i's header is binBase + i. */
  readonly binBase: number;
  /** Heads of the fastbins (handles, NIL when empty); LIFO lists through `fd`. */
  readonly fastbins = new Int32Array(NFASTBINS).fill(NIL);
  top: number;
  /** The remainder of the most recent split of a small request. */
  lastRemainder = NIL;
  /** One bit per bin, set when a chunk is binned, cleared lazily by _int_malloc's scan. */
  readonly binmap = new Uint32Array(BINMAPSIZE);
  haveFastchunks = false;
  /** The main arena is contiguous until the first brk failure; others never are. */
  contiguous: boolean;
  /** Bytes obtained from the system for this arena (brk, heaps, brk-fallback mappings). */
  systemMem = 0;
  maxSystemMem = 0;
  /** The circular list of arenas: main, newest, ..., oldest. */
  next: Arena;
  nextFree: Arena | null = null;
  attachedThreads = 1;
  /** Non-main arenas: the heap holding the top (the end of the chain through `prev`). */
  heap: HeapInfo | null = null;
  /**
   * Counts the operations that may write into this arena's free chunks or move its chunk
   * boundaries: every call of _int_malloc, _int_realloc, malloc_consolidate and mtrim, and every
   * _int_free that coalesces (tcache and fastbin frees write only into the chunk being freed).
   * Not part of glibc's state: it tells how long `merged` stays true.
   */
  rewrites = 0;
  readonly merged: MergedHeaders = {
    epoch: -1,
    x: -1,
    xSize: 0,
    xFlags: 0,
    xPrevSize: 0,
    n: -1,
    nSize: 0,
    nFlags: 0,
  };

  constructor(ck: ChunkStore, index: number) {
    this.index = index;
    // malloc_init_state: every bin empty, linked to itself.
    const base = ck.allocBlock(NBINS);
    for (let i = 0; i < NBINS; i++) {
      const h = base + i;
      ck.state[h] = St.BINHDR;
      ck.bin[h] = i;
      ck.fd[h] = h;
      ck.bk[h] = h;
      ck.fdNext[h] = NOT_NULL;
      ck.bkNext[h] = NOT_NULL;
    }
    this.binBase = base;
    // The unsorted bin doubles as the initial top, of size 0.
    this.top = base + UNSORTED_BIN;
    this.contiguous = index === 0;
    this.next = this;
  }

  bin(i: number): number {
    return this.binBase + i;
  }

  /** True while top is still the dummy initial top. */
  get topIsInitial(): boolean {
    return this.top === this.binBase + UNSORTED_BIN;
  }
}

/** One thread's tcache (tcache_perthread_struct), kept outside the heap image but mirroring it. */
export interface Tcache {
  /** counts[i]: chunks in bin i. */
  counts: Uint16Array;
  /** entries[i]: most recently cached chunk of bin i (a handle); the list continues through `fd`. */
  entries: Int32Array;
  /** The chunk holding the struct in the heap (640 bytes; 760 from 2.42). */
  chunk: number;
}

/** A trace thread. */
export interface ThreadState {
  tid: number;
  tcache: Tcache | null;
  /**
   * Set by tcache_thread_shutdown, and from 2.43 by tcache_init itself (tcache_set_disabled):
   * the tcache is never (re-)created.
   */
  tcacheShuttingDown: boolean;
  /** thread_arena */
  arena: Arena | null;
}

export function newTcache(chunk: number, profile: GlibcProfile): Tcache {
  const bins = tcacheMaxBins(profile);
  return {
    counts: new Uint16Array(bins),
    entries: new Int32Array(bins).fill(NIL),
    chunk,
  };
}

/** The whole simulated process: what glibc's malloc keeps, plus the kernel beneath it. */
export class Process {
  readonly ck = new ChunkStore();
  readonly kernel: Kernel;
  /** The glibc release modelled (profile.ts): read by the functions that changed between releases. */
  readonly profile: GlibcProfile;
  /** Offset of a thread arena's first top chunk from its heap: after heap_info and malloc_state. */
  readonly firstTopOffset: number;
  readonly mp: MallocPar;
  readonly main: Arena;
  /** Arenas in creation order (main first). */
  readonly arenas: Arena[] = [];
  /** __malloc_initialized */
  initialized = false;
  /** __malloc_hook is still malloc_hook_ini (glibc up to 2.33: profile.initHooks). */
  mallocHookIni: boolean;
  /** SINGLE_THREAD_P: true until the process creates its first thread. */
  singleThread = true;
  /** global_max_fast: largest chunk size kept in fastbins (0 before initialisation). */
  globalMaxFast = 0;
  perturbByte = 0;
  /** __always_fail_morecore: the main arena may not use brk (glibc.malloc.hugetlb >= 2). */
  alwaysFailMorecore = false;
  /** Settings glibc reads from the environment at initialisation (GLIBC_TUNABLES, MALLOC_*_). */
  env: Array<[name: string, value: string]> = [];
  /** libc's cached program break (__curbrk); null until the first sbrk asks the kernel. */
  curbrk: number | null = null;
  /** The calling thread of the current call. */
  thread: ThreadState;
  readonly threads = new Map<number, ThreadState>();
  /**
   * Every non-main heap, by the number of its 64 MiB-aligned reservation (heapKey: what
   * heap_for_ptr finds; a small integer, which a Map hashes faster than an address).
   */
  readonly heaps = new Map<number, HeapInfo>();
  /** The heap heapForPtr found last (most look-ups find the same one again); null once it goes. */
  heapHint: HeapInfo | null = null;
  /** Number of CPUs glibc counts when it fixes the arena limit (online CPUs on Debian's 2.36). */
  ncores = 2;
  /** narenas: arenas created so far, the main one included. */
  narenas = 1;
  /** arena_get2's narenas_limit: 0 until fixed, then never recomputed. */
  narenasLimit = 0;
  /** Arenas of exited threads, most recent first (free_list, linked through nextFree). */
  freeList: Arena | null = null;
  /** reused_arena's next_to_use. */
  nextToUse: Arena | null = null;
  /** new_heap's aligned_heap_area: where the next 64 MiB-aligned reservation may fit (0: none). */
  alignedHeapArea = 0;
  /** check_may_shrink_heap(): vm.overcommit_memory is 2, so shrunk heap memory is remapped, not madvised. */
  mayShrinkHeap = false;
  /** Index of the event being replayed (for the chunks' birth records). */
  eventIndex = 0;
  /**
   * Other trim thresholds to watch (none: empty), for a replay that stands for settings which
   * leave glibc in the same state but for the trim threshold: every place glibc compares the top
   * with the threshold also asks whether each of these would have changed what happened, and the
   * first event where it would is kept in trimThresholdsMattered at the same index (-1: none so
   * far). Until then, a replay with that threshold would have done the very same.
   */
  otherTrimThresholds: number[] = [];
  trimThresholdsMattered: number[] = [];

  constructor(kernel: Kernel, profile: GlibcProfile = DEFAULT_PROFILE) {
    this.kernel = kernel;
    this.profile = profile;
    this.firstTopOffset = firstTopOffset(profile);
    this.mp = defaultMallocPar(profile);
    this.mallocHookIni = profile.initHooks;
    this.main = new Arena(this.ck, 0);
    this.arenas.push(this.main);
    this.thread = { tid: 0, tcache: null, tcacheShuttingDown: false, arena: null };
  }
}
