import { defineConfig } from 'vitest/config';

// `npm run test:versions`: the native replayer on Debian's builds of other glibc versions
// (fetched once into a cache outside the repository, test/helpers/glibc-builds.ts), apart from
// `npm test`, which runs only a small sample of it.
export default defineConfig({
  test: {
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/versions/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts', 'test/versions/fetch-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 900_000,
  },
});
