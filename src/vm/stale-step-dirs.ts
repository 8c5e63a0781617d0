/** Temp dirs of steps and warm VMs that a killed worker could not remove. */
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { stepDirOwnerAlive, TEMP_PREFIX } from './step-files.ts';

/**
 * Removes the step dirs in `tmpDir` whose process is gone. Safe with several workers sharing
 * the temp dir: a dir whose owner pid lives is kept. The paths removed.
 */
export async function sweepStaleStepDirs(tmpDir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tmpDir).catch(() => [] as string[])) {
    if (!name.startsWith(TEMP_PREFIX)) continue;
    const path = join(tmpDir, name);
    let alive = await stepDirOwnerAlive(path);
    if (alive === undefined) {
      // No owner file yet: only a dir older than a minute is stale.
      const st = await stat(path).catch(() => undefined);
      alive = st !== undefined && Date.now() - st.mtimeMs < 60_000;
    }
    if (!alive) {
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  return removed;
}
