/**
 * A read-only picture of the allocator at one moment, in the vocabulary of pwndbg and GEF: every
 * chunk with its state, the tcache, fastbins and regular bins of each arena, the arenas themselves
 * and a simulated /proc/self/maps with the resident bytes of each mapping (as smaps gives them).
 * `ptsim show` prints it; `ptsim step` uses it between steps. Nothing here changes the model.
 *
 * Where a chunk is, is said as the fidelity log says it (docs/fidelity-log.md): `arena` (0 main,
 * k the k-th arena created after it, -1 a chunk mmapped on its own), `heap` (the heap of that
 * arena) and `off`, the bytes from the start of that heap (main arena: the initial break; mmapped
 * chunk: its mapping) to the chunk's user pointer. For a block the program holds, `off` and
 * `usable` are what the fidelity log gives for the call that returned it.
 */

import { NIL, St } from '../core/chunks.js';
import {
  HEAP_MAX_SIZE,
  IS_MMAPPED,
  NBINS,
  NFASTBINS,
  NON_MAIN_ARENA,
  PREV_INUSE,
  UNSORTED_BIN,
} from '../core/constants.js';
import { mallocUsableSize } from '../core/api.js';
import { heapKey } from '../core/heap.js';
import type { Arena, HeapInfo, Process } from '../core/state.js';
import { PAGE_SIZE } from '../kernel/kernel.js';
import type { Replayer } from '../replay/replay.js';
import { Op, type TraceEvent } from '../trace/types.js';

/** What holds a chunk. */
export type ChunkState =
  | 'live'
  | 'tcache'
  | 'fastbin'
  | 'unsorted'
  | 'small'
  | 'large'
  | 'top'
  | 'tcache-struct'
  | 'fencepost';

export interface ChunkView {
  state: ChunkState;
  arena: number;
  heap: number;
  /** Bytes from the start of the heap (or mapping) to the chunk's user pointer (chunk + 16). */
  off: number;
  /** The chunk's simulated address (real addresses differ; offsets match). */
  addr: number;
  /** Chunk size, without the flag bits. */
  size: number;
  /** The flag bits of the size word: PREV_INUSE, IS_MMAPPED, NON_MAIN_ARENA. */
  flags: string[];
  /** Chunks mmapped on their own (arena -1). */
  mmapped?: true;
  /** Live blocks: malloc_usable_size, the bytes asked for, the trace's token (null when the recording has none), the event that returned it. */
  usable?: number;
  requested?: number;
  token?: string | null;
  event?: number;
  /** Free chunks: the bin that holds them (tcache index, fastbin index, or regular bin index). */
  bin?: number;
}

/** One chunk in a list, as a list shows it. */
export interface ListEntry {
  heap: number;
  off: number;
  addr: number;
  size: number;
}

export interface BinView {
  /** The bin index (fastbin index for fastbins, tcache index for the tcache). */
  index: number;
  /** The chunk size the bin holds (the smallest, for a large bin). */
  size: number;
  chunks: ListEntry[];
}

export interface ArenaView {
  arena: number;
  /** Threads attached to it. */
  threads: number;
  top: ListEntry | null;
  lastRemainder: ListEntry | null;
  systemMem: number;
  heaps: Array<{ heap: number; start: number; size: number; mprotectSize: number }>;
  fastbins: BinView[];
  unsorted: ListEntry[];
  smallbins: BinView[];
  largebins: BinView[];
}

export interface TcacheView {
  tid: number;
  /** The arena the thread is attached to (-1 none yet). */
  arena: number;
  bins: BinView[];
}

/** One line of the simulated /proc/self/maps, with smaps's Size and Rss. */
export interface MappingView {
  start: number;
  end: number;
  perms: string;
  name: string;
  size: number;
  rss: number;
}

export interface HeapView {
  trace: string;
  /** Index of the last event replayed (-1 before the first). */
  event: number;
  /** Its trace line (0 before the first event). */
  line: number;
  brk: number;
  rss: number;
  mmapThreshold: number;
  trimThreshold: number;
  /** Whether the release modelled has fastbins (glibc 2.43 freed small chunks as it frees others). */
  fastbins: boolean;
  chunks: ChunkView[];
  arenas: ArenaView[];
  tcache: TcacheView[];
  maps: MappingView[];
}

