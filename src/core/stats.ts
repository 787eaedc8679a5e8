/**
 * What glibc reports about itself: mallinfo2 (walking every arena's bins, as int_mallinfo does:
 * tcache chunks count as in use), malloc_stats (its exact text, printed on stderr by glibc) and
 * malloc_info (its exact XML). Nothing here changes the allocator's state.
 *
 * glibc: int_mallinfo, __libc_mallinfo2, __malloc_stats, __malloc_info (malloc/malloc.c).
 */

import { NIL } from './chunks.js';
import { NBINS, NFASTBINS } from './constants.js';
import type { Arena, Process } from './state.js';

export interface Mallinfo2 {
  arena: number;
  ordblks: number;
  smblks: number;
  hblks: number;
  hblkhd: number;
  usmblks: number;
  fsmblks: number;
  uordblks: number;
  fordblks: number;
  keepcost: number;
}

function emptyMallinfo(): Mallinfo2 {
  return {
    arena: 0,
    ordblks: 0,
    smblks: 0,
    hblks: 0,
    hblkhd: 0,
    usmblks: 0,
    fsmblks: 0,
    uordblks: 0,
    fordblks: 0,
    keepcost: 0,
  };
}

/** int_mallinfo: adds one arena's figures to m. */
function intMallinfo(s: Process, av: Arena, m: Mallinfo2): void {
  const ck = s.ck;
  let avail = ck.size[av.top]!;
  let nblocks = 1;
  let nfastblocks = 0;
  let fastavail = 0;
  for (let i = 0; i < NFASTBINS; i++) {
    for (let p = av.fastbins[i]!; p !== NIL; p = ck.fd[p]!) {
      nfastblocks++;
      fastavail += ck.size[p]!;
    }
  }
  avail += fastavail;
  for (let i = 1; i < NBINS; i++) {
    const b = av.bin(i);
    for (let p = ck.bk[b]!; p !== b; p = ck.bk[p]!) {
      nblocks++;
      avail += ck.size[p]!;
    }
  }
  m.smblks += nfastblocks;
  m.ordblks += nblocks;
  m.fordblks += avail;
  m.uordblks += av.systemMem - avail;
  m.arena += av.systemMem;
  m.fsmblks += fastavail;
  if (av === s.main) {
    m.hblks = s.mp.nMmaps;
    m.hblkhd = s.mp.mmappedMem;
    m.usmblks = 0;
    m.keepcost = ck.size[av.top]!;
  }
}

/** __libc_mallinfo2 (without the initialisation side effect, which the replay never needs). */
export function mallinfo2(s: Process): Mallinfo2 {
  const m = emptyMallinfo();
  let ar = s.main;
  do {
    intMallinfo(s, ar, m);
    ar = ar.next;
  } while (ar !== s.main);
  return m;
}

/** printf's %10u of a value truncated to unsigned int. */
function u10(v: number): string {
  return String(((v % 2 ** 32) + 2 ** 32) % 2 ** 32).padStart(10);
}

/** __malloc_stats: the text glibc writes to stderr. */
export function mallocStats(s: Process): string {
  let out = '';
  let inUse = s.mp.mmappedMem % 2 ** 32;
  let system = inUse;
  let i = 0;
  let ar = s.main;
  do {
    const m = emptyMallinfo();
    intMallinfo(s, ar, m);
    out += `Arena ${i}:\n`;
    out += `system bytes     = ${u10(m.arena)}\n`;
    out += `in use bytes     = ${u10(m.uordblks)}\n`;
    system = (system + m.arena) % 2 ** 32;
    inUse = (inUse + m.uordblks) % 2 ** 32;
    ar = ar.next;
    i++;
  } while (ar !== s.main);
  out += 'Total (incl. mmap):\n';
  out += `system bytes     = ${u10(system)}\n`;
  out += `in use bytes     = ${u10(inUse)}\n`;
  out += `max mmap regions = ${u10(s.mp.maxNMmaps)}\n`;
  out += `max mmap bytes   = ${String(s.mp.maxMmappedMem).padStart(10)}\n`;
  return out;
}

interface SizeLine {
  from: number;
  to: number;
  total: number;
  count: number;
}

