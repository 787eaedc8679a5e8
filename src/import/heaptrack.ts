/**
 * heaptrack's raw data: what its preloaded library writes before heaptrack_interpret digests it
 * (`heaptrack --raw` keeps it, as FILE.raw.zst). One record per line, a letter and hex fields:
 *
 *   v 10400 3                        heaptrack's version and the file format's
 *   x 9 /tmp/prog                    the executable;  X ./prog args   the command line
 *   I 1000 5e2922                    the page size and the machine's physical pages
 *   m LEN PATH BASE (VADDR SIZE)...  a module loaded at BASE with these loadable segments (`m 1 x`
 *                                    is the executable; `m 1 -` starts the list afresh)
 *   t IP PARENT                      a node of the tree of stacks: a return address (minus one) and
 *                                    the node of its caller (nodes are numbered 1, 2, ... in order;
 *                                    0 is the root)
 *   R PAGES                          the process's resident pages (statm's second field: its
 *                                    whole RSS), every 10 ms and at the end
 *   + SIZE TRACE PTR                 an allocation of SIZE bytes at PTR (no 0x prefix) from the
 *                                    stack ending at node TRACE
 *   - PTR                            a free
 *   c MS                             milliseconds since the start (every 10 ms, from a timer thread)
 *
 * Events carry the time of the last `c` before them, in nanoseconds (0 before the first), and the
 * stack of their node: each distinct node a `#:stack` record, its addresses (heaptrack writes
 * each return address minus one; the trace has the return address) in the modules listed, whose
 * segments become `#:map` records (the file offset of a segment read from the module's ELF
 * headers when the file is here, else taken equal to its address), so that the trace can be
 * symbolized like a recording. An allocation from a node no `t` record defined (a log cut out
 * of a longer one) has no stack; a stack stops at a caller no `t` record defined.
 *
 * Each `R` becomes a `#:rss @TIME total=BYTES` sample where it stands (after the event before it,
 * before the first when none came yet): its pages times the page size of `I` (4096 when no `I`
 * came first), the time that of the last `c`, as events have it. It is the whole process's RSS
 * (what top shows as RES: code, libraries, stacks and heaptrack's own memory included), not its
 * anonymous memory, which heaptrack does not measure: the samples have total= only.
 *
 * What the format cannot say: heaptrack writes realloc as a free of the old block and an
 * allocation of the new one (even when the block grew in place), calloc and the aligned
 * allocations as plain allocations of their size; it has no thread ids (everything is thread 1)
 * and no failed calls. Some entry points are not tracked at all by some versions (memalign in
 * 1.4), so their blocks' frees show up as frees of pointers never seen, reported and skipped.
 *
 * The interpreted file (`heaptrack.prog.PID.zst`, what heaptrack keeps by default) has lost the
 * pointers (`+ INDEX` and `- INDEX` name allocation sites, not blocks), so it cannot be replayed;
 * it is recognised and refused with a message saying how to get raw data.
 */

import { ReadRss } from '../trace/records.js';
import { NULL_TOKEN, Op } from '../trace/types.js';
import type { ImportCore } from './core.js';
import { LineImporter } from './importer.js';
import { lineShown } from './scan.js';
import { ImportedStacks } from './stacks.js';
import { segmentOffset } from './symbolize.js';

export class HeaptrackImporter extends LineImporter {
  /** The time of the last `c` record, in ns. */
  private now = 0;
  /** The stack tree: each node's return address and its caller's node (index 0: the root). */
  private ips: number[] = [0];
  private parents: number[] = [0];
  /** The stack number of each node that allocated, by node. */
  private readonly nodeStacks = new Map<number, number>();
  private readonly stacks: ImportedStacks;
  /** The page size of the `I` record, in bytes. */
  private pageSize = 4096;
  private readonly sample = new ReadRss();

  constructor(core: ImportCore, strict: boolean) {
    super(core, strict);
    core.header.facts.set('from', 'heaptrack');
    this.stacks = new ImportedStacks(core);
  }

