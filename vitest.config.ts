import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,coordinator,site-agent,simulations,test}/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    // Generous bounds: CI and developers share 2 cores with other jobs (load 10+ seen); a bound, not a speed target.
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
