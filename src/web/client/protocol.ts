/**
 * The messages between the visualizer's page (app.ts) and its worker (worker.ts, running
 * engine.ts): the page asks, the worker answers with data only (no markup), which the page puts
 * on screen as text.
 */

import type { HeapView } from '../../analysis/heap-view.js';
import type { Step } from '../../analysis/stepper.js';
import type { ThresholdChange } from '../../analysis/thresholds.js';

export type Request =
  | { type: 'load'; name: string; bytes: ArrayBuffer; settings: string }
  | { type: 'goto'; event: number }
  | { type: 'whatif'; settings: string };

/** Figures along the trace, one entry a sample. */
export interface Series {
  event: number[];
  rss: number[];
  heap: number[];
  mmapped: number[];
  /** Null where the sample did not measure it. */
  live: Array<number | null>;
  mmapThreshold: number[];
  trimThreshold: number[];
}

/** The resident pages of one mapping, in cells of equal length. */
export interface PageStrip {
  name: string;
  start: number;
  size: number;
  /** Bytes each cell stands for (a multiple of the page size). */
  cell: number;
  /** Resident share of each cell, 0 to 255. */
  cells: number[];
}

export type Reply =
  | {
      type: 'loaded';
      name: string;
      events: number;
      /** The last event the replay reaches (before glibc's abort or a mistake). */
      last: number;
      checkpointEvery: number;
      series: Series;
      thresholds: ThresholdChange[];
      /** glibc's abort or the trace's mistake that stops the replay, if any. */
      stop: string | null;
      warnings: string[];
      millis: number;
    }
  | {
      type: 'state';
      pos: number;
      step: Step | null;
      view: HeapView;
      pages: PageStrip[];
      millis: number;
    }
  | { type: 'whatif'; settings: string; series: Series; peakRss: number; finalRss: number }
  | { type: 'error'; message: string };
