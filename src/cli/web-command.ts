/**
 * `ptsim web TRACE` serves the time-travel visualizer on the loopback address; `ptsim web
 * --export DIR [TRACE]` writes a static copy of it that opens from file:// (docs/web.md).
 */

import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { exportedPage, serveTrace, traceForPage } from '../web/serve.js';
import { defineCommand } from './command.js';
import { OutputError, UsageError, exitStatusHelp } from './errors.js';
import { IMPORT_HELP, IMPORT_OPTIONS, importArgs } from './import-options.js';
import { parseNumber } from './settings-options.js';

const WEB_HELP = `Usage: ptsim web TRACE [--port N] [--host ADDR]
       ptsim web --export DIR [TRACE]

Opens the time-travel visualizer: the heap at any event as a map of chunks coloured by state,
the bins, tcache, arenas and mappings, the resident pages, RSS and the thresholds along the
trace, and each step explained in a sentence; play, step, or scrub to any event and back. The
replay runs in the browser (the same model, bundled), offline.

  ptsim web TRACE          serves the page and the trace on http://127.0.0.1:PORT/ and prints the
                           address; Ctrl-C stops it
  ptsim web --export DIR   writes DIR/index.html, one file that opens from file:// with TRACE
                           embedded (without TRACE: open a trace in the page, drop one onto it,
                           or pick a teaching scenario)

TRACE may be in any format ptsim reads (it is converted to a native trace for the page).

Options:
  --export DIR         write the static copy into DIR (made if missing) instead of serving
  --port N             the port to listen on (default 8731; 0: any free port)
  --host ADDR          the address to listen on (default 127.0.0.1)
${IMPORT_HELP}
  -h, --help           show this help

${exitStatusHelp({ replays: false, outputs: 'DIR/index.html' })}`;

export const webCommand = defineCommand({
  name: 'web',
  help: WEB_HELP,
  options: {
    export: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    ...IMPORT_OPTIONS,
  },
  async run({ values, positionals }, { out }) {
    if (positionals.length > 1)
      throw new UsageError(
        `web takes one TRACE, got ${positionals.length}: ${positionals.join(' ')}`,
      );
    const path = positionals[0];
    if (path === '-') throw new UsageError('web needs the trace as a file, not -');
    const load = async (): Promise<{ name: string; bytes: Uint8Array } | undefined> =>
      path === undefined
        ? undefined
        : {
            name: basename(path),
            bytes: await traceForPage(path, { ...importArgs(values), displayName: path }),
          };
    if (values.export !== undefined) {
      if (values.port !== undefined || values.host !== undefined)
        throw new UsageError('--export writes files: --port and --host are for serving');
      const dir = resolve(values.export);
      const trace = await load();
      const page = exportedPage(trace);
      const file = join(dir, 'index.html');
      const tmp = join(dir, `.index.html.${process.pid}.tmp`);
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(tmp, page);
        renameSync(tmp, file);
      } catch (e) {
        throw new OutputError(
          `${values.export}: cannot write it (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
        );
      }
      out(
        `wrote ${file}${trace === undefined ? '' : ` with ${trace.name}`}: open it in a browser\n`,
      );
      return 0;
    }
    if (path === undefined) throw new UsageError('web needs a TRACE to serve (or --export DIR)');
    const port = values.port === undefined ? 8731 : parseNumber(values.port, '--port');
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--port takes 0 to 65535, not '${values.port}'`);
    const host = values.host ?? '127.0.0.1';
    const trace = (await load())!;
    let server;
    try {
      server = await serveTrace(trace, host, port);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new OutputError(
        code === 'EADDRINUSE'
          ? `port ${port} is in use: choose another with --port (0: any free port)`
          : `cannot listen on ${host}:${port} (${code ?? String(e)})`,
      );
    }
    const a = server.address() as AddressInfo;
    const shownHost = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    out(`ptsim web: ${trace.name} at http://${shownHost}:${a.port}/ (Ctrl-C to stop)\n`);
    await new Promise<void>((done) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close(() => done());
        server.closeAllConnections();
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
});
