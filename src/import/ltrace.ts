/**
 * ltrace output, as villoc reads it: one library call per line, with what it returned.
 *
 *   malloc(24)                                  = 0x5555555592a0
 *   free(0x5555555592a0)                        = <void>
 *   a.out->calloc(4, 100)                       = 0x5555555596c0      (ltrace -e names the caller)
 *   4242 realloc(0x5555555592a0, 200)           = 0x555555559ae0      (ltrace -f -o FILE: the pid first)
 *   [pid 4243] malloc(10 <unfinished ...>                             (ltrace -f to the terminal)
 *   [pid 4242] free(0x555555559ae0)             = <void>
 *   [pid 4243] <... malloc resumed> )           = 0x7ffff0000b70
 *
 * Also accepted before the call, after the pid: a timestamp (`-t`/`-tt`: `12:34:56.123456`,
 * `-ttt`: `1700000000.123456`, `-r`: seconds since the previous line) and an instruction pointer
 * (`-i`: `[0x401136]`); and after the result a duration (`-T`: `<0.000123>`). Timestamps become
 * event times, in nanoseconds from the first line that has one.
 *
 * Imported: malloc, calloc, realloc, free, memalign, aligned_alloc, valloc, pvalloc, and C++'s
 * operator new and delete under their mangled names (_Znwm, _Znam, _ZdlPv, _ZdaPv and the sized
 * and nothrow variants), which ltrace shows instead of the malloc they call. Everything else
 * (other functions, system calls, signals, exits) is counted and skipped; so is posix_memalign,
 * whose block ltrace does not show (it is stored through a pointer argument), and a reallocarray
 * whose size overflows (glibc fails it before calling realloc).
 *
 * A call split by `<unfinished ...>` is imported where it is resumed, when it returned: that is
 * when an allocation's address is known. A free resumed after another thread got its address back
 * is a late free, which the core moves back where it belongs. Each pid becomes a thread (ltrace
 * -f follows threads and child processes alike and cannot tell them apart), numbered 1, 2, 3...
 * in order of appearance.
 *
 * With `-w N`, ltrace follows each call's line with up to N lines of its stack, innermost first:
 *
 *   malloc(24)                                  = 0x5555555592a0
 *    > /usr/lib/x86_64-linux-gnu/libc.so.6(malloc+0) [0x7ffff7e5d6a0]
 *    > /tmp/a.out(xmalloc+0x12) [0x5555555551d2]
 *    > /tmp/a.out(main+0x2f) [0x55555555509f]
 *
 * The frames become the call's stack (a `#:stack` record per distinct stack, a `#:sym` record
 * naming the function of each address, with the object as its file at line 0: ltrace prints no
 * file or line), the frames of the called function itself (malloc+0, above) left out. A call is
 * therefore handed on only when the next line that is not a frame is read.
 */

import { NULL_TOKEN, Op, type OpCode } from '../trace/types.js';
import type { ImportCore } from './core.js';
import { LineImporter } from './importer.js';
import { lineShown } from './scan.js';
import { Call } from './core.js';
import { functionOf, ImportedStacks } from './stacks.js';
import { ThreadNumbers } from './threads.js';

/** size_t's largest value. */
const SIZE_MAX = (1n << 64n) - 1n;

/** ` > OBJECT(FUNCTION+OFFSET) [ADDRESS]`, as ltrace -w writes a frame (the address with or without 0x). */
const FRAME = /^\s*>\s+(.*?)\(([^()]*)\)\s*\[(?:0x)?([0-9a-fA-F]+)\]\s*$/;

