/**
 * The few pieces of Node's Buffer that the trace parser (src/trace/parser.ts) and the stored
 * trace (src/trace/event-store.ts) use, for the browser: the bundle (npm run build) injects
 * this module where they name `Buffer` and `node:buffer`. A Uint8Array with Buffer's methods of the same names and meanings; nothing else
 * of Node's Buffer is here.
 */

const utf8 = new TextDecoder('utf-8');
const encoder = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** The bytes, with Buffer's instance methods the parser uses. */
class Bytes extends Uint8Array {
  /** Copies this[s, e) into target at t; returns the bytes copied. */
  copy(target: Uint8Array, t = 0, s = 0, e = this.length): number {
    target.set(this.subarray(s, e), t);
    return e - s;
  }

  /** Bytes s..e as text (UTF-8 with replacement characters, or Latin-1). */
  override toString(encoding = 'utf8', s = 0, e = this.length): string {
    if (encoding === 'latin1') return this.latin1Slice(s, e);
    return utf8.decode(this.subarray(s, e));
  }

  /** Writes s as UTF-8 at offset t (the stored trace's texts: only UTF-8); returns the bytes. */
  write(s: string, t = 0): number {
    return encoder.encodeInto(s, this.subarray(t)).written;
  }

  /** Bytes s..e as Latin-1: one character a byte. */
  latin1Slice(s: number, e: number): string {
    let out = '';
    for (let i = s; i < e; i += 4096)
      out += String.fromCharCode(...this.subarray(i, Math.min(e, i + 4096)));
    return out;
  }
}

/** Buffer's static functions the parser uses. */
export const Buffer = {
  isBuffer: (v: unknown): boolean => v instanceof Bytes,
  allocUnsafe: (n: number): Bytes => new Bytes(n),
  of: (...bytes: number[]): Bytes => {
    const b = new Bytes(bytes.length);
    b.set(bytes);
    return b;
  },
  /** A view of the bytes (no copy), as Buffer.from(arrayBuffer, offset, length). */
  from: (buf: ArrayBuffer, offset: number, length: number): Bytes => new Bytes(buf, offset, length),
};

/** Whether the bytes are valid UTF-8. */
export function isUtf8(b: Uint8Array): boolean {
  try {
    strictUtf8.decode(b);
    return true;
  } catch {
    return false;
  }
}
