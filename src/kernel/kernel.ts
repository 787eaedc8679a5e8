/**
 * The simulated kernel beneath the allocator: the program break, anonymous mappings, and page
 * residency. The allocator talks only to this layer, as glibc talks only to the kernel; nothing
 * here knows about chunks.
 *
 * Addresses are plain numbers (all below 2^48, exact in a double). Pages are 4 KiB. A page is
 * resident from its first write (`touch`) until it is unmapped, given back by lowering the break,
 * or discarded by madvise(MADV_DONTNEED), which is the touch model of the fidelity log. A read of
 * an untouched anonymous page maps the shared zero page on most Linux kernels, which does not
 * count towards RSS; some kernels give every page read a frame of its own, so that a read makes
 * it resident as a write does (KernelOptions.zeroPage, `readRange`). The only reads modelled are
 * glibc's own: realloc's copy of the old block.
 *
 * Placement of mappings follows Linux's top-down allocator: the highest gap below the mmap base
 * that fits. Real addresses depend on ASLR and on every other mapping of the process, so only
 * offsets inside a mapping are meant to match a real run.
 */

import { PageSet } from './pages.js';

export const PAGE_SIZE = 4096;
/** 1 / PAGE_SIZE: a page number is floor(offset * PAGE_FRACTION), exact for every offset below 2^53. */
const PAGE_FRACTION = 1 / PAGE_SIZE;

/** Counts of the system calls the allocator made. */
export interface SyscallCounts {
  brk: number;
  mmap: number;
  munmap: number;
  mremap: number;
  mprotect: number;
  madvise: number;
  getrandom: number;
}

export interface KernelOptions {
  /** Initial program break (page-aligned unless you want to model a static binary). */
  brkBase?: number;
  /**
   * Bytes the dynamic loader took with sbrk and wrote before the program started (glibc up to
   * 2.34 copies the GLIBC_TUNABLES entry so): the program's break starts that far above brkBase,
   * and the page the copy ends in is resident.
   */
  loaderSbrk?: number;
  /** Highest address (exclusive) that mappings are placed below. */
  mmapBase?: number;
  /** The break cannot grow beyond brkBase + maxBrk bytes (as when a mapping sits above the heap). */
  maxBrk?: number;
  /**
   * The largest single mapping or heap growth the kernel grants (default 1 TiB). Linux's default
   * overcommit heuristic refuses one request larger than the machine's RAM plus swap, which a
   * replay cannot know; without a limit a petabyte request would be "granted" here.
   */
  maxMapping?: number;
  /**
   * Whether a read of an untouched anonymous page maps the shared zero page (the default, Linux's
   * usual way), which stays out of RSS; false models a kernel that gives the page a frame of its
   * own, resident from then on.
   */
  zeroPage?: boolean;
}

/** One anonymous mapping. */
interface Mapping {
  start: number;
  end: number;
  pages: PageSet;
}

/** Slots of findMapping's cache, each 64 MiB of addresses (the size of a heap of another arena). */
const SLOTS = 256;
const SLOT_FRACTION = 1 / 2 ** 26;

/** The pages of no mapping (Kernel.hitPages when there is no last hit). */
const NO_PAGES = new PageSet(1);

const DEFAULT_BRK_BASE = 0x555555559000;
const DEFAULT_MAX_MAPPING = 2 ** 40;
const DEFAULT_MMAP_BASE = 0x7ffff7fc0000;

