#!/usr/bin/env node
// The command line over src/vm/assets/: builds the QEMU microVM's kernel and initramfs from
// Debian packages into the cache, idempotently (see src/vm/assets/vm-assets.ts). TypeScript
// through tsx (a runtime dependency), so it runs wherever node_modules is installed: from
// scripts/setup.mjs after its npm step, and in the worker image's build.
//   node scripts/build-vm-assets.mjs            # ensure; prints the asset directory
//   node scripts/build-vm-assets.mjs --force    # rebuild even when cached
// Environment: BALER_VM_CACHE (default <repo>/.cache/vm), BALER_VM_KERNEL_PACKAGE (default:
// the platform's, linux-image-cloud-amd64).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const assets = await import('../src/vm/assets/vm-assets.ts');

/** For scripts/setup.mjs. */
export const ensureVmAssets = assets.ensureVmAssets;

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureVmAssets({ force: process.argv.includes('--force') })
    .then((a) => process.stdout.write(`${a.dir}\n`))
    .catch((err) => {
      process.stderr.write(`[vm-assets] ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
