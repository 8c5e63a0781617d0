/**
 * Trees whose shape is the attack: one directory chain as deep as a path may be (every entry
 * below it repeats the whole chain), and one directory holding a great many entries.
 */
import { RawTarFile } from './raw-tar.ts';

/** `a/a/a/…` of about `pathBytes` bytes, with `files` files at its bottom (names in PAX `path` records). */
export async function writeDeepTree(path: string, shape = { pathBytes: 4000, files: 20_000 }): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  const chain = 'a/'.repeat(Math.floor((shape.pathBytes - 16) / 2));
  for (let i = 0; i < shape.files; i++) {
    const name = `${chain}f${i}`;
    await tar.pax([['path', name]]);
    await tar.entry({ name: name.slice(-99) });
  }
  return tar.close();
}

/** One directory with `entries` empty files. */
export async function writeWideTree(path: string, shape = { entries: 500_000 }): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  await tar.entry({ name: 'wide/', type: 'directory' });
  for (let i = 0; i < shape.entries; i++) await tar.entry({ name: `wide/${i}` });
  return tar.close();
}
