#!/usr/bin/env node
// The command line over src/vm/assets/: builds the QEMU microVM's kernel and initramfs from
// Debian packages into the cache, idempotently (see src/vm/assets/vm-assets.ts). TypeScript
// through tsx (a runtime dependency), so it runs wherever node_modules is installed: from
// scripts/setup.mjs after its npm step, and in the worker image's build.
//   node scripts/build-vm-assets.mjs            # ensure; prints the asset directory
//   node scripts/build-vm-assets.mjs --force    # rebuild even when cached
//   node scripts/build-vm-assets.mjs --platform linux/arm64   # another platform's (default linux/amd64)
// Environment: BALER_VM_CACHE (default <repo>/.cache/vm), BALER_VM_KERNEL_PACKAGE (default:
// the platform's, e.g. linux-image-cloud-amd64).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const assets = await import('../src/vm/assets/vm-assets.ts');
const { VM_PLATFORMS } = await import('../src/vm/platforms/index.ts');

/** For scripts/setup.mjs. */
export const ensureVmAssets = assets.ensureVmAssets;

/** The VmPlatform named `name` (os/architecture), for scripts/setup.mjs and --platform. */
export function vmPlatform(name) {
  const platform = VM_PLATFORMS.find((p) => p.name === name);
  if (!platform) throw new Error(`no VM platform ${name} (there are ${VM_PLATFORMS.map((p) => p.name).join(', ')})`);
  return platform;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--platform');
  const platform = at > 0 ? vmPlatform(process.argv[at + 1]) : undefined;
  ensureVmAssets({ force: process.argv.includes('--force'), platform })
    .then((a) => process.stdout.write(`${a.dir}\n`))
    .catch((err) => {
      process.stderr.write(`[vm-assets] ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
