/**
 * Attack 3 of issue 12: a contents tar with a few hundred thousand files, then many pairs of
 * `x/` (a directory) and `x` (a file at the same path). Each file replaces the directory, and a
 * tree that finds what was below it by scanning every path does files × pairs work.
 */
import { RawTarFile } from './raw-tar.ts';

export interface DirFileChurn {
  files: number;
  pairs: number;
}

export const DIR_FILE_CHURN: DirFileChurn = { files: 300_000, pairs: 20_000 };

export async function writeDirFileChurn(path: string, shape: DirFileChurn = DIR_FILE_CHURN): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  await tar.entry({ name: 'many/', type: 'directory' });
  for (let i = 0; i < shape.files; i++) await tar.entry({ name: `many/f${i}` });
  for (let i = 0; i < shape.pairs; i++) {
    await tar.entry({ name: 'x/', type: 'directory' });
    await tar.entry({ name: 'x' });
  }
  return tar.close();
}
