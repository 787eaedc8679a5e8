/**
 * malloc_trim's work on one arena: consolidate the fastbins, then discard (MADV_DONTNEED) the
 * whole pages inside every large enough free chunk of the unsorted bin and of the bins from
 * bin_index(4096) = 99 up, keeping each chunk's first 48 bytes (header and list links); finally,
 * for the main arena only, lower the break as systrim does with the given pad. Tcache chunks look
 * in use and are not touched, nor are the tops of non-main arenas.
 *
 * glibc: mtrim (malloc/malloc.c).
 */

import { binIndex, NBINS, PAGE_SIZE, alignUp } from './constants.js';
import { mallocConsolidate } from './free.js';
import { systrim } from './sysmalloc.js';
import type { Arena, Process } from './state.js';

/** sizeof (struct malloc_chunk): header plus four list words. */
const MALLOC_CHUNK_STRUCT = 48;

export function mtrim(s: Process, av: Arena, pad: number): number {
  av.rewrites++; // the pages it discards read back as zeros
  if (s.profile.fastbins) mallocConsolidate(s, av); // no fastbins from 2.43

  const ck = s.ck;
  const psindex = binIndex(PAGE_SIZE);
  const psm1 = PAGE_SIZE - 1;
  let result = 0;
  for (let i = 1; i < NBINS; i++) {
    if (i !== 1 && i < psindex) continue;
    const bin = av.bin(i);
    for (let p = ck.bk[bin]!; p !== bin; p = ck.bk[p]!) {
      let size = ck.size[p]!;
      if (size > psm1 + MALLOC_CHUNK_STRUCT) {
        const paligned = alignUp(ck.addr[p]! + MALLOC_CHUNK_STRUCT, PAGE_SIZE);
        size -= paligned - ck.addr[p]!;
        if (size > psm1) {
          s.kernel.madviseDontneed(paligned, Math.floor(size / PAGE_SIZE) * PAGE_SIZE);
          result = 1;
        }
      }
    }
  }
  return result | (av === s.main ? systrim(s, pad, av) : 0);
}
