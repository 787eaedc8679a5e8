/**
 * Firefox's logalloc logs (memory/replace/logalloc: MALLOC_LOG=file), raw or munged.
 *
 * Each line is `PID TID FUNCTION(ARGS)[=RESULT]` (early versions had no TID):
 *
 *   18545 18545 malloc(32)=0x7f90495120e0
 *   18545 18545 calloc(1,148)=0x7f9049537480
 *   18545 18545 realloc(0x7f90495120e0,64)=0x7f9049536680
 *   18545 18545 posix_memalign(256,240)=0x7f9049583300
 *   18545 18545 jemalloc_stats()
 *   18545 18545 free(0x7f9049536680)
 *
 * logalloc_munge.py rewrites pointers as slot numbers (`#1`), reused once freed, and pids and tids
 * as small numbers; both forms import the same way (a `#n` slot is a token by its text).
 *
 * posix_memalign, aligned_alloc and memalign import as memalign; valloc as valloc. Other functions
 * (jemalloc_stats, ...) are counted and skipped. A log may hold several processes writing to one
 * file: one is imported, the one given by `pid` (as written in the log) or else the first seen,
 * and the lines of the others are counted. Thread ids, pthread_self() values in raw logs, become
 * 1, 2, 3... in order of appearance.
 */

import { NO_KEY } from '../trace/token-key.js';
import { NULL_TOKEN, Op, type OpCode } from '../trace/types.js';
import type { ImportCore } from './core.js';
import { LineImporter } from './importer.js';
import { lineShown } from './scan.js';
import { ThreadNumbers } from './threads.js';

/** How each known function imports: its operation, and its arguments (p: pointer, n: number). */
const FUNCTIONS: ReadonlyMap<string, { op: OpCode; args: string; result: boolean }> = new Map([
  ['malloc', { op: Op.malloc, args: 'n', result: true }],
  ['calloc', { op: Op.calloc, args: 'nn', result: true }],
  ['realloc', { op: Op.realloc, args: 'pn', result: true }],
  ['posix_memalign', { op: Op.memalign, args: 'nn', result: true }],
  ['aligned_alloc', { op: Op.memalign, args: 'nn', result: true }],
  ['memalign', { op: Op.memalign, args: 'nn', result: true }],
  ['valloc', { op: Op.valloc, args: 'n', result: true }],
  ['pvalloc', { op: Op.pvalloc, args: 'n', result: true }],
  ['free', { op: Op.free, args: 'p', result: false }],
]);

const HASH = 0x23;
const LPAREN = 0x28;
const RPAREN = 0x29;
const COMMA = 0x2c;
const EQUALS = 0x3d;

export interface LogallocOptions {
  /** The process to import, as its pid is written in the log; default: the first one seen. */
  pid?: number;
}

export class LogallocImporter extends LineImporter {
  private pid: number;
  private readonly threads = new ThreadNumbers();
  private readonly otherPids = new Set<number>();
  /** Argument values of the current line (numbers) and its pointer (key and text). */
  private readonly nums = [0, 0];
  /** The numbers above 2^53 exactly (Scan.exact), beside nums. */
  private readonly exacts: Array<bigint | undefined> = [undefined, undefined];
  private pKey = 0;
  private pText = NULL_TOKEN;

  constructor(core: ImportCore, strict: boolean, opts: LogallocOptions = {}) {
    super(core, strict);
    this.pid = opts.pid ?? -1;
    core.header.facts.set('from', 'logalloc');
    if (this.pid >= 0) core.header.facts.set('pid', String(this.pid));
  }

