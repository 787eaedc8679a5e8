/**
 * The heap map of a report: every region the allocator owns at one moment (the main arena's brk
 * heap, each heap of the other arenas, the chunks mmapped on their own), with each chunk's state
 * and the pages that are resident, as plain data for the page's canvas.
 *
 * A region of many chunks is sent as buckets of equal address span, each with its bytes per state,
 * rather than chunk by chunk: a heap of a million chunks still draws on a thousand pixels, and the
 * file stays small. Chunks mmapped on their own lie far apart in the address space; they are laid
 * end to end in one region, each keeping its address for the tooltip.
 */

import { St } from '../core/chunks.js';
import { IS_MMAPPED } from '../core/constants.js';
import type { Process } from '../core/state.js';
import { findPins, type Pin } from '../analysis/pins.js';

/** The states a chunk is drawn in; a state is its index here. */
const MAP_STATES = ['live', 'tcache', 'fastbin', 'bin', 'top', 'metadata'] as const;
const LIVE = 0;
const METADATA = 5;

/** Regions with more chunks than this are sent as buckets. */
const MAX_EXACT_CHUNKS = 20_000;
/** Buckets of an aggregated region. */
const MAP_BUCKETS = 4096;
/** Residency is sent for at most this many equal spans per region. */
const RESIDENT_SPANS = 2048;

interface MapChunks {
  /** Offsets from the region's start (laid end to end for the mmapped region). */
  off: number[];
  size: number[];
  state: number[];
  /** Bytes the program asked for (live chunks; 0 otherwise). */
  req: number[];
  /** The event that handed the chunk out (-1: glibc's own or never handed out). */
  born: number[];
  /** Addresses, for the mmapped region only (its offsets are not addresses). */
  addr?: number[];
}

interface MapBuckets {
  /** Bytes of address space per bucket. */
  span: number;
  /** bytes[state][bucket]: bytes of chunks in that state inside the bucket. */
  bytes: number[][];
  /** Chunks that start in each bucket. */
  count: number[];
}

interface MapRegion {
  name: string;
  /** 0 main, k the k-th arena; -1 the chunks mmapped on their own. */
  arena: number;
  /** The heap's number in its arena's chain (0 for the brk heap and the mmapped region). */
  heap: number;
  /** Address of the region's first byte (of its first chunk for the mmapped region). */
  start: number;
  size: number;
  /** True for the mmapped region: chunks laid end to end, not at their addresses. */
  packed: boolean;
  chunkCount: number;
  chunks?: MapChunks;
  buckets?: MapBuckets;
  /** Resident share (0 to 1, two decimals) of each span of `residentSpan` bytes from the region's start. */
  resident: number[];
  residentSpan: number;
  residentBytes: number;
}

interface MapPin {
  region: number;
  /** Offset of the pinning chunk in its region. */
  off: number;
  addr: number;
  size: number;
  kind: Pin['kind'];
  requested: number;
  bornEvent: number;
  heldBytes: number;
  freeBelowBytes: number;
  /** Filled in from the explanation: the block's token and the trace line that allocated it. */
  token?: string;
  line?: number;
}

export interface HeapMap {
  event: number;
  states: readonly string[];
  regions: MapRegion[];
  pins: MapPin[];
}

function stateOf(s: Process, h: number, own: Set<number>): number {
  const ck = s.ck;
  switch (ck.state[h]) {
    case St.TCACHE:
      return 1;
    case St.FAST:
      return 2;
    case St.BINNED:
      return 3;
    case St.TOP:
      return 4;
    default:
      // glibc's own in-use chunks: the tcache structures and the fenceposts.
      return own.has(h) || ck.born[h]! < 0 || ck.size[h]! <= 16 ? METADATA : LIVE;
  }
}

/** Whole pages per span, so that each page is counted in one span only. */
function residentSpan(size: number): number {
  return Math.max(1, Math.ceil(size / 4096 / RESIDENT_SPANS)) * 4096;
}

function residency(s: Process, start: number, size: number, span: number): number[] {
  const out: number[] = [];
  for (let a = 0; a < size; a += span) {
    const b = Math.min(size, a + span);
    const pages = Math.ceil((b - a) / 4096);
    out.push(Math.round((100 * s.kernel.residentIn(start + a, start + b)) / 4096 / pages) / 100);
  }
  return out;
}

interface Draft {
  region: MapRegion;
  handles: number[];
}