export class Kernel {
  readonly brkBase: number;
  /** Current program break. */
  brkEnd: number;
  /** The start of the page that holds brkBase: page 0 of brkPages. */
  private readonly brkPageBase: number;
  /** Residency of the break area; always large enough for every page below the break (see brk). */
  private readonly brkPages = new PageSet(64);
  private readonly maxBrkEnd: number;
  private readonly mmapBase: number;
  private readonly maxMapping: number;
  /** Mappings sorted by start address; they never overlap. */
  readonly mappings: Mapping[] = [];
  private lastHit: Mapping | null = null;
  /**
   * The bounds and pages of lastHit as numbers of the kernel's own (empty when there is none), so
   * that touch() finds the mapping it wrote to last without loading it.
   */
  private hitStart = 0;
  private hitEnd = 0;
  private hitPages = NO_PAGES;
  /**
   * findMapping's cache, direct-mapped by 64 MiB slot of the address: the bounds and the mapping
   * found last in each slot (the heaps of several arenas, written in turn by their threads, each
   * keep their own). Emptied when a mapping goes.
   */
  private readonly slotStart = new Float64Array(SLOTS);
  private readonly slotEnd = new Float64Array(SLOTS);
  private readonly slotMapping: Array<Mapping | null> = new Array<Mapping | null>(SLOTS).fill(null);

  readonly syscalls: SyscallCounts = {
    brk: 0,
    mmap: 0,
    munmap: 0,
    mremap: 0,
    mprotect: 0,
    madvise: 0,
    getrandom: 0,
  };
  /** KernelOptions.zeroPage. */
  readonly zeroPage: boolean;
  /** First touches of a page (minor page faults). */
  pageFaults = 0;
  /** Resident pages of the break area and all mappings. */
  residentPages = 0;

  constructor(opts: KernelOptions = {}) {
    this.zeroPage = opts.zeroPage ?? true;
    this.brkBase = (opts.brkBase ?? DEFAULT_BRK_BASE) + (opts.loaderSbrk ?? 0);
    this.brkEnd = this.brkBase;
    this.brkPageBase = pageAlignDown(this.brkBase);
    if (this.brkBase !== this.brkPageBase) {
      // The loader's copy ends in the break's first page: written, so resident from the start.
      this.brkPages.ensure(1);
      this.residentPages += this.brkPages.set(0);
    }
    this.maxBrkEnd =
      opts.maxBrk === undefined ? Number.POSITIVE_INFINITY : this.brkBase + opts.maxBrk;
    this.mmapBase = opts.mmapBase ?? DEFAULT_MMAP_BASE;
    this.maxMapping = opts.maxMapping ?? DEFAULT_MAX_MAPPING;
  }

  // ---------------------------------------------------------------- brk

  /** The brk system call: moves the break to `addr` if it can and returns the break afterwards. */
  brk(addr: number): number {
    this.syscalls.brk++;
    if (addr === 0) return this.brkEnd;
    if (addr < this.brkBase || addr > this.maxBrkEnd) return this.brkEnd;
    // A growth the overcommit heuristic would refuse, or one that runs into the mmap area.
    if (addr > this.brkEnd && (addr - this.brkEnd > this.maxMapping || addr > this.mmapBase))
      return this.brkEnd;
    const newTop = pageAlignUp(addr);
    if (newTop > pageAlignUp(this.brkEnd)) {
      // The heap may not grow into a mapping.
      for (const m of this.mappings)
        if (m.end > this.brkEnd && m.start < newTop) return this.brkEnd;
      // Every page below the break has its bit, so that touches need no bounds check.
      this.brkPages.ensure((newTop - this.brkPageBase) * PAGE_FRACTION);
    } else if (newTop < pageAlignUp(this.brkEnd)) {
      const first = (newTop - this.brkPageBase) * PAGE_FRACTION;
      this.residentPages -= this.brkPages.clearRange(first, this.brkPages.capacity);
    }
    this.brkEnd = addr;
    return addr;
  }

  // ---------------------------------------------------------------- mappings

  /** mmap(NULL or hint, len, ..., MAP_PRIVATE|MAP_ANONYMOUS): returns the address, or -1. */
  mmap(len: number, hint = 0): number {
    this.syscalls.mmap++;
    len = pageAlignUp(len);
    if (len <= 0 || len > this.maxMapping) return -1;
    const start =
      hint !== 0 && hint % PAGE_SIZE === 0 && this.isFree(hint, hint + len)
        ? hint
        : this.findGap(len);
    if (start < 0) return -1;
    this.insertMapping({ start, end: start + len, pages: new PageSet(len / PAGE_SIZE) });
    return start;
  }

