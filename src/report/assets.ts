/**
 * The charting library, read from the installed package when a report is written and inlined into
 * it, so that the page needs no network: uPlot's minified script, its stylesheet and its licence
 * (MIT asks for the notice to travel with every copy).
 */

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

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
