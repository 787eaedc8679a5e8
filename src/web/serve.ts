/**
 * `ptsim web`'s two ways out: a static copy of the visualizer (one index.html that opens from
 * file://, the trace embedded), and a small HTTP server on the loopback address that serves the
 * page and, beside it, the trace.
 */

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { openTrace, type OpenTraceOptions } from '../import/index.js';
import { NativeTraceWriter } from '../import/native-writer.js';
import { webPage } from './page.js';

/**
 * A trace as the page reads it: native format, plain or gzip. A native trace goes as it is (so
 * that the page gives the file's own line numbers); any other format ptsim reads, or a native
 * trace compressed otherwise, is converted. A line that does not parse is reported here, with
 * its file and line, before any page is made.
 */
export async function traceForPage(path: string, opts: OpenTraceOptions): Promise<Uint8Array> {
  const parts: Buffer[] = [];
  const collect = new Writable({
    write(chunk: Buffer, _enc, done): void {
      parts.push(chunk);
      done();
    },
  });
  const writer = new NativeTraceWriter(collect, true);
  const read = await openTrace(path, writer, opts);
  writer.close();
  await writer.drained();
  if (read.format !== 'native') return Buffer.concat(parts);
  const raw = readFileSync(path);
  const head = raw.subarray(0, 6).toString('hex');
  const otherPacker = /^(28b52ffd|fd377a585a00|425a68)/.test(head);
  return otherPacker ? Buffer.concat(parts) : raw;
}

/** The page with the trace embedded (or none: the scenarios, a file picker, a drop zone). */
export function exportedPage(trace?: { name: string; bytes: Uint8Array }): string {
  return webPage(trace === undefined ? {} : { trace });
}

/**
 * Serves the page at / and the trace at /trace on host:port; resolves with the server once it
 * listens (port 0: any free port), rejects with the listen error (EADDRINUSE, ...).
 */
export function serveTrace(
  trace: { name: string; bytes: Uint8Array },
  host: string,
  port: number,
): Promise<Server> {
  const url = `trace?name=${encodeURIComponent(trace.name)}`;
  const page = webPage({ traceUrl: url });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, headers).end();
    } else if (path === '/' || path === '/index.html') {
      res
        .writeHead(200, {
          ...headers,
          'content-type': 'text/html; charset=utf-8',
          // The page's scripts are inline and its worker a blob: nothing is loaded from elsewhere.
          'content-security-policy':
            "default-src 'none'; script-src 'unsafe-inline' blob:; worker-src blob:; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        })
        .end(page);
    } else if (path === '/trace') {
      res
        .writeHead(200, { ...headers, 'content-type': 'application/octet-stream' })
        .end(Buffer.from(trace.bytes));
    } else {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
