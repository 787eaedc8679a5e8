/**
 * Allocation sites: which code holds the memory. Given the state of a replay at a moment and the
 * trace's site table (trace/site-table.ts), attributes every block the program holds (and, as
 * causes of their own, the freed blocks glibc keeps unmerged in the tcache and the fastbins) to
 * the code that allocated it, in bytes and resident pages, grouped by site (function and line),
 * by function or by file.
 *
 * A block's site is the first frame of its call stack that is not an allocator wrapper: a block
 * allocated by `xmalloc` called from `parse_line` belongs to `parse_line`. The frames are read
 * innermost first, inlined functions before the function that holds them, so a wrapper inlined
 * into its caller is skipped too. Which functions are wrappers is configurable (DEFAULT_WRAPPERS).
 *
 * Bytes are the resident bytes of each chunk (its header included): whole resident pages inside
 * it, and the resident parts of the pages at its ends. Pages are the resident pages a group's
 * chunks touch, each counted once per group (a page shared by two groups counts in both).
 */

import { NIL, St } from '../core/chunks.js';
import type { Process } from '../core/state.js';
import type { Kernel } from '../kernel/kernel.js';
import { openTrace } from '../import/index.js';
import { symbolize } from '../import/symbolize.js';
import { replayFile, type ReplaySettings } from '../replay/run-file.js';
import { SiteTable, type StackFrame } from '../trace/site-table.js';
import type { SymFrame } from '../trace/types.js';

/**
 * Functions skipped to their caller by default: the C++ allocation functions and the allocation
 * functions of common libraries, which say nothing about who wanted the memory. `*` matches any
 * run of characters; a pattern matches a function's name without its parameter list.
 */
export const DEFAULT_WRAPPERS: readonly string[] = [
  'operator new',
  'operator new[]',
  'std::__new_allocator<*>::allocate',
  'std::allocator<*>::allocate',
  'std::allocator_traits<*>::allocate',
  '__gnu_cxx::new_allocator<*>::allocate',
  'std::_Vector_base<*>::_M_allocate',
  'xmalloc',
  'xcalloc',
  'xrealloc',
  'xstrdup',
  'xzalloc',
  'xmemdup',
  'strdup',
  'strndup',
  '__strdup',
  '__strndup',
  'g_malloc',
  'g_malloc0',
  'g_malloc_n',
  'g_malloc0_n',
  'g_realloc',
  'g_try_malloc',
  'g_try_malloc0',
  'g_strdup',
  'g_slice_alloc',
  'g_slice_alloc0',
  'PyMem_Malloc',
  'PyMem_Calloc',
  'PyMem_Realloc',
  'PyMem_RawMalloc',
  'PyMem_RawCalloc',
  'PyMem_RawRealloc',
  'PyObject_Malloc',
  'PyObject_Calloc',
  'PyObject_Realloc',
  '_PyMem_RawMalloc',
  '_PyObject_Malloc',
];

/** What the chunks of a group are: blocks the program holds, or freed chunks glibc keeps. */
export type SiteCause = 'live' | 'tcache' | 'fastbin';

export type SiteGrouping = 'site' | 'function' | 'file';

export interface SiteOptions {
  /** How to group (default `site`: function, file and line). */
  by?: SiteGrouping;
  /** Functions skipped to their caller (patterns as DEFAULT_WRAPPERS; default DEFAULT_WRAPPERS). */
  wrappers?: readonly string[];
  /** Which chunks to count (default all three). */
  causes?: readonly SiteCause[];
  /** Frames of the call chain kept per group, from the site outwards (default 8). */
  chainDepth?: number;
  /** Counts only the chunks (by handle) this accepts (default: all). */
  only?: (h: number) => boolean;
}

export interface SiteTotals {
  bytes: number;
  pages: number;
  blocks: number;
  /** Bytes the program asked for (live blocks only). */
  requested: number;
}

/** One group of chunks: a site, a function or a file. */
export interface SiteGroup extends SiteTotals {
  /** The group's name: `function (file:line)`, the function, or the file. */
  key: string;
  /** The site's frame: for `function` and `file`, that of the group's largest site. */
  fn: string;
  file: string;
  line: number;
  /** The call chain from the site outwards (`function (file:line)`), of the group's largest site. */
  chain: string[];
  byCause: Record<SiteCause, SiteTotals>;
}

