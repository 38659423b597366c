import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration suites start real daemons (Exim, slapd, tsieved itself); keep the
    // 2-core CI machine from running too many at once.
    maxWorkers: 2,
    // Spies, stubbed globals and environment variables never outlive the test that made them.
    restoreMocks: true,
    unstubGlobals: true,
    unstubEnvs: true,
    // The skip summary (what was missing, how many tests each skipped) ends the output.
    reporters: [['json', { outputFile: 'test-results/results.json' }], 'default', './test/helpers/skip-summary.ts'],
  },
});
