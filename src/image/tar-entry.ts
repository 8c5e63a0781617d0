import { encodedNameLength } from './tar-name.ts';

/** File types a layer can hold, named as tar-stream names them. */
export type EntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

/** The metadata of one tar entry, as read from an archive. */
export interface TarHeader {
  /** Path as written in the archive (PAX and GNU long names resolved), not normalised; its bytes as tar-name.ts keeps them. */
  name: string;
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  /** Link target, its bytes as tar-name.ts keeps them. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes (`SCHILY.xattr.*` PAX records), name without the prefix (bytes as tar-name.ts keeps them). */
  xattrs: Record<string, string>;
}

export const TYPEFLAG_OF: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  'character-device': '3',
  'block-device': '4',
  directory: '5',
  fifo: '6',
};

/** What one extended attribute costs as budgets count it: its name's and its value's bytes (values are latin1). */
export function xattrBytes(name: string, value: string): number {
  return encodedNameLength(name) + value.length;
}