export interface SiteAttribution {
  /** Groups, the most resident bytes first. */
  groups: SiteGroup[];
  /** Chunks counted that have no call stack (allocated by an event without one). */
  unknown: SiteTotals;
}

const PAGE = 4096;
const CAUSES: readonly SiteCause[] = ['live', 'tcache', 'fastbin'];

/** A wrapper pattern as a test of a function's name. */
function matcher(patterns: readonly string[]): (fn: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) {
    if (!p.includes('*')) exact.add(p);
    else
      globs.push(
        new RegExp(
          `^${p
            .split('*')
            .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        ),
      );
  }
  return (fn) => {
    const name = bareName(fn);
    return exact.has(name) || globs.some((g) => g.test(name));
  };
}

/**
 * A demangled function's name without its parameter list and qualifiers:
 * `operator new(unsigned long)` is `operator new`, `ns::f<int>(int) const` is `ns::f<int>`.
 */
export function bareName(fn: string): string {
  let depth = 0;
  for (let i = 0; i < fn.length; i++) {
    const c = fn[i];
    if (c === '<') depth++;
    else if (c === '>') depth--;
    else if (c === '(' && depth === 0) {
      // `operator()(...)`: the first pair of parentheses is the name's own.
      if (fn.endsWith('operator', i) && fn[i + 1] === ')') {
        i++;
        continue;
      }
      if (i > 0) return fn.slice(0, i);
    }
  }
  return fn;
}

/** One entry of a call chain: a function at a source position (or only an address). */
interface ChainEntry {
  fn: string;
  file: string;
  line: number;
}

function label(e: ChainEntry): string {
  return e.file === '??' ? e.fn : `${e.fn} (${e.file}:${e.line})`;
}

/** The entries of a stack, innermost first: each frame's inlined functions, then its own. */
function entries(frames: StackFrame[]): ChainEntry[] {
  const out: ChainEntry[] = [];
  for (const f of frames) {
    const syms: SymFrame[] = f.symbols;
    if (syms.length === 0 || syms.every((s) => s.fn === '??' && s.file === '??')) {
      const where = f.module !== undefined ? `${f.module}` : '??';
      out.push({ fn: `0x${f.addr.toString(16)}`, file: where === '??' ? '??' : where, line: 0 });
      continue;
    }
    // GCC's clones (`f(int) [clone .constprop.0]`) are the function they were cloned from.
    for (const s of syms)
      out.push({ fn: s.fn.replace(/( \[clone [^\]]*\])+$/, ''), file: s.file, line: s.line });
  }
  return out;
}

/** Where a stack's blocks belong: the site entry, and the chain from it outwards. */
interface Site {
  site: ChainEntry;
  chain: ChainEntry[];
}

/** The site of a stack: its first entry that is not a wrapper (the last entry when all are). */
function siteOf(frames: StackFrame[], isWrapper: (fn: string) => boolean): Site | null {
  const all = entries(frames);
  if (all.length === 0) return null;
  let i = 0;
  while (i < all.length - 1 && isWrapper(all[i]!.fn)) i++;
  return { site: all[i]!, chain: all.slice(i) };
}

function emptyTotals(): SiteTotals {
  return { bytes: 0, pages: 0, blocks: 0, requested: 0 };
}

interface Acc {
  group: SiteGroup;
  /** Resident pages at the ends of chunks, counted once each. */
  edgePages: Set<number>;
  /** Per site (for the chain of the largest one). */
  sites: Map<string, { site: Site; bytes: number }>;
}

/** What attributeSites counts of a chunk [a, b): its resident bytes, its own whole resident pages, and the resident pages at its ends (which it may share). */
export function chunkResident(
  k: Kernel,
  a: number,
  b: number,
): { bytes: number; inner: number; edges: number[] } {
  // Resident bytes: whole pages inside the chunk (its own), and the resident parts of the
  // pages at its ends (which it may share).
  const firstFull = Math.ceil(a / PAGE) * PAGE;
  const lastFull = Math.floor(b / PAGE) * PAGE;
  let bytes = 0;
  let inner = 0;
  const edges: number[] = [];
  if (firstFull < lastFull) {
    inner = k.residentIn(firstFull, lastFull) / PAGE;
    bytes += inner * PAGE;
    if (a < firstFull && k.isResident(a)) {
      bytes += firstFull - a;
      edges.push(Math.floor(a / PAGE));
    }
    if (lastFull < b && k.isResident(lastFull)) {
      bytes += b - lastFull;
      edges.push(lastFull / PAGE);
    }
  } else {
    for (let p = Math.floor(a / PAGE); p * PAGE < b; p++) {
      const from = Math.max(a, p * PAGE);
      const to = Math.min(b, (p + 1) * PAGE);
      if (k.isResident(from)) {
        bytes += to - from;
        edges.push(p);
      }
    }
  }
  return { bytes, inner, edges };
}

/**
 * Attributes the chunks of process `s` to their allocation sites. `table` gives each chunk's
 * stack from the event that allocated it (ChunkStore.born).
 */
export function attributeSites(
  s: Process,
  table: SiteTable,
  opts: SiteOptions = {},
): SiteAttribution {
  const by = opts.by ?? 'site';
  const isWrapper = matcher(opts.wrappers ?? DEFAULT_WRAPPERS);
  const wanted = new Set(opts.causes ?? CAUSES);
  const chainDepth = opts.chainDepth ?? 8;
  const ck = s.ck;
  const k = s.kernel;
  const tcacheStructs = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) tcacheStructs.add(th.tcache.chunk);
  if (s.thread.tcache !== null) tcacheStructs.add(s.thread.tcache.chunk);

  const siteCache = new Map<number, Site | null>();
  const groups = new Map<string, Acc>();
  const unknown = emptyTotals();
  const unknownEdges = new Set<number>();

  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    const cause: SiteCause | null =
      st === St.INUSE ? 'live' : st === St.TCACHE ? 'tcache' : st === St.FAST ? 'fastbin' : null;
    if (cause === null || !wanted.has(cause) || (opts.only !== undefined && !opts.only(h)))
      continue;
    const born = ck.born[h]!;
    if (born < 0 || tcacheStructs.has(h)) continue; // glibc's own
    const a = ck.addr[h]!;
    const b = a + ck.size[h]!;
    const stack = table.siteOfEvent(born);
    let site: Site | null = null;
    if (stack >= 0) {
      if (!siteCache.has(stack)) siteCache.set(stack, siteOf(table.frames(stack), isWrapper));
      site = siteCache.get(stack)!;
    }
    const { bytes, inner, edges } = chunkResident(k, a, b);
    const requested = cause === 'live' ? ck.req[h]! : 0;
    if (site === null) {
      unknown.bytes += bytes;
      unknown.blocks++;
      unknown.requested += requested;
      unknown.pages += inner;
      for (const p of edges) unknownEdges.add(p);
      continue;
    }
    const e = site.site;
    const key = by === 'site' ? label(e) : by === 'function' ? e.fn : e.file;
    let acc = groups.get(key);
    if (acc === undefined) {
      const byCause = {} as Record<SiteCause, SiteTotals>;
      for (const c of CAUSES) byCause[c] = emptyTotals();
      acc = {
        group: { key, fn: e.fn, file: e.file, line: e.line, chain: [], byCause, ...emptyTotals() },
        edgePages: new Set(),
        sites: new Map(),
      };
      groups.set(key, acc);
    }
    const g = acc.group;
    g.bytes += bytes;
    g.blocks++;
    g.requested += requested;
    g.pages += inner;
    const c = g.byCause[cause];
    c.bytes += bytes;
    c.blocks++;
    c.requested += requested;
    c.pages += inner + edges.length;
    for (const p of edges) acc.edgePages.add(p);
    const sk = label(e);
    const one = acc.sites.get(sk);
    if (one === undefined) acc.sites.set(sk, { site, bytes });
    else one.bytes += bytes;
  }

  const out: SiteGroup[] = [];
  for (const acc of groups.values()) {
    const g = acc.group;
    g.pages += acc.edgePages.size;
    let best: { site: Site; bytes: number } | undefined;
    for (const one of acc.sites.values())
      if (best === undefined || one.bytes > best.bytes) best = one;
    if (best !== undefined) {
      g.fn = best.site.site.fn;
      g.file = best.site.site.file;
      g.line = best.site.site.line;
      g.chain = best.site.chain.slice(0, chainDepth).map(label);
    }
    out.push(g);
  }
  unknown.pages += unknownEdges.size;
  out.sort((x, y) => y.bytes - x.bytes || y.blocks - x.blocks || (x.key < y.key ? -1 : 1));
  return { groups: out, unknown };
}

/**
 * Looks up the addresses of the table's stacks that the trace left without symbols, in the files
 * it says were mapped there (heaptrack's raw data read as it is, say), with addr2line or
 * llvm-symbolizer, as a conversion would (a converted trace keeps them: this is done each time).
 */
export function symbolizeTable(table: SiteTable): void {
  const bare = table.unsymbolized().filter((a) => table.mappingOf(a) !== undefined);
  if (bare.length === 0) return;
  const { symbols } = symbolize(bare, (a) => table.mappingOf(a));
  for (const [addr, frames] of symbols) table.add({ kind: 'sym', line: 0, addr, frames });
}

/** The site of the chunk with handle `h` (ChunkStore), as attributeSites would name it, or null. */
export function siteOfChunk(
  s: Process,
  table: SiteTable,
  h: number,
  wrappers: readonly string[] = DEFAULT_WRAPPERS,
): { key: string; chain: string[] } | null {
  if (h === NIL) return null;
  const site = siteOfEvent(table, s.ck.born[h]!, wrappers);
  return site === null ? null : { key: site.key, chain: site.chain };
}

/**
 * The site of the block allocated by event `index`, as attributeSites would name it (its key
 * for `by site`, its function and file), or null when the event has no stack.
 */
export function siteOfEvent(
  table: SiteTable,
  index: number,
  wrappers: readonly string[] = DEFAULT_WRAPPERS,
): { key: string; fn: string; file: string; chain: string[] } | null {
  return siteOfStack(table, index < 0 ? -1 : table.siteOfEvent(index), wrappers);
}

/** The site of stack `stack` of the table (-1: none), as siteOfEvent names it, or null. */
export function siteOfStack(
  table: SiteTable,
  stack: number,
  wrappers: readonly string[] = DEFAULT_WRAPPERS,
): { key: string; fn: string; file: string; chain: string[] } | null {
  if (stack < 0) return null;
  const site = siteOf(table.frames(stack), matcher(wrappers));
  if (site === null) return null;
  return {
    key: label(site.site),
    fn: site.site.fn,
    file: site.site.file,
    chain: site.chain.map(label),
  };
}

/** What attributeSitesAt returns: the attribution, and where the replay stood. */
export interface SitesAtResult extends SiteAttribution {
  /** The index of the last event replayed (-1 when none was). */
  event: number;
  /** Whether the trace has call stacks at all. */
  hasStacks: boolean;
}

/**
 * Replays the trace at `path` (any format ptsim reads) up to and including event `at` (default:
 * to its end) with the settings given, and attributes the chunks at that moment to their sites.
 * A recording's symbols stand at its end: a replay stopped before it reads the rest of the file
 * for them. A mistake in the trace is thrown (a TraceSyntaxError or ReplayError, with file and
 * line).
 */
export async function attributeSitesAt(
  path: string,
  opts: SiteOptions & ReplaySettings & { at?: number; displayName?: string } = {},
): Promise<SitesAtResult> {
  const table = new SiteTable();
  const { at, displayName, by, wrappers, causes, chainDepth, ...settings } = opts;
  let last = -1;
  const run = await replayFile(path, {
    ...settings,
    observe: (ev) => {
      last = ev.index;
    },
    ...(displayName !== undefined ? { displayName } : {}),
    ...(at !== undefined ? { stopAfter: at } : {}),
    sites: table,
  });
  if (run.failure !== null) throw run.failure;
  // The symbols stand at the end of a recording: a replay stopped before it reads them on their
  // own (not from standard input, which cannot be read twice).
  if (at !== undefined && path !== '-' && table.unsymbolized().length > 0) {
    await openTrace(
      path,
      {
        header: () => {},
        event: () => {},
        site: (rec) => {
          if (rec.kind === 'sym') table.add(rec);
        },
      },
      displayName !== undefined ? { displayName } : {},
    );
  }
  const r = run.replayer;
  if (r === null) return { groups: [], unknown: emptyTotals(), event: -1, hasStacks: false };
  const siteOpts: SiteOptions = {};
  if (by !== undefined) siteOpts.by = by;
  if (wrappers !== undefined) siteOpts.wrappers = wrappers;
  if (causes !== undefined) siteOpts.causes = causes;
  if (chainDepth !== undefined) siteOpts.chainDepth = chainDepth;
  return {
    ...attributeSites(r.process, table, siteOpts),
    event: last,
    hasStacks: table.hasSites,
  };
}
