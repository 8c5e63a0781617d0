import { defineConfig } from 'vitest/config';

// `npm run test:compose`: the Dockerfile and docker-compose.yml, for real (test/compose/). Not
// part of `npm test`: a cold run builds base and service images for many minutes.
export default defineConfig({
  test: {
    include: ['test/compose/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
    teardownTimeout: 600_000,
  },
});