const RETURNS_BLOCK = new Set<number>([Op.malloc, Op.calloc, Op.memalign, Op.valloc, Op.pvalloc]);

/**
 * The trace's token of each live block, kept from the events as they complete: the model knows a
 * block by the event that returned it (ChunkStore.born), the trace by its token.
 */
/** The token of the live block each event returned, as the trace names it. */
export interface TokenNames {
  /** The token of the block returned by event i, or null. */
  tokenOf(i: number): string | null;
}

export class TokenBook implements TokenNames {
  private byEvent = new Map<number, string>();
  private byToken = new Map<string, number>();

  /** Takes note of a completed event (call it from the replay's observe callback). */
  see(ev: TraceEvent): void {
    if (ev.op === Op.free || ev.op === Op.realloc) {
      const t = ev.in;
      if (t !== '') {
        const i = this.byToken.get(t);
        // realloc to a size that fails in the model keeps OLD live: the replay says so in a
        // warning, and the book keeps OLD under the new event, as the replay does.
        if (i !== undefined) {
          this.byToken.delete(t);
          this.byEvent.delete(i);
        }
      }
    }
    if (RETURNS_BLOCK.has(ev.op) || ev.op === Op.realloc) {
      const t = ev.out;
      if (t !== '') {
        this.byEvent.set(ev.index, t);
        this.byToken.set(t, ev.index);
      }
    }
  }

  /** A copy (a checkpoint's): two map copies, much faster than a copy entry by entry. */
  clone(): TokenBook {
    const c = new TokenBook();
    c.byEvent = new Map(this.byEvent);
    c.byToken = new Map(this.byToken);
    return c;
  }

  /** The token of the block returned by event i, or null. */
  tokenOf(i: number): string | null {
    return this.byEvent.get(i) ?? null;
  }

  /** The event that returned the live block named `token`, or -1. */
  eventOf(token: string): number {
    return this.byToken.get(token) ?? -1;
  }
}

/** The heap of arena `av` that holds address a (the main arena's brk heap: null). */
function heapAt(s: Process, a: number): HeapInfo | null {
  return s.heaps.get(heapKey(a)) ?? null;
}

/** Where chunk h is: arena, heap, off, as the fidelity log says it. */
export function chunkPlace(s: Process, h: number): { arena: number; heap: number; off: number } {
  const ck = s.ck;
  const addr = ck.addr[h]!;
  if ((ck.flags[h]! & IS_MMAPPED) !== 0) return { arena: -1, heap: 0, off: ck.prevSize[h]! + 16 };
  const hp = heapAt(s, addr);
  if (hp !== null && addr >= hp.start && addr < hp.start + HEAP_MAX_SIZE)
    return { arena: hp.arena.index, heap: hp.number, off: addr + 16 - hp.start };
  return { arena: 0, heap: 0, off: addr + 16 - s.kernel.brkBase };
}

function entry(s: Process, h: number): ListEntry {
  const p = chunkPlace(s, h);
  return { heap: p.heap, off: p.off, addr: s.ck.addr[h]!, size: s.ck.size[h]! };
}

function flagNames(f: number): string[] {
  const out: string[] = [];
  if (f & PREV_INUSE) out.push('PREV_INUSE');
  if (f & IS_MMAPPED) out.push('IS_MMAPPED');
  if (f & NON_MAIN_ARENA) out.push('NON_MAIN_ARENA');
  return out;
}

/** The handles of the threads' tcache structs. */
function tcacheStructs(s: Process): Set<number> {
  const set = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) set.add(th.tcache.chunk);
  if (s.thread.tcache !== null) set.add(s.thread.tcache.chunk);
  return set;
}

