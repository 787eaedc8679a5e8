/**
 * Symbols for the code addresses of call stacks: given the files the process had mapped
 * (`#:map` records, or an importer's module map) and return addresses, finds each address's
 * function, file and line, with the functions inlined there, by running a maintained symbolizer:
 * binutils' `addr2line`, or `llvm-symbolizer` in its GNU output style, once per file.
 *
 * Addresses are turned into the file's own addresses from the mapping the process had (so PIE
 * programs and shared libraries loaded anywhere are handled): the offset in the file, then the
 * virtual address of that offset in the file's loadable segments, read from its ELF program
 * headers. The address looked up is ADDR - 1, inside the call instruction (a return address is
 * the instruction after the call, which may belong to the next line, or the next function).
 */

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import type { MapRecord, SymFrame } from '../trace/types.js';

/** A file mapped executable into the process: [start, end) from file offset `offset`. */
export type Mapping = Pick<MapRecord, 'start' | 'end' | 'offset' | 'path'>;

/** A program that can symbolize, and how it was found. */
interface Symbolizer {
  command: string;
  args: string[];
}

let found: Symbolizer | null | undefined;

/** addr2line, or else llvm-symbolizer: the first that runs. null when neither does. */
export function findSymbolizer(): Symbolizer | null {
  if (found !== undefined) return found;
  const candidates: Symbolizer[] = [
    { command: process.env['PTSIM_ADDR2LINE'] ?? 'addr2line', args: ['-C', '-f', '-i', '-a'] },
    {
      command: 'llvm-symbolizer',
      args: ['--demangle', '--functions=linkage', '--inlines', '--addresses', '--output-style=GNU'],
    },
  ];
  found = null;
  for (const c of candidates) {
    const r = spawnSync(c.command, ['--version'], { stdio: 'ignore' });
    if (r.error === undefined && r.status === 0) {
      found = c;
      break;
    }
  }
  return found;
}

interface Segment {
  offset: number;
  vaddr: number;
  size: number;
}

/** The loadable segments of an ELF file (64-bit, little-endian), or null when it is not one. */
function loadSegments(path: string): Segment[] | null {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null;
  }
  try {
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64) return null;
    if (head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return null;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    if (phentsize < 56 || phnum === 0 || phnum > 4096) return null;
    const ph = Buffer.alloc(phentsize * phnum);
    if (readSync(fd, ph, 0, ph.length, phoff) < ph.length) return null;
    const out: Segment[] = [];
    for (let i = 0; i < phnum; i++) {
      const at = i * phentsize;
      if (ph.readUInt32LE(at) !== 1) continue; // PT_LOAD
      out.push({
        offset: Number(ph.readBigUInt64LE(at + 8)),
        vaddr: Number(ph.readBigUInt64LE(at + 16)),
        size: Number(ph.readBigUInt64LE(at + 32)),
      });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/**
 * The file offset of the loadable segment of `path` at virtual address `vaddr` (for importers
 * that know a module's segments by address); `vaddr` itself when the file cannot be read.
 */
export function segmentOffset(path: string, vaddr: number): number {
  const segments = loadSegments(path);
  const seg = segments?.find((sg) => vaddr >= sg.vaddr && vaddr < sg.vaddr + Math.max(sg.size, 1));
  return seg === undefined ? vaddr : vaddr - seg.vaddr + seg.offset;
}

/** The file's own address of process address `addr` in mapping m, or -1. */
function fileAddress(m: Mapping, segments: Segment[], addr: number): number {
  const off = addr - m.start + m.offset;
  for (const s of segments)
    if (off >= s.offset && off < s.offset + s.size) return off - s.offset + s.vaddr;
  return -1;
}

/**
 * What was looked up already, by file address and file: the traces of one recording (a forked
 * child's starts with its parent's; an exec'd program maps the same libraries elsewhere) share
 * most of their code, which is looked up once.
 */
const looked = new Map<string, SymFrame[]>();

/** `file:line` as the symbolizers print it, with ` (discriminator N)` and the like cut off. */
function position(text: string): { file: string; line: number } {
  const t = text.replace(/ \(discriminator \d+\)$/, '').trim();
  const colon = t.lastIndexOf(':');
  if (colon < 0) return { file: t === '' ? '??' : t, line: 0 };
  const line = Number(t.slice(colon + 1));
  const file = t.slice(0, colon);
  return { file: file === '' ? '??' : file, line: Number.isInteger(line) && line > 0 ? line : 0 };
}

/** Parses the output of `-a -f -i` for the queried addresses: each `0x...` line, then function/position pairs. */
function parseOutput(out: string, count: number): SymFrame[][] {
  const lines = out.split('\n');
  const result: SymFrame[][] = [];
  let cur: SymFrame[] | null = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^0x[0-9a-f]+$/i.test(l)) {
      cur = [];
      result.push(cur);
      continue;
    }
    if (cur === null || l === '') continue;
    const where = position(lines[i + 1] ?? '');
    cur.push({ fn: l.trim() === '' ? '??' : l.trim(), ...where });
    i++;
  }
  while (result.length < count) result.push([]);
  return result.slice(0, count);
}

