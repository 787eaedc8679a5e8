/**
 * A real mtrace log: a program of ours (programs/mtrace-calls.c) calls mtrace() and a known
 * sequence of malloc, calloc, realloc, memalign, valloc and free, under glibc's
 * libc_malloc_debug.so with MALLOC_TRACE set. The log imports to that sequence, as far as mtrace
 * can say it (calloc, memalign and valloc are logged as plain allocations, a realloc from NULL as
 * an allocation, a realloc to 0 as a free, free(NULL) not at all), and the imported trace replays
 * identically in ptsim and on this machine's glibc (the differential harness).
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openTrace } from '../../src/import/index.js';
import { eventLine, headerLines } from '../../src/import/native-writer.js';
import { NO_KEY } from '../../src/trace/token-key.js';
import { OP_NAMES, Op, type TraceEvent } from '../../src/trace/types.js';
import { differential } from '../diff/harness.js';
import { collect } from './helpers.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const PROGRAM = join(HERE, 'programs/mtrace-calls.c');
const DEBUG_LIBS = [
  '/lib/x86_64-linux-gnu/libc_malloc_debug.so.0',
  '/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0',
  '/lib64/libc_malloc_debug.so.0',
  '/usr/lib64/libc_malloc_debug.so.0',
];
const debugLib = DEBUG_LIBS.find((p) => existsSync(p));
const haveCc = spawnSync('cc', ['--version'], { stdio: 'ignore' }).error === undefined;

const dir = mkdtempSync(join(tmpdir(), 'ptsim-mtrace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * The calls with blocks named by letters in order of allocation (a token's address may be handed
 * out again, so blocks are named, not addresses).
 */
function symbolic(events: TraceEvent[]): string[] {
  const names = new Map<string, string>();
  let next = 0;
  const token = (key: number | undefined, text: string): string =>
    key === NO_KEY ? text : text === '' ? '0' : text;
  return events.map((ev) => {
    const input =
      ev.op === Op.free || ev.op === Op.realloc
        ? (names.get(token(ev.inKey, ev.in)) ?? `?${ev.in}`)
        : '';
    let output = '';
    if (ev.op !== Op.free) {
      if (ev.out === '') output = 'NULL';
      else {
        output = String.fromCharCode(65 + next++);
        names.set(token(ev.outKey, ev.out), output);
      }
    }
    switch (ev.op) {
      case Op.free:
        return `free ${input}`;
      case Op.realloc:
        return `realloc ${input} ${ev.n1} -> ${output}`;
      default:
        return `${OP_NAMES[ev.op]} ${ev.n1} -> ${output}`;
    }
  });
}

describe('a log written by glibc mtrace()', () => {
  it.skipIf(debugLib === undefined || !haveCc)(
    'imports to the calls the program made and replays identically in ptsim and glibc',
    async () => {
      const exe = join(dir, 'mtrace-calls');
      const cc = spawnSync('cc', ['-O0', '-Wall', '-Wextra', '-Werror', '-o', exe, PROGRAM], {
        encoding: 'utf8',
      });
      expect(cc.status, cc.stderr).toBe(0);
      const log = join(dir, 'mtrace.log');
      const run = spawnSync(exe, [], {
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          LD_PRELOAD: debugLib!,
          MALLOC_TRACE: log,
        },
        encoding: 'utf8',
      });
      expect(run.status, run.stderr).toBe(0);
      const text = readFileSync(log, 'utf8');
      expect(text.startsWith('= Start\n')).toBe(true);

      const c = collect();
      const warnings: string[] = [];
      const r = await openTrace(log, c.sink, { onWarning: (m) => warnings.push(m) });
      expect(r.format).toBe('mtrace');
      expect(warnings).toEqual([]);
      expect(symbolic(c.events)).toEqual([
        'malloc 24 -> A', // malloc(24)
        'malloc 400 -> B', // calloc(4, 100)
        'realloc A 200 -> C',
        'malloc 1000 -> D', // memalign(64, 1000)
        'free B',
        'malloc 10 -> E', // realloc(NULL, 10)
        'malloc 200000 -> F',
        'free E', // realloc(E, 0)
        'malloc 5000 -> G',
        `realloc G ${2 ** 63} -> NULL`, // realloc(G, SIZE_MAX / 2) fails; G stays
        'malloc 100 -> H', // valloc(100)
        'malloc 24 -> I',
        'free C',
        'free D',
        'free F',
        'free G',
        'free H',
        'realloc I 5000 -> J',
        'free J',
      ]);
      // The caller prefixes and the markers are all that was left out.
      expect(c.events.map((e) => e.line)).toEqual([
        2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 22,
      ]);

      const trace = headerLines(c.header.h!) + c.events.map((e) => eventLine(e) + '\n').join('');
      expect(differential(trace, { name: 'mtrace.log', stats: true, info: true })).toBeNull();
    },
  );
});
