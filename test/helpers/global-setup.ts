/**
 * vitest globalSetup: builds the native replayer (test/native/replay.c) once, before any test file
 * runs, so that a compiler error shows up once and clearly rather than in every test.
 */

import { buildNativeReplayer } from './native.js';

export default function setup(): void {
  buildNativeReplayer();
}