/** The state of chunk h (not a bin header, not dead). */
function stateOf(s: Process, h: number, structs: Set<number>, tops: Set<number>): ChunkState {
  const ck = s.ck;
  const st = ck.state[h]!;
  if (st === St.TCACHE) return 'tcache';
  if (st === St.FAST) return 'fastbin';
  if (st === St.BINNED)
    return ck.bin[h] === UNSORTED_BIN ? 'unsorted' : ck.bin[h]! < 64 ? 'small' : 'large';
  if (st === St.TOP) return 'top';
  if (tops.has(h)) return 'top';
  if (structs.has(h)) return 'tcache-struct';
  return ck.born[h]! >= 0 ? 'live' : 'fencepost';
}

/** Every chunk of the process, by arena (main first, mmapped chunks last), heap and address. */
export function chunksOf(s: Process, book: TokenNames | null): ChunkView[] {
  const ck = s.ck;
  const structs = tcacheStructs(s);
  const tops = new Set<number>();
  for (const a of s.arenas) if (!a.topIsInitial) tops.add(a.top);
  const out: ChunkView[] = [];
  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    if (st === St.DEAD || st === St.BINHDR) continue;
    const place = chunkPlace(s, h);
    const state = stateOf(s, h, structs, tops);
    const c: ChunkView = {
      state,
      arena: place.arena,
      heap: place.heap,
      off: place.off,
      addr: ck.addr[h]!,
      size: ck.size[h]!,
      flags: flagNames(ck.flags[h]!),
    };
    if (place.arena < 0) c.mmapped = true;
    if (state === 'live') {
      c.usable = mallocUsableSize(s, h);
      c.requested = ck.req[h]!;
      c.event = ck.born[h]!;
      c.token = book === null ? null : book.tokenOf(ck.born[h]!);
    } else if (state === 'tcache' || state === 'fastbin' || st === St.BINNED) {
      c.bin = ck.bin[h]!;
    }
    out.push(c);
  }
  const rank = (a: number): number => (a < 0 ? Number.MAX_SAFE_INTEGER : a);
  out.sort((x, y) => rank(x.arena) - rank(y.arena) || x.heap - y.heap || x.addr - y.addr);
  return out;
}

/** The chunks of a list through fd, from its head (at most `limit`, against a cycle). */
function listFrom(s: Process, head: number, stop: number, limit = 100000): ListEntry[] {
  const out: ListEntry[] = [];
  for (let p = head; p !== NIL && p !== stop && out.length < limit; p = s.ck.fd[p]!)
    out.push(entry(s, p));
  return out;
}

function arenaView(s: Process, av: Arena): ArenaView {
  const ck = s.ck;
  const fastbins: BinView[] = [];
  for (let i = 0; i < NFASTBINS; i++) {
    const chunks = listFrom(s, av.fastbins[i]!, NIL);
    if (chunks.length > 0) fastbins.push({ index: i, size: (i + 2) * 16, chunks });
  }
  const smallbins: BinView[] = [];
  const largebins: BinView[] = [];
  for (let i = 2; i < NBINS; i++) {
    const b = av.bin(i);
    if (ck.fd[b] === b) continue;
    const chunks = listFrom(s, ck.fd[b]!, b);
    (i < 64 ? smallbins : largebins).push({
      index: i,
      size: chunks.reduce((m, c) => Math.min(m, c.size), Infinity),
      chunks,
    });
  }
  const u = av.bin(UNSORTED_BIN);
  const heaps: ArenaView['heaps'] = [];
  if (av.index === 0) {
    heaps.push({
      heap: 0,
      start: s.kernel.brkBase,
      size: s.kernel.brkEnd - s.kernel.brkBase,
      mprotectSize: s.kernel.brkEnd - s.kernel.brkBase,
    });
  } else {
    const chain: HeapInfo[] = [];
    for (let h = av.heap; h !== null; h = h.prev) chain.push(h);
    for (const h of chain.reverse())
      heaps.push({ heap: h.number, start: h.start, size: h.size, mprotectSize: h.mprotectSize });
  }
  let lastRemainder: ListEntry | null = null;
  if (av.lastRemainder !== NIL) {
    // glibc keeps it as an address; the chunk there, if one still starts there.
    for (let h = 0; h < ck.highWater; h++) {
      const st = ck.state[h]!;
      if (st !== St.DEAD && st !== St.BINHDR && ck.addr[h] === av.lastRemainder) {
        lastRemainder = entry(s, h);
        break;
      }
    }
  }
  return {
    arena: av.index,
    threads: av.attachedThreads,
    top: av.topIsInitial ? null : entry(s, av.top),
    lastRemainder,
    systemMem: av.systemMem,
    heaps,
    fastbins,
    unsorted: listFrom(s, ck.fd[u]!, u),
    smallbins,
    largebins,
  };
}

