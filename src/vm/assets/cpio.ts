/** A newc cpio archive built in memory (the initramfs), no root needed: every entry is owned by 0:0. */

export class Cpio {
  readonly #parts: Buffer[] = [];
  #ino = 1;
  /** Names of the entries so far. */
  readonly names = new Set<string>();

  #header(name: string, mode: number, size: number, { rdevMajor = 0, rdevMinor = 0, nlink = 1 } = {}): void {
    const fields = [this.#ino++, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, Buffer.byteLength(name) + 1, 0];
    const hdr = '070701' + fields.map((v) => v.toString(16).padStart(8, '0')).join('');
    const head = Buffer.from(hdr + name + '\0', 'latin1');
    this.#parts.push(head, Buffer.alloc((4 - (head.length % 4)) % 4));
  }

  #data(buf: Buffer): void {
    this.#parts.push(buf, Buffer.alloc((4 - (buf.length % 4)) % 4));
  }

  /** Directories above `name` not added yet, outermost first. */
  #parents(name: string): void {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!this.names.has(dir)) this.dir(dir);
    }
  }

  dir(name: string, mode = 0o755): void {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o040000 | mode, 0, { nlink: 2 });
  }

  file(name: string, data: Buffer, mode = 0o644): void {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o100000 | mode, data.length);
    this.#data(data);
  }

  symlink(name: string, target: string): void {
    this.#parents(name);
    this.names.add(name);
    const t = Buffer.from(target);
    this.#header(name, 0o120777, t.length);
    this.#data(t);
  }

  chardev(name: string, major: number, minor: number, mode = 0o600): void {
    this.#parents(name);
    this.names.add(name);
    this.#header(name, 0o020000 | mode, 0, { rdevMajor: major, rdevMinor: minor });
  }

  /** The archive: the entries, the trailer, zeros to a 512-byte boundary. */
  finish(): Buffer {
    this.#header('TRAILER!!!', 0, 0);
    const body = Buffer.concat(this.#parts);
    return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
  }
}