/** How each imported function maps to an operation: its arguments (p: pointer, n: number, x: ignored). */
const FUNCTIONS: ReadonlyMap<string, { op: OpCode; args: string }> = new Map([
  ['malloc', { op: Op.malloc, args: 'n' }],
  ['calloc', { op: Op.calloc, args: 'nn' }],
  ['realloc', { op: Op.realloc, args: 'pn' }],
  ['reallocarray', { op: Op.realloc, args: 'pnn' }],
  ['free', { op: Op.free, args: 'p' }],
  ['memalign', { op: Op.memalign, args: 'nn' }],
  ['aligned_alloc', { op: Op.memalign, args: 'nn' }],
  ['valloc', { op: Op.valloc, args: 'n' }],
  ['pvalloc', { op: Op.pvalloc, args: 'n' }],
  // operator new(size_t), new[](size_t), and their nothrow forms (the second argument ignored)
  ['_Znwm', { op: Op.malloc, args: 'n' }],
  ['_Znam', { op: Op.malloc, args: 'n' }],
  ['_ZnwmRKSt9nothrow_t', { op: Op.malloc, args: 'nx' }],
  ['_ZnamRKSt9nothrow_t', { op: Op.malloc, args: 'nx' }],
  // operator delete(void*), delete[](void*), and their sized forms
  ['_ZdlPv', { op: Op.free, args: 'p' }],
  ['_ZdaPv', { op: Op.free, args: 'p' }],
  ['_ZdlPvm', { op: Op.free, args: 'px' }],
  ['_ZdaPvm', { op: Op.free, args: 'px' }],
]);

/** Functions whose result ptsim cannot know from ltrace's line. */
const UNUSABLE: ReadonlyMap<string, string> = new Map([
  ['posix_memalign', 'posix_memalign (ltrace does not show the block it stores)'],
]);

/** A call left unfinished: its name and the arguments written so far, by thread. */
interface Unfinished {
  name: string;
  args: string;
  line: number;
}

export class LtraceImporter extends LineImporter {
  private readonly threads = new ThreadNumbers();
  private readonly unfinished = new Map<number, Unfinished>();
  private readonly nums = [0, 0, 0];
  /** The numbers above 2^53 exactly (Scan.exact), beside nums. */
  private readonly exacts: Array<bigint | undefined> = [undefined, undefined, undefined];
  /** Timestamps: the first one seen (whole seconds and ns), the running sum of `-r`, the style. */
  private t0Whole = NaN;
  private t0Frac = 0;
  private relNs = 0;
  private lastClock = -1;
  private days = 0;
  private clockKind: 'none' | 'clock' | 'epoch' | 'relative' = 'none';
  /** The last call read, held until the lines of its stack (ltrace -w) have been read. */
  private held: Call | null = null;
  private heldName = '';
  private readonly heldFrames: number[] = [];
  private readonly spare = new Call();
  private readonly stacks: ImportedStacks;

  constructor(core: ImportCore, strict: boolean) {
    super(core, strict);
    core.header.facts.set('from', 'ltrace');
    this.stacks = new ImportedStacks(core);
  }

  /** A ` > ...` line: a frame of the stack of the call before it. Returns false for any other line. */
  private frame(b: Buffer, s: number, e: number, no: number): boolean {
    if (b[s] !== 0x3e && !(b[s] === 0x20 || b[s] === 0x09)) return false;
    let i = s;
    while (i < e && (b[i] === 0x20 || b[i] === 0x09)) i++;
    if (b[i] !== 0x3e || (b[i + 1] !== 0x20 && b[i + 1] !== 0x09)) return false;
    const m = FRAME.exec(b.toString('utf8', s, e));
    if (m === null)
      this.core.fail(
        no,
        `malformed stack frame '${lineShown(b, s, e)}' (ltrace -w writes ' > OBJECT(FUNCTION+OFFSET) [ADDRESS]')`,
      );
    const held = this.held;
    if (held === null) return true; // the stack of a call that is not imported
    const fn = functionOf(m[2]!);
    // The called function's own frame (ltrace stops at its entry) is not a caller.
    if (this.heldFrames.length === 0 && (fn === this.heldName || fn === '')) return true;
    const addr = parseInt(m[3]!, 16);
    this.heldFrames.push(addr);
    this.stacks.name(addr, [{ fn: fn !== '' ? fn : '??', file: m[1]!.trim() || '??', line: 0 }]);
    return true;
  }

  /** Hands the held call on, with its stack. */
  private release(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    const c = this.core.call;
    c.copyFrom(held);
    c.site = this.heldFrames.length > 0 ? this.stacks.stack(this.heldFrames) : -1;
    this.heldFrames.length = 0;
    this.core.submit();
  }

