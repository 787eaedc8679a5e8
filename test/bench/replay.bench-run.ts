/**
 * The replay benchmark (`npm run bench`, never part of `npm test`). For each trace it prints:
 *
 *  - parse: the trace read and parsed on one thread into a sink that only counts (plain text, and
 *    gzip, which adds the inflating);
 *  - core loop: the events already in memory (the store explain keeps, trace/event-store.ts)
 *    delivered to the replay: token lookup, the allocator and kernel models, the touch model and
 *    the per-event RSS; the median of BENCH_LOOP_ROUNDS rounds in one process, after a round that
 *    warms the compiler up;
 *  - end to end: `ptsim replay TRACE.gz --json`, the command a user runs (reading, inflating and
 *    parsing on the parse worker, replaying on the main thread), BENCH_RUNS runs, the median and
 *    the range, with the peak resident memory of the process (GNU time) and, above that of a replay
 *    of a tiny trace, per block live at the end;
 *  - the native replay of the same trace on this machine's glibc (test/native): its own loop, and
 *    end to end as ptsim's (inflating with gzip, then the whole process: reading, parsing,
 *    replaying, one thread), and ptsim's end-to-end rate as a multiple of that.
 *  - the binary form of the same trace (trace/binary.ts), written once by `ptsim convert --binary`
 *    (plain, and with --gzip) and kept beside the text: its size; reading it alone on one thread
 *    into a sink that only counts; `ptsim replay` of it end to end (plain and gzip, BENCH_RUNS runs
 *    each, processor time and peak memory as for the text), its rate as a multiple of the native
 *    replay's end to end, and whether its replay ends as the text's does.
 *
 * The traces: the bundled recording of GCC's cc1 (traces/gcc-cc1.trace.gz, 122,153 calls; its core
 * loop replays it BENCH_CC1_ROUNDS times per round); a longer recording of cc1 (GCC compiling a
 * generated C file at -O2, cut at BENCH_CC1_EVENTS events; skipped without gcc); a generated
 * service-like mix of BENCH_EVENTS events on one thread and of BENCH_MT_EVENTS events on 8
 * threads; a trace that only allocates (BENCH_LIVE blocks, all live at the end); a churn trace
 * that keeps BENCH_CHURN_LIVE blocks live over BENCH_CHURN_EVENTS events. Generated and recorded
 * traces are cached in the system's temp directory by kind, size and seed.
 *
 * On the 8-thread trace, `ptsim explain` (the end and the peak, with its remedies), `explain --at
 * end --no-what-if`, `compare` with two configurations, `replay --timeline` (2000 samples, and
 * every event) and `report` are timed against the replay's own time (a replay run right before
 * each), with their processor time and peak memory; on the recorded cc1 trace, explain and report.
 *
 * BENCH_AGAINST=DIR measures the ptsim built in another checkout too (the parse, core loop and end
 * to end figures), right after this tree's on each trace, so that a change is measured against
 * what it changes under the same load of the machine.
 *
 * On the same trace, the engine of `ptsim web` (and `ptsim step`): the time to read the trace into
 * memory and replay it once, taking its checkpoints, then the time to go to events picked at random
 * along the trace, forwards and back, each with the heap view the page shows there.
 *
 * BENCH_COMMANDS=explain,report,... picks the commands timed (by the names the output gives them).
 *
 * BENCH_ONLY picks one part: `replay` (the traces), `explain` (the commands), `web` (the engine of
 * `ptsim web`), `record` (the cost of recording, test/bench/record.bench-run.ts), `profile` (where the
 * time of a replay goes: a CPU profile of each thread of `ptsim replay`, its self time summed by
 * layer, for BENCH_PROFILE_TRACE: cc1, mix, mt, alloc or churn; cc1 by default).
 */

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { createGzip, gunzipSync } from 'node:zlib';
import seedrandom from 'seedrandom';
import { it } from 'vitest';
import { buildNativeReplayer } from '../helpers/native.js';
import { Stepper } from '../../src/analysis/stepper.js';
import { openTrace } from '../../src/import/index.js';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const EVENTS = num('BENCH_EVENTS', 10_000_000);
const MT_EVENTS = num('BENCH_MT_EVENTS', 5_000_000);
const LIVE = num('BENCH_LIVE', 5_000_000);
const CHURN_LIVE = num('BENCH_CHURN_LIVE', 100_000);
const CHURN_EVENTS = num('BENCH_CHURN_EVENTS', 5_000_000);
const CC1_EVENTS = num('BENCH_CC1_EVENTS', 5_500_000);
const RUNS = num('BENCH_RUNS', 3);
const LOOP_ROUNDS = num('BENCH_LOOP_ROUNDS', 5);
const CC1_ROUNDS = num('BENCH_CC1_ROUNDS', 20);
const MT_THREADS = 8;
const ROOT = resolve(new URL('../..', import.meta.url).pathname);
/** The trees whose ptsim is measured: this one, then BENCH_AGAINST's (another checkout, built), in turn per trace. */
const ROOTS = [
  ROOT,
  ...(process.env['BENCH_AGAINST'] !== undefined ? [resolve(process.env['BENCH_AGAINST'])] : []),
];
const DIR = join(tmpdir(), 'ptsim-bench');
const CORES = ['--cores', String(cpus().length)];
const ONLY = process.env['BENCH_ONLY'];
const TIME = ['/usr/bin/time', '/bin/time'].find((p) => existsSync(p));

