import { defineConfig } from 'vitest/config';

// `npm run test:cluster`: the multi-host test alone (network namespaces, RGW, five service
// processes; 1.7–3.2 min on a shared 2-core machine). `npm test` runs it too, with everything else.
export default defineConfig({
  test: { include: ['test/cluster/**/*.test.ts'], pool: 'forks', testTimeout: 60_000, hookTimeout: 180_000, teardownTimeout: 60_000 },
});
