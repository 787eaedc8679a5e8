#!/usr/bin/env node
/**
 * The ptsim executable: runs the ptsim command (ptsim.ts) on the process's arguments and sets its
 * exit status. A reader of standard output that goes away (`ptsim ... | head`) ends the command
 * quietly with status 0: it has had what it wanted (output files not yet complete are removed, see
 * output.ts).
 *
 * On a big trace the command may run in a child process that has huge pages (huge-pages.ts); this
 * one then only waits for it. The modules of the command load after that choice.
 */

import { processFacts, relaunch, relaunchEnv } from './huge-pages.js';

const argv = process.argv.slice(2);
const env = relaunchEnv(argv, processFacts());
const status = env !== null ? await relaunch(env) : null;
if (status !== null) process.exitCode = status;
else {
  // First: glibc's thresholds for this process are raised before the command's modules load;
  // then the parse worker, if the command will want it, starts loading its own beside them.
  await import('./malloc-thresholds.js');
  (await import('./parse-ahead.js')).startParseAhead(argv);
  const { ptsim } = await import('./ptsim.js');

  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(0);
  });

  process.exitCode = await ptsim(
    argv,
    (s) => void process.stdout.write(s),
    (s) => void process.stderr.write(s),
  );
}
