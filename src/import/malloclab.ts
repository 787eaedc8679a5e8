/**
 * CS:APP malloclab trace files (`.rep`), which the lab's driver replays against a student's
 * allocator. Four header lines, then one request a line:
 *
 *   20000        suggested heap size (unused by the driver)
 *   2            number of block ids
 *   5            number of requests
 *   1            weight
 *   a 0 512      allocate 512 bytes as block 0
 *   a 1 128
 *   r 0 640      reallocate block 0 to 640 bytes (it keeps its id)
 *   f 1          free block 1
 *   f 0
 *
 * Block ids become tokens `id0`, `id1`... (a bare number would read as a pointer, and 0 as NULL).
 * The header's counts are checked against the file: a file with fewer requests than announced
 * was cut short, which is reported. Everything is thread 1.
 */

import { NO_KEY } from '../trace/token-key.js';
import { NULL_TOKEN, Op } from '../trace/types.js';
import type { ImportCore } from './core.js';
import { LineImporter } from './importer.js';
import { lineShown } from './scan.js';

const HEADER = ['suggested heap size', 'number of ids', 'number of requests', 'weight'];

export class MalloclabImporter extends LineImporter {
  private readonly headerValues: number[] = [];
  private requests = 0;
  private lastLine = 0;
  /** Token texts of the ids seen, made once per id. */
  private readonly names: string[] = [];

  constructor(core: ImportCore, strict: boolean) {
    super(core, strict);
    core.header.facts.set('from', 'malloclab');
  }

  protected parse(b: Buffer, s: number, e: number, no: number): void {
    const sc = this.scan.set(b, s, e);
    sc.blanks();
    if (sc.atEnd()) return;
    this.lastLine = no;
    if (this.headerValues.length < HEADER.length) {
      const v = sc.dec();
      sc.blanks();
      if (v < 0 || !sc.atEnd()) {
        this.core.fail(
          no,
          `header line ${this.headerValues.length + 1} of a malloclab trace should be the ${HEADER[this.headerValues.length]} (one number), not '${lineShown(b, s, e)}'`,
        );
      }
      this.headerValues.push(v);
      if (this.headerValues.length === HEADER.length) {
        this.core.header.facts.set(
          'malloclab',
          `heap ${this.headerValues[0]} ids ${this.headerValues[1]} requests ${this.headerValues[2]} weight ${this.headerValues[3]}`,
        );
      }
      return;
    }
    const kind = sc.peek();
    sc.i++;
    if ((kind !== 0x61 && kind !== 0x72 && kind !== 0x66) || sc.blanks() === 0) {
      this.core.fail(
        no,
        `not a malloclab request: '${lineShown(b, s, e)}' (expected 'a ID BYTES', 'r ID BYTES' or 'f ID')`,
      );
    }
    const id = sc.dec();
    if (id < 0) this.core.fail(no, `block id expected at '${sc.rest()}'`);
    let bytes = 0;
    let exact: bigint | undefined;
    if (kind !== 0x66) {
      if (sc.blanks() === 0 || (bytes = this.size(sc.dec(), no)) < 0)
        this.core.fail(no, `size in bytes expected after the id in '${lineShown(b, s, e)}'`);
      exact = sc.exact;
    }
    sc.blanks();
    if (!sc.atEnd()) this.core.fail(no, `unexpected '${sc.rest()}' at the end of the request`);
    this.requests++;
    const ids = this.headerValues[1]!;
    if (id >= ids)
      this.core.warn(
        no,
        'id out of range',
        `block id ${id} is not below the header's number of ids (${ids})`,
      );

    const name = this.names[id] ?? (this.names[id] = `id${id}`);
    const c = this.core.call;
    c.tid = 1;
    c.line = no;
    c.time = -1;
    c.n2 = 0;
    c.n1 = bytes;
    c.exact1 = exact;
    if (kind === 0x61) {
      c.op = Op.malloc;
      c.inKey = 0;
      c.inText = NULL_TOKEN;
      c.outKey = NO_KEY;
      c.outText = name;
    } else if (kind === 0x72) {
      c.op = Op.realloc;
      c.inKey = NO_KEY;
      c.inText = name;
      c.outKey = NO_KEY;
      c.outText = name;
    } else {
      c.op = Op.free;
      c.inKey = NO_KEY;
      c.inText = name;
      c.outKey = 0;
      c.outText = NULL_TOKEN;
    }
    this.core.submit();
  }

  protected override flush(): void {
    if (this.headerValues.length < HEADER.length) {
      if (this.lastLine > 0 || this.headerValues.length > 0)
        this.core.warn(
          this.lastLine,
          'incomplete header',
          `the file ends inside the four header lines of a malloclab trace (cut short?)`,
          true,
        );
      return;
    }
    const announced = this.headerValues[2]!;
    if (this.requests < announced) {
      this.core.warn(
        this.lastLine,
        'fewer requests',
        `the header announces ${announced} requests but the file has ${this.requests} (cut short?)`,
        true,
      );
    } else if (this.requests > announced) {
      this.core.warn(
        this.lastLine,
        'more requests',
        `the header announces ${announced} requests but the file has ${this.requests}`,
      );
    }
  }
}
