/**
 * More entries than a layer should hold: today's tar reader stops at 1,000,000, after having
 * kept every one in memory. Spread over directories of 1,000 so that no single directory is
 * the attack (deep-wide-trees.ts is that one).
 */
import { RawTarFile } from './raw-tar.ts';

export async function writeHugeEntryCount(path: string, shape = { entries: 1_000_001 }): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  for (let i = 0; i < shape.entries; i++) {
    if (i % 1000 === 0) await tar.entry({ name: `d${i / 1000}/`, type: 'directory' });
    await tar.entry({ name: `d${Math.floor(i / 1000)}/${i % 1000}` });
  }
  return tar.close();
}
