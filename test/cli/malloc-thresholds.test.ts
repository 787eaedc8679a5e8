/**
 * ptsim's own process under glibc (src/cli/malloc-thresholds.ts): with the mmap threshold raised at
 * start-up, buffers of a megabyte freed together are kept by glibc and reused, where under the
 * default thresholds their memory goes back to the system and the next ones are fresh pages, each
 * written page a page fault. Measured in processes of their own, on the built module.
 */

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
const glibc = process.platform === 'linux' && report.header?.glibcVersionRuntime !== undefined;

/** Page faults of rounds of eight 1 MiB buffers, written, then freed together. */
function faultsPerRound(raised: boolean): number[] {
  const dist = (p: string): string => pathToFileURL(join(ROOT, 'dist', p)).href;
  const script = `
    ${raised ? `await import(${JSON.stringify(dist('cli/malloc-thresholds.js'))});` : ''}
    const { release } = await import(${JSON.stringify(dist('core/release.js'))});
    const rounds = [];
    for (let r = 0; r < 6; r++) {
      const f0 = process.resourceUsage().minorPageFault;
      const bufs = [];
      for (let k = 0; k < 8; k++) bufs.push(new Uint8Array(1 << 20).fill(1));
      for (const a of bufs) release(a);
      rounds.push(process.resourceUsage().minorPageFault - f0);
    }
    console.log(JSON.stringify(rounds));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as number[];
}

describe('malloc thresholds', () => {
  it.runIf(process.platform === 'linux')(
    'leave the thresholds as they are when the block cannot be had, and the command starts (Linux)',
    () => {
      // A process that cannot have 32 MiB (a limit on its address space): the allocation fails.
      const module = pathToFileURL(join(ROOT, 'dist/cli/malloc-thresholds.js')).href;
      const script = `
        const Base = Uint8Array;
        globalThis.Uint8Array = class extends Base {
          constructor(...a) {
            if (typeof a[0] === 'number' && a[0] >= 1 << 24)
              throw new RangeError('Array buffer allocation failed');
            super(...a);
          }
        };
        await import(${JSON.stringify(module)});
        console.log('started');
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
      });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('started');
    },
  );

  it.runIf(glibc)(
    'raised at start-up, glibc reuses freed megabytes instead of writing fresh pages (glibc)',
    () => {
      // Eight megabytes written are 2,048 pages: each round's, after the first, under the default
      // thresholds (trimmed away when freed); nearly none once glibc keeps them.
      const before = faultsPerRound(false).slice(1);
      const after = faultsPerRound(true).slice(1);
      for (const n of before) expect(n).toBeGreaterThan(1500);
      for (const n of after) expect(n).toBeLessThan(300);
    },
  );
});
