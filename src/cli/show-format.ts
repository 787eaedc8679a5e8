/**
 * The terminal views of `ptsim show` and `ptsim step`, in pwndbg's vocabulary: `heap` (chunk by
 * chunk, as pwndbg's `heap`), `chunks` (one line a chunk), `bins` (tcachebins, fastbins,
 * unsortedbin, smallbins, largebins), `tcache`, `fastbins`, `arenas`, and `maps` (a simulated
 * /proc/self/maps with smaps's Size and Rss for each mapping). Colour only when asked (a terminal).
 */

import type {
  ArenaView,
  BinView,
  ChunkView,
  HeapView,
  ListEntry,
  TcacheView,
} from '../analysis/heap-view.js';
import { shortBytes } from '../analysis/units.js';
import { count } from './numbers.js';

export const VIEWS = ['heap', 'bins', 'tcache', 'fastbins', 'arenas', 'chunks', 'maps'] as const;
export type ViewName = (typeof VIEWS)[number];

/** Colours, or none. */
export interface Paint {
  title: (s: string) => string;
  addr: (s: string) => string;
  live: (s: string) => string;
  free: (s: string) => string;
  top: (s: string) => string;
  dim: (s: string) => string;
}

const esc =
  (code: string) =>
  (s: string): string =>
    `\x1b[${code}m${s}\x1b[0m`;

export const COLOUR: Paint = {
  title: esc('1'),
  addr: esc('34'),
  live: esc('32'),
  free: esc('33'),
  top: esc('35'),
  dim: esc('2'),
};

const id = (s: string): string => s;
export const PLAIN: Paint = { title: id, addr: id, live: id, free: id, top: id, dim: id };

const hex = (n: number): string => '0x' + n.toString(16);

