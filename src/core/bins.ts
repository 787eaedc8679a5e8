/**
 * The regular bins: the unsorted bin (1), 62 small bins (2..63, one size each) and 63 large bins
 * (64..126, size ranges kept sorted largest first, with a second ring through fd_nextsize /
 * bk_nextsize linking the first chunk of each distinct size), plus the binmap.
 *
 * Lists are circular and doubly linked through fd/bk with the bin header as sentinel, exactly as
 * in glibc: insertion at the head (bin->fd), removal from the tail (bin->bk) where glibc does so.
 * The binmap bit of a bin is set when _int_malloc bins a chunk there and only cleared lazily, when
 * a later binmap scan finds the bin empty.
 *
 * glibc: unlink_chunk, mark_bin, the "place chunk in bin" step of _int_malloc (malloc/malloc.c).
 */

import { NIL, St } from './chunks.js';
import { inSmallbinRange, largebinIndex, smallbinIndex } from './constants.js';
import { writeBk, writeBkNext, writeFd, writeFdBk, writeFdNext, writeNextsize } from './mem.js';
import type { Arena, Process } from './state.js';

/** mark_bin */
function markBin(av: Arena, i: number): void {
  av.binmap[i >>> 5] = (av.binmap[i >>> 5]! | (1 << (i & 31))) >>> 0;
}

/** unlink_chunk: takes a free chunk out of whatever regular bin holds it. */
export function unlinkChunk(s: Process, p: number): void {
  const ck = s.ck;
  const fd = ck.fd[p]!;
  const bk = ck.bk[p]!;
  writeBk(s, fd, bk);
  writeFd(s, bk, fd);
  if (!inSmallbinRange(ck.size[p]!) && ck.fdNext[p] !== NIL) {
    // p carries the nextsize links of its size group.
    if (ck.fdNext[fd] === NIL) {
      // The next chunk has the same size: it inherits p's place in the nextsize ring.
      if (ck.fdNext[p] === p) {
        writeNextsize(s, fd, fd, fd);
      } else {
        writeNextsize(s, fd, ck.fdNext[p]!, ck.bkNext[p]!);
        writeBkNext(s, ck.fdNext[p]!, fd);
        writeFdNext(s, ck.bkNext[p]!, fd);
      }
    } else {
      writeBkNext(s, ck.fdNext[p]!, ck.bkNext[p]!);
      writeFdNext(s, ck.bkNext[p]!, ck.fdNext[p]!);
    }
  }
  ck.state[p] = St.INUSE;
}

/**
 * Puts a free chunk at the head of the unsorted bin (the insertion of _int_free,
 * malloc_consolidate and the split paths of _int_malloc). Large chunks get NULL nextsize links.
 */
export function insertUnsortedHead(s: Process, av: Arena, p: number, size: number): void {
  const ck = s.ck;
  const bck = av.bin(1);
  const fwd = ck.fd[bck]!;
  writeFdBk(s, p, fwd, bck);
  if (!inSmallbinRange(size)) writeNextsize(s, p, NIL, NIL);
  writeFd(s, bck, p);
  writeBk(s, fwd, p);
  ck.state[p] = St.BINNED;
  ck.bin[p] = 1;
}

/**
 * Puts a freed small chunk at the head of its small bin and marks the bin (_int_free_create_chunk
 * from 2.41; before, freed chunks all went to the unsorted bin).
 */
export function insertSmallbinHead(s: Process, av: Arena, p: number, size: number): void {
  const ck = s.ck;
  const idx = smallbinIndex(size);
  const bck = av.bin(idx);
  const fwd = ck.fd[bck]!;
  markBin(av, idx);
  writeFdBk(s, p, fwd, bck);
  writeFd(s, bck, p);
  writeBk(s, fwd, p);
  ck.state[p] = St.BINNED;
  ck.bin[p] = idx;
}

/**
 * The "place chunk in bin" step of _int_malloc's unsorted loop: small chunks go to the head of
 * their bin; large chunks are inserted in size order (equal sizes in the second position of their
 * group, so the nextsize ring need not change).
 */
export function placeInBin(s: Process, av: Arena, victim: number, size: number): void {
  const ck = s.ck;
  let victimIndex: number;
  let bck: number;
  let fwd: number;
  if (inSmallbinRange(size)) {
    victimIndex = smallbinIndex(size);
    bck = av.bin(victimIndex);
    fwd = ck.fd[bck]!;
  } else {
    victimIndex = largebinIndex(size);
    bck = av.bin(victimIndex);
    fwd = ck.fd[bck]!;
    if (fwd !== bck) {
      // Sizes compare with the P bit or'ed in on both sides in glibc; binned chunks all carry it.
      if (size < ck.size[ck.bk[bck]!]!) {
        // Smaller than the smallest: goes to the tail, and into the ring before the largest.
        fwd = bck;
        bck = ck.bk[bck]!;
        const first = ck.fd[fwd]!;
        writeNextsize(s, victim, first, ck.bkNext[first]!);
        writeBkNext(s, first, victim);
        writeFdNext(s, ck.bkNext[victim]!, victim);
      } else {
        while (size < ck.size[fwd]!) fwd = ck.fdNext[fwd]!;
        if (size === ck.size[fwd]!) {
          fwd = ck.fd[fwd]!;
        } else {
          writeNextsize(s, victim, fwd, ck.bkNext[fwd]!);
          writeBkNext(s, fwd, victim);
          writeFdNext(s, ck.bkNext[victim]!, victim);
        }
        bck = ck.bk[fwd]!;
      }
    } else {
      writeNextsize(s, victim, victim, victim);
    }
  }
  markBin(av, victimIndex);
  writeFdBk(s, victim, fwd, bck);
  writeBk(s, fwd, victim);
  writeFd(s, bck, victim);
  ck.state[victim] = St.BINNED;
  ck.bin[victim] = victimIndex;
}
