import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // `npm run test:compose` (vitest.compose.config.ts): builds Docker images, minutes.
    exclude: [...configDefaults.exclude, 'test/compose/**'],
    // Tests start real processes (redis-server, the service, dockerd, podman): separate
    // processes per file, and generous limits for a 2-core machine.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
  },
});