  /** mmap(addr, len, ..., MAP_FIXED): a fresh mapping replacing whatever was there. */
  mmapFixed(addr: number, len: number): void {
    this.syscalls.mmap++;
    len = pageAlignUp(len);
    this.removeRange(addr, addr + len);
    this.insertMapping({ start: addr, end: addr + len, pages: new PageSet(len / PAGE_SIZE) });
  }

  /** munmap(addr, len): removes any part of any mapping in the range. */
  munmap(addr: number, len: number): void {
    this.syscalls.munmap++;
    this.removeRange(addr, addr + pageAlignUp(len));
  }

  /**
   * mremap(addr, oldLen, newLen, MREMAP_MAYMOVE) of a whole mapping: grows in place when the
   * addresses after it are free, otherwise moves it. Resident pages travel with the contents.
   * Returns the new address, or -1.
   */
  mremap(addr: number, oldLen: number, newLen: number): number {
    this.syscalls.mremap++;
    newLen = pageAlignUp(newLen);
    oldLen = pageAlignUp(oldLen);
    const m = this.findMapping(addr);
    if (m === null || m.start !== addr || m.end !== addr + oldLen || newLen > this.maxMapping)
      return -1;
    if (newLen <= oldLen) {
      this.removeRange(addr + newLen, addr + oldLen);
      return addr;
    }
    if (this.isFree(m.end, addr + newLen)) {
      m.pages.ensure(newLen / PAGE_SIZE);
      m.end = addr + newLen;
      return addr;
    }
    const start = this.findGap(newLen, m);
    if (start < 0) return -1;
    const pages = m.pages.slice(0, oldLen / PAGE_SIZE);
    pages.ensure(newLen / PAGE_SIZE);
    this.deleteMapping(m);
    this.insertMapping({ start, end: start + newLen, pages });
    this.residentPages += pages.count;
    return start;
  }

  /** mprotect: counted; protection itself is not modelled (the allocator never writes to PROT_NONE). */
  mprotect(_addr: number, _len: number): void {
    this.syscalls.mprotect++;
  }

  /** madvise(addr, len, MADV_DONTNEED): the pages are discarded and read back as zeros. */
  madviseDontneed(addr: number, len: number): void {
    this.syscalls.madvise++;
    this.discard(addr, addr + len);
  }

  /** madvise(addr, len, MADV_HUGEPAGE): counted only (pages are modelled at 4 KiB). */
  madviseHugepage(): void {
    this.syscalls.madvise++;
  }

  getrandom(): void {
    this.syscalls.getrandom++;
  }

  // ---------------------------------------------------------------- touches

  /**
   * A write of at most 8 aligned bytes at `addr`. The allocator makes several per call, nearly all
   * into the break area: that case is a bit test and nothing else.
   */
  touch(addr: number): void {
    // Only the common ways are written here: touch() is inlined into every store the allocator
    // makes, within a budget of code per compiled function, which anything else would spend.
    if (addr < this.brkEnd && addr >= this.brkBase) {
      if (this.brkPages.set(Math.floor((addr - this.brkPageBase) * PAGE_FRACTION)) !== 0)
        this.faulted();
    } else if (addr < this.hitEnd && addr >= this.hitStart) {
      if (this.hitPages.set(Math.floor((addr - this.hitStart) * PAGE_FRACTION)) !== 0)
        this.faulted();
    } else this.touchMapping(addr);
  }

  /** A page written for the first time. */
  private faulted(): void {
    this.residentPages++;
    this.pageFaults++;
  }

  /** touch() outside the break area. */
  private touchMapping(addr: number): void {
    const m = this.findMapping(addr);
    if (m === null)
      throw new Error(`ptsim internal error: write to unmapped address 0x${addr.toString(16)}`);
    const n = m.pages.set(Math.floor((addr - m.start) * PAGE_FRACTION));
    this.residentPages += n;
    this.pageFaults += n;
  }

