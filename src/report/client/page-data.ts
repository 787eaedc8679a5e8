/**
 * What the report page's script reads from the page's data block (#ptsim-data): the parts of
 * ReportData (../report.ts) that it draws. The page is type-checked on its own, with the browser's
 * types and without Node's, so it cannot import ReportData and all it brings; html.ts checks
 * instead that every ReportData is a PageData, so the two cannot drift apart.
 */

/** A configuration's timeline as columns (SeriesColumns). */
export interface PageSeries {
  event: number[];
  time: number[];
  rss: number[];
  heap: number[];
  mmapped: number[];
  live: Array<number | null>;
  causes: Record<
    'free-tcache' | 'free-fastbins' | 'free-bins' | 'fragmentation' | 'free-top',
    Array<number | null>
  >;
  mmapThreshold: number[];
  trimThreshold: number[];
}

/** A change of the thresholds, at a time on the charts' axis (TimedThresholdChange). */
export interface PageThresholdChange {
  time: number;
  cause: string;
  newMmapThreshold: number;
}

export interface PageConfig {
  name: string;
  series: PageSeries;
  /** The trace's `#:rss` samples: RssAnon less the recorder's memory (or the whole RSS) and the baseline (MeasuredSeries). */
  measured?: { of: 'anon' | 'total'; time: number[]; bytes: number[]; baseline: number };
  thresholds: PageThresholdChange[];
}

/** A region of the heap map (MapRegion). */
export interface PageRegion {
  name: string;
  start: number;
  size: number;
  packed: boolean;
  chunkCount: number;
  chunks?: {
    off: number[];
    size: number[];
    state: number[];
    req: number[];
    born: number[];
    addr?: number[];
  };
  buckets?: { span: number; bytes: number[][]; count: number[] };
  resident: number[];
  residentSpan: number;
  residentBytes: number;
}

/** A pin on the heap map (MapPin). */
export interface PagePin {
  region: number;
  off: number;
  size: number;
  kind: string;
  heldBytes: number;
  token?: string;
  line?: number;
}

/** The allocation sites at one moment, as leaves (FlameMoment). */
export interface PageFlameMoment {
  kind: string;
  event: number;
  time: number;
  total: number;
  node: number[];
  what: number[];
  arena: number[];
  bytes: number[];
  blocks: number[];
}

/** The tree of call chains and its moments (SiteFlames). */
export interface PageSites {
  kinds: readonly string[];
  names: string[];
  name: number[];
  parent: number[];
  site: boolean[];
  moments: PageFlameMoment[];
}

export interface PageData {
  /** Whether times are the trace's @TIME in nanoseconds (else event indexes). */
  timed: boolean;
  /** The moment the page explains. */
  moment: { time: number };
  configs: PageConfig[];
  heapMap: {
    /** State names; a chunk's state is an index here. */
    states: readonly string[];
    regions: PageRegion[];
    pins: PagePin[];
  };
  /** A trace with call stacks: the resident memory by allocation site. */
  sites?: PageSites;
}
