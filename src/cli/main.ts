#!/usr/bin/env node
/** The ptsim executable: runs the ptsim command (ptsim.ts) on the process's arguments and sets its exit status. */

import { ptsim } from './ptsim.js';

process.exitCode = await ptsim(
  process.argv.slice(2),
  (s) => void process.stdout.write(s),
  (s) => void process.stderr.write(s),
);