  protected parse(b: Buffer, s: number, e: number, no: number): void {
    if (this.frame(b, s, e, no)) return;
    this.release();
    const sc = this.scan.set(b, s, e);
    sc.blanks();
    if (sc.atEnd()) return;

    // Optional pid: `4242 ` or `[pid 4242] `.
    let pid = 0;
    if (sc.eatText('[pid ')) {
      pid = sc.dec();
      if (pid < 0 || !sc.eat(0x5d))
        this.core.fail(no, `malformed '[pid N]' prefix: '${lineShown(b, s, e)}'`);
      sc.blanks();
    } else {
      const at = sc.i;
      const v = sc.dec();
      if (v >= 0 && sc.blanks() > 0) pid = v;
      else sc.i = at; // not a pid: a timestamp or the call itself
    }
    // Then, as ltrace writes them: a timestamp (-t, -r), an instruction pointer (-i: `[0x...]`).
    const time = this.timestamp(no);
    sc.blanks();
    if (sc.sees('[0x')) {
      const at = sc.i;
      sc.i++;
      if (sc.ptr(true) && sc.eat(0x5d)) sc.blanks();
      else sc.i = at;
    }
    const tid = this.threads.of(pid);

    if (sc.eatText('<... ')) {
      this.resumed(b, s, e, no, pid, tid, time);
      return;
    }
    const c0 = sc.peek();
    if (c0 === 0x2d || c0 === 0x2b) {
      // `--- SIGCHLD (...) ---`, `+++ exited (status 0) +++`
      this.core.skip('signals and exits');
      return;
    }

    // The function name, maybe after `LIBRARY->`.
    let nameStart = sc.i;
    for (;;) {
      while (!sc.atEnd() && sc.peek() !== 0x28 && sc.peek() !== 0x20 && !sc.sees('->')) sc.i++;
      if (sc.sees('->')) {
        sc.i += 2;
        nameStart = sc.i;
        continue;
      }
      break;
    }
    const nameEnd = sc.i;
    if (nameEnd === nameStart || !sc.eat(0x28))
      this.core.fail(
        no,
        `not an ltrace line: '${lineShown(b, s, e)}' (expected 'FUNCTION(ARGS) = RESULT')`,
      );
    const name = this.nameOf(b, nameStart, nameEnd);
    const fn = FUNCTIONS.get(name);
    const unfinishedAt = this.findUnfinished(b, sc.i, e);
    if (unfinishedAt >= 0) {
      // Only our functions are kept; the resumed line of any other is skipped by its name.
      if (fn !== undefined)
        this.unfinished.set(pid, {
          name,
          args: b.toString('latin1', sc.i, unfinishedAt),
          line: no,
        });
      return;
    }
    if (fn === undefined) {
      this.core.skip(UNUSABLE.get(name) ?? `function ${name}`);
      return;
    }
    this.call(fn.op, fn.args, name, b, sc.i, e, no, tid, time);
  }

  protected override flush(): void {
    this.release();
    for (const u of this.unfinished.values()) {
      this.core.warn(
        u.line,
        'call never resumed',
        `${u.name}(${u.args.trim()} <unfinished ...> is never resumed (the log was cut short?): ignored`,
        true,
      );
    }
    this.unfinished.clear();
  }

  /** `<... NAME resumed> REST`: completes the call left unfinished by the same pid. */
  private resumed(
    b: Buffer,
    s: number,
    e: number,
    no: number,
    pid: number,
    tid: number,
    time: number,
  ): void {
    const sc = this.scan;
    const ns = sc.i;
    while (!sc.atEnd() && sc.peek() !== 0x20) sc.i++;
    const name = b.toString('latin1', ns, sc.i);
    sc.blanks();
    if (!sc.eatText('resumed>'))
      this.core.fail(
        no,
        `malformed resumed line: '${lineShown(b, s, e)}' (expected '<... NAME resumed> ...')`,
      );
    const fn = FUNCTIONS.get(name);
    if (fn === undefined) {
      this.core.skip(UNUSABLE.get(name) ?? `function ${name}`);
      return;
    }
    const u = this.unfinished.get(pid);
    if (u === undefined || u.name !== name) {
      this.core.warn(
        no,
        'resumed call never started',
        `'<... ${name} resumed>' without the unfinished ${name} call of this thread before it: ignored`,
        true,
      );
      return;
    }
    this.unfinished.delete(pid);
    // The whole call is the start's arguments followed by the rest of this line.
    const whole = Buffer.from(u.args + b.toString('latin1', sc.i, e), 'latin1');
    this.call(fn.op, fn.args, name, whole, 0, whole.length, no, tid, time);
  }