  /** The stack number of node `trace` (its addresses, the allocator's caller first), -1 for the root. */
  private stackOf(trace: number): number {
    if (trace === 0) return -1;
    let id = this.nodeStacks.get(trace);
    if (id !== undefined) return id;
    // A node no 't' record defined (a log cut out of a longer one): no stack.
    if (trace >= this.ips.length) return -1;
    const frames: number[] = [];
    // Up to the root, or to a caller no 't' record defined.
    for (
      let n = trace;
      n !== 0 && n < this.ips.length && frames.length < 1024;
      n = this.parents[n]!
    )
      frames.push(this.ips[n]! + 1);
    id = this.stacks.stack(frames, String(trace));
    this.nodeStacks.set(trace, id);
    return id;
  }

  /** `m LEN PATH BASE (VADDR SIZE)...`: a module's loadable segments as #:map records. */
  private module(b: Buffer, s: number, e: number, no: number): void {
    const fields = b
      .toString('utf8', s + 1, e)
      .trim()
      .split(/\s+/);
    if (fields.length < 2 || fields[1] === '-') return;
    // The path is written with its length first, and may hold blanks.
    const len = parseInt(fields[0]!, 16);
    const rest = b
      .toString('utf8', s + 1, e)
      .trim()
      .slice(fields[0]!.length)
      .trimStart();
    const path = Number.isNaN(len) ? fields[1]! : rest.slice(0, len);
    const nums = rest
      .slice(path.length)
      .trim()
      .split(/\s+/)
      .filter((f) => f !== '');
    if (nums.length < 1 || nums.some((f) => !/^[0-9a-fA-F]+$/.test(f)))
      this.core.fail(
        no,
        `malformed module record '${lineShown(b, s, e)}' (expected 'm LEN PATH BASE VADDR SIZE...' in hex)`,
      );
    const file = path === 'x' ? (this.core.header.facts.get('exe') ?? path) : path;
    if (file.startsWith('linux-vdso') || !file.startsWith('/')) return;
    const base = parseInt(nums[0]!, 16);
    for (let k = 1; k + 1 < nums.length; k += 2) {
      const vaddr = parseInt(nums[k]!, 16);
      const size = parseInt(nums[k + 1]!, 16);
      if (size === 0) continue;
      this.stacks.map(base + vaddr, base + vaddr + size, segmentOffset(file, vaddr), file);
    }
  }

