/**
 * The replay benchmark (`npm run bench`, never part of `npm test`): a generated trace of 10 million
 * events, gzip-compressed, replayed end to end by the ptsim command (reading, gunzip, parsing,
 * replaying, printing the summary), and the same trace replayed by the native replayer on the real
 * glibc. Prints events per second for both and their ratio.
 *
 * A second trace of 5 million events spreads the same mix over 8 threads that run in bursts,
 * free each other's blocks now and then, and exit and start again: arenas, heaps and cross-thread
 * frees on the hot path. BENCH_EVENTS and BENCH_MT_EVENTS override the numbers of events. Traces
 * are cached in the system's temp directory by size and seed, so repeated runs skip generation.
 *
 * On the second trace, `ptsim explain` (the end and the peak, with its remedies) and `ptsim
 * report` are timed too, each against the replay's own time on the same trace, with the peak of
 * their resident memory. BENCH_ONLY=explain runs only that part.
 *
 * On the same trace, the engine of `ptsim web` (and `ptsim step`): the time to read the trace into
 * memory and replay it once, taking its checkpoints, then the time to go to events picked at random
 * along the trace, forwards and back, each with the heap view the page shows there.
 * BENCH_ONLY=web runs only that part.
 */

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createGzip } from 'node:zlib';
import seedrandom from 'seedrandom';
import { it } from 'vitest';
import { buildNativeReplayer } from '../helpers/native.js';
import { Stepper } from '../../src/analysis/stepper.js';
import { openTrace } from '../../src/import/index.js';

const EVENTS = Number(process.env['BENCH_EVENTS'] ?? 10_000_000);
const MT_EVENTS = Number(process.env['BENCH_MT_EVENTS'] ?? 5_000_000);
const SEED = 'bench-1';
const MT_SEED = 'bench-mt-1';
const MT_THREADS = 8;
const ROOT = resolve(new URL('../..', import.meta.url).pathname);

/**
 * A service-like mix: mostly small blocks (strings, nodes) with a long-lived working set, some
 * medium buffers, a few large ones crossing the mmap threshold, reallocs that grow buffers,
 * callocs, and rare aligned allocations.
 */
