/**
 * The ptsim command for tests: the built one (`dist/`, as a user runs it), called in this process
 * (`inProcess`), or started as its own process (`spawned`) where what is tested needs one: standard
 * input, signals, a reader of standard output, the executable's exit status itself.
 *
 * In this process the command is the same compiled code as the executable runs (`dist/bin/main.js`,
 * the same modules bundled), worker threads included (compare, sweep, explain's remedies and the
 * trace parser start them from `dist/`); only main.js's lines around it are left out, which
 * `spawned` covers. It saves a
 * Node start-up (about 0.2 CPU-second, more with the workers' own) per command.
 */

import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
/** The executable as package.json's `bin` names it: the bundle of `npm run build:bin`. */
export const MAIN = join(ROOT, 'dist/bin/main.js');

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

type Print = (s: string) => void;
type Ptsim = (argv: string[], out: Print, err: Print) => Promise<number>;

let loaded: Promise<Ptsim> | undefined;

/**
 * Runs `ptsim ARGS...` in this process (relative paths are taken from the process's directory).
 * What the command writes to standard output itself (an output named `-`, as `--events -`) is
 * taken with what it prints, in order, as a process's standard output would have them.
 */
export async function inProcess(args: string[]): Promise<CliResult> {
  loaded ??= (
    import(pathToFileURL(join(ROOT, 'dist/cli/ptsim.js')).href) as Promise<{ ptsim: Ptsim }>
  ).then((m) => m.ptsim);
  const ptsim = await loaded;
  let out = '';
  let err = '';
  // eslint-disable-next-line @typescript-eslint/unbound-method -- only put back, never called here
  const write = process.stdout.write;
  process.stdout.write = (s: string | Uint8Array): boolean => {
    out += typeof s === 'string' ? s : Buffer.from(s).toString('utf8');
    return true;
  };
  try {
    const code = await ptsim(
      args,
      (s) => void (out += s),
      (s) => void (err += s),
    );
    return { code, out, err };
  } finally {
    process.stdout.write = write;
  }
}

/** Runs `node dist/bin/main.js ARGS...` as its own process. */
export function spawned(
  args: string[],
  opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {},
): CliResult {
  const r = spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    input: opts.input,
    cwd: opts.cwd ?? ROOT,
    env: opts.env,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
