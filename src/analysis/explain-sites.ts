/**
 * The allocation sites of `ptsim explain`, for traces recorded with call stacks: the site and
 * call chain of each pin, and the top sites of each cause (live data, the tcache, the fastbins,
 * the live blocks that fragment the heaps), grouped by site, function or file (sites.ts).
 *
 * A block's site comes from the event that allocated it: the site table filled by the first
 * replay maps every event index of the trace to its stack, so the replays to a moment need no
 * stacks of their own (they replay the trace's events unedited, with the same indices).
 */

import { IS_MMAPPED } from '../core/constants.js';
import type { Process } from '../core/state.js';
import { replayFile, type ImportSettings, type ReplaySettings } from '../replay/run-file.js';
import type { SiteTable } from '../trace/site-table.js';
import type { TraceSink } from '../trace/types.js';
import { fragmentingBlocks } from './breakdown.js';
import { deliverStored, type StoredTrace } from '../trace/event-store.js';
import {
  attributeSites,
  DEFAULT_WRAPPERS,
  siteOfEvent,
  type SiteCause,
  type SiteGroup,
  type SiteGrouping,
} from './sites.js';

/** How explain groups the sites: `--by` and `--wrappers`. */
export interface SiteView {
  by: SiteGrouping;
  /** Functions skipped to their caller. */
  wrappers: readonly string[];
}

export const DEFAULT_SITE_VIEW: SiteView = { by: 'site', wrappers: DEFAULT_WRAPPERS };

/** Sites listed per cause, and frames of a pin's call chain shown. */
const TOP_SITES = 5;
const CHAIN_FRAMES = 4;

/** Where a block was allocated: its site (`function (file:line)`) and the chain from it outwards. */
export interface BlockSite {
  site: string;
  chain: string[];
}

export interface TopSite {
  /** The group's name: `function (file:line)`, the function, or the file. */
  key: string;
  /** The call chain of the group's largest site, from the site outwards (a few frames). */
  chain: string[];
  bytes: number;
  pages: number;
  blocks: number;
  /** In the lists per arena: the resident bytes of each cause (live, tcache, fastbins) that has any. */
  causes?: Partial<Record<'live' | 'tcache' | 'fastbins', number>>;
}

export type SiteCauseName = 'live' | 'tcache' | 'fastbins' | 'fragmentation';

export interface CauseSites {
  cause: SiteCauseName;
  /** The most resident bytes first (for fragmentation: the most free bytes held resident). */
  sites: TopSite[];
  /** Sites left out of the list. */
  more: number;
  /** Bytes of the cause's blocks that have no call stack. */
  unknownBytes: number;
}

/** The top sites of an arena's blocks, all causes together (live, tcache, fastbins), and each apart. */
export interface ArenaSites {
  /** 0 main, k the k-th arena created; -1 for chunks mmapped on their own. */
  arena: number;
  sites: TopSite[];
  more: number;
}

/** What the sites say about one moment. */
export interface MomentSites {
  by: SiteGrouping;
  causes: CauseSites[];
  /** Per arena, when the process has more than one. */
  arenas: ArenaSites[];
}

/** The site of the block allocated at event `bornEvent`, or undefined when it has no stack. */
export function blockSite(
  table: SiteTable,
  bornEvent: number,
  view: SiteView,
): BlockSite | undefined {
  const s = siteOfEvent(table, bornEvent, view.wrappers);
  return s === null ? undefined : { site: s.key, chain: s.chain.slice(0, CHAIN_FRAMES) };
}

const FROM: ReadonlyArray<[SiteCause, SiteCauseName]> = [
  ['live', 'live'],
  ['tcache', 'tcache'],
  ['fastbin', 'fastbins'],
];

/**
 * The top sites of each cause in process `s`. Fragmentation's sites are those of every live block
 * that shares resident pages with free memory in the bins (fragmentingBlocks), with the free bytes
 * and pages they keep resident.
 */
function momentSites(s: Process, table: SiteTable, view: SiteView): MomentSites {
  const fragmenting = fragmentingBlocks(s);
  const causes: CauseSites[] = [];
  for (const [from, cause] of FROM) {
    const att = attributeSites(s, table, {
      by: view.by,
      wrappers: view.wrappers,
      causes: [from],
      chainDepth: CHAIN_FRAMES,
    });
    if (att.groups.length === 0) continue;
    causes.push({
      cause,
      sites: topSites(att.groups),
      more: Math.max(0, att.groups.length - TOP_SITES),
      unknownBytes: att.unknown.bytes,
    });
  }
  const frag = new Map<string, TopSite>();
  let unknownFrag = 0;
  for (const b of fragmenting) {
    const site = siteOfEvent(table, b.bornEvent, view.wrappers);
    if (site === null) {
      unknownFrag += b.freeBytes;
      continue;
    }
    const key = view.by === 'site' ? site.key : view.by === 'function' ? site.fn : site.file;
    const g = frag.get(key) ?? {
      key,
      chain: site.chain.slice(0, CHAIN_FRAMES),
      bytes: 0,
      pages: 0,
      blocks: 0,
    };
    g.bytes += b.freeBytes;
    g.pages += b.pages;
    g.blocks++;
    frag.set(key, g);
  }
  if (frag.size > 0) {
    const all = [...frag.values()].sort((x, y) => y.bytes - x.bytes || (x.key < y.key ? -1 : 1));
    causes.push({
      cause: 'fragmentation',
      sites: all.slice(0, TOP_SITES),
      more: Math.max(0, all.length - TOP_SITES),
      unknownBytes: unknownFrag,
    });
  }
  return { by: view.by, causes, arenas: s.arenas.length > 1 ? arenaSites(s, table, view) : [] };
}

