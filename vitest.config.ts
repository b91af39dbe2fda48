import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    reporters: ['default', './test/summary-reporter.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Real peers (Postfix instances) bind ports and write spools; keep files in parallel but bounded.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
