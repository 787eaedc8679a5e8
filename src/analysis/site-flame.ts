/**
 * The resident memory of a moment as a tree of call chains, for the report's flame graph (an
 * icicle: the outermost caller at the top, each allocation site at the bottom of its chain), with
 * every leaf split by what the memory is (live, in a chunk mmapped on its own, freed into the
 * tcache or a fastbin) and by arena; and the memory no site holds (free chunks in the bins, the
 * free top, glibc's own metadata) as boxes of their own beside the chains, so that the boxes add
 * up to the resident total the explanation gives.
 *
 * A chunk's bytes and site are those of attributeSites (sites.ts): its resident bytes, header
 * included; its site the first frame of its stack that is not an allocator wrapper, so that a
 * site's leaves add up, at the moment explained, to the bytes explain lists for it. The memory no
 * site holds is the breakdown's (breakdown.ts), per arena.
 *
 * The moments are taken in one replay of the trace: at each, the chunks are summed by stack,
 * kind and arena (numbers only); the stacks become chains once the replay has read the symbols,
 * which a recording writes at its end.
 */

import { St } from '../core/chunks.js';
import { IS_MMAPPED } from '../core/constants.js';
import type { Process } from '../core/state.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import { SiteTable } from '../trace/site-table.js';
import type { TraceSink } from '../trace/types.js';
import { deliverStored, type StoredTrace } from '../trace/event-store.js';
import { breakdown, type Cause } from './breakdown.js';
import { chunkResident, DEFAULT_WRAPPERS, siteOfStack, symbolizeTable } from './sites.js';

/** What a leaf's bytes are: the first four are chunks with a site, the others no site's. */
const FLAME_KINDS = [
  'live',
  'mmapped',
  'tcache',
  'fastbins',
  'bins',
  'fragmentation',
  'top',
  'metadata',
] as const;
type FlameKind = (typeof FLAME_KINDS)[number];

const KIND: Record<FlameKind, number> = Object.fromEntries(
  FLAME_KINDS.map((k, i) => [k, i]),
) as Record<FlameKind, number>;

/** The boxes of the memory no site holds: the breakdown's cause, and the box's name. */
const UNSITED: ReadonlyArray<[Cause, FlameKind, string]> = [
  ['free-bins', 'bins', '[free in the bins]'],
  ['fragmentation', 'fragmentation', '[free in the bins, on pages live blocks share]'],
  ['free-top', 'top', '[free top of a heap]'],
  ['metadata', 'metadata', "[glibc's own metadata]"],
];

/** The name of the box of chunks allocated by events without a call stack. */
const NO_STACK = '[no call stack]';

/** One moment: its leaves as columns (node, kind, arena, bytes, blocks). */
export interface FlameMoment {
  /** Why it is here: the moment the report explains, the end, the peak, or a sample. */
  kind: 'explained' | 'end' | 'peak' | 'sample';
  event: number;
  /** The event's @TIME, or its index when the trace has no times (the timeline's `time`). */
  time: number;
  /** Resident bytes at this moment (the sum of the leaves). */
  total: number;
  node: number[];
  /** An index in FLAME_KINDS. */
  what: number[];
  /** 0 main, k the k-th arena, -1 chunks mmapped on their own. */
  arena: number[];
  bytes: number[];
  blocks: number[];
}

/** The tree and its moments. */
export interface SiteFlames {
  kinds: readonly string[];
  /** The names of the nodes, each once: `function (file:line)`, or a box's name in brackets. */
  names: string[];
  /** Each node's name (an index in names) and parent (-1: the root's child). */
  name: number[];
  parent: number[];
  /** Whether the node is an allocation site (the end of a chain), as explain names one. */
  site: boolean[];
  /** Allocator wrappers folded into their callers. */
  wrappers: readonly string[];
  moments: FlameMoment[];
}

/**
 * Leaves kept per moment: the biggest, at most MAX_LEAVES, and none below SMALL of the moment's
 * resident memory (a frame that narrow is not drawn); the rest are summed into one box.
 */
const MAX_LEAVES = 3000;
const SMALL = 1 / 5000;
const OTHERS = '[smaller call chains]';

/** The tree's nodes, made once per chain. */
class Nodes {
  /** Each distinct name once; a node's name is an index here. */
  readonly names: string[] = [];
  private readonly nameIndex = new Map<string, number>();
  readonly name: number[] = [];
  readonly parent: number[] = [];
  readonly site: boolean[] = [];
  private readonly index = new Map<string, number>();

