import { defineConfig } from 'vitest/config';
import { serviceTestSettings } from './vitest.config.ts';

// `npm run test:cluster`: the multi-host test alone (network namespaces, RGW, five service
// processes; 1.7–3.2 min on a shared 2-core machine). `npm run test:faults` runs it too; `npm test` does not.
export default defineConfig({ test: { ...serviceTestSettings, include: ['test/cluster/**/*.test.ts'] } });
