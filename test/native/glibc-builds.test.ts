/**
 * Debian's builds of other glibc versions (test/helpers/glibc-builds.ts): where the archive is
 * found, what happens when a version cannot be had, and one sample of the versions suite
 * (npm run test:versions): glibc 2.41 fetched (once, into the cache) and running the replayer.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { debianArchive, fetchGlibc, glibcCacheDir } from '../helpers/glibc-builds.js';
import { runNative } from '../helpers/native.js';

const HERE = dirname(fileURLToPath(import.meta.url));

describe('the Debian archive of the system sources', () => {
  it('comes from a deb822 stanza, not the security archive nor another repository', () => {
    const sources = [
      {
        name: '/etc/apt/sources.list.d/nodesource.sources',
        text: 'Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n',
      },
      {
        name: '/etc/apt/sources.list.d/debian.sources',
        text:
          'Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n' +
          'Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n',
      },
    ];
    expect(debianArchive(sources)).toBe('http://mirror.example/debian');
  });

  it('comes from a one-line entry, options and all', () => {
    const text =
      '# deb http://old.example/debian bookworm main\n' +
      'deb http://security.debian.org/debian-security bookworm-security main\n' +
      'deb [arch=amd64 signed-by=/k.gpg] https://ftp.example/debian bookworm main contrib\n';
    expect(debianArchive([{ name: '/etc/apt/sources.list', text }])).toBe(
      'https://ftp.example/debian',
    );
    expect(debianArchive([])).toBeUndefined();
  });
});

describe('a version that cannot be had', () => {
  it('is not one the project knows', () => {
    const f = fetchGlibc('2.99');
    expect(f).toEqual({ ok: false, reason: 'glibc 2.99 is not one of 2.31, 2.41, 2.43, 2.44' });
  });

  it('is not in the cache, and fetching is forbidden', () => {
    const cache = mkdtempSync(join(tmpdir(), 'ptsim-glibc-'));
    const saved = process.env['PTSIM_GLIBC_OFFLINE'];
    process.env['PTSIM_GLIBC_OFFLINE'] = '1';
    try {
      const f = fetchGlibc('2.41', cache);
      expect(f.ok).toBe(false);
      if (!f.ok) expect(f.reason).toBe(`glibc 2.41 is not in ${cache} and PTSIM_GLIBC_OFFLINE=1`);
    } finally {
      if (saved === undefined) delete process.env['PTSIM_GLIBC_OFFLINE'];
      else process.env['PTSIM_GLIBC_OFFLINE'] = saved;
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it('the cache is outside the repository, where XDG_CACHE_HOME says', () => {
    expect(glibcCacheDir({ XDG_CACHE_HOME: '/x/cache' })).toBe('/x/cache/ptsim/glibc');
    expect(glibcCacheDir({ PTSIM_GLIBC_CACHE: '/y', XDG_CACHE_HOME: '/x' })).toBe('/y');
  });
});

const sample = fetchGlibc('2.41');

describe('a sample of the versions suite', () => {
  it.skipIf(!sample.ok)(
    `glibc 2.41 runs the replayer under its own loader${sample.ok ? '' : ` (skipped: ${sample.reason})`}`,
    () => {
      const r = runNative(join(HERE, 'first-calls.trace'), { glibc: '2.41', rss: true });
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.summary!['glibc']).toBe('2.41');
      // The tcache (chunk 0x290) first, as on 2.36; 2.43 would put the block at 0x10.
      expect(r.events.map((e) => e['off'])).toEqual([0x2a0, 0x2c0, 0x2e0, 0x10]);
    },
  );
});