async function generate(
  plain: string,
  gz: string,
  events: number,
  threads: number,
  seed: string,
): Promise<void> {
  const rng = seedrandom(seed);
  // One working set per thread; a thread frees another's block now and then.
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
    if (!ok1) await once(plainOut, 'drain');
    if (!ok2) await once(gzip, 'drain');
  };
  const size = (): number => {
    const r = rng();
    if (r < 0.7) return Math.floor(rng() * 128);
    if (r < 0.95) return 128 + Math.floor(rng() * 2000);
    if (r < 0.995) return 2048 + Math.floor(rng() * 60000);
    return 100000 + Math.floor(rng() * 400000);
  };
  for (let i = 0; i < events; i++) {
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
    const live = lives[owner]!;
    const sizes = sizesOf[owner]!;
    const mine = lives[tid - 1]!;
    const mySizes = sizesOf[tid - 1]!;
    const r = rng();
    if (live.length > 0 && (r < 0.47 || live.length > 20000 / threads)) {
      const k = rng() < 0.6 ? live.length - 1 : Math.floor(rng() * live.length);
      const tok = live[k]!;
      live[k] = live[live.length - 1]!;
      sizes[k] = sizes[sizes.length - 1]!;
      live.pop();
      sizes.pop();
      buf += `${t} free ${tok}\n`;
    } else if (r < 0.52 && mine.length > 0) {
      const k = Math.floor(rng() * mine.length);
      const s = Math.floor(mySizes[k]! * (1 + rng())) + 1;
      const tok = `0x${(0x5000 + serial++).toString(16)}`;
      buf += `${t} realloc ${mine[k]} ${s} ${tok}\n`;
      mine[k] = tok;
      mySizes[k] = s;
    } else {
      const s = size();
      const tok = `0x${(0x5000 + serial++).toString(16)}`;
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

function rate(events: number, seconds: number): string {
  return `${(events / seconds / 1e6).toFixed(2)} M events/s`;
}

/** The benchmark's trace of this seed and size, plain and gzip-compressed, generated once. */
async function traceFiles(
  label: string,
  seed: string,
  events: number,
  threads: number,
): Promise<{ plain: string; gz: string }> {
  const dir = join(tmpdir(), 'ptsim-bench');
  mkdirSync(dir, { recursive: true });
  const plain = join(dir, `${seed}-${events}.trace`);
  const gz = `${plain}.gz`;
  if (!existsSync(gz) || !existsSync(plain)) {
    const t0 = performance.now();
    await generate(`${plain}.tmp`, `${gz}.tmp`, events, threads, seed);
    renameSync(`${plain}.tmp`, plain);
    renameSync(`${gz}.tmp`, gz);
    console.log(`generated ${plain} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const mb = (p: string): string => `${(statSync(p).size / 1e6).toFixed(0)} MB`;
  console.log(
    `${label}: ${events.toLocaleString('en-US')} events, ${mb(plain)} plain, ${mb(gz)} gzip`,
  );
  return { plain, gz };
}

async function bench(label: string, seed: string, events: number, threads: number): Promise<void> {
  const { plain, gz } = await traceFiles(label, seed, events, threads);
  const dir = join(tmpdir(), 'ptsim-bench');

  // ptsim, end to end: the command a user runs.
  const t0 = performance.now();
  const sim = spawnSync(
    process.execPath,
    [join(ROOT, 'dist/cli/main.js'), 'replay', gz, '--json', '--cores', String(cpus().length)],
    { encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  const simSeconds = (performance.now() - t0) / 1000;
  if (sim.status !== 0) throw new Error(`ptsim failed: ${sim.stderr}`);
  const simSummary = JSON.parse(sim.stdout) as {
    events: number;
    rss: number;
    peakRss: number;
    arenas: unknown[];
  };

  // The native replayer on the plain file: no event log, no per-event RSS.
  const binary = buildNativeReplayer();
  const out = join(dir, 'native-summary.json');
  const t1 = performance.now();
  const nat = spawnSync(binary, [plain, '--summary', out, '--no-events', '--no-peak'], {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '' },
  });
  const natWall = (performance.now() - t1) / 1000;
  if (nat.status !== 0) throw new Error(`native replayer failed: ${nat.stderr}`);
  const natSummary = JSON.parse(readFileSync(out, 'utf8')) as {
    events: number;
    rss: number;
    seconds: number;
  };

  console.log(
    `ptsim  replay (gzip, end to end): ${simSeconds.toFixed(2)} s, ${rate(simSummary.events, simSeconds)}${threads > 1 ? `, ${simSummary.arenas.length} arenas` : ''}`,
  );
  console.log(
    `glibc  native replay loop:        ${natSummary.seconds.toFixed(2)} s, ${rate(natSummary.events, natSummary.seconds)} (whole process ${natWall.toFixed(2)} s)`,
  );
  console.log(
    `ratio  ptsim end to end / glibc loop: ${(simSeconds / natSummary.seconds).toFixed(2)}`,
  );
  console.log(
    `final RSS: ptsim ${simSummary.rss}, glibc ${natSummary.rss}${simSummary.rss === natSummary.rss ? ' (identical)' : ' (DIFFERENT)'}`,
  );
}

/** A ptsim command run to its end: its time and the peak of its resident memory (GNU time's, when there is one). */
function timed(args: string[]): { seconds: number; maxRssMiB: number | null } {
  const time = ['/usr/bin/time', '/bin/time'].find((p) => existsSync(p));
  const node = [process.execPath, join(ROOT, 'dist/cli/main.js'), ...args];
  const t0 = performance.now();
  const r =
    time !== undefined
      ? spawnSync(time, ['-f', 'maxrss %M', ...node], { encoding: 'utf8', maxBuffer: 1 << 26 })
      : spawnSync(node[0]!, node.slice(1), { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`ptsim ${args[0]} failed: ${r.stderr}`);
  const m = /maxrss (\d+)/.exec(r.stderr);
  return { seconds, maxRssMiB: m !== null ? Number(m[1]) / 1024 : null };
}

async function benchExplain(label: string, seed: string, events: number, threads: number) {
  const { gz } = await traceFiles(label, seed, events, threads);
  const dir = join(tmpdir(), 'ptsim-bench');
  const cores = ['--cores', String(cpus().length)];
  const runs: Array<[string, string[]]> = [
    ['replay', ['replay', gz, ...cores]],
    ['explain', ['explain', gz, ...cores]],
    ['explain --at end --no-what-if', ['explain', gz, ...cores, '--at', 'end', '--no-what-if']],
    ['report', ['report', gz, ...cores, '-o', join(dir, 'report.html')]],
  ];
  let replaySeconds = 0;
  for (const [name, args] of runs) {
    const t = timed(args);
    if (name === 'replay') replaySeconds = t.seconds;
    const mem = t.maxRssMiB !== null ? `, peak RSS ${t.maxRssMiB.toFixed(0)} MiB` : '';
    console.log(
      `ptsim ${name.padEnd(30)} ${t.seconds.toFixed(2).padStart(7)} s (${(t.seconds / replaySeconds).toFixed(1)} x replay)${mem}`,
    );
  }
}

const ONLY = process.env['BENCH_ONLY'];

it.skipIf(ONLY !== undefined)(
  `replays ${EVENTS.toLocaleString('en-US')} single-thread events with ptsim and with real glibc`,
  async () => {
    await bench('single-thread trace', SEED, EVENTS, 1);
  },
);

it.skipIf(ONLY !== undefined)(
  `replays ${MT_EVENTS.toLocaleString('en-US')} events of ${MT_THREADS} threads with ptsim and with real glibc`,
  async () => {
    await bench(`${MT_THREADS}-thread trace`, MT_SEED, MT_EVENTS, MT_THREADS);
  },
);

it.skipIf(ONLY !== undefined && ONLY !== 'explain')(
  `explains ${MT_EVENTS.toLocaleString('en-US')} events of ${MT_THREADS} threads, against the replay's time`,
  async () => {
    await benchExplain(`${MT_THREADS}-thread trace`, MT_SEED, MT_EVENTS, MT_THREADS);
  },
);

async function benchScrub(label: string, seed: string, events: number, threads: number) {
  const { gz } = await traceFiles(label, seed, events, threads);
  const t0 = performance.now();
  const st = await Stepper.read(gz, (sink) => openTrace(gz, sink, { displayName: gz }), {
    settings: { cores: cpus().length },
  });
  const read = performance.now() - t0;
  st.goTo(st.last);
  const loaded = performance.now() - t0;
  console.log(
    `ptsim web engine: read ${(read / 1000).toFixed(2)} s, first pass with a checkpoint every ${st.checkpointInterval} events ${((loaded - read) / 1000).toFixed(2)} s, heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB, resident ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`,
  );
  const rng = seedrandom('bench-scrub');
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
  const stat = (xs: number[]): string => {
    const s = [...xs].sort((p, q) => p - q);
    return `median ${s[s.length >> 1]!.toFixed(0)} ms, max ${s[s.length - 1]!.toFixed(0)} ms`;
  };
  console.log(
    `ptsim web engine: go to a random event (40 of them): ${stat(go)}; its heap view (${(chunks / 40).toFixed(0)} chunks on average): ${stat(view)}`,
  );
}

it.skipIf(ONLY !== undefined && ONLY !== 'web')(
  `scrubs ${MT_EVENTS.toLocaleString('en-US')} events of ${MT_THREADS} threads in the web engine`,
  async () => {
    await benchScrub(`${MT_THREADS}-thread trace`, MT_SEED, MT_EVENTS, MT_THREADS);
  },
);