/** Text from the trace made safe for a terminal: control characters shown as \\xNN. */
export function printable(s: string): string {
  return s.replace(
    // eslint-disable-next-line no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

function arenaName(a: number): string {
  return a < 0 ? 'mmapped chunks' : a === 0 ? 'main_arena' : `arena ${a}`;
}

function heapName(a: number, h: number): string {
  return a < 0 ? 'mmapped chunks' : a === 0 ? 'main_arena heap (brk)' : `arena ${a} heap ${h}`;
}

/** The line that says which moment a view shows. */
export function momentLine(v: HeapView, moment: string): string {
  const when =
    v.event < 0
      ? 'before any event'
      : moment === 'end'
        ? `at the end (after event ${v.event}, line ${v.line})`
        : moment === 'peak'
          ? `at the RSS peak (after event ${v.event}, line ${v.line})`
          : `after event ${v.event} (line ${v.line})`;
  return `${printable(v.trace)} ${when}: brk ${shortBytes(v.brk)}, RSS ${shortBytes(v.rss)}, mmap threshold ${shortBytes(v.mmapThreshold)}, trim threshold ${shortBytes(v.trimThreshold)}`;
}

function chunkTitle(c: ChunkView): string {
  switch (c.state) {
    case 'live':
      return 'Allocated chunk';
    case 'tcache':
      return 'Free chunk (tcachebins)';
    case 'fastbin':
      return 'Free chunk (fastbins)';
    case 'unsorted':
      return 'Free chunk (unsortedbin)';
    case 'small':
      return 'Free chunk (smallbins)';
    case 'large':
      return 'Free chunk (largebins)';
    case 'top':
      return 'Top chunk';
    case 'tcache-struct':
      return 'Allocated chunk (tcache_perthread_struct)';
    case 'fencepost':
      return 'Allocated chunk (fencepost)';
  }
}

function paintFor(p: Paint, c: ChunkView): (s: string) => string {
  if (c.state === 'live') return p.live;
  if (c.state === 'top') return p.top;
  if (c.state === 'tcache-struct' || c.state === 'fencepost') return p.dim;
  return p.free;
}

function flagBits(c: ChunkView): number {
  let f = 0;
  if (c.flags.includes('PREV_INUSE')) f |= 1;
  if (c.flags.includes('IS_MMAPPED')) f |= 2;
  if (c.flags.includes('NON_MAIN_ARENA')) f |= 4;
  return f;
}

function liveNote(c: ChunkView): string {
  const token = c.token === null || c.token === undefined ? '(no token)' : printable(c.token);
  return `Token: ${token}  Requested: ${c.requested}  Usable: ${c.usable}  Off: ${c.off}  Event: ${c.event}`;
}

/** pwndbg's `heap`: every chunk, heap by heap. */
function heapText(v: HeapView, p: Paint): string[] {
  const out: string[] = [];
  let where = '';
  for (const c of v.chunks) {
    const w = heapName(c.arena, c.heap);
    if (w !== where) {
      if (out.length > 0) out.push('');
      out.push(p.title(`${w}`));
      where = w;
    }
    out.push('');
    const flags = c.flags.length > 0 ? ' | ' + c.flags.join(' | ') : '';
    out.push(paintFor(p, c)(chunkTitle(c) + flags));
    out.push(`Addr: ${p.addr(hex(c.addr))}`);
    out.push(`Size: ${hex(c.size)} (with flag bits: ${hex(c.size + flagBits(c))})`);
    if (c.state === 'live') out.push(liveNote(c));
  }
  if (out.length === 0) out.push('no heap yet: malloc has not been called');
  return out;
}

/** One line a chunk. */
function chunksText(v: HeapView, p: Paint): string[] {
  const out = [
    p.title(
      `${'arena'.padStart(5)} ${'heap'.padStart(4)} ${'off'.padStart(10)} ${'size'.padStart(10)}  ${'state'.padEnd(13)} ${'usable'.padStart(9)}  token`,
    ),
  ];
  for (const c of v.chunks) {
    const line = `${String(c.arena).padStart(5)} ${String(c.heap).padStart(4)} ${String(c.off).padStart(10)} ${String(c.size).padStart(10)}  ${c.state.padEnd(13)} ${(c.usable === undefined ? '' : String(c.usable)).padStart(9)}  ${printable(c.token ?? '')}`;
    out.push(paintFor(p, c)(line));
  }
  return out;
}

function chain(p: Paint, es: ListEntry[], user: boolean): string {
  const parts = es.map((e) => p.addr(hex(user ? e.addr + 16 : e.addr)));
  return parts.join(' —▸ ') + ' ◂— 0';
}

function tcacheLines(t: TcacheView, p: Paint): string[] {
  const out = [
    p.title(`tcachebins (thread ${t.tid}${t.arena >= 0 ? `, ${arenaName(t.arena)}` : ''})`),
  ];
  if (t.bins.length === 0) out.push('empty');
  for (const b of t.bins)
    out.push(
      p.free(`${hex(b.size)} [${String(b.chunks.length).padStart(3)}]: `) +
        chain(p, b.chunks, true),
    );
  return out;
}

function fastbinLines(v: HeapView, a: ArenaView, p: Paint, many: boolean): string[] {
  const out = [p.title(many ? `fastbins (${arenaName(a.arena)})` : 'fastbins')];
  if (!v.fastbins) {
    out.push('none in this release (glibc 2.43 removed them)');
    return out;
  }
  // pwndbg lists every fastbin size up to the default maximum, 0x80.
  for (let size = 0x20; size <= 0x80; size += 0x10) {
    const b = a.fastbins.find((f) => f.size === size);
    out.push(
      b === undefined ? `${hex(size)}: 0x0` : p.free(`${hex(size)}: `) + chain(p, b.chunks, false),
    );
  }
  for (const b of a.fastbins)
    if (b.size > 0x80) out.push(p.free(`${hex(b.size)}: `) + chain(p, b.chunks, false));
  return out;
}

function regularLines(title: string, bins: BinView[], p: Paint): string[] {
  const out = [p.title(title)];
  if (bins.length === 0) out.push('empty');
  for (const b of bins) {
    const sizes = [...new Set(b.chunks.map((c) => c.size))].map(hex).join(', ');
    out.push(p.free(`bin ${b.index} (${sizes}): `) + chain(p, b.chunks, false));
  }
  return out;
}

function binsText(v: HeapView, p: Paint): string[] {
  const out: string[] = [];
  for (const t of v.tcache) out.push(...tcacheLines(t, p));
  if (v.tcache.length === 0) out.push(p.title('tcachebins'), 'empty');
  const many = v.arenas.length > 1;
  for (const a of v.arenas) {
    if (many) out.push(p.title(`--- ${arenaName(a.arena)} ---`));
    out.push(...fastbinLines(v, a, p, false));
    out.push(p.title('unsortedbin'));
    out.push(a.unsorted.length === 0 ? 'all: 0x0' : p.free('all: ') + chain(p, a.unsorted, false));
    out.push(...regularLines('smallbins', a.smallbins, p));
    out.push(...regularLines('largebins', a.largebins, p));
  }
  return out;
}

function arenasText(v: HeapView, p: Paint): string[] {
  const out: string[] = [];
  for (const a of v.arenas) {
    out.push(p.title(arenaName(a.arena)));
    out.push(`  attached threads: ${a.threads}`);
    out.push(
      `  top: ${a.top === null ? '(none yet)' : `${p.addr(hex(a.top.addr))} size ${hex(a.top.size)} (${shortBytes(a.top.size)})`}`,
    );
    out.push(
      `  last_remainder: ${a.lastRemainder === null ? '0x0' : `${p.addr(hex(a.lastRemainder.addr))} size ${hex(a.lastRemainder.size)}`}`,
    );
    out.push(`  system_mem: ${hex(a.systemMem)} (${count(a.systemMem)} bytes)`);
    for (const h of a.heaps)
      out.push(
        `  heap ${h.heap}: ${p.addr(hex(h.start))}-${p.addr(hex(h.start + h.size))} (${shortBytes(h.size)} in use${a.arena > 0 ? `, ${shortBytes(h.mprotectSize)} accessible` : ''})`,
      );
    const free =
      a.fastbins.reduce((n, b) => n + b.chunks.length, 0) +
      a.unsorted.length +
      [...a.smallbins, ...a.largebins].reduce((n, b) => n + b.chunks.length, 0);
    out.push(`  free chunks in its bins: ${free}`);
  }
  return out;
}

/** A simulated /proc/self/maps, each mapping followed by smaps's Size, Rss and Anonymous. */
function mapsText(v: HeapView, p: Paint): string[] {
  const out: string[] = [];
  const kb = (n: number): string => `${String(Math.round(n / 1024)).padStart(8)} kB`;
  for (const m of v.maps) {
    const range = `${m.start.toString(16).padStart(12, '0')}-${m.end.toString(16).padStart(12, '0')}`;
    out.push(`${p.addr(range)} ${m.perms} 00000000 00:00 0${' '.repeat(26)}${m.name}`);
    out.push(`Size:           ${kb(m.size)}`);
    out.push(`Rss:            ${kb(m.rss)}`);
    out.push(`Anonymous:      ${kb(m.rss)}`);
  }
  if (out.length === 0) out.push('no mappings yet: malloc has not been called');
  return out;
}

/** The text of one view (ending in a newline). */
export function viewText(v: HeapView, which: ViewName, p: Paint): string {
  let lines: string[];
  switch (which) {
    case 'heap':
      lines = heapText(v, p);
      break;
    case 'chunks':
      lines = chunksText(v, p);
      break;
    case 'bins':
      lines = binsText(v, p);
      break;
    case 'tcache':
      lines = v.tcache.flatMap((t) => tcacheLines(t, p));
      if (lines.length === 0) lines = ['tcachebins', 'no tcache yet'];
      break;
    case 'fastbins':
      lines = v.arenas.flatMap((a) => fastbinLines(v, a, p, v.arenas.length > 1));
      break;
    case 'arenas':
      lines = arenasText(v, p);
      break;
    case 'maps':
      lines = mapsText(v, p);
      break;
  }
  return lines.join('\n') + '\n';
}
