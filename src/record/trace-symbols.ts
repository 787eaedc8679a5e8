/**
 * Symbolizes a recorded trace once, at the end of the recording: reads its `#:map` and `#:stack`
 * records, finds the symbols of every address of every stack (import/symbolize.ts), and writes
 * them into the trace as `#:sym` records, just before its final `# end` line (or at its end when
 * it has none), so that the trace carries its symbols wherever it goes.
 */

import {
  createReadStream,
  closeSync,
  fstatSync,
  ftruncateSync,
  openSync,
  readSync,
  writeSync,
} from 'node:fs';
import { createInterface } from 'node:readline';
import { symbolize, symLine, type Mapping } from '../import/symbolize.js';

export interface SymbolizeResult {
  stacks: number;
  addresses: number;
  /** Addresses for which no function was found. */
  unknown: number;
  /** The program used, or null when none was found. */
  symbolizer: string | null;
}

/** The last line of the file and where it starts (the file is plain text). */
function lastLine(fd: number, size: number): { text: string; start: number } {
  const n = Math.min(size, 4096);
  const b = Buffer.alloc(n);
  readSync(fd, b, 0, n, size - n);
  const s = b.toString('latin1');
  const body = s.endsWith('\n') ? s.slice(0, -1) : s;
  const nl = body.lastIndexOf('\n');
  return { text: body.slice(nl + 1), start: size - n + nl + 1 };
}

/** Adds `#:sym` records for every stack address of the plain-text trace at `path`. */
export async function symbolizeTrace(path: string): Promise<SymbolizeResult> {
  // Each address is looked up in the mapping that held it when its stack was recorded.
  const maps: Mapping[] = [];
  const owner = new Map<number, Mapping | undefined>();
  let stacks = 0;
  const lines = createInterface({
    input: createReadStream(path, { encoding: 'utf8' }),
    crlfDelay: Infinity,
  });
  for await (const line of lines) {
    if (!line.startsWith('#:')) continue;
    if (line.startsWith('#:map ')) {
      const m = /^#:map (0x[0-9a-f]+) (0x[0-9a-f]+) (0x[0-9a-f]+) (.+)$/.exec(line);
      if (m !== null)
        maps.push({
          start: parseInt(m[1]!, 16),
          end: parseInt(m[2]!, 16),
          offset: parseInt(m[3]!, 16),
          path: m[4]!,
        });
    } else if (line.startsWith('#:stack ')) {
      stacks++;
      for (const a of line.split(' ').slice(2)) {
        const addr = parseInt(a, 16);
        if (owner.has(addr)) continue;
        let found: Mapping | undefined;
        for (let i = maps.length - 1; i >= 0; i--) {
          const m = maps[i]!;
          if (addr - 1 >= m.start && addr - 1 < m.end) {
            found = m;
            break;
          }
        }
        owner.set(addr, found);
      }
    }
  }
  if (stacks === 0) return { stacks, addresses: 0, unknown: 0, symbolizer: null };
  const { symbols, symbolizer } = symbolize(owner.keys(), (a) => owner.get(a));
  let unknown = 0;
  const out: string[] = [];
  for (const [addr, frames] of [...symbols].sort((a, b) => a[0] - b[0])) {
    if (frames.every((f) => f.fn === '??')) unknown++;
    out.push(symLine(addr, frames));
  }
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    const last = lastLine(fd, size);
    const text = out.join('\n') + '\n';
    if (/^# end \d+ events/.test(last.text)) {
      ftruncateSync(fd, last.start);
      writeSync(fd, text + last.text + '\n', last.start);
    } else {
      writeSync(fd, text, size);
    }
  } finally {
    closeSync(fd);
  }
  return { stacks, addresses: symbols.size, unknown, symbolizer };
}