  protected parse(b: Buffer, s: number, e: number, no: number): void {
    const sc = this.scan.set(b, s, e);
    sc.blanks();
    if (sc.atEnd()) return;
    const pid = sc.dec();
    if (pid < 0 || sc.blanks() === 0)
      this.core.fail(
        no,
        `not a logalloc line: '${lineShown(b, s, e)}' (expected 'PID TID FUNCTION(ARGS)=RESULT')`,
      );
    let tid = pid;
    const c0 = sc.peek();
    if (c0 >= 0x30 && c0 <= 0x39) {
      tid = sc.dec();
      if (sc.blanks() === 0)
        this.core.fail(
          no,
          `not a logalloc line: '${lineShown(b, s, e)}' (expected 'PID TID FUNCTION(ARGS)=RESULT')`,
        );
    }
    const nameStart = sc.i;
    while (!sc.atEnd()) {
      const c = sc.peek();
      if (!(
        (c >= 0x61 && c <= 0x7a) ||
        (c >= 0x41 && c <= 0x5a) ||
        (c >= 0x30 && c <= 0x39) ||
        c === 0x5f
      ))
        break;
      sc.i++;
    }
    const nameEnd = sc.i;
    if (nameEnd === nameStart || !sc.eat(LPAREN))
      this.core.fail(
        no,
        `not a logalloc line: '${lineShown(b, s, e)}' (expected 'PID TID FUNCTION(ARGS)=RESULT')`,
      );

    if (this.pid < 0) {
      this.pid = pid;
      this.core.header.facts.set('pid', String(pid));
    }
    if (pid !== this.pid) {
      this.core.skip('calls of other processes');
      if (this.otherPids.size < 1000) this.otherPids.add(pid);
      return;
    }
    const fn = FUNCTIONS.get(this.nameOf(b, nameStart, nameEnd));
    if (fn === undefined) {
      this.core.skip(`function ${b.toString('latin1', nameStart, nameEnd)}`);
      return;
    }

    // The arguments.
    const spec = fn.args;
    let ni = 0;
    for (let k = 0; k < spec.length; k++) {
      if (k > 0 && !sc.eat(COMMA))
        this.core.fail(no, `${spec.length} arguments expected in '${lineShown(b, s, e)}'`);
      sc.blanks();
      if (spec[k] === 'p') {
        if (!this.pointer(no, b, s, e)) this.core.fail(no, `pointer expected at '${sc.rest()}'`);
        this.pKey = sc.key;
        this.pText = sc.text;
      } else {
        const v = this.size(sc.num(), no, 'argument');
        if (v < 0) this.core.fail(no, `number expected at '${sc.rest()}'`);
        this.exacts[ni] = sc.exact;
        this.nums[ni++] = v;
      }
      sc.blanks();
    }
    if (!sc.eat(RPAREN))
      this.core.fail(
        no,
        `')' expected at '${sc.rest()}' (${spec.length} argument${spec.length === 1 ? '' : 's'} for ${b.toString('latin1', nameStart, nameEnd)})`,
      );
    let outKey = 0;
    let outText = NULL_TOKEN;
    if (fn.result) {
      if (!sc.eat(EQUALS))
        this.core.fail(no, `'=RESULT' expected after the call: '${lineShown(b, s, e)}'`);
      if (!this.pointer(no, b, s, e))
        this.core.fail(no, `pointer expected as the result at '${sc.rest()}'`);
      outKey = sc.key;
      outText = sc.text;
    }
    sc.blanks();
    if (!sc.atEnd()) this.core.fail(no, `unexpected '${sc.rest()}' at the end of the line`);

    const c = this.core.call;
    c.op = fn.op;
    c.tid = this.threads.of(tid);
    c.line = no;
    c.time = -1;
    const nums = this.nums;
    switch (fn.op) {
      case Op.free:
        c.n1 = 0;
        c.n2 = 0;
        break;
      case Op.realloc:
      case Op.malloc:
      case Op.valloc:
      case Op.pvalloc:
        c.n1 = nums[0]!;
        c.n2 = 0;
        c.exact1 = this.exacts[0];
        break;
      default: // calloc NMEMB SIZE, memalign ALIGN SIZE
        c.n1 = nums[0]!;
        c.n2 = nums[1]!;
        c.exact1 = this.exacts[0];
        c.exact2 = this.exacts[1];
    }
    if (fn.op === Op.free || fn.op === Op.realloc) {
      c.inKey = this.pKey;
      c.inText = this.pText;
    } else {
      c.inKey = 0;
      c.inText = NULL_TOKEN;
    }
    c.outKey = outKey;
    c.outText = outText;
    this.core.submit();
  }

  protected override flush(): void {
    if (this.otherPids.size > 0) {
      const pids = [...this.otherPids].slice(0, 10).join(', ');
      this.core.warn(
        0,
        'other processes',
        `${this.core.skipped['calls of other processes']} calls of other processes (pid ${pids}${this.otherPids.size > 10 ? ', ...' : ''}) were left out; this import is of pid ${this.pid} (choose another with --pid)`,
      );
    }
  }

  /** A raw pointer (0x..., (nil)) or a munged slot (#n), into scan.key and scan.text. */
  private pointer(no: number, b: Buffer, s: number, e: number): boolean {
    const sc = this.scan;
    if (sc.peek() === HASH) {
      const start = sc.i;
      sc.i++;
      if (sc.dec() < 0)
        this.core.fail(no, `slot number expected after '#' in '${lineShown(b, s, e)}'`);
      sc.key = NO_KEY;
      sc.text = sc.textFrom(start);
      return true;
    }
    return sc.ptr(true);
  }

  /**
   * The function name as a string. The three names that make up nearly every line are recognised
   * from the bytes, without making a string for each line.
   */
  private nameOf(b: Buffer, s: number, e: number): string {
    for (const name of FREQUENT) if (bytesAre(b, s, e, name)) return name;
    return b.toString('latin1', s, e);
  }
}

const FREQUENT = ['malloc', 'free', 'realloc'];

function bytesAre(b: Buffer, s: number, e: number, t: string): boolean {
  if (e - s !== t.length) return false;
  for (let k = 0; k < t.length; k++) if (b[s + k] !== t.charCodeAt(k)) return false;
  return true;
}
