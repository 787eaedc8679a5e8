/**
 * Call stacks for importers: numbers each distinct stack once and hands its `#:stack` record to
 * the core before the first call that names it, with a `#:sym` record for each new address when
 * the log names the function there (mtrace's caller, ltrace -w's frames), and `#:map` records
 * for the modules a log lists (heaptrack).
 */

import type { SymFrame } from '../trace/types.js';
import type { ImportCore } from './core.js';

export class ImportedStacks {
  private readonly ids = new Map<string, number>();
  private readonly named = new Set<number>();

  constructor(private readonly core: ImportCore) {}

  /**
   * The number of the stack of return addresses `frames` (the allocator's caller first), under
   * `key` (any string that identifies it; the addresses by default).
   */
  stack(frames: readonly number[], key = frames.join(',')): number {
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(key, id);
      this.core.site({ kind: 'stack', line: 0, id, frames: [...frames] });
    }
    return id;
  }

  /** What the log says is at `addr`, handed on once per address. */
  name(addr: number, frames: SymFrame[]): void {
    if (this.named.has(addr)) return;
    this.named.add(addr);
    this.core.site({ kind: 'sym', line: 0, addr, frames });
  }

  /** A file mapped executable at [start, end) from file offset `offset`. */
  map(start: number, end: number, offset: number, path: string): void {
    this.core.site({ kind: 'map', line: 0, start, end, offset, path });
  }
}

/** `main+0x1e`, `main+1e`, `_Z3foov`: the function's name without the offset ('' for none). */
export function functionOf(symbolPlusOffset: string): string {
  const plus = symbolPlusOffset.lastIndexOf('+');
  return (plus >= 0 ? symbolPlusOffset.slice(0, plus) : symbolPlusOffset).trim();
}