  /**
   * Reads `ARGS) = RESULT [<DURATION>]` from b[s, e) (just after the opening parenthesis) for
   * function `name`, and submits the call.
   */
  private call(
    op: OpCode,
    spec: string,
    name: string,
    b: Buffer,
    s: number,
    e: number,
    no: number,
    tid: number,
    time: number,
  ): void {
    const sc = this.scan.set(b, s, e);
    let inKey = 0;
    let inText = NULL_TOKEN;
    let ni = 0;
    for (let k = 0; k < spec.length; k++) {
      sc.blanks();
      if (k > 0 && !sc.eat(0x2c))
        this.core.fail(no, `${name}: ${spec.length} arguments expected, at '${sc.rest()}'`);
      sc.blanks();
      const kind = spec[k];
      if (kind === 'p') {
        if (!sc.ptr(true)) this.core.fail(no, `${name}: pointer expected at '${sc.rest()}'`);
        inKey = sc.key;
        inText = sc.text;
      } else if (kind === 'n') {
        const v = this.size(sc.num(), no, 'argument');
        if (v < 0) this.core.fail(no, `${name}: number expected at '${sc.rest()}'`);
        this.exacts[ni] = sc.exact;
        this.nums[ni++] = v;
      } else {
        while (!sc.atEnd() && sc.peek() !== 0x2c && sc.peek() !== 0x29) sc.i++;
      }
    }
    sc.blanks();
    if (!sc.eat(0x29)) this.core.fail(no, `${name}: ')' expected at '${sc.rest()}'`);
    sc.blanks();
    if (!sc.eat(0x3d)) this.core.fail(no, `${name}: '= RESULT' expected at '${sc.rest()}'`);
    sc.blanks();
    let outKey = 0;
    let outText = NULL_TOKEN;
    if (op === Op.free) {
      if (!sc.eatText('<void>'))
        this.core.fail(no, `${name}: '<void>' expected as the result, found '${sc.rest()}'`);
    } else {
      if (!sc.ptr(true))
        this.core.fail(no, `${name}: a pointer expected as the result, found '${sc.rest()}'`);
      outKey = sc.key;
      outText = sc.text;
    }
    sc.blanks();
    if (sc.eat(0x3c)) {
      // -T: the time spent in the call, `<0.000123>`
      while (!sc.atEnd() && sc.peek() !== 0x3e) sc.i++;
      if (!sc.eat(0x3e)) this.core.fail(no, `unterminated '<duration>' at the end of the line`);
      sc.blanks();
    }
    if (!sc.atEnd()) this.core.fail(no, `unexpected '${sc.rest()}' after the result`);

    const nums = this.nums;
    // __libc_reallocarray fails on an overflowing product before it calls realloc: the allocator
    // does nothing (realloc itself would set up the thread's tcache first).
    let product = 0n;
    if (spec === 'pnn') {
      product = BigInt(this.exacts[0] ?? nums[0]!) * BigInt(this.exacts[1] ?? nums[1]!);
      if (product > SIZE_MAX) {
        this.core.skip('reallocarray whose size overflows (no allocator call)');
        return;
      }
    }
    const c = this.core.call;
    c.op = op;
    c.tid = tid;
    c.line = no;
    c.time = time;
    if (op === Op.calloc || op === Op.memalign) {
      c.n1 = nums[0]!;
      c.n2 = nums[1]!;
      c.exact1 = this.exacts[0];
      c.exact2 = this.exacts[1];
    } else if (op === Op.free) {
      c.n1 = 0;
      c.n2 = 0;
    } else if (spec === 'pnn') {
      // reallocarray(p, nmemb, size) is realloc(p, nmemb * size) with an overflow check
      c.n1 = Number(product);
      c.n2 = 0;
      if (product > Number.MAX_SAFE_INTEGER) c.exact1 = product;
    } else {
      c.n1 = nums[0]!;
      c.n2 = 0;
      c.exact1 = this.exacts[0];
    }
    c.inKey = inKey;
    c.inText = inText;
    c.outKey = outKey;
    c.outText = outText;
    // Held until its stack has been read (ltrace -w).
    this.spare.copyFrom(c);
    this.held = this.spare;
    this.heldName = name;
  }