type Kind = 'mix' | 'alloc' | 'churn';

/**
 * A generated trace. `mix`: a service-like mix, mostly small blocks (strings, nodes) with a
 * long-lived working set, some medium buffers, a few large ones crossing the mmap threshold,
 * reallocs that grow buffers, callocs and rare aligned allocations; on several threads, each runs
 * in bursts, frees another's block now and then, and exits (a new thread takes its place).
 * `alloc`: small and medium blocks allocated and never freed. `churn`: `live` blocks allocated,
 * then a random live block freed and a new one allocated, in turn.
 */
async function generate(
  plain: string,
  gz: string,
  kind: Kind,
  events: number,
  threads: number,
  seed: string,
  live: number,
): Promise<void> {
  const rng = seedrandom(seed);
  const lives: string[][] = [];
  const sizesOf: number[][] = [];
  for (let t = 0; t < threads; t++) {
    lives.push([]);
    sizesOf.push([]);
  }
  let tid = 1;
  let burst = 0;
  const tidOf = new Array<number>(threads).fill(0).map((_, t) => t + 1);
  let nextTid = threads + 1;
  let serial = 0;
  const plainOut = createWriteStream(plain);
  const gzip = createGzip({ level: 6 });
  const gzOut = gzip.pipe(createWriteStream(gz));
  let buf = '';
  const flush = async (): Promise<void> => {
    const ok1 = plainOut.write(buf);
    const ok2 = gzip.write(buf);
    buf = '';
    // Both waits are set up at once: a drain that comes while the other is awaited is not missed.
    const waits: Array<Promise<unknown>> = [];
    if (!ok1) waits.push(once(plainOut, 'drain'));
    if (!ok2) waits.push(once(gzip, 'drain'));
    await Promise.all(waits);
  };
  const size = (): number => {
    const r = rng();
    if (r < 0.7) return Math.floor(rng() * 128);
    if (r < 0.95) return 128 + Math.floor(rng() * 2000);
    if (r < 0.995) return 2048 + Math.floor(rng() * 60000);
    return 100000 + Math.floor(rng() * 400000);
  };
  // Sizes of the traces that keep many blocks live: no block is mmapped.
  const smallSize = (): number =>
    rng() < 0.8 ? 1 + Math.floor(rng() * 128) : 129 + Math.floor(rng() * 900);
  const token = (): string => `0x${(0x5000 + serial++).toString(16)}`;
  for (let i = 0; i < events; i++) {
    if (kind !== 'mix') {
      const mine = lives[0]!;
      if (kind === 'churn' && mine.length >= live) {
        const k = Math.floor(rng() * mine.length);
        buf += `1 free ${mine[k]}\n`;
        mine[k] = mine[mine.length - 1]!;
        mine.pop();
      } else {
        const tok = token();
        buf += `1 malloc ${smallSize()} ${tok}\n`;
        if (kind === 'churn') mine.push(tok);
      }
      if (buf.length > 1 << 20) await flush();
      continue;
    }
    if (threads > 1 && --burst <= 0) {
      // The next thread runs a burst of calls.
      tid = 1 + Math.floor(rng() * threads);
      burst = 20 + Math.floor(rng() * 80);
      if (tid > 1 && rng() < 0.002) {
        // This thread ends (its blocks stay, for others to free) and a new one takes its slot.
        buf += `${tidOf[tid - 1]} exit\n`;
        tidOf[tid - 1] = nextTid++;
        continue;
      }
    }
    const t = tidOf[tid - 1]!;
    const owner = threads > 1 && rng() < 0.05 ? Math.floor(rng() * threads) : tid - 1;
    const lv = lives[owner]!;
    const sizes = sizesOf[owner]!;
    const mine = lives[tid - 1]!;
    const mySizes = sizesOf[tid - 1]!;
    const r = rng();
    if (lv.length > 0 && (r < 0.47 || lv.length > 20000 / threads)) {
      const k = rng() < 0.6 ? lv.length - 1 : Math.floor(rng() * lv.length);
      const tok = lv[k]!;
      lv[k] = lv[lv.length - 1]!;
      sizes[k] = sizes[sizes.length - 1]!;
      lv.pop();
      sizes.pop();
      buf += `${t} free ${tok}\n`;
    } else if (r < 0.52 && mine.length > 0) {
      const k = Math.floor(rng() * mine.length);
      const s = Math.floor(mySizes[k]! * (1 + rng())) + 1;
      const tok = token();
      buf += `${t} realloc ${mine[k]} ${s} ${tok}\n`;
      mine[k] = tok;
      mySizes[k] = s;
    } else {
      const s = size();
      const tok = token();
      const q = rng();
      if (q < 0.05) buf += `${t} calloc 1 ${s} ${tok}\n`;
      else if (q < 0.06) buf += `${t} memalign 64 ${s} ${tok}\n`;
      else buf += `${t} malloc ${s} ${tok}\n`;
      mine.push(tok);
      mySizes.push(s);
    }
    if (buf.length > 1 << 20) await flush();
  }
  await flush();
  await Promise.all([
    new Promise<void>((r) => plainOut.end(r)),
    new Promise<void>((r) => {
      gzOut.on('finish', r);
      gzip.end();
    }),
  ]);
}

