/**
 * The headless browser the report test opens its pages in: Chromium where it is installed, else,
 * when the tests run as root on a Debian-like system (as in CI), Debian's chromium package is
 * installed once by the test run itself. Elsewhere the browser test is skipped, and says why.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function findChromium(): string | undefined {
  const own = process.env['PTSIM_CHROMIUM'];
  if (own !== undefined && own !== '' && existsSync(own)) return own;
  return CANDIDATES.find((p) => existsSync(p));
}

/** Installs Chromium with apt-get if it is missing and this process may; returns a line saying what happened. */
export function ensureChromium(): string {
  if (findChromium() !== undefined) return '';
  if (process.env['PTSIM_NO_BROWSER_INSTALL'] !== undefined)
    return 'no Chromium (PTSIM_NO_BROWSER_INSTALL is set): the report browser test is skipped';
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get'))
    return 'no Chromium, and no root apt-get to install it: the report browser test is skipped';
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = (): boolean =>
    spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'chromium'], {
      env,
      stdio: 'ignore',
      timeout: 900_000,
    }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update', '-q'], { env, stdio: 'ignore', timeout: 600_000 });
    install();
  }
  return findChromium() !== undefined
    ? 'installed Chromium (Debian package) for the report browser test'
    : 'could not install Chromium with apt-get: the report browser test is skipped';
}