  /** The offset of ` <unfinished ...>` in b[s, e) (the line's end), or -1. */
  private findUnfinished(b: Buffer, s: number, e: number): number {
    const marker = '<unfinished ...>';
    if (e - s < marker.length) return -1;
    let end = e;
    while (end > s && (b[end - 1] === 0x20 || b[end - 1] === 0x09)) end--;
    const at = end - marker.length;
    if (at < s) return -1;
    for (let k = 0; k < marker.length; k++) if (b[at + k] !== marker.charCodeAt(k)) return -1;
    return at;
  }

  /**
   * An optional timestamp at the cursor: `HH:MM:SS[.frac]` (-t, -tt), `SECONDS.frac` (-ttt, or -r
   * when small). Returns the event time in ns from the first timestamp, or -1 when there is none.
   * Whole seconds and nanoseconds are kept apart: seconds since 1970 in ns exceed a double's
   * exact integers.
   */
  private timestamp(no: number): number {
    const sc = this.scan;
    const at = sc.i;
    const a = sc.dec();
    if (a < 0) return -1;
    let whole: number;
    let kind: 'clock' | 'epoch' | 'relative';
    if (sc.eat(0x3a)) {
      const m = sc.dec();
      const colon = sc.eat(0x3a);
      const sec = sc.dec();
      if (m < 0 || !colon || sec < 0) {
        sc.i = at;
        return -1;
      }
      whole = a * 3600 + m * 60 + sec;
      kind = 'clock';
    } else if (sc.peek() === 0x2e) {
      whole = a;
      // -r counts from the previous line and starts at 0; -ttt counts from 1970.
      kind =
        this.clockKind === 'relative' || this.clockKind === 'epoch'
          ? this.clockKind
          : a < 1e8
            ? 'relative'
            : 'epoch';
    } else {
      sc.i = at;
      return -1;
    }
    const frac = this.fractionNs();
    if (sc.blanks() === 0) {
      sc.i = at;
      return -1;
    }
    if (this.clockKind === 'none') this.clockKind = kind;
    else if (kind !== this.clockKind)
      this.core.fail(no, 'the timestamps change style in the middle of the log');
    if (kind === 'relative') {
      this.relNs += whole * 1e9 + frac;
      return this.relNs;
    }
    if (kind === 'clock') {
      // A wall clock of the day: past midnight it starts again from 0.
      if (this.lastClock >= 0 && whole + 43200 < this.lastClock) this.days++;
      this.lastClock = whole;
      whole += this.days * 86400;
    }
    if (Number.isNaN(this.t0Whole)) {
      this.t0Whole = whole;
      this.t0Frac = frac;
    }
    return Math.max(0, (whole - this.t0Whole) * 1e9 + frac - this.t0Frac);
  }

  /** `.digits` at the cursor as nanoseconds (0 when absent; digits past the ninth are dropped). */
  private fractionNs(): number {
    const sc = this.scan;
    if (!sc.eat(0x2e)) return 0;
    let v = 0;
    let digits = 0;
    while (!sc.atEnd()) {
      const d = sc.peek() - 0x30;
      if (d < 0 || d > 9) break;
      if (digits < 9) {
        v = v * 10 + d;
        digits++;
      }
      sc.i++;
    }
    return v * 10 ** (9 - digits);
  }

  private nameOf(b: Buffer, s: number, e: number): string {
    for (const name of FREQUENT) if (bytesAre(b, s, e, name)) return name;
    return b.toString('latin1', s, e);
  }
}

const FREQUENT = ['malloc', 'free', 'realloc', 'calloc'];

function bytesAre(b: Buffer, s: number, e: number, t: string): boolean {
  if (e - s !== t.length) return false;
  for (let k = 0; k < t.length; k++) if (b[s + k] !== t.charCodeAt(k)) return false;
  return true;
}