  /** A write of bytes [addr, addr+len). */
  touchRange(addr: number, len: number): void {
    if (len <= 0) return;
    const end = addr + len;
    // The common ways inline, the rest out of line (as touch()).
    if (addr >= this.brkBase && end <= this.brkEnd)
      this.writePages(this.brkPages, this.brkPageBase, addr, end);
    else if (addr >= this.hitStart && end <= this.hitEnd)
      this.writePages(this.hitPages, this.hitStart, addr, end);
    else this.touchRangeElsewhere(addr, end);
  }

  /** A read of bytes [addr, addr+len): resident afterwards only on a kernel without a zero page. */
  readRange(addr: number, len: number): void {
    if (!this.zeroPage) this.touchRange(addr, len);
  }

  /** touchRange() of bytes [addr, end) neither all in the break area nor in the last mapping hit. */
  private touchRangeElsewhere(addr: number, end: number): void {
    // A range may cross from one region into an adjacent one (heap mappings are contiguous).
    let a = addr;
    while (a < end) {
      if (a >= this.brkBase && a < this.brkEnd) {
        const stop = Math.min(end, this.brkEnd);
        this.writePages(this.brkPages, this.brkPageBase, a, stop);
        a = stop;
        continue;
      }
      const m = this.findMapping(a);
      if (m === null)
        throw new Error(`ptsim internal error: write to unmapped address 0x${a.toString(16)}`);
      const stop = Math.min(end, m.end);
      this.writePages(m.pages, m.start, a, stop);
      a = stop;
    }
  }

  /** The pages of bytes [addr, end) written, in a region whose page 0 starts at `base`. */
  private writePages(pages: PageSet, base: number, addr: number, end: number): void {
    const first = Math.floor((addr - base) * PAGE_FRACTION);
    const last = Math.floor((end - 1 - base) * PAGE_FRACTION);
    const n = first === last ? pages.set(first) : pages.setRange(first, last + 1);
    if (n !== 0) {
      this.residentPages += n;
      this.pageFaults += n;
    }
  }

  // ---------------------------------------------------------------- queries

  /** Resident bytes in [start, end). */
  residentIn(start: number, end: number): number {
    let pages = 0;
    if (start < this.brkEnd && end > this.brkBase) {
      const base = pageAlignDown(this.brkBase);
      const s = Math.max(start, this.brkBase);
      const e = Math.min(end, this.brkEnd);
      pages += this.brkPages.countRange(
        Math.floor((s - base) / PAGE_SIZE),
        Math.ceil((e - base) / PAGE_SIZE),
      );
    }
    for (const m of this.mappings) {
      if (m.end <= start || m.start >= end) continue;
      const s = Math.max(start, m.start);
      const e = Math.min(end, m.end);
      pages += m.pages.countRange(
        Math.floor((s - m.start) / PAGE_SIZE),
        Math.ceil((e - m.start) / PAGE_SIZE),
      );
    }
    return pages * PAGE_SIZE;
  }

  isResident(addr: number): boolean {
    if (addr >= this.brkBase && addr < this.brkEnd) {
      return this.brkPages.has(Math.floor((addr - pageAlignDown(this.brkBase)) / PAGE_SIZE));
    }
    const m = this.findMapping(addr);
    return m !== null && m.pages.has(Math.floor((addr - m.start) / PAGE_SIZE));
  }

  /** Bytes mapped: the break area plus every mapping. */
  mappedBytes(): number {
    let n = pageAlignUp(this.brkEnd) - pageAlignDown(this.brkBase);
    for (const m of this.mappings) n += m.end - m.start;
    return n;
  }

  /** Recount of resident pages from the bitsets, for invariant checks. */
  recountResident(): number {
    let n = this.brkPages.recount();
    for (const m of this.mappings) n += m.pages.recount();
    return n;
  }

