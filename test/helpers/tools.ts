/**
 * Programs some tests need besides the compiler: binutils' addr2line (the symbolizer of call
 * stacks) and heaptrack (whose raw data the import tests read). Where one is missing and the tests
 * run as root on a Debian-like system (as in CI), Debian's package is installed once by the test
 * run itself, as browser.ts does for Chromium; elsewhere the tests that need it are skipped, and
 * say why. PTSIM_NO_TEST_INSTALL set: nothing is installed.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Whether `cmd --version` runs. */
export function runs(cmd: string): boolean {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
}

/** The programs installed when missing: the command, its Debian package, and what needs it. */
const TOOLS: Array<{ cmd: string; pkg: string; for: string }> = [
  { cmd: 'addr2line', pkg: 'binutils', for: 'the symbols of recorded call stacks' },
  { cmd: 'heaptrack', pkg: 'heaptrack', for: 'the heaptrack import tests' },
];

/** Installs the missing tools with apt-get if this process may; returns a line per tool on what happened. */
export function ensureTools(): string[] {
  const missing = TOOLS.filter((t) => !runs(t.cmd));
  if (missing.length === 0) return [];
  const names = missing.map((t) => `${t.cmd} (${t.for})`).join(', ');
  if (process.env['PTSIM_NO_TEST_INSTALL'] !== undefined)
    return [
      `missing ${names}, not installed (PTSIM_NO_TEST_INSTALL is set): their tests are skipped`,
    ];
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get'))
    return [`missing ${names}, and no root apt-get to install them: their tests are skipped`];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean =>
    spawnSync(
      'apt-get',
      ['install', '-y', '-q', '--no-install-recommends', ...missing.map((t) => t.pkg)],
      { env, stdio: 'ignore', timeout: 900_000 },
    ).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { env, stdio: 'ignore', timeout: 600_000 });
    install();
  }
  return missing.map((t) =>
    runs(t.cmd)
      ? `installed ${t.pkg} (Debian package) for ${t.for}`
      : `could not install ${t.pkg} with apt-get: ${t.for} are skipped`,
  );
}
