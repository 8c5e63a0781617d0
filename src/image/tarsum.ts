import { createHash, type Hash } from 'node:crypto';
import { TYPEFLAG_OF, type TarHeader } from './tar-entry.ts';
import { compareNames, encodeName } from './tar-name.ts';

/**
 * Docker's legacy `tarsum.v1+sha256` checksum, which nixpkgs dockerTools (the
 * reference implementation we model) writes into each layer's `json`.
 * Each entry hashes its selected header fields then its data; the entry sums are sorted and
 * hashed together. Nothing current verifies it, but we write it correctly.
 */
export class TarSum {
  private readonly sums: string[] = [];
  private current: Hash | null = null;

  beginEntry(header: Omit<TarHeader, 'mtime'>): void {
    this.endEntry();
    const h = createHash('sha256');
    // Names, link targets and xattr names are hashed as their bytes (tar-name.ts), as Docker's
    // Go code hashes a tar's raw strings; the keys are ASCII.
    const fields: Array<[string, string | Buffer]> = [
      ['name', encodeName(header.name)],
      ['mode', String(header.mode)],
      ['uid', String(header.uid)],
      ['gid', String(header.gid)],
      ['size', String(header.size)],
      ['typeflag', TYPEFLAG_OF[header.type]],
      ['linkname', encodeName(header.linkname)],
      // tarsum ignores uname and gname (empty in our layers anyway)
      ['uname', ''],
      ['gname', ''],
      ['devmajor', String(header.devmajor)],
      ['devminor', String(header.devminor)],
    ];
    for (const [key, value] of fields) {
      h.update(key, 'latin1');
      if (typeof value === 'string') h.update(value, 'latin1');
      else h.update(value);
    }
    // xattr values are held as latin1 strings so that their raw bytes round-trip; names sort by
    // their bytes (Go's sort.Strings).
    for (const key of Object.keys(header.xattrs).sort(compareNames)) {
      h.update(encodeName(key));
      h.update(header.xattrs[key] ?? '', 'latin1');
    }
    this.current = h;
  }

  update(data: Buffer): void {
    this.current?.update(data);
  }

  private endEntry(): void {
    if (this.current) this.sums.push(this.current.digest('hex'));
    this.current = null;
  }

  digest(): string {
    this.endEntry();
    const h = createHash('sha256');
    for (const sum of [...this.sums].sort()) h.update(sum);
    return `tarsum.v1+sha256:${h.digest('hex')}`;
  }
}
