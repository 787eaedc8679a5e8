/**
 * The frame of a binary trace (binary.ts; docs/trace-format.md, "The binary form"), and its end
 * found in the file's last bytes: what ptsim's executable looks at before it loads anything else
 * (cli/huge-pages.ts reads those bytes), so this module stays small and imports nothing (the
 * visualizer's page, which reads binary traces too, has no file functions).
 *
 *     file := MAGIC (8 bytes) version:u32 0:u32 block* end
 *     end  := 2:u32 length:u32 JSON {events, lines, peakLive}
 */

/** The first bytes of a binary trace: not text (0x89), then `ptsim`, CR LF (caught if mangled). */
export const BINARY_MAGIC = Uint8Array.of(0x89, 0x70, 0x74, 0x73, 0x69, 0x6d, 0x0d, 0x0a);
export const FILE_HEADER = 16;
export const BLOCK_EVENTS_KIND = 1;
export const BLOCK_END_KIND = 2;
export const BLOCK_HEADER = 8;

/** Whether `bytes` start like a binary trace. */
export function isBinaryTrace(bytes: Uint8Array): boolean {
  if (bytes.length < BINARY_MAGIC.length) return false;
  for (let i = 0; i < BINARY_MAGIC.length; i++) if (bytes[i] !== BINARY_MAGIC[i]) return false;
  return true;
}

/** What the end block says. */
export interface BinaryEnd {
  events: number;
  lines: number;
  /**
   * The most tokens live at once: the numbers the numbering rule gave (a number is new only when
   * every lower one is held). Absent from files written before it was kept.
   */
  peakLive?: number;
}

/**
 * The end block that `tail` (a file's last bytes) finishes with, or null. Not a check of the file:
 * the reader checks what it reads.
 */
export function endIn(tail: Uint8Array): BinaryEnd | null {
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.length);
  // The end block's header is the one whose length reaches exactly the last byte.
  for (let p = tail.length - BLOCK_HEADER - 2; p >= 0; p--) {
    if (dv.getUint32(p, true) !== BLOCK_END_KIND) continue;
    if (dv.getUint32(p + 4, true) !== tail.length - p - BLOCK_HEADER) continue;
    try {
      const json: unknown = JSON.parse(new TextDecoder().decode(tail.subarray(p + BLOCK_HEADER)));
      if (json === null || typeof json !== 'object') return null;
      const o = json as Record<string, unknown>;
      if (!isCount(o['events']) || !isCount(o['lines'])) return null;
      const end: BinaryEnd = { events: o['events'], lines: o['lines'] };
      if (isCount(o['peakLive'])) end.peakLive = o['peakLive'];
      return end;
    } catch {
      return null;
    }
  }
  return null;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
