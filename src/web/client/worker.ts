/**
 * The visualizer's worker: the engine (engine.ts) behind a message port, so that a long replay
 * never stops the page from drawing.
 */

import { Engine } from './engine.js';
import type { Reply, Request } from './protocol.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent<Request>) => void) | null;
  postMessage(r: Reply): void;
}

const scope = self as unknown as WorkerScope;
const engine = new Engine((r) => scope.postMessage(r));
// One request at a time, in the order they came.
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (e) => {
  queue = queue.then(() => engine.handle(e.data));
};
