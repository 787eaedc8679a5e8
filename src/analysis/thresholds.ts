/**
 * The threshold history: every change of the mmap threshold and the trim threshold during a replay,
 * what changed it (a free of an mmapped block raising the dynamic threshold, a mallopt call, the
 * start-up settings), and how many later allocations went to the heap that the old threshold would
 * have sent to mmap.
 */

import { NIL } from '../core/chunks.js';
import { DEFAULT_MMAP_THRESHOLD, DEFAULT_TRIM_THRESHOLD, IS_MMAPPED } from '../core/constants.js';
import type { Replayer } from '../replay/replay.js';
import { OP_NAMES, Op, type TraceEvent } from '../trace/types.js';

export interface ThresholdChange {
  /** The event after which the thresholds changed (-1: glibc's start-up settings). */
  event: number;
  line: number;
  tid: number;
  op: string;
  /** The block freed, for a change made by free() or realloc(). */
  token: string;
  cause: 'dynamic threshold: free of an mmapped block' | 'mallopt' | 'start-up settings';
  oldMmapThreshold: number;
  newMmapThreshold: number;
  oldTrimThreshold: number;
  newTrimThreshold: number;
  /** Later allocations served from a heap with a chunk size at or above the old mmap threshold. */
  heapAllocationsSince: number;
  /** Bytes of those allocations. */
  heapBytesSince: number;
}

export class ThresholdHistory {
  readonly changes: ThresholdChange[] = [];
  private mmap = DEFAULT_MMAP_THRESHOLD;
  private trim = DEFAULT_TRIM_THRESHOLD;
  private started = false;

  /** Call after each event. */
  observe(ev: TraceEvent, r: Replayer): void {
    const mp = r.process.mp;
    if (!this.started && r.process.initialized) {
      this.started = true;
      if (mp.mmapThreshold !== this.mmap || mp.trimThreshold !== this.trim) {
        // The environment set them when malloc initialised, before this event's own effect: only
        // a mallopt or free in this very first event could blur the two, and it is reported below.
        this.record(-1, ev, 'start-up settings', mp.mmapThreshold, mp.trimThreshold);
      }
    }
    // The block this event returned, when it came from a heap (not mmapped on its own).
    const h = r.lastBlock;
    const ck = r.process.ck;
    if (h !== NIL && (ck.flags[h]! & IS_MMAPPED) === 0) {
      const chunk = ck.size[h]!;
      // The most recent change that made this size a heap allocation rather than an mmap.
      for (let i = this.changes.length - 1; i >= 0; i--) {
        const c = this.changes[i]!;
        if (
          c.newMmapThreshold > c.oldMmapThreshold &&
          chunk >= c.oldMmapThreshold &&
          chunk < mp.mmapThreshold
        ) {
          c.heapAllocationsSince++;
          c.heapBytesSince += chunk;
          break;
        }
      }
    }
    if (mp.mmapThreshold !== this.mmap || mp.trimThreshold !== this.trim) {
      const cause =
        ev.op === Op.mallopt ? 'mallopt' : 'dynamic threshold: free of an mmapped block';
      this.record(ev.index, ev, cause, mp.mmapThreshold, mp.trimThreshold);
    }
  }

  private record(
    event: number,
    ev: TraceEvent,
    cause: ThresholdChange['cause'],
    mmap: number,
    trim: number,
  ): void {
    this.changes.push({
      event,
      line: event < 0 ? 0 : ev.line,
      tid: ev.tid,
      op: event < 0 ? '' : OP_NAMES[ev.op]!,
      token: event >= 0 && (ev.op === Op.free || ev.op === Op.realloc) ? ev.in : '',
      cause,
      oldMmapThreshold: this.mmap,
      newMmapThreshold: mmap,
      oldTrimThreshold: this.trim,
      newTrimThreshold: trim,
      heapAllocationsSince: 0,
      heapBytesSince: 0,
    });
    this.mmap = mmap;
    this.trim = trim;
  }
}
