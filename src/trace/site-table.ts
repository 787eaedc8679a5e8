/**
 * The site table of a trace: its call stacks (`#:stack`), the files the process had mapped
 * (`#:map`), the symbols of their addresses (`#:sym`), and the stack each event was called from
 * (the `^ID` field), so that a block allocated at event i can be traced to the code that asked
 * for it. Filled from a reader's site records and events (see TraceSink.site); it keeps one
 * number per event only once the trace has shown a stack.
 */

import type { MapRecord, SiteRecord, SymFrame, TraceEvent } from './types.js';

/** One frame of a call stack: its return address, and what the symbols say is there. */
export interface StackFrame {
  addr: number;
  /** Innermost first: the functions inlined at the address, then the one that holds it. Empty when unknown. */
  symbols: SymFrame[];
  /** The file mapped at the address when the stack was recorded, when known. */
  module?: string;
}

export class SiteTable {
  /** Return addresses of each stack, the allocator's caller first. */
  readonly stacks = new Map<number, number[]>();
  readonly maps: MapRecord[] = [];
  readonly symbols = new Map<number, SymFrame[]>();
  /** The mapping each address was in when its stack was recorded. */
  private readonly moduleOf = new Map<number, MapRecord>();
  /** The stack of each event, by index (-1: none); null until an event has one. */
  private sites: Int32Array | null = null;
  private count = 0;

  /** Whether any event named a stack. */
  get hasSites(): boolean {
    return this.sites !== null;
  }

  /** Takes one site record. */
  add(rec: SiteRecord): void {
    if (rec.kind === 'stack') {
      this.stacks.set(rec.id, rec.frames);
      for (const a of rec.frames) {
        if (this.moduleOf.has(a)) continue;
        for (let i = this.maps.length - 1; i >= 0; i--) {
          const m = this.maps[i]!;
          if (a - 1 >= m.start && a - 1 < m.end) {
            this.moduleOf.set(a, m);
            break;
          }
        }
      }
    } else if (rec.kind === 'map') this.maps.push(rec);
    else this.symbols.set(rec.addr, rec.frames);
  }

  /** Notes the stack of an event (its `site`, -1 or absent for none). */
  noteEvent(ev: TraceEvent): void {
    const site = ev.site ?? -1;
    if (site < 0 && this.sites === null) return;
    const i = ev.index;
    if (this.sites === null) this.sites = new Int32Array(Math.max(1024, i * 2)).fill(-1);
    if (i >= this.sites.length) {
      let n = this.sites.length * 2;
      while (n <= i) n *= 2;
      const bigger = new Int32Array(n).fill(-1);
      bigger.set(this.sites);
      this.sites = bigger;
    }
    this.sites[i] = site;
    if (i >= this.count) this.count = i + 1;
  }

  /** The stack of event `index`, -1 when it has none. */
  siteOfEvent(index: number): number {
    if (this.sites === null || index < 0 || index >= this.count) return -1;
    return this.sites[index]!;
  }

  /** The mapping that held `addr` when its stack was recorded, if the trace said. */
  mappingOf(addr: number): MapRecord | undefined {
    return this.moduleOf.get(addr);
  }

  /** The addresses of the stacks that have no `#:sym` record. */
  unsymbolized(): number[] {
    const out = new Set<number>();
    for (const frames of this.stacks.values())
      for (const a of frames) if (!this.symbols.has(a)) out.add(a);
    return [...out];
  }

  /** The frames of stack `id`, the allocator's caller first; empty for an unknown stack. */
  frames(id: number): StackFrame[] {
    const addrs = this.stacks.get(id);
    if (addrs === undefined) return [];
    return addrs.map((addr) => {
      const f: StackFrame = { addr, symbols: this.symbols.get(addr) ?? [] };
      const module = this.moduleOf.get(addr);
      if (module !== undefined) f.module = module.path;
      return f;
    });
  }
}
