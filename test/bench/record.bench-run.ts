/**
 * The recording benchmark (`npm run bench`, never part of `npm test`): what `ptsim record` costs a
 * program, three ways taken in turn: not recorded, recorded with `--no-touches` (the calls only),
 * and recorded with touch records and RSS samples (the default). Each program is run ROUNDS times
 * each way (BENCH_RECORD_ROUNDS overrides it); the medians of the processor time (user + system,
 * of the program and its children, as bash's `time` reports them) and of the elapsed time
 * are printed, with the cost per allocator call of each way of recording and what the trace holds.
 *
 * The recorder is loaded as `ptsim record` loads it (LD_PRELOAD and its PTSIM_RECORD_*
 * variables, set by env(1) for the program alone), so that the figures are the program's own,
 * without the command's start-up; the counts of calls and records are those of the program's
 * trace.
 * Programs: test/bench/programs/churn.c (small blocks, 8 KiB blocks in the main heap, 1 MiB
 * mmapped ones; BENCH_RECORD_ROUNDS_C sets its rounds), and CPython with PYTHONMALLOC=malloc
 * building a dict of lists and deleting half of it (skipped, with the reason, without python3).
 */

import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { it } from 'vitest';

/** BENCH_ONLY=record runs this part alone; another part named there leaves it out. */
const SKIP = process.env['BENCH_ONLY'] !== undefined && process.env['BENCH_ONLY'] !== 'record';
import { buildRecorder } from '../../src/record/build.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const ROUNDS = Number(process.env['BENCH_RECORD_ROUNDS'] ?? 7);
const CHURN_ROUNDS = Number(process.env['BENCH_RECORD_ROUNDS_C'] ?? 1_000_000);
const PYTHON = '/usr/bin/python3';
const DIR = join(tmpdir(), 'ptsim-bench-record');

type Way = 'plain' | 'calls' | 'touches';
const WAYS: Way[] = ['plain', 'calls', 'touches'];
const LABEL: Record<Way, string> = {
  plain: 'not recorded',
  calls: '--no-touches',
  touches: 'recorded',
};

interface Run {
  cpu: number;
  wall: number;
  /** What the recording holds (recorded ways only). */
  events?: number;
  touches?: number;
  samples?: number;
  bytes?: number;
}

/** Runs argv once, the way asked, and returns its processor and elapsed time. */
function runOnce(argv: string[], env: NodeJS.ProcessEnv, way: Way, library: string): Run {
  const work = mkdtempSync(join(DIR, 'rec-'));
  try {
    // The shell reads no start-up file (BASH_ENV may name one), and only the program is recorded:
    // env(1) sets the recorder's variables for it alone.
    const e: NodeJS.ProcessEnv = { ...env };
    delete e['BASH_ENV'];
    delete e['ENV'];
    const vars =
      way === 'plain'
        ? []
        : [
            `LD_PRELOAD=${library}`,
            `PTSIM_RECORD_DIR=${work}`,
            ...(way === 'calls' ? ['PTSIM_RECORD_TOUCHES=0'] : []),
          ];
    const t0 = performance.now();
    // bash's `time`: the user and system time of the program and its children (getrusage).
    const r = spawnSync(
      'bash',
      [
        '--norc',
        '--noprofile',
        '-c',
        'TIMEFORMAT="%3U %3S"; time "$@" >/dev/null',
        'bash',
        'env',
        ...vars,
        ...argv,
      ],
      { env: e, encoding: 'utf8' },
    );
    const wall = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${r.stderr}`);
    const t = /^([\d.]+) ([\d.]+)$/m.exec(r.stderr);
    if (t === null) throw new Error(`no times in: ${r.stderr}`);
    const cpu = Number(t[1]) + Number(t[2]);
    const run: Run = { cpu, wall };
    if (way !== 'plain') {
      const exe = realpathSync(argv[0]!);
      const files = readdirSync(work).filter(
        (f) =>
          f.endsWith('.trace') &&
          /^# exe (.*)$/m.exec(readFileSync(join(work, f), 'latin1').slice(0, 4096))?.[1] === exe,
      );
      if (files.length !== 1) throw new Error(`${files.length} traces of ${exe} in ${work}`);
      let events = 0;
      let touches = 0;
      let samples = 0;
      let bytes = 0;
      for (const f of files) {
        const text = readFileSync(join(work, f), 'latin1');
        bytes += text.length;
        for (const line of text.split('\n')) {
          if (line.startsWith('@')) events++;
          else if (line.startsWith('#:touch ')) touches++;
          else if (line.startsWith('#:rss ')) samples++;
        }
      }
      Object.assign(run, { events, touches, samples, bytes });
    }
    return run;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};

function bench(label: string, argv: string[], env: NodeJS.ProcessEnv): void {
  mkdirSync(DIR, { recursive: true });
  const library = buildRecorder({ cacheDir: join(DIR, 'cache') });
  const runs: Record<Way, Run[]> = { plain: [], calls: [], touches: [] };
  // The three ways in turn, so that a busy moment of the machine falls on all of them alike.
  for (let k = 0; k < ROUNDS; k++)
    for (const way of WAYS) runs[way].push(runOnce(argv, env, way, library));
  const rec = runs.touches[0]!;
  console.log(
    `${label}: ${rec.events!.toLocaleString('en-US')} allocator calls; trace ${(rec.bytes! / 1e6).toFixed(1)} MB, ${rec.touches!.toLocaleString('en-US')} #:touch, ${rec.samples} #:rss (medians of ${ROUNDS} runs)`,
  );
  const base = median(runs.plain.map((r) => r.cpu));
  for (const way of WAYS) {
    const cpu = median(runs[way].map((r) => r.cpu));
    const wall = median(runs[way].map((r) => r.wall));
    const per =
      way === 'plain' ? '' : `, ${(((cpu - base) / rec.events!) * 1e9).toFixed(0)} ns a call`;
    console.log(
      `  ${LABEL[way].padEnd(13)} CPU ${cpu.toFixed(3)} s, elapsed ${wall.toFixed(3)} s${per}`,
    );
  }
}

it.skipIf(SKIP)(
  'the cost of recording a C program: calls, and calls with touches and samples',
  () => {
    mkdirSync(DIR, { recursive: true });
    const bin = join(DIR, 'churn');
    const r = spawnSync(
      'cc',
      ['-O2', '-fno-builtin', '-o', bin, join(ROOT, 'test/bench/programs/churn.c')],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`cc failed: ${r.stderr}`);
    bench(`churn ${CHURN_ROUNDS}`, [bin, String(CHURN_ROUNDS)], process.env);
  },
);

const script = [
  'd = {}',
  'for i in range(300000):',
  '    d[str(i)] = [i] * (i % 7)',
  'for i in range(0, 300000, 2):',
  '    del d[str(i)]',
  'print(len(d))',
].join('\n');

if (!existsSync(PYTHON)) console.warn(`skipped: the python3 recording benchmark (no ${PYTHON})`);
it.skipIf(SKIP || !existsSync(PYTHON))(
  'the cost of recording CPython with PYTHONMALLOC=malloc',
  () => {
    bench('python3 dict of 300,000 lists, half deleted', [PYTHON, '-c', script], {
      ...process.env,
      PYTHONMALLOC: 'malloc',
    });
  },
);