  /** The node of `name` under `parent`. */
  child(parent: number, name: string): number {
    const key = `${parent}\u0000${name}`;
    let n = this.index.get(key);
    if (n === undefined) {
      n = this.name.length;
      let k = this.nameIndex.get(name);
      if (k === undefined) {
        k = this.names.length;
        this.names.push(name);
        this.nameIndex.set(name, k);
      }
      this.name.push(k);
      this.parent.push(parent);
      this.site.push(false);
      this.index.set(key, n);
    }
    return n;
  }

  /** The node at the end of a path of names, from the root. */
  path(names: string[]): number {
    let n = -1;
    for (const x of names) n = this.child(n, x);
    return n;
  }
}

/** A moment's sums by stack, kind and arena, before the stacks have names. */
interface RawMoment {
  kind: FlameMoment['kind'];
  event: number;
  time: number;
  total: number;
  /** Key: stack, kind and arena packed in one number (pack). */
  sums: Map<number, { bytes: number; blocks: number }>;
  /** The breakdown's unsited causes, per arena. */
  unsited: Array<{ arena: number; what: number; bytes: number }>;
}

const ARENAS = 1 << 12;
const pack = (stack: number, what: number, arena: number): number =>
  ((stack + 1) * FLAME_KINDS.length + what) * ARENAS + (arena + 1);

/** The arena of each region of the process, to find a chunk's by its address. */
function arenaFinder(s: Process): (addr: number) => number {
  const regions: Array<[number, number, number]> = [];
  for (const av of s.arenas) {
    if (av === s.main) regions.push([s.kernel.brkBase, s.kernel.brkEnd, av.index]);
    else
      for (let hp = av.heap; hp !== null; hp = hp.prev)
        regions.push([hp.start, hp.start + hp.size, av.index]);
  }
  regions.sort((x, y) => x[0] - y[0]);
  return (addr) => {
    let lo = 0;
    let hi = regions.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = regions[mid]!;
      if (addr < r[0]) hi = mid - 1;
      else if (addr >= r[1]) lo = mid + 1;
      else return r[2];
    }
    return 0;
  };
}

/** The chunks of `s` summed by stack, kind and arena, and the memory no site holds. */
function takeMoment(
  s: Process,
  table: SiteTable,
  at: { kind: FlameMoment['kind']; event: number; time: number },
): RawMoment {
  const ck = s.ck;
  const k = s.kernel;
  const own = new Set<number>();
  for (const th of s.threads.values()) if (th.tcache !== null) own.add(th.tcache.chunk);
  if (s.thread.tcache !== null) own.add(s.thread.tcache.chunk);
  const arenaOf = arenaFinder(s);
  const sums = new Map<number, { bytes: number; blocks: number }>();
  for (let h = 0; h < ck.highWater; h++) {
    const st = ck.state[h]!;
    if (st !== St.INUSE && st !== St.TCACHE && st !== St.FAST) continue;
    const born = ck.born[h]!;
    if (born < 0 || own.has(h)) continue; // glibc's own
    const a = ck.addr[h]!;
    const mmapped = (ck.flags[h]! & IS_MMAPPED) !== 0;
    const what =
      st === St.TCACHE
        ? KIND.tcache
        : st === St.FAST
          ? KIND.fastbins
          : mmapped
            ? KIND.mmapped
            : KIND.live;
    const arena = mmapped ? -1 : arenaOf(a);
    const { bytes } = chunkResident(k, a, a + ck.size[h]!);
    const key = pack(table.siteOfEvent(born), what, arena);
    const x = sums.get(key);
    if (x === undefined) sums.set(key, { bytes, blocks: 1 });
    else {
      x.bytes += bytes;
      x.blocks++;
    }
  }
  const b = breakdown(s, false);
  const unsited: RawMoment['unsited'] = [];
  for (const a of b.arenas)
    for (const [cause, what] of UNSITED) {
      const bytes = a.causes[cause].bytes;
      if (bytes > 0) unsited.push({ arena: a.arena, what: KIND[what], bytes });
    }
  return { ...at, total: b.residentBytes, sums, unsited };
}

/** The moments wanted: each event once, with the reason it is there (the first given wins). */
export interface FlameRequest {
  kind: FlameMoment['kind'];
  event: number;
}

/**
 * Replays the trace at `path` to its end and takes the moments asked for (events past the end are
 * left out). Returns null when the trace has no call stacks; a mistake in the trace is thrown.
 */
