import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Other glibc versions run apart (npm run test:versions); test/native/glibc-builds.test.ts
    // is the sample of them that runs here.
    exclude: ['test/versions/**', 'node_modules/**'],
    // Builds the native replayer (test/native/replay.c) once, with the system's cc, before any test runs.
    globalSetup: ['test/helpers/global-setup.ts'],
    // One test file per CPU (vitest's default keeps one CPU for itself, which on a two-CPU machine
    // runs every file in turn): the differential tests mostly wait on the native replayer, a
    // child process, so the main process has little to do.
    maxWorkers: availableParallelism(),
    // The test files share their workers' module graph instead of each loading vitest's runtime
    // and the sources anew (about a fifth of a CPU-second a file). A file that changes the
    // process (an environment variable, the working directory, standard output) puts it back.
    isolate: false,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