/** __malloc_info(0, fp): the XML glibc writes. */
export function mallocInfo(s: Process): string {
  const ck = s.ck;
  let out = '<malloc version="1">\n';
  let totalNblocks = 0;
  let totalNfast = 0;
  let totalAvail = 0;
  let totalFastavail = 0;
  let totalSystem = 0;
  let totalMaxSystem = 0;
  let totalAspace = 0;
  let totalAspaceMprotect = 0;
  let n = 0;
  let ar = s.main;
  do {
    out += `<heap nr="${n++}">\n<sizes>\n`;
    // The top chunk counts from 2.31 on.
    const countsTop = s.profile.mallocInfoCountsTop;
    let avail = countsTop ? ck.size[ar.top]! : 0;
    let nblocks = countsTop ? 1 : 0;
    let nfastblocks = 0;
    let fastavail = 0;
    const lines: SizeLine[] = [];
    for (let i = 0; i < NFASTBINS; i++) {
      const head = ar.fastbins[i]!;
      if (head === NIL) continue;
      let count = 0;
      const thissize = ck.size[head]!;
      for (let p = head; p !== NIL; p = ck.fd[p]!) count++;
      fastavail += count * thissize;
      nfastblocks += count;
      lines.push({ from: thissize - 15, to: thissize, total: count * thissize, count });
    }
    let unsorted: SizeLine | null = null;
    for (let i = 1; i < NBINS; i++) {
      const b = ar.bin(i);
      const line: SizeLine = { from: Infinity, to: 0, total: 0, count: 0 };
      for (let p = ck.fd[b]!; p !== b; p = ck.fd[p]!) {
        // The raw size word, flag bits included.
        const raw = ck.size[p]! + ck.flags[p]!;
        line.count++;
        line.total += raw;
        line.from = Math.min(line.from, raw);
        line.to = Math.max(line.to, raw);
      }
      nblocks += line.count;
      avail += line.total;
      if (line.count === 0) continue;
      if (i === 1) unsorted = line;
      else lines.push(line);
    }
    // Up to 2.30 the string literal of a <size> line began with the source's indentation.
    const indent = countsTop ? '' : '\t\t\t\t\t\t\t      ';
    for (const l of lines)
      out += `${indent}  <size from="${l.from}" to="${l.to}" total="${l.total}" count="${l.count}"/>\n`;
    if (unsorted !== null) {
      out += `  <unsorted from="${unsorted.from}" to="${unsorted.to}" total="${unsorted.total}" count="${unsorted.count}"/>\n`;
    }
    totalNfast += nfastblocks;
    totalFastavail += fastavail;
    totalNblocks += nblocks;
    totalAvail += avail;
    totalSystem += ar.systemMem;
    totalMaxSystem += ar.maxSystemMem;
    out += '</sizes>\n';
    // 2.43 dropped the fastbins, and their lines (profile.fastbins).
    if (s.profile.fastbins)
      out += `<total type="fast" count="${nfastblocks}" size="${fastavail}"/>\n`;
    out += `<total type="rest" count="${nblocks}" size="${avail}"/>\n`;
    out += `<system type="current" size="${ar.systemMem}"/>\n`;
    out += `<system type="max" size="${ar.maxSystemMem}"/>\n`;
    if (ar !== s.main) {
      let heapSize = 0;
      let heapMprotect = 0;
      let heapCount = 0;
      for (let h = ar.heap; h !== null; h = h.prev) {
        heapSize += h.size;
        heapMprotect += h.mprotectSize;
        heapCount++;
      }
      out += `<aspace type="total" size="${heapSize}"/>\n<aspace type="mprotect" size="${heapMprotect}"/>\n`;
      out += `<aspace type="subheaps" size="${heapCount}"/>\n`;
      totalAspace += heapSize;
      totalAspaceMprotect += heapMprotect;
    } else {
      out += `<aspace type="total" size="${ar.systemMem}"/>\n<aspace type="mprotect" size="${ar.systemMem}"/>\n`;
      totalAspace += ar.systemMem;
      totalAspaceMprotect += ar.systemMem;
    }
    out += '</heap>\n';
    ar = ar.next;
  } while (ar !== s.main);
  if (s.profile.fastbins)
    out += `<total type="fast" count="${totalNfast}" size="${totalFastavail}"/>\n`;
  out += `<total type="rest" count="${totalNblocks}" size="${totalAvail}"/>\n`;
  out += `<total type="mmap" count="${s.mp.nMmaps}" size="${s.mp.mmappedMem}"/>\n`;
  out += `<system type="current" size="${totalSystem}"/>\n`;
  out += `<system type="max" size="${totalMaxSystem}"/>\n`;
  out += `<aspace type="total" size="${totalAspace}"/>\n`;
  out += `<aspace type="mprotect" size="${totalAspaceMprotect}"/>\n`;
  out += '</malloc>\n';
  return out;
}

/** One arena's share of the process, for reports. */
export interface ArenaReport {
  /** 0 main, k the k-th arena created. */
  index: number;
  /** Threads attached to it now. */
  threads: number;
  /** Heaps (non-main arenas; 1 for the main arena's brk heap). */
  heaps: number;
  /** Bytes it holds from the system (system_mem). */
  systemBytes: number;
  /** Bytes in use, tcache included (mallinfo2's uordblks for this arena). */
  inUseBytes: number;
  /** Free bytes: top, bins and fastbins. */
  freeBytes: number;
  /** Resident bytes of its memory. */
  residentBytes: number;
}

/** The arenas in glibc's list order (main, newest, ..., oldest) with their memory. */
export function arenaReports(s: Process): ArenaReport[] {
  const out: ArenaReport[] = [];
  let ar = s.main;
  do {
    const m = emptyMallinfo();
    intMallinfo(s, ar, m);
    let heaps = 0;
    let resident = 0;
    if (ar === s.main) {
      heaps = 1;
      resident = s.mp.sbrkBase === 0 ? 0 : s.kernel.residentIn(s.kernel.brkBase, s.kernel.brkEnd);
    } else {
      for (let h = ar.heap; h !== null; h = h.prev) {
        heaps++;
        resident += s.kernel.residentIn(h.start, h.start + h.size);
      }
    }
    out.push({
      index: ar.index,
      threads: ar.attachedThreads,
      heaps,
      systemBytes: ar.systemMem,
      inUseBytes: m.uordblks,
      freeBytes: m.fordblks,
      residentBytes: resident,
    });
    ar = ar.next;
  } while (ar !== s.main);
  return out;
}