  findMapping(addr: number): Mapping | null {
    const hit = this.lastHit;
    if (hit !== null && addr >= hit.start && addr < hit.end) return hit;
    const k = Math.floor(addr * SLOT_FRACTION) & (SLOTS - 1);
    if (addr >= this.slotStart[k]! && addr < this.slotEnd[k]!) {
      const m = this.slotMapping[k]!;
      this.lastHit = m;
      this.hitStart = m.start;
      this.hitEnd = m.end;
      this.hitPages = m.pages;
      return m;
    }
    const ms = this.mappings;
    let lo = 0;
    let hi = ms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const m = ms[mid]!;
      if (addr < m.start) hi = mid - 1;
      else if (addr >= m.end) lo = mid + 1;
      else {
        this.lastHit = m;
        this.hitStart = m.start;
        this.hitEnd = m.end;
        this.hitPages = m.pages;
        this.slotStart[k] = m.start;
        this.slotEnd[k] = m.end;
        this.slotMapping[k] = m;
        return m;
      }
    }
    return null;
  }

  // ---------------------------------------------------------------- internals

  private isFree(start: number, end: number): boolean {
    if (start < pageAlignUp(this.brkEnd) && end > this.brkBase) return false;
    for (const m of this.mappings) if (m.start < end && m.end > start) return false;
    return end <= this.mmapBase;
  }

  /** The highest gap below the mmap base that holds `len` bytes (Linux's top-down search). */
  private findGap(len: number, ignore: Mapping | null = null): number {
    let ceiling = this.mmapBase;
    const floor = pageAlignUp(this.brkEnd) + 0x40000000; // keep room for the heap to grow
    for (let i = this.mappings.length - 1; i >= 0; i--) {
      const m = this.mappings[i]!;
      if (m === ignore) continue;
      if (m.start >= ceiling) {
        ceiling = Math.min(ceiling, m.start);
        continue;
      }
      if (ceiling - m.end >= len) return ceiling - len;
      ceiling = m.start;
    }
    return ceiling - len >= floor ? ceiling - len : -1;
  }

  private insertMapping(m: Mapping): void {
    const ms = this.mappings;
    let i = ms.length;
    while (i > 0 && ms[i - 1]!.start > m.start) i--;
    ms.splice(i, 0, m);
  }

  private deleteMapping(m: Mapping): void {
    const i = this.mappings.indexOf(m);
    if (i >= 0) this.mappings.splice(i, 1);
    this.residentPages -= m.pages.count;
    this.slotEnd.fill(0);
    this.slotMapping.fill(null);
    if (this.lastHit === m) {
      this.lastHit = null;
      this.hitStart = this.hitEnd = 0;
      this.hitPages = NO_PAGES;
    }
  }

  /** Unmaps [start, end), splitting mappings that extend beyond it. */
  private removeRange(start: number, end: number): void {
    const hits = this.mappings.filter((m) => m.start < end && m.end > start);
    for (const m of hits) {
      this.deleteMapping(m);
      if (m.start < start) {
        const pages = m.pages.slice(0, (start - m.start) / PAGE_SIZE);
        this.insertMapping({ start: m.start, end: start, pages });
        this.residentPages += pages.count;
      }
      if (m.end > end) {
        const pages = m.pages.slice((end - m.start) / PAGE_SIZE, (m.end - m.start) / PAGE_SIZE);
        this.insertMapping({ start: end, end: m.end, pages });
        this.residentPages += pages.count;
      }
    }
  }

  /** Drops residency of whole pages in [start, end) wherever they are. */
  private discard(start: number, end: number): void {
    if (start < this.brkEnd && end > this.brkBase) {
      const base = pageAlignDown(this.brkBase);
      const s = Math.max(start, this.brkBase);
      const e = Math.min(end, pageAlignUp(this.brkEnd));
      this.residentPages -= this.brkPages.clearRange(
        Math.floor((s - base) / PAGE_SIZE),
        Math.ceil((e - base) / PAGE_SIZE),
      );
    }
    for (const m of this.mappings) {
      if (m.end <= start || m.start >= end) continue;
      const s = Math.max(start, m.start);
      const e = Math.min(end, m.end);
      this.residentPages -= m.pages.clearRange(
        Math.floor((s - m.start) / PAGE_SIZE),
        Math.ceil((e - m.start) / PAGE_SIZE),
      );
    }
  }
}

function pageAlignUp(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

function pageAlignDown(n: number): number {
  return Math.floor(n / PAGE_SIZE) * PAGE_SIZE;
}
