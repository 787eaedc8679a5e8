/**
 * Every store glibc makes into heap memory, as a helper that updates the chunk store and touches
 * the page it lands on (the touch model: a page becomes resident at its first write).
 *
 * Offsets follow struct malloc_chunk: prev_size at +0, size at +8, fd at +16, bk at +24,
 * fd_nextsize at +32, bk_nextsize at +40. Bin headers live in the arena (libc's data for the main
 * arena, the always-resident first page of a non-main heap), so stores into them touch nothing:
 * they are the handles without an address (-1, see ChunkStore.allocBlock), which the link
 * writers test rather than the state (one array read fewer per write).
 */

import { PREV_INUSE } from './constants.js';
import type { Process } from './state.js';

/** set_head(p, size | flags) */
export function setHead(s: Process, p: number, size: number, flags: number): void {
  const ck = s.ck;
  ck.setSize(p, size);
  ck.flags[p] = flags;
  s.kernel.touch(ck.addr[p]! + 8);
}

/** set_head_size(p, size | extraFlags): keeps p's own flag bits. */
export function setHeadSize(s: Process, p: number, size: number, extraFlags: number): void {
  const ck = s.ck;
  ck.setSize(p, size);
  ck.flags[p] = ck.flags[p]! | extraFlags;
  s.kernel.touch(ck.addr[p]! + 8);
}

/** set_foot(p, size): the prev_size word of the chunk that follows p. */
export function setFoot(s: Process, p: number, size: number): void {
  const ck = s.ck;
  ck.setPrevSize(ck.next[p]!, size);
  s.kernel.touch(ck.addr[p]! + size);
}

/** set_prev_size(p, v) */
export function setPrevSize(s: Process, p: number, v: number): void {
  s.ck.setPrevSize(p, v);
  s.kernel.touch(s.ck.addr[p]!);
}

/** set_inuse_bit_at_offset(p, size(p)): marks p in use in its successor's header. */
export function setInuseBitAfter(s: Process, p: number): void {
  const ck = s.ck;
  const n = ck.next[p]!;
  ck.flags[n] = ck.flags[n]! | PREV_INUSE;
  s.kernel.touch(ck.addr[n]! + 8);
}

/** clear_inuse_bit_at_offset(n, 0): clears n's own PREV_INUSE bit. */
export function clearPrevInuse(s: Process, n: number): void {
  const ck = s.ck;
  ck.flags[n] = ck.flags[n]! & ~PREV_INUSE;
  s.kernel.touch(ck.addr[n]! + 8);
}

export function writeFd(s: Process, p: number, v: number): void {
  const ck = s.ck;
  ck.fd[p] = v;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 16);
}

export function writeBk(s: Process, p: number, v: number): void {
  const ck = s.ck;
  ck.bk[p] = v;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 24);
}

/**
 * p's fd and bk together: one 16-byte-aligned pair of words, so one page (the touch model sees
 * the same first write as from two stores).
 */
export function writeFdBk(s: Process, p: number, fd: number, bk: number): void {
  const ck = s.ck;
  ck.fd[p] = fd;
  ck.bk[p] = bk;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 16);
}

/** p's fd_nextsize and bk_nextsize together (one page, as writeFdBk). */
export function writeNextsize(s: Process, p: number, fdNext: number, bkNext: number): void {
  const ck = s.ck;
  ck.fdNext[p] = fdNext;
  ck.bkNext[p] = bkNext;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 32);
}

export function writeFdNext(s: Process, p: number, v: number): void {
  const ck = s.ck;
  ck.fdNext[p] = v;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 32);
}

export function writeBkNext(s: Process, p: number, v: number): void {
  const ck = s.ck;
  ck.bkNext[p] = v;
  const a = ck.addr[p]!;
  if (a >= 0) s.kernel.touch(a + 40);
}

/** A memset/memcpy of `len` bytes from the user pointer of p. */
export function writeUser(s: Process, p: number, len: number): void {
  s.kernel.touchRange(s.ck.addr[p]! + 16, len);
}

/**
 * A memcpy of `len` bytes from the user pointer of `from` to that of `to` (realloc's copy): the
 * source is read, the destination written.
 */
export function copyUser(s: Process, from: number, to: number, len: number): void {
  s.kernel.readRange(s.ck.addr[from]! + 16, len);
  writeUser(s, to, len);
}

/** alloc_perturb: fills the requested bytes when M_PERTURB is set. */
export function allocPerturb(s: Process, p: number, bytes: number): void {
  if (s.perturbByte !== 0) writeUser(s, p, bytes);
}

/** free_perturb: fills a freed chunk's user bytes when M_PERTURB is set. */
export function freePerturb(s: Process, p: number, len: number): void {
  if (s.perturbByte !== 0) writeUser(s, p, len);
}
