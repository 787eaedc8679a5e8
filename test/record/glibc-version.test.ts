/**
 * The recorder writes the glibc release the program runs on (`# glibc`, gnu_get_libc_version()),
 * and a replay models that release unless told otherwise: recorded on this machine's glibc, and on
 * Debian's build of 2.41 run through its own loader (skipped, with the reason, when it cannot be
 * fetched).
 */

import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { differential } from '../diff/harness.js';
import { fetchGlibc } from '../helpers/glibc-builds.js';
import { inProcess } from '../helpers/cli.js';
import { events, logged, program, record, scratch } from './helpers.js';

/** The header's `# glibc` line, or undefined. */
function glibcLine(trace: string): string | undefined {
  return trace.split('\n').find((l) => l.startsWith('# glibc '));
}

/** `ptsim replay FILE --json` (with ARGS): the summary's glibc field. */
async function replayedAs(trace: string, args: string[] = []): Promise<unknown> {
  const file = join(scratch('glibc-version'), 'rec.trace');
  writeFileSync(file, trace);
  const r = await inProcess(['replay', file, '--json', ...args]);
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { glibc: unknown }).glibc;
}

describe('the recorded glibc version', () => {
  it("is this machine's release, and the replay models it", async () => {
    // getconf asks the C library the same question by another road: "glibc 2.36".
    const conf = spawnSync('getconf', ['GNU_LIBC_VERSION'], { encoding: 'utf8' });
    const release = /^glibc (\d+\.\d+)/.exec(conf.stdout)?.[1];
    expect(release, conf.stderr).toBeDefined();
    const r = await record(program('single'), []);
    expect(r.exitCode).toBe(0);
    expect(glibcLine(r.main)).toBe(`# glibc ${release}`);
    expect(await replayedAs(r.main)).toBe(release);
  });

  it('comes with the CPUs the program may run on, which 2.34 and 2.35 count for the arena limit', async () => {
    // libuv reads the same affinity mask for os.availableParallelism.
    const r = await record(program('single'), []);
    expect(r.main.split('\n')).toContain(`# cpus_allowed ${availableParallelism()}`);
    const taskset = spawnSync('taskset', ['--version'], { encoding: 'utf8' });
    if (taskset.error !== undefined) return; // no taskset here: the mask cannot be narrowed
    const one = await record('taskset', ['-c', '0', program('single')]);
    expect(one.exitCode).toBe(0);
    expect(one.main.split('\n')).toContain('# cpus_allowed 1');
  });

  const build = fetchGlibc('2.41');
  it.skipIf(!build.ok)(
    `on Debian's glibc 2.41 is 2.41, replayed as 2.41 by default, identical to that glibc${build.ok ? '' : ` (skipped: ${build.reason})`}`,
    async () => {
      if (!build.ok) return;
      const b = build.build;
      const r = await record(b.loader, ['--library-path', b.libDir, program('single')]);
      expect(r.exitCode).toBe(0);
      expect(glibcLine(r.main)).toBe('# glibc 2.41');
      expect(events(r.main).map((e) => e.call)).toEqual(logged(r.stdout!));
      // Without --glibc the replay takes the header's version; --glibc overrides it.
      expect(await replayedAs(r.main)).toBe('2.41');
      expect(await replayedAs(r.main, ['--glibc', '2.36'])).toBe('2.36');
      // And the recording replays on that glibc as it does in the model of it.
      expect(differential(r.main, { name: 'single-2.41', glibc: '2.41' })).toBeNull();
    },
  );
});