/** The map of the process as it is now (after event `event`). */
export function heapMap(s: Process, event: number): HeapMap {
  const ck = s.ck;
  const own = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) own.add(th.tcache.chunk);
  if (s.thread.tcache !== null) own.add(s.thread.tcache.chunk);

  const drafts: Draft[] = [];
  const region = (
    name: string,
    arena: number,
    heap: number,
    start: number,
    end: number,
    packed = false,
  ): Draft => {
    const d: Draft = {
      region: {
        name,
        arena,
        heap,
        start,
        size: end - start,
        packed,
        chunkCount: 0,
        resident: [],
        residentSpan: 4096,
        residentBytes: 0,
      },
      handles: [],
    };
    drafts.push(d);
    return d;
  };
  if (!s.main.topIsInitial) region('main arena: brk heap', 0, 0, s.kernel.brkBase, s.kernel.brkEnd);
  for (const av of s.arenas) {
    if (av === s.main) continue;
    const heaps = [];
    for (let hp = av.heap; hp !== null; hp = hp.prev) heaps.push(hp);
    for (const hp of heaps.reverse())
      region(
        `arena ${av.index}: heap ${hp.number}`,
        av.index,
        hp.number,
        hp.start,
        hp.start + hp.size,
      );
  }
  const mmapped = region('chunks mmapped on their own (laid end to end)', -1, 0, 0, 0, true);
  let other: Draft | null = null;
  const bounded = drafts
    .filter((d) => !d.region.packed)
    .sort((a, b) => a.region.start - b.region.start);

  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h];
    if (st === St.DEAD || st === St.BINHDR) continue;
    if ((ck.flags[h]! & IS_MMAPPED) !== 0) {
      mmapped.handles.push(h);
      continue;
    }
    const a = ck.addr[h]!;
    // Regions are few and sorted: a binary search finds the one holding the chunk.
    let lo = 0;
    let hi = bounded.length - 1;
    let found: Draft | null = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = bounded[mid]!.region;
      if (a < r.start) hi = mid - 1;
      else if (a >= r.start + r.size) lo = mid + 1;
      else {
        found = bounded[mid]!;
        break;
      }
    }
    if (found === null) {
      // Main-arena memory outside the break (the mmap fallback after brk failed): one more region.
      other ??= region(
        'main arena: memory outside the brk heap (laid end to end)',
        0,
        1,
        0,
        0,
        true,
      );
      found = other;
    }
    found.handles.push(h);
  }

  for (const d of drafts) {
    const r = d.region;
    const hs = d.handles.sort((x, y) => ck.addr[x]! - ck.addr[y]!);
    r.chunkCount = hs.length;
    // Offsets: from the region's start, or cumulative for a packed region.
    const offs: number[] = [];
    const sizes: number[] = [];
    let cursor = 0;
    for (const h of hs) {
      const size = Math.max(ck.size[h]!, 16);
      if (r.packed) {
        offs.push(cursor);
        cursor += size;
      } else offs.push(ck.addr[h]! - r.start);
      sizes.push(size);
    }
    if (r.packed) {
      r.start = hs.length > 0 ? ck.addr[hs[0]!]! : 0;
      r.size = cursor;
      let res = 0;
      for (const h of hs)
        res += s.kernel.residentIn(ck.addr[h]!, ck.addr[h]! + Math.max(ck.size[h]!, 16));
      r.residentBytes = res;
    } else {
      r.residentSpan = residentSpan(r.size);
      r.resident = residency(s, r.start, r.size, r.residentSpan);
      r.residentBytes = s.kernel.residentIn(r.start, r.start + r.size);
    }
    if (hs.length <= MAX_EXACT_CHUNKS) {
      const c: MapChunks = { off: offs, size: sizes, state: [], req: [], born: [] };
      for (const h of hs) {
        const st = stateOf(s, h, own);
        c.state.push(st);
        c.req.push(st === LIVE ? ck.req[h]! : 0);
        c.born.push(st === LIVE || st === 1 || st === 2 ? ck.born[h]! : -1);
      }
      if (r.packed) c.addr = hs.map((h) => ck.addr[h]!);
      r.chunks = c;
    } else {
      const span = Math.max(16, Math.ceil(r.size / MAP_BUCKETS / 16) * 16);
      const n = Math.ceil(r.size / span);
      const bytes = MAP_STATES.map(() => new Array<number>(n).fill(0));
      const count = new Array<number>(n).fill(0);
      hs.forEach((h, i) => {
        const st = stateOf(s, h, own);
        const a = offs[i]!;
        const b = Math.min(a + sizes[i]!, r.size);
        count[Math.min(n - 1, Math.floor(a / span))]!++;
        // A chunk spreads its bytes over every bucket it covers.
        for (let k = Math.floor(a / span); k < n && k * span < b; k++) {
          bytes[st]![k]! += Math.min(b, (k + 1) * span) - Math.max(a, k * span);
        }
      });
      r.buckets = { span, bytes, count };
    }
  }

  const regions = drafts
    .filter((d) => d.region.chunkCount > 0 || !d.region.packed)
    .map((d) => d.region);
  const pins: MapPin[] = [];
  for (const p of findPins(s)) {
    const i = regions.findIndex((r) => !r.packed && p.addr >= r.start && p.addr < r.start + r.size);
    if (i < 0) continue;
    pins.push({
      region: i,
      off: p.addr - regions[i]!.start,
      addr: p.addr,
      size: p.size,
      kind: p.kind,
      requested: p.requested,
      bornEvent: p.bornEvent,
      heldBytes: p.heldBytes,
      freeBelowBytes: p.freeBelowBytes,
    });
  }
  return { event, states: MAP_STATES, regions, pins };
}
