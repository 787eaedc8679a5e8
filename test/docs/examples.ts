/**
 * The shell examples of the documentation pages, run for real.
 *
 * A page's examples are the lines of its code blocks that start with `$ `: a command, continued
 * through `EOF` when it opens a here-document (`<<'EOF'`). The lines after a command, up to the
 * next command or the end of the block, are its output as pasted on the page, where a line `...`
 * stands for lines left out. Commands run in order, in a scratch directory of the page's own (so
 * that `cat > x.trace <<'EOF'` makes a file the later commands read), with `traces/` linked to the
 * repository's, and `npx ptsim` standing for the built command, `dist/bin/main.js`. A command that
 * is `npx ptsim` with plain arguments alone (maybe with its standard output sent to a file) runs in
 * this process (test/helpers/cli.ts): the same built code, without a Node start-up for each; any
 * other command (a pipe, standard input as `-`, other programs) runs in bash.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcess, MAIN, ROOT } from '../helpers/cli.js';

export { ROOT };

export interface Example {
  /** The command as written on the page (without the `$ `). */
  command: string;
  /** The output lines pasted under it. */
  output: string[];
  /** Line of the page where the command starts. */
  line: number;
}

/** The examples of one markdown text, in page order. */
export function examplesOf(markdown: string): Example[] {
  const lines = markdown.split('\n');
  const out: Example[] = [];
  // The indentation of the open code block's fence (blocks inside list items are indented), or
  // null outside code blocks.
  let indent: string | null = null;
  let current: Example | null = null;
  const unindent = (l: string): string =>
    indent !== null && l.startsWith(indent) ? l.slice(indent.length) : l.trimStart();
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const fence = /^(\s*)```/.exec(raw);
    if (fence) {
      indent = indent === null ? fence[1]! : null;
      current = null;
      continue;
    }
    if (indent === null) continue;
    const l = unindent(raw);
    if (l.startsWith('$ ')) {
      current = { command: l.slice(2), output: [], line: i + 1 };
      out.push(current);
      if (/<<'EOF'/.test(current.command)) {
        // The here-document belongs to the command.
        while (++i < lines.length) {
          const h = unindent(lines[i]!);
          current.command += '\n' + h;
          if (h === 'EOF') break;
        }
      }
      continue;
    }
    if (current !== null) current.output.push(l);
  }
  return out;
}

export interface Ran {
  example: Example;
  stdout: string;
  status: number | null;
  stderr: string;
}

/**
 * The arguments of a command that is `npx ptsim` with plain words alone (quoted ones without
 * anything the shell would expand), and the file its standard output goes to, if any; else null.
 */
function plainPtsim(command: string): { args: string[]; stdout?: string } | null {
  const m = /^npx ptsim ([^\n|;&<>()$`\\*?]*?)(?: > ([\w.-]+))?$/.exec(command);
  if (m === null) return null;
  const args: string[] = [];
  const word = /"([^"]*)"|'([^']*)'|([^\s"']+)|(\s+)/gy;
  let w: RegExpExecArray | null;
  let current: string | undefined;
  while ((w = word.exec(m[1]!)) !== null) {
    if (w[4] !== undefined) {
      if (current !== undefined) args.push(current);
      current = undefined;
    } else current = (current ?? '') + (w[1] ?? w[2] ?? w[3]!);
  }
  if (word.lastIndex !== 0 && word.lastIndex < m[1]!.length) return null;
  if (current !== undefined) args.push(current);
  // `-` as a trace is standard input, which only a process of its own has (`-` as an output,
  // standard output, is taken in this process too: see inProcess).
  if (args.some((a, i) => a === '-' && !args[i - 1]!.startsWith('-'))) return null;
  return m[2] === undefined ? { args } : { args, stdout: m[2] };
}

