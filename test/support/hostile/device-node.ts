/**
 * Device nodes made by `mknod` in a `runAsRoot` (issue 12, attack 9): uploads refuse device
 * entries, so a layer a script made must not carry them either. Reads the layers of a
 * downloaded docker-archive with GNU tar to find any.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../run.ts';

export const MKNOD_SCRIPT = 'mknod /char-device c 1 3\nmknod /block-device b 7 0\nls -l /char-device /block-device\n';

/** Lines of `tar -tv` for the character and block devices in any layer of the archive. */
export async function deviceEntries(archive: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-hostile-devices-'));
  try {
    // GNU tar sees for itself whether the archive is gzip'd.
    const unpacked = await run('tar', ['-C', dir, '-xf', archive]);
    if (unpacked.code !== 0) throw new Error(`tar -x: ${unpacked.stderr}`);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
    const devices: string[] = [];
    for (const layer of manifest.flatMap((m) => m.Layers)) {
      const listed = await run('tar', ['-tvf', join(dir, layer)]);
      if (listed.code !== 0) throw new Error(`tar -t ${layer}: ${listed.stderr}`);
      devices.push(...listed.stdout.split('\n').filter((l) => /^[cb]/.test(l)));
    }
    return devices;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
