/**
 * ptsim's own process under glibc's malloc: the dynamic mmap threshold raised at start-up, as the
 * allocator we model does it (a free of a mapped block raises the mmap threshold to the block's
 * size, and the trim threshold to twice that: __libc_free).
 *
 * Node serves array buffers, and V8 the working memory of its compilers, with malloc. Under the
 * default thresholds (128 KiB each) glibc maps a buffer of a megabyte on its own and unmaps it when
 * it is freed, and gives the top of its heap back whenever 128 KiB of it are free: the next
 * buffer, or the next compilation, then writes fresh pages, and on our machines a page fault costs
 * 11 to 26 microseconds (docs/architecture.md, "Page faults"). One mapped block freed at the start,
 * a little under glibc's largest threshold (32 MiB), lets glibc keep and reuse that memory: it
 * then maps only blocks of 32 MiB and more, and trims its heap beyond 64 MiB of free top.
 *
 * Importing this module does it (main.ts imports it first). Elsewhere than Linux, or under another
 * allocator, it is a buffer allocated and freed, nothing more; under glibc with a threshold set by
 * the user (MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES), glibc keeps the user's.
 */

import { release } from '../core/release.js';

/**
 * Bytes of the buffer: its mapped chunk (the request, a word of header, rounded up to a page) is
 * 32 MiB - 4 KiB, at most DEFAULT_MMAP_THRESHOLD_MAX, so its free raises the threshold.
 */
const RAISING_BYTES = (32 << 20) - 8192;

if (process.platform === 'linux') {
  try {
    release(new Uint8Array(RAISING_BYTES));
  } catch {
    // No address space for it (a process limited in that): the thresholds stay as they are.
  }
}
