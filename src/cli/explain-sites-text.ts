/**
 * The allocation sites in `ptsim explain`'s text: the line under each pin, and the top sites of
 * each cause (src/analysis/explain-sites.ts).
 */

import type { BlockSite, CauseSites, MomentSites, TopSite } from '../analysis/explain-sites.js';
import { shortBytes } from '../analysis/units.js';
import { count, plural } from './numbers.js';

const CAUSE_TITLE: Record<CauseSites['cause'], string> = {
  live: 'live data',
  tcache: 'freed blocks in the tcache',
  fastbins: 'freed blocks in the fastbins',
  fragmentation: 'fragmentation (free memory in the bins that these live blocks keep resident)',
};

/** The line under a pin: where it was allocated, and the calls that led there. */
export function pinSiteLine(s: BlockSite): string {
  return `      allocated in ${s.chain.join(' <- ')}`;
}

/** The section of the top sites of each cause. */
export function formatSites(ms: MomentSites): string[] {
  if (ms.causes.length === 0) return [];
  const lines = ['', `  which code holds it (by ${ms.by})`];
  const site = (s: TopSite): string => {
    const first = ms.by === 'site' && s.chain.length > 1 ? `  <- ${s.chain[1]}` : '';
    return `      ${shortBytes(s.bytes).padStart(10)} ${count(s.pages).padStart(6)} ${(s.pages === 1 ? 'page' : 'pages').padEnd(5)} ${plural(s.blocks, 'block')}  ${s.key}${first}`;
  };
  for (const c of ms.causes) {
    lines.push(`    ${CAUSE_TITLE[c.cause]}`);
    for (const s of c.sites) lines.push(site(s));
    if (c.more > 0) lines.push(`      ... and ${c.more} more`);
    if (c.unknownBytes > 0)
      lines.push(`      ${shortBytes(c.unknownBytes).padStart(10)} in blocks without a call stack`);
  }
  for (const a of ms.arenas) {
    const name = a.arena < 0 ? 'mmapped chunks' : a.arena === 0 ? 'main arena' : `arena ${a.arena}`;
    lines.push(`    ${name} (live data, tcache and fastbins)`);
    for (const s of a.sites) {
      // Split by cause when the site's blocks are of more than one.
      const parts = Object.entries(s.causes ?? {});
      lines.push(
        site(s) +
          (parts.length > 1
            ? ` (${parts.map(([c, b]) => `${c === 'live' ? 'live' : `in the ${c}`} ${shortBytes(b)}`).join(', ')})`
            : parts.length === 1 && parts[0]![0] !== 'live'
              ? ` (in the ${parts[0]![0]})`
              : ''),
      );
    }
    if (a.more > 0) lines.push(`      ... and ${a.more} more`);
  }
  return lines;
}