/** Runs a page's examples in order in a scratch directory; returns each with what it printed. */
export async function runExamples(markdown: string): Promise<Ran[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ptsim-docs-'));
  const cwd = process.cwd();
  try {
    symlinkSync(join(ROOT, 'traces'), join(dir, 'traces'));
    const ran: Ran[] = [];
    for (const ex of examplesOf(markdown)) {
      const plain = plainPtsim(ex.command);
      if (plain !== null) {
        process.chdir(dir);
        try {
          const r = await inProcess(plain.args);
          if (plain.stdout !== undefined) writeFileSync(plain.stdout, r.out);
          const stdout = plain.stdout === undefined ? r.out : '';
          ran.push({ example: ex, stdout, status: r.code, stderr: r.err });
        } finally {
          process.chdir(cwd);
        }
        continue;
      }
      const cmd = ex.command.replace(/\bnpx ptsim\b/g, `'${process.execPath}' '${MAIN}'`);
      const r = spawnSync('bash', ['-c', cmd], { cwd: dir, encoding: 'utf8', maxBuffer: 64 << 20 });
      ran.push({ example: ex, stdout: r.stdout, status: r.status, stderr: r.stderr });
    }
    return ran;
  } finally {
    process.chdir(cwd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Null when every pasted output line appears in what the command printed, in the same order
 * (lines `...` skip); otherwise a description of the first line that does not.
 */
export function checkOutput(ran: Ran): string | null {
  if (ran.status !== 0) return `exit status ${ran.status}: ${ran.stderr.trim()}`;
  const actual = ran.stdout.split('\n').map((l) => l.trimEnd());
  let at = 0;
  for (const want of ran.example.output.map((l) => l.trimEnd())) {
    if (want.trim() === '...' || want === '') continue;
    let found = -1;
    for (let k = at; k < actual.length; k++) {
      if (actual[k] === want) {
        found = k;
        break;
      }
    }
    if (found < 0)
      return `this line is not in the output (or not in this order):\n  ${want}\nthe command printed:\n${ran.stdout}`;
    at = found + 1;
  }
  return null;
}

/** The here-document traces written with `cat > NAME <<'EOF'`, by name. */
export function tracesOf(markdown: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const ex of examplesOf(markdown)) {
    const m = /^cat > (\S+) <<'EOF'\n([\s\S]*)\nEOF$/.exec(ex.command);
    if (m) out.set(m[1]!, m[2]! + '\n');
  }
  return out;
}

/** The trace a documentation page writes as NAME (`docs/PAGE`, as `learn/bins.md`): tests that
 *  check a page's worked example read it from the page itself. */
export function pageTrace(page: string, name: string): string {
  const text = tracesOf(readFileSync(join(ROOT, 'docs', page), 'utf8')).get(name);
  if (text === undefined) throw new Error(`docs/${page} writes no ${name}`);
  return text;
}

export interface ReplaySettings {
  trace: string;
  env: Record<string, string>;
  mallopt: boolean;
  /** The glibc version of `--glibc`, when the command gives one. */
  glibc?: string;
}

/**
 * The settings (`--env`, `--tunables`, `--mallopt`, `--glibc`) each `ptsim replay FILE` command
 * gives a page trace.
 */
export function replaySettingsOf(markdown: string, traces: Map<string, string>): ReplaySettings[] {
  const out: ReplaySettings[] = [];
  for (const ex of examplesOf(markdown)) {
    const m = /^npx ptsim replay (\S+)(.*)$/.exec(ex.command.split('\n')[0]!);
    if (!m || !traces.has(m[1]!)) continue;
    const env: Record<string, string> = {};
    let glibc: string | undefined;
    const args = m[2]!.trim().split(/\s+/);
    for (let k = 0; k < args.length; k++) {
      if (args[k] === '--env') {
        const [n, v] = args[++k]!.split('=');
        env[n!] = v!;
      } else if (args[k] === '--tunables') env['GLIBC_TUNABLES'] = args[++k]!;
      else if (args[k] === '--glibc') glibc = args[++k]!;
    }
    out.push({
      trace: m[1]!,
      env,
      mallopt: args.includes('--mallopt'),
      ...(glibc === undefined ? {} : { glibc }),
    });
  }
  return out;
}

export function readPage(path: string): string {
  return readFileSync(path, 'utf8');
}
