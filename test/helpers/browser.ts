/**
 * The headless browser the report test opens its pages in: Chromium where it is installed, else,
 * when the tests run as root on a Debian-like system (as in CI), Debian's chromium package is
 * installed once by the test run itself. Elsewhere the browser test is skipped, and says why.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';

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

/** The flags every headless Chromium of the tests runs with: no sandbox, GPU, network or sync. */
export const HEADLESS_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

/**
 * Opens a page in headless Chromium (`findChromium`) and returns its DOM after the page's scripts
 * ran (a few seconds of virtual time), with a profile of its own, removed afterwards; `hash` is
 * added to the page's address (`#event=12`).
 */
export function dumpDom(chromium: string, page: string, profileRoot: string, hash = ''): string {
  const profile = mkdtempSync(join(profileRoot, 'ptsim-chromium-'));
  try {
    const r = spawnSync(
      chromium,
      [
        ...HEADLESS_FLAGS,
        `--user-data-dir=${profile}`,
        '--window-size=1280,2000',
        '--virtual-time-budget=5000',
        '--dump-dom',
        `file://${page}${hash}`,
      ],
      { encoding: 'utf8', timeout: 90_000, maxBuffer: 1 << 27 },
    );
    return r.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
