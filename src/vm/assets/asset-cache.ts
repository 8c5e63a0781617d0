/**
 * The asset cache's entries (<cache>/<key>/, see vm-assets.ts), by platform: each platform keeps
 * its newest few, whatever the others build.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { VmPlatform } from '../platform.ts';

const ENTRY_NAME = /^[0-9a-f]{16}$/;
/** Cache entries kept per platform (the newest), so a rollback finds its assets. */
const KEPT_ENTRIES = 3;

/** The platform's cache entries, newest first (one without a manifest: oldest; entries made before the manifest named its platform: amd64's). */
async function entriesOf(cacheDir: string, platform: VmPlatform): Promise<{ name: string; complete: boolean }[]> {
  if (!existsSync(cacheDir)) return [];
  const entries: { name: string; complete: boolean; m: number }[] = [];
  for (const name of await readdir(cacheDir)) {
    if (!ENTRY_NAME.test(name)) continue;
    const manifest = join(cacheDir, name, 'manifest.json');
    if (!existsSync(manifest)) {
      entries.push({ name, complete: false, m: 0 });
      continue;
    }
    let of = 'linux/amd64';
    try {
      of = (JSON.parse(await readFile(manifest, 'utf8')) as { platform?: string }).platform ?? of;
    } catch {
      /* unreadable: treated as amd64's */
    }
    if (of === platform.name) entries.push({ name, complete: true, m: (await stat(manifest)).mtimeMs });
  }
  return entries.sort((a, b) => b.m - a.m);
}

/** The newest complete entry of the platform's, when there is one. */
export async function newestCached(cacheDir: string, platform: VmPlatform): Promise<string | undefined> {
  const newest = (await entriesOf(cacheDir, platform)).find((e) => e.complete);
  return newest && join(cacheDir, newest.name);
}

/** Removes the platform's entries past the KEPT_ENTRIES newest (never `keep`); other platforms' stay. */
export async function pruneEntries(cacheDir: string, keep: string, platform: VmPlatform): Promise<void> {
  const entries = await entriesOf(cacheDir, platform);
  for (const e of entries.slice(KEPT_ENTRIES)) if (e.name !== keep) await rm(join(cacheDir, e.name), { recursive: true, force: true });
}
