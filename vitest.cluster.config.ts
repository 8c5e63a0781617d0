import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

// `npm run test:cluster`: the multi-host test alone (network namespaces, RGW, five service
// processes); it takes minutes on a 2-core machine, so `npm test` leaves it out.
export default defineConfig({ test: { ...base.test, include: ['test/cluster/**/*.test.ts'], exclude: ['**/node_modules/**'] } });
