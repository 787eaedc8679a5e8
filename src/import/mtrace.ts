/**
 * glibc's mtrace log (MALLOC_TRACE), as glibc's malloc/mtrace-impl.c writes it.
 *
 * Each record is one line, optionally preceded by where the call came from:
 *
 *   = Start                                   tracing began (mtrace()); `= End` when muntrace() ran
 *   @ ./a.out:(main+0x1e)[0x555555555169] + 0x5555555592a0 0x10    glibc <= 2.33: symbol+offset, absolute address
 *   @ ./a.out:(main+1e)[0x1169] + 0x5555555592a0 0x10              glibc >= 2.34: offset without 0x, address in the object
 *   @ [0x7f...] - 0x5555555592a0              the caller could not be named
 *   + PTR SIZE        an allocation (malloc, calloc, the memalign family, realloc from NULL)
 *   - PTR             a free (also realloc to size 0)
 *   < OLD             a realloc that succeeded, always followed at once by:
 *   > NEW SIZE
 *   ! OLD SIZE        a realloc that failed
 *
 * PTR is printed with %p (`(nil)` for NULL), SIZE with %#lx (`0x10`, and `0` for zero).
 *
 * What the format cannot say: calloc and the memalign family look like malloc, so they import as
 * malloc of the same size; there are no threads (everything is thread 1); allocations made by
 * glibc itself and before mtrace() was called are missing, so frees of them at exit (glibc's
 * __libc_freeres) are reported as frees of pointers never seen, and skipped.
 *
 * The record is read from the end of the line: the caller prefix ends in `] ` in every style, but
 * a file name may contain anything. The caller becomes a call stack of one frame (the address
 * mtrace printed is a return address): each distinct caller a `#:stack` record, with a `#:sym`
 * record naming the function it printed (or the caller as written, when it names none); no file
 * or line, which mtrace does not print (the object it names stands as the file, at line 0). Its addresses are not those of the process (in glibc 2.34
 * and later they are offsets in the object), so each distinct caller gets a made-up address.
 */

import { NO_KEY } from '../trace/token-key.js';
import { NULL_TOKEN, Op } from '../trace/types.js';
import type { ImportCore } from './core.js';
import { LineImporter } from './importer.js';
import { lineShown } from './scan.js';
import { functionOf, ImportedStacks } from './stacks.js';

/** `FILE:(SYMBOL+OFFSET)[ADDR]`, `FILE:[ADDR]`, `[ADDR]`: the caller of an mtrace record. */
const CALLER = /^(?:(.*?):)?(?:\(([^()]*)\))?\[(0x[0-9a-fA-F]+)\]$/;
/** Where the made-up addresses of callers start, and their spacing. */
const CALLER_BASE = 0x10000000;
const CALLER_STEP = 0x10;

/** Record characters. */
const PLUS = 0x2b;
const MINUS = 0x2d;
const LT = 0x3c;
const GT = 0x3e;
const BANG = 0x21;
const EQ = 0x3d;
const AT = 0x40;

export class MtraceImporter extends LineImporter {
  /** Start and end of the last three blank-separated fields of the line. */
  private readonly f = new Int32Array(6);
  /** The `<` line waiting for its `>`: its line number (0: none) and pointer. */
  private openLine = 0;
  private openKey = 0;
  private openText = NULL_TOKEN;
  /** The stack of the `<` record's caller. */
  private openSite = -1;
  private readonly stacks: ImportedStacks;
  private readonly callers = new Map<string, number>();

  constructor(core: ImportCore, strict: boolean) {
    super(core, strict);
    core.header.facts.set('from', 'mtrace');
    this.stacks = new ImportedStacks(core);
  }

  /** The stack of the caller written b[s, e) (after `@`), -1 when there is none. */
  private caller(b: Buffer, s: number, e: number): number {
    const text = b.toString('utf8', s, e).trim();
    if (text === '') return -1;
    let id = this.callers.get(text);
    if (id === undefined) {
      const addr = CALLER_BASE + CALLER_STEP * this.callers.size;
      const m = CALLER.exec(text);
      const fn = m !== null && m[2] !== undefined ? functionOf(m[2]) : '';
      const file = m?.[1] ?? '';
      // The object stands as the file, at line 0 (unknown).
      this.stacks.name(addr, [
        { fn: fn !== '' ? fn : text, file: file !== '' ? file : '??', line: 0 },
      ]);
      id = this.stacks.stack([addr], text);
      this.callers.set(text, id);
    }
    return id;
  }