function tcacheViews(s: Process): TcacheView[] {
  const out: TcacheView[] = [];
  const threads = [...s.threads.values()];
  if (threads.length === 0) threads.push(s.thread);
  for (const th of threads) {
    const tc = th.tcache;
    if (tc === null) continue;
    const bins: BinView[] = [];
    for (let i = 0; i < tc.entries.length; i++) {
      if (tc.counts[i] === 0) continue;
      // A large bin (glibc 2.42 on) holds a range of sizes: its smallest chunk, at its head.
      const size = i < 64 ? (i + 2) * 16 : s.ck.size[tc.entries[i]!]!;
      bins.push({ index: i, size, chunks: listFrom(s, tc.entries[i]!, NIL) });
    }
    out.push({ tid: th.tid, arena: th.arena === null ? -1 : th.arena.index, bins });
  }
  return out.sort((a, b) => a.tid - b.tid);
}

/** The simulated /proc/self/maps of the allocator's memory, with each mapping's resident bytes. */
function mapsOf(s: Process): MappingView[] {
  const k = s.kernel;
  const out: MappingView[] = [];
  const up = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
  const down = (n: number): number => Math.floor(n / PAGE_SIZE) * PAGE_SIZE;
  if (k.brkEnd > k.brkBase) {
    const start = down(k.brkBase);
    const end = up(k.brkEnd);
    out.push({
      start,
      end,
      perms: 'rw-p',
      name: '[heap]',
      size: end - start,
      rss: k.residentIn(start, end),
    });
  }
  const heapStarts = new Map<number, HeapInfo>();
  for (const h of s.heaps.values()) heapStarts.set(h.start, h);
  const push = (start: number, end: number, perms: string, name: string): void => {
    if (end > start)
      out.push({ start, end, perms, name, size: end - start, rss: k.residentIn(start, end) });
  };
  for (const m of k.mappings) {
    const h = heapStarts.get(m.start);
    if (h !== undefined) {
      // A thread heap: the part made accessible with mprotect, then the rest of the reservation.
      const rw = Math.min(m.end, m.start + h.mprotectSize);
      push(m.start, rw, 'rw-p', `arena ${h.arena.index} heap ${h.number}`);
      push(rw, m.end, '---p', `arena ${h.arena.index} heap ${h.number} (reserved)`);
    } else {
      push(m.start, m.end, 'rw-p', '');
    }
  }
  // mmapped chunks get a name of their own.
  for (let h = 0; h < s.ck.highWater; h++) {
    const st = s.ck.state[h]!;
    if (st === St.DEAD || st === St.BINHDR || (s.ck.flags[h]! & IS_MMAPPED) === 0) continue;
    const start = s.ck.addr[h]! - s.ck.prevSize[h]!;
    const m = out.find((x) => x.start === start && x.name === '');
    if (m !== undefined) m.name = 'mmapped chunk';
  }
  for (const m of out) if (m.name === '') m.name = 'main arena (mmapped, brk failed)';
  return out.sort((a, b) => a.start - b.start);
}

/** The picture of the process a replayer holds, after event `event` (line `line`). */
export function heapView(
  r: Replayer,
  book: TokenNames | null,
  event: number,
  line: number,
): HeapView {
  const s = r.process;
  const k = r.kernel;
  return {
    trace: r.file,
    event,
    line,
    brk: k.brkEnd - k.brkBase,
    rss: k.residentPages * PAGE_SIZE,
    mmapThreshold: s.mp.mmapThreshold,
    trimThreshold: s.mp.trimThreshold,
    fastbins: s.profile.fastbins,
    chunks: chunksOf(s, book),
    arenas: s.arenas.map((a) => arenaView(s, a)),
    tcache: tcacheViews(s),
    maps: mapsOf(s),
  };
}