interface Trace {
  label: string;
  plain: string;
  gz: string;
  /** Replays of the whole trace per round of the core loop (short traces are replayed again). */
  rounds: number;
  /** Whether the blocks live at the end are the most the trace ever holds (bytes per live block). */
  liveHeavy: boolean;
}

const mb = (p: string): string => `${(statSync(p).size / 1e6).toFixed(1)} MB`;

/** A generated trace, plain and gzip-compressed, made once and kept in DIR. */
async function generated(
  label: string,
  kind: Kind,
  seed: string,
  events: number,
  threads: number,
  live = 0,
): Promise<Trace> {
  mkdirSync(DIR, { recursive: true });
  const plain = join(DIR, `${kind === 'mix' ? '' : `${kind}-${live}-`}${seed}-${events}.trace`);
  const gz = `${plain}.gz`;
  if (!existsSync(gz) || !existsSync(plain)) {
    const t0 = performance.now();
    // Names of this process's own: another benchmark may be making the same trace.
    const tmp = `.${process.pid}.tmp`;
    await generate(`${plain}${tmp}`, `${gz}${tmp}`, kind, events, threads, seed, live);
    renameSync(`${plain}${tmp}`, plain);
    renameSync(`${gz}${tmp}`, gz);
    console.log(`generated ${plain} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return { label, plain, gz, rounds: 1, liveHeavy: kind === 'alloc' };
}

/** The bundled recording of cc1, inflated once into DIR. */
function bundledCc1(): Trace {
  mkdirSync(DIR, { recursive: true });
  const gz = join(ROOT, 'traces/gcc-cc1.trace.gz');
  const plain = join(DIR, 'gcc-cc1.trace');
  if (!existsSync(plain)) writeFileSync(plain, gunzipSync(readFileSync(gz)));
  return { label: 'gcc-cc1 (bundled)', plain, gz, rounds: CC1_ROUNDS, liveHeavy: false };
}

/**
 * A long recording of cc1: GCC compiling, at -O2, a generated C file of many small functions
 * (loops, a switch, a recursive call, which GCC inlines), recorded with `ptsim record`, the first
 * `events` events of cc1's trace kept. Null (skipped) without gcc.
 */
function recordedCc1(events: number): Trace | null {
  const plain = join(DIR, `cc1-${events}.trace`);
  const gz = `${plain}.gz`;
  const trace: Trace = { label: `cc1, recorded`, plain, gz, rounds: 1, liveHeavy: false };
  if (existsSync(gz) && existsSync(plain)) return trace;
  if (spawnSync('gcc', ['--version']).status !== 0) return null;
  const work = join(DIR, 'cc1-work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const rng = seedrandom('bench-cc1');
  const r = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo));
  const src = ['struct n { struct n *l, *r; int v; char s[24]; };'];
  for (let i = 0; i < 1500; i++) {
    src.push(
      `static int f${i}(int *a, int n, struct n *t) {`,
      `  int s = ${i};`,
      `  for (int k = 0; k < n; k++) { s += a[k] * ${r(1, 99)} ^ (s >> ${r(1, 7)}); if (s & ${r(1, 64)}) a[k] = s; }`,
      `  while (t) { s += t->v; if (t->v & 1) t = t->l; else t = t->r; if (s > ${r(100, 9999)}) break; }`,
      `  switch (s & 7) { case 0: s *= 3; break; case 1: s -= ${i}; break; case 2: s ^= n; break; default: s += ${r(5, 50)}; }`,
      `  return s + (n > 2 ? f${Math.max(0, i - 1)}(a + 1, n - 2, t) : 0);`,
      '}',
    );
  }
  const calls: string[] = [];
  for (let i = 0; i < 1500; i += 50) calls.push(`f${i}(a, 64, &t)`);
  src.push(`int main(void) { int a[64] = {0}; struct n t = {0}; return ${calls.join(' + ')}; }`);
  writeFileSync(join(work, 'big.c'), src.join('\n'));
  const t0 = performance.now();
  const rec = spawnSync(
    process.execPath,
    [
      executable(ROOT),
      'record',
      '-o',
      'gcc.trace.gz',
      '--',
      'gcc',
      '-O2',
      '-c',
      'big.c',
      '-o',
      '/dev/null',
    ],
    { cwd: work, encoding: 'utf8' },
  );
  if (rec.status !== 0) throw new Error(`recording gcc failed: ${rec.stderr}`);
  // cc1's is the largest trace the driver's children left.
  const dir = join(work, 'gcc.trace.d');
  const biggest = readdirSync(dir)
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  const cut = spawnSync(
    'bash',
    [
      '-c',
      `gzip -dc "$1" | awk -v max="$2" '/^@/ { if (++e > max) exit } { print }' > "$3"`,
      'bash',
      biggest,
      String(events),
      `${plain}.tmp`,
    ],
    { encoding: 'utf8' },
  );
  if (cut.status !== 0) throw new Error(`cutting cc1's trace failed: ${cut.stderr}`);
  spawnSync('bash', ['-c', 'gzip -6 -c "$1" > "$2"', 'bash', `${plain}.tmp`, `${gz}.tmp`]);
  renameSync(`${plain}.tmp`, plain);
  renameSync(`${gz}.tmp`, gz);
  rmSync(work, { recursive: true, force: true });
  console.log(
    `recorded cc1 (${events.toLocaleString('en-US')} events kept) in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  );
  return trace;
}

/**
 * Runs in a process of its own, on the compiled ptsim (dist/): `parse` reads and parses a file on
 * the calling thread into a sink that counts; `loop` keeps the trace in memory, then delivers it
 * to a replay `rounds` times (each a fresh replay, `repeat` times over), timing each round.
 * Prints one line of JSON.
 */
const PHASES = `
const { mode, root, path, rounds, repeat, cores } = JSON.parse(process.env.PTSIM_BENCH);
const dist = (p) => import(new URL(p, 'file://' + root + '/dist/').href);
const { streamTraceFile, readTraceFile } = await dist('trace/reader.js');
if (mode === 'parse') {
  let events = 0;
  const sink = { header() {}, event() { events++; } };
  const t0 = performance.now();
  await streamTraceFile(path, path, sink);
  console.log(JSON.stringify({ events, seconds: [(performance.now() - t0) / 1000] }));
} else {
  const { TraceStore, deliverStored } = await dist('trace/event-store.js');
  const { replaySink } = await dist('replay/sink.js');
  const store = new TraceStore(Number.MAX_SAFE_INTEGER);
  await readTraceFile(path, store);
  const t = store.finish();
  if (t === null) throw new Error('the trace does not fit the store');
  const seconds = [];
  let events = 0;
  for (let k = 0; k <= rounds; k++) {
    const t0 = performance.now();
    events = 0;
    for (let j = 0; j < repeat; j++) {
      const rs = replaySink(path, { cores });
      await deliverStored(t, rs.sink);
      events += rs.replayer.finish().events;
    }
    if (k > 0) seconds.push((performance.now() - t0) / 1000);
  }
  console.log(JSON.stringify({ events, seconds }));
}
`;

function phase(
  root: string,
  mode: 'parse' | 'loop',
  path: string,
  rounds = 1,
  repeat = 1,
): { events: number; seconds: number[] } {
  // A file of its own rather than --eval: the parse worker inherits the process's options.
  const script = join(DIR, 'phases.mjs');
  if (!existsSync(script) || readFileSync(script, 'utf8') !== PHASES) writeFileSync(script, PHASES);
  const r = spawnSync(process.execPath, [script], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PTSIM_BENCH: JSON.stringify({ mode, root, path, rounds, repeat, cores: cpus().length }),
    },
    maxBuffer: 1 << 24,
  });
  if (r.status !== 0) throw new Error(`the ${mode} phase failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { events: number; seconds: number[] };
}

/** A command run to its end under GNU time (when there is one): its time and peak resident memory. */
function timedRun(
  argv: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): {
  seconds: number;
  maxRssMiB: number | null;
  /** Processor time (user and system, all threads), with GNU time. */
  cpu: number | null;
  r: SpawnSyncReturns<string>;
} {
  const t0 = performance.now();
  const r =
    TIME !== undefined
      ? spawnSync(TIME, ['-f', 'maxrss %M cpu %U %S', ...argv], {
          encoding: 'utf8',
          maxBuffer: 1 << 26,
          ...opts,
        })
      : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
  const m = /maxrss (\d+) cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
  return {
    seconds,
    maxRssMiB: m !== null ? Number(m[1]) / 1024 : null,
    cpu: m !== null ? Number(m[2]) + Number(m[3]) : null,
    r,
  };
}

/** A ptsim command, run to its end. */
function ptsim(args: string[], root = ROOT, env?: NodeJS.ProcessEnv): ReturnType<typeof timedRun> {
  return timedRun([process.execPath, executable(root), ...args], { env });
}

/** A tree's executable: its bundle, or for a tree from before the bundle, its compiled main.js. */
function executable(root: string): string {
  const bundle = join(root, 'dist/bin/main.js');
  return existsSync(bundle) ? bundle : join(root, 'dist/cli/main.js');
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const mrate = (events: number, seconds: number): number => events / seconds / 1e6;
/** Rates of several runs: the median, and the range when there are several. */
function rates(events: number, seconds: number[]): string {
  const r = seconds.map((s) => mrate(events, s));
  const range = r.length > 1 ? ` (${Math.min(...r).toFixed(2)}-${Math.max(...r).toFixed(2)})` : '';
  return `${mrate(events, median(seconds)).toFixed(2)} M events/s${range}`;
}
const load = (): string =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

/** Peak resident memory of `ptsim replay` on a tiny trace: what the process costs before any block. */
const baselineMiB = new Map<string, number | null>();
function baseline(root: string): number | null {
  if (!baselineMiB.has(root))
    baselineMiB.set(
      root,
      ptsim(['replay', join(ROOT, 'traces/malloc-trim.trace'), '--json'], root).maxRssMiB,
    );
  return baselineMiB.get(root)!;
}

interface Summary {
  events: number;
  rss: number;
  liveBlocks: number;
}

function benchTrace(trace: Trace): void {
  const { plain, gz } = trace;
  console.log(
    `\n${trace.label}: ${plain} (${mb(plain)} plain, ${mb(gz)} gzip); load average ${load()}`,
  );

  // The native replayer reads a plain file: inflating it is timed apart, as gzip does it.
  const binary = buildNativeReplayer();
  const out = join(DIR, `native-summary.${process.pid}.json`);
  const inflated = join(DIR, `native-input.${process.pid}.trace`);
  const gunzip = timedRun(['bash', '-c', 'gzip -dc "$1" > "$2"', 'bash', gz, inflated]);
  rmSync(inflated, { force: true });
  const nat = timedRun([binary, plain, '--summary', out, '--no-events', '--no-peak'], {
    env: { PATH: process.env['PATH'] ?? '' },
  });
  const natSummary = JSON.parse(readFileSync(out, 'utf8')) as Summary & { seconds: number };
  rmSync(out, { force: true });
  const natEnd = gunzip.seconds + nat.seconds;
  console.log(
    `  glibc native replay       loop ${rates(natSummary.events, [natSummary.seconds])}, end to end ${rates(natSummary.events, [natEnd])} (gunzip ${gunzip.seconds.toFixed(2)} s, process ${nat.seconds.toFixed(2)} s)`,
  );

  const bin = binaryForms(trace);
  for (const root of ROOTS) {
    const tag = ROOTS.length > 1 ? `  [${root === ROOT ? 'this tree' : root}]\n` : '';
    const parsed = phase(root, 'parse', plain);
    const parsedGz = phase(root, 'parse', gz);
    const loop = phase(root, 'loop', plain, trace.rounds === 1 ? LOOP_ROUNDS : 3, trace.rounds);
    const e2e = endToEnd(root, gz, trace);
    const s = e2e.summary;
    console.log(
      [
        `${tag}  parse, one thread         plain ${rates(parsed.events, parsed.seconds)}, gzip ${rates(parsedGz.events, parsedGz.seconds)}`,
        `  core loop, in memory      ${rates(loop.events, loop.seconds)}${trace.rounds > 1 ? ` (${trace.rounds} replays a round)` : ''}, ${loop.seconds.length} rounds`,
        `  ptsim replay, end to end  ${rates(s.events, e2e.seconds)}, ${RUNS} runs${e2e.ns}${e2e.mem}`,
        `  ptsim / native, end to end ${(natEnd / median(e2e.seconds)).toFixed(2)} x; core loop / native loop ${(natSummary.seconds / (median(loop.seconds) / trace.rounds)).toFixed(2)} x; final RSS ${s.rss === natSummary.rss ? 'identical' : `DIFFERENT (ptsim ${s.rss}, glibc ${natSummary.rss})`}`,
      ].join('\n'),
    );

    // The binary form of the same trace: read alone, and replayed end to end (plain and gzip).
    if (root === ROOT)
      console.log(
        `  binary form               ${mb(bin.plain)} plain, ${mb(bin.gz)} gzip (${(statSync(bin.plain).size / s.events).toFixed(1)} bytes an event plain, ${(statSync(bin.plain).size / statSync(plain).size).toFixed(2)} of the text's size)`,
      );
    if (!existsSync(join(root, 'dist/trace/binary.js'))) {
      console.log('  binary form               not read by this tree (no dist/trace/binary.js)');
      continue;
    }
    let binRead, binReadGz, binE2e, binE2eGz;
    try {
      binRead = phase(root, 'parse', bin.plain);
      binReadGz = phase(root, 'parse', bin.gz);
      binE2e = endToEnd(root, bin.plain, trace);
      binE2eGz = endToEnd(root, bin.gz, trace);
    } catch (e) {
      // Another tree may read another version of the form than this tree writes.
      if (root === ROOT) throw e;
      const why = /ptsim: .*/.exec((e as Error).message)?.[0] ?? 'it failed';
      console.log(`  binary form               not read by this tree: ${why}`);
      continue;
    }
    const same = (b: Summary): string =>
      b.events === s.events && b.rss === natSummary.rss
        ? 'identical'
        : `DIFFERENT (${b.events} events, final RSS ${b.rss}; the text ${s.events} events, glibc ${natSummary.rss})`;
    console.log(
      [
        `  binary read, one thread   plain ${rates(binRead.events, binRead.seconds)}, gzip ${rates(binReadGz.events, binReadGz.seconds)}`,
        `  binary replay, end to end ${rates(binE2e.summary.events, binE2e.seconds)}, ${RUNS} runs${binE2e.ns}${binE2e.mem}`,
        `  binary gzip, end to end   ${rates(binE2eGz.summary.events, binE2eGz.seconds)}, ${RUNS} runs${binE2eGz.ns}${binE2eGz.mem}`,
        `  binary / native, end to end ${(natEnd / median(binE2e.seconds)).toFixed(2)} x, gzip ${(natEnd / median(binE2eGz.seconds)).toFixed(2)} x; binary gzip / text gzip, end to end ${(median(e2e.seconds) / median(binE2eGz.seconds)).toFixed(2)} x; final RSS ${same(binE2e.summary)}, gzip ${same(binE2eGz.summary)}`,
      ].join('\n'),
    );
    // A trace that keeps millions of blocks live: the replay above asks for huge pages itself
    // (src/cli/huge-pages.ts: its binary form's end says how many blocks were live at once);
    // here without them, to show what they bring.
    if (trace.liveHeavy && existsSync(join(root, 'dist/cli/huge-pages.js'))) {
      const small = endToEnd(root, bin.plain, trace, { ...process.env, PTSIM_HUGE_PAGES: '0' });
      console.log(
        `  binary, 4 KiB pages only  ${rates(small.summary.events, small.seconds)}, ${RUNS} runs${small.ns}${small.mem}; / native ${(natEnd / median(small.seconds)).toFixed(2)} x; final RSS ${same(small.summary)}`,
      );
    }
  }
}

/**
 * `ptsim replay FILE --json`, BENCH_RUNS runs: the summary, the times, and the processor time per
 * event and the peak memory as the end-to-end line prints them.
 */
function endToEnd(
  root: string,
  file: string,
  trace: Trace,
  env?: NodeJS.ProcessEnv,
): { summary: Summary; seconds: number[]; ns: string; mem: string } {
  const seconds: number[] = [];
  const peaks: number[] = [];
  const cpu: number[] = [];
  let summary: Summary | undefined;
  for (let k = 0; k < RUNS; k++) {
    const t = ptsim(['replay', file, '--json', ...CORES], root, env);
    seconds.push(t.seconds);
    if (t.maxRssMiB !== null) peaks.push(t.maxRssMiB);
    if (t.cpu !== null) cpu.push(t.cpu);
    summary = JSON.parse(t.r.stdout) as Summary;
  }
  const s = summary!;
  let mem = '';
  if (peaks.length > 0) {
    const peak = median(peaks);
    const base = baseline(root);
    mem = `; peak memory ${peak.toFixed(0)} MiB`;
    if (base !== null && trace.liveHeavy && s.liveBlocks > 0)
      mem += `, ${(((peak - base) * 1048576) / s.liveBlocks).toFixed(0)} bytes per live block (${s.liveBlocks.toLocaleString('en-US')} live, above ${base.toFixed(0)} MiB for a tiny trace)`;
  }
  // Processor time per event, both threads: less swayed than the rate by a busy machine.
  const ns =
    cpu.length > 0 ? `, ${((median(cpu) * 1e9) / s.events).toFixed(0)} ns of CPU an event` : '';
  return { summary: s, seconds, ns, mem };
}

/** The compiled files whose change changes the binary form ptsim writes. */
const BINARY_WRITER = [
  'trace/binary.js',
  'trace/binary-end.js',
  'import/native-writer.js',
  'trace/token-numbers.js',
  'trace/token-key.js',
];

/**
 * The binary form of a trace, plain and gzip-compressed, written by this tree's `ptsim convert
 * --binary` from the plain text and kept in DIR beside it. Their names carry a digest of the
 * writer (BINARY_WRITER): a change to the form makes new ones rather than reading stale ones.
 */
function binaryForms(trace: Trace): { plain: string; gz: string } {
  const digest = createHash('sha256');
  for (const f of BINARY_WRITER) digest.update(readFileSync(join(ROOT, 'dist', f)));
  const base = join(DIR, basename(trace.plain).replace(/\.trace$/, ''));
  const plain = `${base}.${digest.digest('hex').slice(0, 10)}.ptb`;
  const gz = `${plain}.gz`;
  for (const [out, extra] of [
    [plain, []],
    [gz, ['--gzip']],
  ] as const) {
    if (existsSync(out)) continue;
    const t0 = performance.now();
    // convert writes beside `out` and renames it into place when done.
    ptsim(['convert', trace.plain, '--binary', ...extra, '-o', out]);
    console.log(
      `converted ${basename(trace.plain)} to ${out} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  return { plain, gz };
}

/**
 * The commands on one trace, each against the replay measured right before it in the same tree.
 * `few`: explain and report only (the cc1 recording).
 */
function benchCommands(trace: Trace, few = false): void {
  const { gz } = trace;
  console.log(`\n${trace.label}: commands, load average ${load()}`);
  const all: Array<[string, string[]]> = [
    ['replay', ['replay', gz, ...CORES]],
    ['explain', ['explain', gz, ...CORES]],
    ['explain --at end --no-what-if', ['explain', gz, ...CORES, '--at', 'end', '--no-what-if']],
    [
      'compare (2 configurations)',
      [
        'compare',
        gz,
        ...CORES,
        '--config',
        'M_MMAP_THRESHOLD=131072',
        '--config',
        'M_TRIM_THRESHOLD=0',
      ],
    ],
    [
      'replay --timeline',
      ['replay', gz, ...CORES, '--timeline', join(DIR, `timeline.${process.pid}.csv`)],
    ],
    [
      'replay --timeline-samples 0',
      [
        'replay',
        gz,
        ...CORES,
        '--timeline',
        join(DIR, `timeline.${process.pid}.csv`),
        '--timeline-samples',
        '0',
      ],
    ],
    ['report', ['report', gz, ...CORES, '-o', join(DIR, `report.${process.pid}.html`)]],
  ];
  const picked = process.env['BENCH_COMMANDS']?.split(',');
  const runs = all.filter(([name]) =>
    picked !== undefined ? picked.includes(name) : !few || ['explain', 'report'].includes(name),
  );
  // Each command in turn in each tree, so that both see the same moments of the machine.
  const replaySeconds = new Map<string, number>();
  const replay = all[0]![1];
  for (const [name, args] of runs) {
    for (const root of ROOTS) {
      // The replay right before each command, so that the two see about the same load.
      if (name !== 'replay') replaySeconds.set(root, ptsim(replay, root).seconds);
      const t = ptsim(args, root);
      if (name === 'replay') replaySeconds.set(root, t.seconds);
      const mem =
        (t.cpu !== null ? `, ${t.cpu.toFixed(1)} s of CPU` : '') +
        (t.maxRssMiB !== null ? `, peak memory ${t.maxRssMiB.toFixed(0)} MiB` : '');
      const tag = ROOTS.length > 1 ? ` [${root === ROOT ? 'this tree' : root}]` : '';
      console.log(
        `  ptsim ${name.padEnd(30)} ${t.seconds.toFixed(2).padStart(7)} s (${(t.seconds / replaySeconds.get(root)!).toFixed(1)} x replay${name === 'replay' ? '' : ` of ${replaySeconds.get(root)!.toFixed(2)} s`})${mem}${tag}`,
      );
    }
  }
}

/** Where the self time of each category goes, by the file of the function. */
const LAYERS: Array<[string, RegExp]> = [
  ['parse', /\/trace\/(parser|source|reader|token-key)\.js$|node:zlib|node:internal\/(fs|streams)/],
  [
    'transfer (batches, messages)',
    /\/trace\/(batch|worker-client|parse-worker|event|records)\.js$/,
  ],
  ['token lookup', /\/trace\/token-(numbers|table)\.js$|\/replay\/tokens\.js$/],
  ['core (allocator model)', /\/core\//],
  ['kernel and touch model', /\/kernel\//],
  ['replay loop, per-event RSS and stats', /\/replay\/|\/trace\/event-store\.js$/],
];

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  samples: number[];
  timeDeltas: number[];
}

function profileLayers(file: string): Map<string, number> {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const layerOf = new Map<number, string>();
  for (const n of p.nodes) {
    const { functionName, url } = n.callFrame;
    let layer = 'other';
    if (functionName === '(garbage collector)') layer = 'garbage collector';
    else if (functionName === '(idle)') layer = 'idle (waiting)';
    else if (functionName === 'postMessage') layer = 'transfer (batches, messages)';
    else if (functionName === 'read') layer = 'parse';
    else for (const [name, re] of LAYERS) if (re.test(url)) layer = name;
    layerOf.set(n.id, layer);
  }
  const ms = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const layer = layerOf.get(p.samples[i]!)!;
    ms.set(layer, (ms.get(layer) ?? 0) + p.timeDeltas[i]! / 1000);
  }
  return ms;
}

function benchProfile(trace: Trace): void {
  const dir = join(DIR, 'profile');
  rmSync(dir, { recursive: true, force: true });
  const t = timedRun([
    process.execPath,
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
    executable(ROOT),
    'replay',
    trace.gz,
    '--json',
    ...CORES,
  ]);
  const events = (JSON.parse(t.r.stdout) as Summary).events;
  console.log(
    `\n${trace.label}: where the time goes, ${t.seconds.toFixed(2)} s for ${events.toLocaleString('en-US')} events under the profiler; load average ${load()}`,
  );
  // One profile per thread: the main thread's is written first.
  const files = readdirSync(dir).sort();
  const names = files.length > 1 ? ['main thread', 'parse worker'] : ['main thread'];
  files.forEach((f, k) => {
    const ms = profileLayers(join(dir, f));
    const total = [...ms.values()].reduce((a, b) => a + b, 0);
    console.log(`  ${names[k] ?? f}: ${total.toFixed(0)} ms`);
    for (const [layer, v] of [...ms].sort((a, b) => b[1] - a[1]))
      console.log(
        `    ${layer.padEnd(38)} ${v.toFixed(0).padStart(6)} ms ${((100 * v) / total).toFixed(1).padStart(5)} %  ${((v * 1e6) / events).toFixed(0).padStart(5)} ns an event`,
      );
  });
}

const traces: Record<string, () => Promise<Trace | null>> = {
  cc1: () => Promise.resolve(recordedCc1(CC1_EVENTS)),
  mix: () => generated('generated mix, one thread', 'mix', 'bench-1', EVENTS, 1),
  mt: () =>
    generated(`generated mix, ${MT_THREADS} threads`, 'mix', 'bench-mt-1', MT_EVENTS, MT_THREADS),
  alloc: () => generated('allocations only', 'alloc', 'bench-alloc-1', LIVE, 1),
  churn: () =>
    generated(
      `churn, ${CHURN_LIVE.toLocaleString('en-US')} live`,
      'churn',
      'bench-churn-1',
      CHURN_EVENTS,
      1,
      CHURN_LIVE,
    ),
};

it.skipIf(ONLY !== undefined && ONLY !== 'replay')(
  'replays each trace: parse, core loop, end to end, native, memory',
  async () => {
    console.log(`${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}`);
    benchTrace(bundledCc1());
    for (const name of ['cc1', 'mix', 'mt', 'alloc', 'churn']) {
      const trace = await traces[name]!();
      if (trace === null) console.log(`\nskipped: the recorded cc1 trace (no gcc)`);
      else benchTrace(trace);
    }
  },
);

it.skipIf(ONLY !== undefined && ONLY !== 'explain')(
  'times explain, compare, timelines and report against the replay',
  async () => {
    const cc1 = await traces['cc1']!();
    if (cc1 === null) console.log(`\nskipped: the recorded cc1 trace (no gcc)`);
    else benchCommands(cc1, true);
    benchCommands((await traces['mt']!())!);
  },
);

it.skipIf(ONLY !== 'profile')('profiles a replay, by layer', async () => {
  const name = process.env['BENCH_PROFILE_TRACE'] ?? 'cc1';
  const trace = await traces[name]!();
  if (trace === null) throw new Error(`no ${name} trace (gcc is needed to record cc1)`);
  benchProfile(trace);
});

async function benchScrub(trace: Trace): Promise<void> {
  const { gz } = trace;
  const mib = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MiB`;
  const t0 = performance.now();
  const st = await Stepper.read(gz, (sink) => openTrace(gz, sink, { displayName: gz }), {
    settings: { cores: cpus().length },
  });
  const read = performance.now() - t0;
  const heapRead = process.memoryUsage();
  st.goTo(st.last);
  const loaded = performance.now() - t0;
  const mem = process.memoryUsage();
  const cps = st.checkpointStats;
  console.log(
    `ptsim web engine: read ${(read / 1000).toFixed(2)} s (heap ${mib(heapRead.heapUsed)}, array buffers ${mib(heapRead.arrayBuffers)}), first pass with a checkpoint every ${st.checkpointInterval} events ${((loaded - read) / 1000).toFixed(2)} s; ${cps.count} checkpoints of ${mib(cps.bytes)} (${(cps.bytes / Math.max(1, cps.count) / 1024).toFixed(0)} KiB each); heap ${mib(mem.heapUsed)}, array buffers ${mib(mem.arrayBuffers)}, resident ${mib(mem.rss)}`,
  );
  const rng = seedrandom('bench-scrub');
  const stat = (xs: number[]): string => {
    const s = [...xs].sort((p, q) => p - q);
    return `median ${s[s.length >> 1]!.toFixed(0)} ms, max ${s[s.length - 1]!.toFixed(0)} ms`;
  };
  const go: number[] = [];
  const view: number[] = [];
  let chunks = 0;
  for (let k = 0; k < 40; k++) {
    const target = Math.floor(rng() * (st.last + 1));
    const a = performance.now();
    st.goTo(target);
    const b = performance.now();
    chunks += st.view().chunks.length;
    go.push(b - a);
    view.push(performance.now() - b);
  }
  console.log(
    `ptsim web engine: go to a random event (40 of them): ${stat(go)}; its heap view (${(chunks / 40).toFixed(0)} chunks on average): ${stat(view)}`,
  );
  // The worst jumps: to the event just before a checkpoint, from just after it (the longest
  // replay from the checkpoint before), and one event back (the same, from the step before).
  const every = st.checkpointInterval;
  const worst: number[] = [];
  for (let k = 0; k < 20; k++) {
    const c = 1 + Math.floor(rng() * Math.max(1, Math.floor(st.last / every) - 2));
    const target = (c + 1) * every - 2;
    st.goTo(k % 2 === 0 ? target + 5 : target + 1);
    const a = performance.now();
    st.goTo(target);
    worst.push(performance.now() - a);
  }
  console.log(
    `ptsim web engine: the worst jumps (${every - 1} events from a checkpoint, back from 1 or 5 events after, 20 of them): ${stat(worst)}; peak resident ${mib(process.resourceUsage().maxRSS * 1024)}`,
  );
}

it.skipIf(ONLY !== undefined && ONLY !== 'web')(
  `scrubs ${MT_EVENTS.toLocaleString('en-US')} events of ${MT_THREADS} threads in the web engine`,
  async () => {
    await benchScrub((await traces['mt']!())!);
  },
);
