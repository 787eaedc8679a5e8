/**
 * Headless Chromium driven through the DevTools protocol over a pipe (--remote-debugging-pipe:
 * JSON messages ended by a NUL byte, written on the browser's fd 3 and read from its fd 4), so that
 * a test can click, evaluate and take screenshots in a real browser with nothing but Node. One
 * browser per test file; each page a target of its own.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { HEADLESS_FLAGS } from './browser.js';

interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export class Browser {
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  private readonly listeners: Array<(m: Message) => void> = [];

  private constructor(
    private readonly proc: ChildProcess,
    private readonly profile: string,
  ) {
    // A browser that has gone is seen by its exit; a write to its pipe after that is not an error.
    (proc.stdio[3] as Writable).on('error', () => {});
    const input = proc.stdio[4] as Readable;
    let held = Buffer.alloc(0);
    input.on('data', (chunk: Buffer) => {
      held = Buffer.concat([held, chunk]);
      for (let nul = held.indexOf(0); nul >= 0; nul = held.indexOf(0)) {
        const m = JSON.parse(held.subarray(0, nul).toString('utf8')) as Message;
        held = held.subarray(nul + 1);
        if (m.id !== undefined) {
          const w = this.waiting.get(m.id);
          this.waiting.delete(m.id);
          if (m.error !== undefined) w?.reject(new Error(m.error.message));
          else w?.resolve(m.result ?? {});
        } else for (const l of this.listeners) l(m);
      }
    });
  }

  static launch(chromium: string, width = 1280, height = 1600): Browser {
    const profile = mkdtempSync(join(tmpdir(), 'ptsim-chromium-'));
    const proc = spawn(
      chromium,
      [
        ...HEADLESS_FLAGS,
        '--hide-scrollbars',
        '--force-device-scale-factor=1',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        '--remote-debugging-pipe',
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] },
    );
    return new Browser(proc, profile);
  }

  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    const out = this.proc.stdio[3] as Writable;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      out.write(JSON.stringify({ id, method, params, sessionId }) + '\0');
    });
  }

  on(listener: (m: Message) => void): void {
    this.listeners.push(listener);
  }

  /** A new page, attached, with its exceptions collected. */
  async newPage(url: string): Promise<Page> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as {
      targetId: string;
    };
    const { sessionId } = (await this.send('Target.attachToTarget', {
      targetId,
      flatten: true,
    })) as { sessionId: string };
    const page = new Page(this, sessionId, targetId);
    this.on((m) => {
      if (m.sessionId !== sessionId) return;
      if (m.method === 'Runtime.exceptionThrown') {
        const d = m.params!['exceptionDetails'] as {
          text: string;
          exception?: { description?: string };
        };
        page.errors.push(d.exception?.description ?? d.text);
      }
    });
    await page.send('Runtime.enable');
    await page.send('Page.enable');
    await page.send('Page.navigate', { url });
    return page;
  }

  /**
   * Ends the browser and removes its profile. Browser.close lets Chromium end its own processes
   * (a renderer killed with it went on writing to the profile while it was being removed); a
   * browser that does not end within 5 s is killed.
   */
  async close(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      const timer = setTimeout(() => this.proc.kill(), 5000);
      this.send('Browser.close').catch(() => this.proc.kill());
      await exited;
      clearTimeout(timer);
    }
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  }
}

export class Page {
  readonly errors: string[] = [];

  constructor(
    private readonly browser: Browser,
    private readonly sessionId: string,
    private readonly targetId: string,
  ) {}

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    return this.browser.send(method, params, this.sessionId);
  }

  /** Closes the page (its target). */
  async close(): Promise<void> {
    await this.browser.send('Target.closeTarget', { targetId: this.targetId });
  }

  /** The value of a JavaScript expression in the page (awaited when it is a promise). */
  async eval<T>(expression: string): Promise<T> {
    const r = (await this.send('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    })) as { result: { value?: T }; exceptionDetails?: { text: string } };
    if (r.exceptionDetails !== undefined)
      throw new Error(`in the page: ${r.exceptionDetails.text} (${expression})`);
    return r.result.value as T;
  }

  /**
   * Gives the files (absolute paths) to the page's `<input type=file>` that the expression
   * finds, as a user picking them would: the input's `input` and `change` events follow.
   */
  async pickFiles(input: string, files: string[]): Promise<void> {
    const r = (await this.send('Runtime.evaluate', { expression: input })) as {
      result: { objectId?: string };
    };
    if (r.result.objectId === undefined) throw new Error(`no element: ${input}`);
    await this.send('DOM.setFileInputFiles', { files, objectId: r.result.objectId });
  }

  /**
   * One step of dragging files (absolute paths) from outside the page over the point (x, y) of
   * the viewport, through the browser's own drag and drop: 'dragEnter', 'dragOver', then 'drop'
   * (or 'dragCancel').
   */
  async drag(
    type: 'dragEnter' | 'dragOver' | 'drop' | 'dragCancel',
    files: string[],
    x: number,
    y: number,
  ): Promise<void> {
    const data = { items: [], files, dragOperationsMask: 1 };
    await this.send('Input.dispatchDragEvent', { type, x, y, data });
  }

  /** Waits until the expression is true in the page. */
  async waitFor(expression: string, timeout = 20_000): Promise<void> {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      // While the page loads, its context may not be there yet.
      const ok = await this.eval<boolean>(`!!(${expression})`).catch(() => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`timed out waiting for ${expression}`);
  }

  /**
   * A PNG screenshot of the element the selector finds, as it is on screen: the page is scrolled
   * to show it and nothing else changes (a capture beyond the viewport resizes the viewport, and
   * a page that redraws on resize would then be shown redrawn).
   */
  async shot(selector: string): Promise<Buffer> {
    const clip = await this.eval<{ x: number; y: number; width: number; height: number }>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); e.scrollIntoView({ block: 'nearest' }); const r = e.getBoundingClientRect(); return { x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height }; })()`,
    );
    const r = (await this.send('Page.captureScreenshot', {
      format: 'png',
      clip: { ...clip, scale: 1 },
    })) as { data: string };
    return Buffer.from(r.data, 'base64');
  }
}
