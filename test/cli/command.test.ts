/**
 * The command skeleton (src/cli/command.ts): how every command answers --help, words the mistakes
 * on its command line, and ends on a trace mistake, on glibc's abort and on a bug.
 */

import { describe, expect, it } from 'vitest';
import { defineCommand, type CommandIO } from '../../src/cli/command.js';
import { GlibcAborted, UsageError } from '../../src/cli/errors.js';
import { TraceSyntaxError } from '../../src/trace/types.js';

/** A command whose logic is given by the test, with one option of each kind. */
function command(
  logic: (values: { count?: string; loud: boolean }, io: CommandIO) => number,
  extra: { positionals?: boolean } = {},
) {
  return defineCommand({
    name: 'try',
    help: 'Usage: ptsim try [--count N] [--loud]',
    options: { count: { type: 'string' }, loud: { type: 'boolean', default: false } },
    ...extra,
    run: ({ values }, io) => Promise.resolve(logic(values, io)),
  });
}

async function run(
  cmd: ReturnType<typeof command>,
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await cmd.run(
    argv,
    (s) => void (out += s),
    (s) => void (err += s),
  );
  return { code, out, err };
}

describe('the command skeleton', () => {
  it('parses the declared options and answers -h and --help without running the command', async () => {
    let seen: unknown = null;
    const cmd = command((values, io) => {
      seen = values;
      io.out('ran\n');
      return 0;
    });
    expect(await run(cmd, ['--count', '3', '--loud'])).toEqual({ code: 0, out: 'ran\n', err: '' });
    expect(seen).toMatchObject({ count: '3', loud: true });
    seen = null;
    for (const h of ['-h', '--help', '--loud --help'])
      expect(await run(cmd, h.split(' '))).toEqual({
        code: 0,
        out: 'Usage: ptsim try [--count N] [--loud]\n',
        err: '',
      });
    expect(seen).toBeNull();
  });

  it('turns parseArgs complaints into usage errors', async () => {
    const cmd = command(() => 0);
    await expect(run(cmd, ['--frobnicate'])).rejects.toThrow(UsageError);
    await expect(run(cmd, ['--count'])).rejects.toThrow(/--count/);
    await expect(run(cmd, ['--help', '--frobnicate'])).rejects.toThrow(UsageError);
    await expect(
      run(
        command(() => 0, { positionals: false }),
        ['x'],
      ),
    ).rejects.toThrow(UsageError);
  });

  it('ends a trace mistake in one line with status 2, and glibc abort with status 3', async () => {
    const mistake = await run(
      command(() => {
        throw new TraceSyntaxError('t.trace', 7, "unknown operation 'mallok'");
      }),
      [],
    );
    expect(mistake).toEqual({
      code: 2,
      out: '',
      err: "ptsim: t.trace:7: unknown operation 'mallok'\n",
    });
    // From a worker thread a mistake comes back as a plain Error carrying its name.
    const fromWorker = Object.assign(
      new Error('t.trace:2: free of zz, which is not a live block'),
      { name: 'ReplayError' },
    );
    expect(
      await run(
        command(() => {
          throw fromWorker;
        }),
        [],
      ),
    ).toEqual({
      code: 2,
      out: '',
      err: 'ptsim: t.trace:2: free of zz, which is not a live block\n',
    });
    const abort = await run(
      command((_, io) => {
        io.out('summary\n');
        throw new GlibcAborted('t.trace', {
          event: 2,
          line: 3,
          message: 'free(): double free detected in tcache 2',
        });
      }),
      [],
    );
    expect(abort).toEqual({
      code: 3,
      out: 'summary\n',
      err: 'ptsim: glibc would abort at event 2 (t.trace:3): free(): double free detected in tcache 2\n',
    });
  });

  it('lets a command report a trace mistake and go on', async () => {
    const r = await run(
      command((_, io) => {
        const status = io.fail(new TraceSyntaxError('t.trace', 2, 'bad'));
        io.out('what there is\n');
        return status;
      }),
      [],
    );
    expect(r).toEqual({ code: 2, out: 'what there is\n', err: 'ptsim: t.trace:2: bad\n' });
  });

  it('passes usage errors and bugs on', async () => {
    await expect(
      run(
        command(() => {
          throw new UsageError('try needs a FILE');
        }),
        [],
      ),
    ).rejects.toThrow(new UsageError('try needs a FILE'));
    await expect(
      run(
        command((_, io) => io.fail(new RangeError('a bug'))),
        [],
      ),
    ).rejects.toThrow(RangeError);
  });
});