function topSites(groups: SiteGroup[]): TopSite[] {
  return groups.slice(0, TOP_SITES).map((g) => ({
    key: g.key,
    chain: g.chain,
    bytes: g.bytes,
    pages: g.pages,
    blocks: g.blocks,
  }));
}

/** The top sites of each arena (and of the chunks mmapped on their own). */
function arenaSites(s: Process, table: SiteTable, view: SiteView): ArenaSites[] {
  const ck = s.ck;
  const out: ArenaSites[] = [];
  const add = (arena: number, only: (h: number) => boolean): void => {
    const att = attributeSites(s, table, {
      by: view.by,
      wrappers: view.wrappers,
      chainDepth: CHAIN_FRAMES,
      only,
    });
    if (att.groups.length > 0)
      out.push({
        arena,
        sites: topSites(att.groups).map((t, i) => {
          const causes: NonNullable<TopSite['causes']> = {};
          for (const [from, name] of FROM) {
            const b = att.groups[i]!.byCause[from].bytes;
            if (b > 0) causes[name as 'live' | 'tcache' | 'fastbins'] = b;
          }
          return { ...t, causes };
        }),
        more: Math.max(0, att.groups.length - TOP_SITES),
      });
  };
  const mmapped = (h: number): boolean => (ck.flags[h]! & IS_MMAPPED) !== 0;
  for (const av of s.arenas) {
    const regions: Array<[number, number]> = [];
    if (av === s.main) regions.push([s.kernel.brkBase, s.kernel.brkEnd]);
    else
      for (let hp = av.heap; hp !== null; hp = hp.prev)
        regions.push([hp.start, hp.start + hp.size]);
    add(av.index, (h) => {
      if (mmapped(h)) return false;
      const a = ck.addr[h]!;
      return regions.some(([from, to]) => a >= from && a < to);
    });
  }
  add(-1, mmapped);
  return out;
}

/**
 * Replays the trace to event `at`, unedited, and returns the process at that moment, for the
 * moments the first replay did not stop at: from the copy held in memory when there is one (it
 * keeps no stacks, and needs none: its events have the trace's indices), else from the file.
 */
export async function processAt(
  path: string,
  at: number,
  opts: {
    settings: ReplaySettings;
    import?: ImportSettings | undefined;
    displayName?: string | undefined;
    store: StoredTrace | null;
  },
): Promise<Process | null> {
  const store = opts.store;
  const run = await replayFile(path, {
    ...opts.settings,
    ...(opts.import !== undefined ? { import: opts.import } : {}),
    ...(opts.displayName !== undefined ? { displayName: opts.displayName } : {}),
    ...(store !== null ? { source: (sink: TraceSink) => deliverStored(store, sink) } : {}),
    stopAfter: at,
  });
  if (run.failure !== null || run.replayer === null) return null;
  return run.replayer.process;
}

/** What explainSites fills in: a moment's pins, and its sites. */
interface SitedMoment {
  event: number;
  pins: Array<{ bornEvent: number; site?: BlockSite }>;
  sites?: MomentSites;
}

/**
 * Names the sites of each moment explained: every pin's site and chain, and each cause's top
 * sites. `end` is the process at the end of the first replay; the other moments are replayed to.
 */
export async function explainSites(
  moments: SitedMoment[],
  table: SiteTable,
  view: SiteView,
  end: { event: number; process: Process },
  replayTo: (event: number) => Promise<Process | null>,
): Promise<void> {
  const processes = new Map<number, Process | null>([[end.event, end.process]]);
  for (const m of moments) {
    for (const p of m.pins) {
      const site = blockSite(table, p.bornEvent, view);
      if (site !== undefined) p.site = site;
    }
    if (m.event < 0) continue;
    if (!processes.has(m.event)) processes.set(m.event, await replayTo(m.event));
    const s = processes.get(m.event);
    if (s === null || s === undefined) continue;
    m.sites = momentSites(s, table, view);
  }
}
