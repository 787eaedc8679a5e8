/**
 * vitest globalSetup: builds `dist/` if a source is newer than it (build.ts), and the native
 * replayer (test/native/replay.c), once, before any test file runs, so that a compiler error shows
 * up once and clearly rather than in every test; and makes sure a headless Chromium is there for
 * the report's browser test (browser.ts), and addr2line and heaptrack for the tests of call stacks
 * and of heaptrack's data (tools.ts).
 */

import { ensureChromium } from './browser.js';
import { ensureBuilt } from './build.js';
import { buildNativeReplayer } from './native.js';
import { ensureTools } from './tools.js';

export default function setup(): void {
  ensureBuilt();
  buildNativeReplayer();
  const browser = ensureChromium();
  if (browser !== '') process.stderr.write(`ptsim tests: ${browser}\n`);
  for (const line of ensureTools()) process.stderr.write(`ptsim tests: ${line}\n`);
}
