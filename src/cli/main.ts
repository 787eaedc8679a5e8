#!/usr/bin/env node
/**
 * The ptsim executable: runs the ptsim command (ptsim.ts) on the process's arguments and sets its
 * exit status. A reader of standard output that goes away (`ptsim ... | head`) ends the command
 * quietly with status 0: it has had what it wanted (output files not yet complete are removed, see
 * output.ts).
 */

// First: glibc's thresholds for this process are raised before the modules load.
import './malloc-thresholds.js';
import { ptsim } from './ptsim.js';

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.exit(0);
});

process.exitCode = await ptsim(
  process.argv.slice(2),
  (s) => void process.stdout.write(s),
  (s) => void process.stderr.write(s),
);
