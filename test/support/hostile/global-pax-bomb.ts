/**
 * Attack 1 of issue 12: a gzip'd tar holding one global PAX header (`typeflag g`) of about
 * 1 MiB of `SCHILY.xattr.user.*` records, then thousands of empty files. Every entry inherits
 * every global record: a reader that copies them into each entry holds files × records.
 */
import { RawTarFile } from './raw-tar.ts';

export interface GlobalPaxBomb {
  /** Bytes of PAX records in the global header (under baler's 1 MiB extension-header limit). */
  recordBytes: number;
  files: number;
}

export const GLOBAL_PAX_BOMB: GlobalPaxBomb = { recordBytes: 1_000_000, files: 8000 };

/** xattr records of at most about `recordBytes` in all (each record: `<len> <key>=v\n`). */
function* xattrRecords(recordBytes: number): Generator<[string, string]> {
  let written = 0;
  for (let i = 0; written < recordBytes - 64; i++) {
    const key = `SCHILY.xattr.user.k${i}`;
    written += key.length + 8;
    yield [key, 'v'];
  }
}

export async function writeGlobalPaxBomb(path: string, shape: GlobalPaxBomb = GLOBAL_PAX_BOMB): Promise<string> {
  const tar = new RawTarFile(path, { gzip: true });
  await tar.pax(xattrRecords(shape.recordBytes), 'global');
  for (let i = 0; i < shape.files; i++) await tar.entry({ name: `f${i}` });
  return tar.close();
}