  protected parse(b: Buffer, s: number, e: number, no: number): void {
    while (s < e && (b[s] === 0x20 || b[s] === 0x09)) s++;
    if (s === e) return;
    if (b[s] === EQ) {
      // `= Start` and `= End` mark where tracing was switched on and off.
      if (this.openLine > 0) this.unpaired(no);
      return;
    }
    const n = this.fields(b, s, e);
    const f = this.f;
    let form = 0;
    let fieldStart = 0;
    if (
      n === 3 &&
      f[1]! - f[0]! === 1 &&
      (b[f[0]!] === PLUS || b[f[0]!] === GT || b[f[0]!] === BANG)
    ) {
      form = b[f[0]!]!;
      fieldStart = f[0]!;
    } else if (n >= 2 && f[3]! - f[2]! === 1 && (b[f[2]!] === MINUS || b[f[2]!] === LT)) {
      form = b[f[2]!]!;
      fieldStart = f[2]!;
    }
    if (form === 0)
      this.core.fail(
        no,
        `not an mtrace record: '${lineShown(b, s, e)}' (expected '+ PTR SIZE', '- PTR', '< PTR', '> PTR SIZE' or '! PTR SIZE', after an optional '@ caller')`,
      );
    if (fieldStart > s && b[s] !== AT)
      this.core.fail(
        no,
        `unexpected text before the record: '${lineShown(b, s, fieldStart)}' (a caller is written '@ ...')`,
      );

    const scan = this.scan;
    const three = form === PLUS || form === GT || form === BANG;
    scan.set(b, three ? f[2]! : f[4]!, three ? f[3]! : f[5]!);
    if (!scan.ptr(true) || !scan.atEnd())
      this.core.fail(
        no,
        `'${lineShown(b, scan.i, scan.e)}' is not a pointer (expected 0x... or (nil))`,
      );
    const key = scan.key;
    const text = scan.text;
    let size = 0;
    let exact: bigint | undefined;
    if (three) {
      scan.set(b, f[4]!, f[5]!);
      size = this.size(scan.num(), no);
      exact = scan.exact;
      if (size < 0 || !scan.atEnd())
        this.core.fail(no, `'${lineShown(b, f[4]!, f[5]!)}' is not a size`);
    }

    if (this.openLine > 0 && form !== GT) this.unpaired(no);
    const c = this.core.call;
    c.tid = 1;
    c.line = no;
    c.time = -1;
    c.n2 = 0;
    c.site = fieldStart > s ? this.caller(b, s + 1, fieldStart) : -1;
    switch (form) {
      case PLUS:
        c.op = Op.malloc;
        c.n1 = size;
        c.exact1 = exact;
        this.tokens(0, NULL_TOKEN, key, text);
        break;
      case MINUS:
        if (key === 0) return; // glibc never logs free(NULL); nothing to replay either way
        c.op = Op.free;
        c.n1 = 0;
        this.tokens(key, text, 0, NULL_TOKEN);
        break;
      case LT:
        if (key === 0)
          this.core.fail(no, "a '<' record needs the pointer being reallocated, not NULL");
        this.openLine = no;
        this.openKey = key;
        this.openText = key === NO_KEY ? text : NULL_TOKEN;
        this.openSite = c.site;
        return;
      case GT:
        if (this.openLine === 0)
          this.core.fail(no, "a '>' record (realloc's new block) without the '<' record before it");
        if (key === 0)
          this.core.fail(no, "a '>' record with a NULL block (a failed realloc is written '!')");
        c.op = Op.realloc;
        c.n1 = size;
        c.exact1 = exact;
        this.tokens(this.openKey, this.openText, key, text);
        c.line = this.openLine;
        c.site = this.openSite;
        this.openLine = 0;
        break;
      case BANG:
        c.op = Op.realloc;
        c.n1 = size;
        c.exact1 = exact;
        this.tokens(key, text, 0, NULL_TOKEN);
        break;
    }
    this.core.submit();
  }

  protected override flush(): void {
    if (this.openLine > 0) {
      this.core.warn(
        this.openLine,
        'incomplete last line',
        "the log ends after a realloc's '<' record, without its '>' record (cut short?): the realloc is ignored",
        true,
      );
      this.openLine = 0;
    }
  }

  private tokens(inKey: number, inText: string, outKey: number, outText: string): void {
    const c = this.core.call;
    c.inKey = inKey;
    c.inText = inText;
    c.outKey = outKey;
    c.outText = outText;
  }

  private unpaired(no: number): never {
    this.core.fail(
      no,
      `the realloc at line ${this.openLine} ('<' record) is not followed by its '>' record`,
    );
  }

  /**
   * Finds the last three blank-separated fields of b[s, e), last field first in f[4..5]:
   * f[0..1] is the third from the end, f[2..3] the second, f[4..5] the last. Returns how many
   * fields the line has, counted up to 3 (only the fields found are set).
   */
  private fields(b: Buffer, s: number, e: number): number {
    const f = this.f;
    let n = 0;
    let i = e;
    while (n < 3) {
      while (i > s && (b[i - 1] === 0x20 || b[i - 1] === 0x09)) i--;
      if (i === s) break;
      const end = i;
      while (i > s && b[i - 1] !== 0x20 && b[i - 1] !== 0x09) i--;
      const k = 2 - n;
      f[2 * k] = i;
      f[2 * k + 1] = end;
      n++;
    }
    return n;
  }
}
