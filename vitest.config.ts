import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Files that measure the worker's memory, event-loop delay or wall-clock limits: they run one
 * at a time after the rest, alone on the machine, so another file's load cannot move their
 * numbers. The other fault files (worker-crash, restarts) check recovery and bytes, not time:
 * they run side by side.
 */
const ALONE = ['test/faults/hostile-*.test.ts', 'test/e2e/memory.test.ts', 'test/e2e/control.test.ts'];

/**
 * The longest hostile stress runs (VM output bombs, tar shapes, sparse-map bombs: 2 minutes
 * together): `npm run test:faults` runs them (BALER_FAULTS_FULL=1), `npm test` leaves them out
 * to keep CI under 20 minutes; the shorter hostile files stay in both.
 */
const FAULTS_ONLY = process.env.BALER_FAULTS_FULL === '1' ? [] : ['test/faults/hostile-vm.test.ts', 'test/faults/hostile-tars.test.ts', 'test/faults/hostile-sparse.test.ts'];

/**
 * The many-hosts run (network namespaces, Ceph RGW, five service processes; 2 minutes):
 * `npm run test:cluster` and `npm run test:faults` run it, `npm test` leaves it out for CI's
 * 20 minutes.
 */
const CLUSTER = process.env.BALER_FAULTS_FULL === '1' ? [] : ['test/cluster/**'];

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
    // Most files wait on processes they started more than they compute: two at a time on a
    // 2-core machine (vitest's default is cores - 1). vitest 3.2 sizes its one process pool
    // from this root setting only; a project's own maxWorkers is ignored.
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      {
        test: {
          ...serviceTestSettings,
          name: 'side-by-side',
          include: ['test/**/*.test.ts'],
          // `npm run test:compose` (vitest.compose.config.ts): builds Docker images, minutes.
          exclude: [...configDefaults.exclude, 'test/compose/**', ...CLUSTER, ...ALONE],
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          ...serviceTestSettings,
          name: 'alone',
          include: ALONE,
          exclude: [...configDefaults.exclude, ...FAULTS_ONLY],
          // One process runs these files one after another (a project's fileParallelism is
          // not read by the shared pool; singleFork is).
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