/**
 * What each address is: a map from address to its frames (innermost first; `??` where nothing is
 * known). `mappingOf` says which mapping held an address when it was recorded (undefined: none).
 * Addresses in files that cannot be read are given `??`. Throws nothing: a symbolizer that fails
 * leaves its addresses unknown.
 */
export function symbolize(
  addresses: Iterable<number>,
  mappingOf: (addr: number) => Mapping | undefined,
): { symbols: Map<number, SymFrame[]>; symbolizer: string | null } {
  const symbols = new Map<number, SymFrame[]>();
  const unknown = (): SymFrame[] => [{ fn: '??', file: '??', line: 0 }];
  const byFile = new Map<string, Array<{ addr: number; m: Mapping }>>();
  for (const addr of addresses) {
    const m = mappingOf(addr);
    if (m === undefined) {
      symbols.set(addr, unknown());
      continue;
    }
    const list = byFile.get(m.path) ?? [];
    list.push({ addr, m });
    byFile.set(m.path, list);
  }
  const tool = findSymbolizer();
  for (const [path, list] of byFile) {
    const segments = tool === null ? null : loadSegments(path);
    const queried: Array<{ addr: number; at: number }> = [];
    for (const { addr, m } of list) {
      const at = segments === null ? -1 : fileAddress(m, segments, addr - 1);
      const known = at < 0 ? undefined : looked.get(`${at} ${path}`);
      if (at < 0) symbols.set(addr, unknown());
      else if (known !== undefined) symbols.set(addr, known);
      else queried.push({ addr, at });
    }
    if (queried.length === 0 || tool === null) continue;
    const r = spawnSync(tool.command, [...tool.args, '-e', path], {
      input: queried.map((q) => `0x${q.at.toString(16)}`).join('\n') + '\n',
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    });
    const frames =
      r.error === undefined && r.status === 0 ? parseOutput(r.stdout, queried.length) : [];
    queried.forEach((q, i) => {
      const f = frames[i];
      const found = f !== undefined && f.length > 0 ? f : unknown();
      symbols.set(q.addr, found);
      looked.set(`${q.at} ${path}`, found);
    });
  }
  return { symbols, symbolizer: tool === null ? null : tool.command };
}

/** A file path as a `#:sym` record writes it: percent-encoded blanks, `|` and `%`. */
function encodeFile(file: string): string {
  return file.replace(
    /[%|\s]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`,
  );
}

/** The `#:sym` record of one address. */
export function symLine(addr: number, frames: SymFrame[]): string {
  const parts = frames.map(
    (f) =>
      `${encodeFile(f.file)}:${f.line} ${
        f.fn
          .replace(/\s+\|\s/g, ' |')
          .replace(/\s+/g, ' ')
          .trim() || '??'
      }`,
  );
  return `#:sym 0x${addr.toString(16)} ${parts.join(' | ')}`;
}
