/**
 * A PAX `mtime` that is no number (`abc`) or one no header can hold (`1e400`, Infinity in
 * JavaScript): a reader that takes `Number(value)` writes NaN or Infinity into the headers it
 * rewrites.
 */
import { RawTarFile } from './raw-tar.ts';

export const BAD_PAX_MTIMES = ['abc', '1e400'] as const;

export async function writePaxMtime(path: string, mtime: string): Promise<string> {
  const tar = new RawTarFile(path);
  await tar.pax([['mtime', mtime]]);
  await tar.entry({ name: 'stamped' }, Buffer.from('when?\n'));
  return tar.close();
}