  protected parse(b: Buffer, s: number, e: number, no: number): void {
    if (s === e) return;
    const letter = b[s]!;
    if (e - s > 1 && b[s + 1] !== 0x20)
      this.core.fail(
        no,
        `not a heaptrack record: '${lineShown(b, s, e)}' (expected a letter, a space and fields)`,
      );
    const sc = this.scan.set(b, s + 1, e);
    const c = this.core.call;
    switch (letter) {
      case 0x2b: {
        // + SIZE TRACE PTR
        sc.blanks();
        const size = this.size(sc.hex(), no);
        const exact = sc.exact;
        sc.blanks();
        const trace = sc.hex();
        sc.blanks();
        if (size >= 0 && trace < 0 && sc.atEnd()) this.interpreted(no);
        if (size < 0 || trace < 0 || !sc.ptr(false))
          this.core.fail(
            no,
            `malformed allocation record '${lineShown(b, s, e)}' (expected '+ SIZE TRACE PTR' in hex)`,
          );
        sc.blanks();
        if (!sc.atEnd())
          this.core.fail(no, `unexpected '${sc.rest()}' after the allocation record`);
        c.op = Op.malloc;
        c.n1 = size;
        c.exact1 = exact;
        c.inKey = 0;
        c.inText = NULL_TOKEN;
        c.outKey = sc.key;
        c.outText = sc.text;
        c.site = this.stackOf(trace);
        break;
      }
      case 0x2d: {
        // - PTR
        sc.blanks();
        if (!sc.ptr(false))
          this.core.fail(
            no,
            `malformed free record '${lineShown(b, s, e)}' (expected '- PTR' in hex)`,
          );
        sc.blanks();
        if (!sc.atEnd()) this.core.fail(no, `unexpected '${sc.rest()}' after the free record`);
        if (sc.key === 0) return;
        c.op = Op.free;
        c.n1 = 0;
        c.inKey = sc.key;
        c.inText = sc.text;
        c.outKey = 0;
        c.outText = NULL_TOKEN;
        c.site = -1;
        break;
      }
      case 0x74: {
        // t IP PARENT
        sc.blanks();
        const ip = sc.hex();
        sc.blanks();
        const parent = sc.hex();
        if (ip < 0 || parent < 0)
          this.core.fail(
            no,
            `malformed stack record '${lineShown(b, s, e)}' (expected 't IP PARENT' in hex)`,
          );
        this.ips.push(ip);
        this.parents.push(parent);
        return;
      }
      case 0x6d: // m LEN PATH BASE (VADDR SIZE)...
        this.module(b, s, e, no);
        return;
      case 0x63: {
        // c MS
        sc.blanks();
        const ms = sc.hex();
        if (ms < 0)
          this.core.fail(
            no,
            `malformed timestamp record '${lineShown(b, s, e)}' (expected 'c MILLISECONDS' in hex)`,
          );
        this.now = ms * 1e6;
        return;
      }
      case 0x52: {
        // R PAGES
        sc.blanks();
        const pages = sc.hex();
        sc.blanks();
        const bytes = pages * this.pageSize;
        if (pages < 0 || !sc.atEnd() || !Number.isSafeInteger(bytes))
          this.core.fail(
            no,
            `malformed resident size record '${lineShown(b, s, e)}' (expected 'R PAGES' in hex, at most 2^53-1 bytes)`,
          );
        const x = this.sample;
        x.line = no;
        x.time = this.now;
        x.total = bytes;
        this.core.rss(x);
        return;
      }
      case 0x49: {
        // I PAGESIZE PHYSPAGES
        sc.blanks();
        const size = sc.hex();
        sc.blanks();
        const phys = sc.hex();
        sc.blanks();
        if (size <= 0 || size > 1 << 30 || phys < 0 || !sc.atEnd())
          this.core.fail(
            no,
            `malformed system record '${lineShown(b, s, e)}' (expected 'I PAGESIZE PAGES' in hex)`,
          );
        this.pageSize = size;
        return;
      }
      case 0x78: // x LEN PATH
        this.fact('exe', b, s, e, true);
        return;
      case 0x58: // X ARGS...
        this.fact('cmdline', b, s, e, false);
        return;
      case 0x61: // a SIZE TRACE: an allocation site, only in interpreted files
        this.interpreted(no);
        return;
      default:
        if (letter === 0x23) return; // a comment
        if (!((letter >= 0x41 && letter <= 0x5a) || (letter >= 0x61 && letter <= 0x7a))) {
          this.core.fail(no, `not a heaptrack record: '${lineShown(b, s, e)}'`);
        }
        // v, i, s, A, S...: versions, debugging and interpreted data.
        return;
    }
    c.tid = 1;
    c.n2 = 0;
    c.line = no;
    c.time = this.now;
    this.core.submit();
  }

  /** Keeps a fact about the recording for the header (only the first occurrence). */
  private fact(key: string, b: Buffer, s: number, e: number, skipLength: boolean): void {
    const facts = this.core.header.facts;
    if (facts.has(key)) return;
    let text = b.toString('utf8', s + 1, e).trim();
    if (skipLength) text = text.replace(/^[0-9a-f]+\s+/, '');
    facts.set(key, text);
  }

  private interpreted(no: number): never {
    this.core.fail(
      no,
      "this is heaptrack's interpreted output, which names allocation sites rather than blocks and cannot be replayed; record raw data with 'heaptrack --raw PROGRAM' (it writes FILE.raw.zst) and import that",
    );
  }
}
