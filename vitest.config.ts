import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that measure the worker's memory, event-loop delay or wall-clock limits: they run one
 * at a time after the rest, alone on the machine, so another file's load cannot move their
 * numbers.
 */
const ALONE = ['test/faults/**/*.test.ts', 'test/e2e/memory.test.ts', 'test/e2e/control.test.ts'];

// Tests start real processes (redis-server, the service, dockerd, podman): separate processes
// per file, and generous limits for a 2-core machine. vitest.cluster.config.ts uses them too.
export const serviceTestSettings = {
  pool: 'forks' as const,
  testTimeout: 60_000,
  hookTimeout: 180_000,
  teardownTimeout: 60_000,
};

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...serviceTestSettings,
          name: 'side-by-side',
          include: ['test/**/*.test.ts'],
          // `npm run test:compose` (vitest.compose.config.ts): builds Docker images, minutes.
          exclude: [...configDefaults.exclude, 'test/compose/**', ...ALONE],
          // Most files wait on processes they started more than they compute: two at a time
          // on a 2-core machine (vitest's default would be one).
          maxWorkers: 2,
          minWorkers: 1,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...serviceTestSettings,
          name: 'alone',
          include: ALONE,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
