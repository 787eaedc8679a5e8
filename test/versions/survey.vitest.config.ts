import { defineConfig } from 'vitest/config';

// `npm run survey:versions`: measures how far each glibc version is from 2.36 (survey.run.ts);
// asserts nothing about them.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/versions/**/*.survey-run.ts'],
    globalSetup: ['test/helpers/global-setup.ts', 'test/versions/fetch-setup.ts'],
    testTimeout: 3_600_000,
    hookTimeout: 900_000,
  },
});
