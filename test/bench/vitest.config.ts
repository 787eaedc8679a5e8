import { defineConfig } from 'vitest/config';

// `npm run bench`: the benchmark runs apart from the tests and asserts nothing about speed.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/bench/**/*.bench-run.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 3_600_000,
    fileParallelism: false,
  },
});
