import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{protocol,coordinator,site-agent,simulations,test}/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
