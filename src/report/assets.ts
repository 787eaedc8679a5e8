/**
 * The scripts a report inlines, read when a report is written so that the page needs no network:
 * the charting library from the installed package (uPlot's minified script, its stylesheet and its
 * licence: MIT asks for the notice to travel with every copy), and the page's own script as
 * `npm run build` compiled it (client/page.ts).
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ChartAssets {
  script: string;
  style: string;
  license: string;
  version: string;
}

let cached: ChartAssets | null = null;

export function chartAssets(): ChartAssets {
  if (cached !== null) return cached;
  const require = createRequire(import.meta.url);
  const script = require.resolve('uplot/dist/uPlot.iife.min.js');
  const root = dirname(dirname(script));
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  cached = {
    // The banner comment names the project's home page; the licence below says whose it is.
    script: readFileSync(script, 'utf8').replace(/^\/\*![^*]*\*\/\s*/, ''),
    style: readFileSync(join(root, 'dist/uPlot.min.css'), 'utf8'),
    license: readFileSync(join(root, 'LICENSE'), 'utf8'),
    version: pkg.version,
  };
  return cached;
}

let pageCode: string | null = null;

/**
 * The page's own script, compiled from client/page.ts next to this module into dist/report/client
 * (found from the package's root: this module also runs bundled, from dist/bin).
 */
export function pageScript(): string {
  if (pageCode !== null) return pageCode;
  const file = fileURLToPath(new URL('../../dist/report/client/page.js', import.meta.url));
  try {
    pageCode = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`the report page's script ${file} is missing: run npm run build`, { cause: e });
  }
  return pageCode;
}