export async function siteFlames(
  path: string,
  opts: {
    settings: ReplaySettings;
    import?: ImportSettings | undefined;
    displayName?: string | undefined;
    wrappers?: readonly string[];
    /** The trace held in memory, to replay instead of reading the file again. */
    stored?: StoredTrace | null;
  },
  requests: FlameRequest[],
): Promise<SiteFlames | null> {
  const wanted = new Map<number, FlameRequest['kind']>();
  for (const r of requests) if (r.event >= 0 && !wanted.has(r.event)) wanted.set(r.event, r.kind);
  const table = new SiteTable();
  const raw: RawMoment[] = [];
  const stored = opts.stored;
  const run = await replayFile(path, {
    ...opts.settings,
    ...(opts.import !== undefined ? { import: opts.import } : {}),
    ...(opts.displayName !== undefined ? { displayName: opts.displayName } : {}),
    sites: table,
    ...(stored !== null && stored !== undefined
      ? { source: (sink: TraceSink) => deliverStored(stored, sink) }
      : {}),
    observe: (ev, r) => {
      const kind = wanted.get(ev.index);
      if (kind !== undefined)
        raw.push(
          takeMoment(r.process, table, {
            kind,
            event: ev.index,
            time: ev.time >= 0 ? ev.time : ev.index,
          }),
        );
    },
  });
  if (run.failure !== null) throw run.failure;
  if (!table.hasSites) return null;
  symbolizeTable(table);
  const wrappers = opts.wrappers ?? DEFAULT_WRAPPERS;
  const nodes = new Nodes();
  const stackNode = new Map<number, number>();
  const nodeOfStack = (stack: number): number => {
    let n = stackNode.get(stack);
    if (n === undefined) {
      const site = siteOfStack(table, stack, wrappers);
      n = site === null ? nodes.path([NO_STACK]) : nodes.path([...site.chain].reverse());
      if (site !== null) nodes.site[n] = true;
      stackNode.set(stack, n);
    }
    return n;
  };
  const boxes = new Map<number, number>();
  for (const [, what, name] of UNSITED) boxes.set(KIND[what], nodes.path([name]));
  const moments = raw.map((m): FlameMoment => {
    const leaves: Array<{
      node: number;
      what: number;
      arena: number;
      bytes: number;
      blocks: number;
    }> = [];
    // The stacks first (node: the stack), the biggest first; then the chains of those kept.
    for (const [key, v] of m.sums) {
      if (v.bytes === 0) continue;
      const arena = (key % ARENAS) - 1;
      const rest = Math.floor(key / ARENAS);
      const what = rest % FLAME_KINDS.length;
      const stack = Math.floor(rest / FLAME_KINDS.length) - 1;
      leaves.push({ node: stack, what, arena, ...v });
    }
    leaves.sort(
      (x, y) => y.bytes - x.bytes || x.node - y.node || x.what - y.what || x.arena - y.arena,
    );
    const least = m.total * SMALL;
    let kept = 0;
    while (kept < leaves.length && kept < MAX_LEAVES && leaves[kept]!.bytes >= least) kept++;
    for (let i = 0; i < kept; i++) leaves[i]!.node = nodeOfStack(leaves[i]!.node);
    if (kept < leaves.length) {
      const others = nodes.path([OTHERS]);
      const folded = new Map<number, (typeof leaves)[number]>();
      for (const l of leaves.slice(kept)) {
        const key = l.what * ARENAS + l.arena + 1;
        const f = folded.get(key);
        if (f === undefined) folded.set(key, { ...l, node: others });
        else {
          f.bytes += l.bytes;
          f.blocks += l.blocks;
        }
      }
      leaves.length = kept;
      leaves.push(...folded.values());
    }
    for (const u of m.unsited)
      leaves.push({
        node: boxes.get(u.what)!,
        what: u.what,
        arena: u.arena,
        bytes: u.bytes,
        blocks: 0,
      });
    return {
      kind: m.kind,
      event: m.event,
      time: m.time,
      total: m.total,
      node: leaves.map((l) => l.node),
      what: leaves.map((l) => l.what),
      arena: leaves.map((l) => l.arena),
      bytes: leaves.map((l) => l.bytes),
      blocks: leaves.map((l) => l.blocks),
    };
  });
  moments.sort((x, y) => x.event - y.event);
  return {
    kinds: FLAME_KINDS,
    names: nodes.names,
    name: nodes.name,
    parent: nodes.parent,
    site: nodes.site,
    wrappers,
    moments,
  };
}
