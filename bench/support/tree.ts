/**
 * The benchmark's inputs, generated deterministically from a seed (same seed, same bytes, same
 * tar digest), so runs on different days and machines build the same thing:
 *
 *  - a root directory: a busybox-static root (Debian's /bin/busybox plus a symlink per applet,
 *    at the paths `busybox --list-full` gives) and a tree of `files` files totalling `bytes`
 *    under /srv/bench: half random bytes (AES-CTR keystream from the seed string: incompressible),
 *    half text-like (lines of words and numbers from a fixed vocabulary: gzip gets ~3×), in
 *    25 directories two levels deep, sizes spread log-uniformly over three decades;
 *  - a tar of that root (GNU tar, sorted names, numeric owners 0:0, every mtime 1 s past the
 *    epoch): what a CI job would upload;
 *  - optionally a large tar of random files, streamed to disk (never held in memory).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { run } from '../../test/support/run.ts';
import { BUSYBOX } from './baler.ts';

/** A small seeded PRNG (sfc32), seeded from a string through SHA-256. Floats in [0, 1). */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = createHash('sha256').update(`prng:${seed}`).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12);
    for (let i = 0; i < 16; i++) this.next();
  }

  /** The next 32-bit unsigned integer. */
  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
}

/** A deterministic stream of random-looking bytes: the AES-256-CTR keystream under a key derived from `seed`. */
export class RandomBytes {
  private readonly cipher;
  private static readonly ZEROS = Buffer.alloc(1 << 20);

  constructor(seed: string) {
    const key = createHash('sha256').update(`bytes:${seed}`).digest();
    this.cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  }

  /** The next `n` bytes (a fresh buffer). */
  take(n: number): Buffer {
    const parts: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const k = Math.min(left, RandomBytes.ZEROS.length);
      parts.push(this.cipher.update(RandomBytes.ZEROS.subarray(0, k)));
      left -= k;
    }
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }
}

const WORDS = (
  'the of and to in is for on that with as by this be are from at or an it not which have has ' +
  'build image layer tar digest config worker queue redis store blob archive manifest gzip ' +
  'const let return function import export async await if else for while new class interface ' +
  'error status result value index buffer stream chunk offset length header entry path mode ' +
  'user group owner file directory symlink script shell root system service request response'
).split(' ');

/** `size` bytes of text that looks like source code or logs (lines of words, identifiers, numbers). */
export function textLike(prng: Prng, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let n = 0;
  let line = '';
  while (n < size) {
    const kind = prng.int(4);
    const indent = '  '.repeat(prng.int(4));
    const words: string[] = [];
    const count = 3 + prng.int(10);
    for (let i = 0; i < count; i++) words.push(prng.pick(WORDS));
    if (kind === 0) line = `${indent}${words.join(' ')}\n`;
    else if (kind === 1) line = `${indent}const ${words[0]}_${words[1]} = ${prng.int(100000)}; // ${words.slice(2).join(' ')}\n`;
    else if (kind === 2) line = `${new Date(1_700_000_000_000 + prng.int(1e9)).toISOString()} ${prng.pick(['INFO', 'WARN', 'DEBUG'])} ${words.join(' ')} id=${prng.nextU32().toString(16)}\n`;
    else line = `${indent}${words[0]}(${words.slice(1, 4).join(', ')}) {\n`;
    n += out.write(line, n, 'utf8');
  }
  return out;
}

/** Sizes of `count` files summing to exactly `total`, spread log-uniformly over three decades. */
export function fileSizes(prng: Prng, count: number, total: number): number[] {
  const weights = Array.from({ length: count }, () => Math.exp(prng.next() * Math.log(1000)));
  const sum = weights.reduce((a, b) => a + b, 0);
  const sizes = weights.map((w) => Math.max(1, Math.floor((w / sum) * total)));
  const assigned = sizes.reduce((a, b) => a + b, 0);
  // the rounding remainder goes to the largest file
  const largest = sizes.indexOf(Math.max(...sizes));
  sizes[largest] = (sizes[largest] as number) + (total - assigned);
  return sizes;
}

export interface BenchTree {
  /** The root directory: busybox root + /srv/bench. */
  root: string;
  /** The tar of `root` (what baler gets uploaded). */
  tar: string;
  tarBytes: number;
  tarDigest: string;
  /** Regular files under /srv/bench and their bytes. */
  files: number;
  bytes: number;
  /** Entries under /srv/bench, as the image has them (no leading slash). */
  treePrefix: string;
  /** Applet symlinks in the busybox root. */
  applets: number;
}

export const TREE_PREFIX = 'srv/bench';

async function sha256File(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * Writes the root under `dir/root` and its tar to `dir/tree.tar`. Modes are set explicitly (no
 * umask dependence); the tar sorts names and fixes owners and mtimes, so its digest depends on
 * the seed string, the sizes and Debian's busybox only.
 */
export async function generateTree(dir: string, opts: { seed: string; files: number; bytes: number }): Promise<BenchTree> {
  const root = join(dir, 'root');
  // busybox-static root
  await mkdir(join(root, 'bin'), { recursive: true });
  await copyFile(BUSYBOX, join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  const list = await run(BUSYBOX, ['--list-full'], { timeoutMs: 30_000 });
  if (list.code !== 0) throw new Error(`busybox --list-full failed: ${list.stderr}`);
  let applets = 0;
  for (const path of list.stdout
    .split('\n')
    .map((l) => l.trim())
    .sort()) {
    if (!path.includes('/') || path === 'bin/busybox') continue; // `linuxrc` at the top: not wanted
    await mkdir(join(root, dirname(path)), { recursive: true });
    await symlink('/bin/busybox', join(root, path));
    applets++;
  }
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'tmp'), { recursive: true });
  await chmod(join(root, 'tmp'), 0o1777);

  // the tree: half random, half text, interleaved, 25 directories two levels deep
  const prng = new Prng(`${opts.seed}:tree`);
  const half = Math.floor(opts.files / 2);
  const randomSizes = fileSizes(prng, half, Math.floor(opts.bytes / 2));
  const textSizes = fileSizes(prng, opts.files - half, opts.bytes - Math.floor(opts.bytes / 2));
  const random = new RandomBytes(`${opts.seed}:tree`);
  const dirs = new Set<string>();
  for (let i = 0; i < opts.files; i++) {
    const isText = i % 2 === 1;
    const k = Math.floor(i / 2);
    const size = (isText ? textSizes[k] : randomSizes[k]) as number;
    const sub = join(root, TREE_PREFIX, `d${String(i % 5).padStart(2, '0')}`, `s${Math.floor(i / 5) % 5}`);
    if (!dirs.has(sub)) {
      await mkdir(sub, { recursive: true });
      dirs.add(sub);
    }
    const path = join(sub, isText ? `t${String(i).padStart(4, '0')}.txt` : `f${String(i).padStart(4, '0')}.bin`);
    await writeFile(path, isText ? textLike(prng, size) : random.take(size));
    await chmod(path, i % 10 === 0 ? 0o755 : 0o644);
  }
  const chmodDirs = await run('find', [root, '-type', 'd', '-exec', 'chmod', '0755', '{}', '+'], { timeoutMs: 60_000 });
  if (chmodDirs.code !== 0) throw new Error(`chmod of directories failed: ${chmodDirs.stderr}`);
  await chmod(join(root, 'tmp'), 0o1777);

  const tar = join(dir, 'tree.tar');
  const r = await run('tar', ['--sort=name', '--format=gnu', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@1', '-C', root, '-cf', tar, '.'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`tar of the tree failed: ${r.stderr}`);
  const { digest, size } = await sha256File(tar);
  return { root, tar, tarBytes: size, tarDigest: digest, files: opts.files, bytes: opts.bytes, treePrefix: TREE_PREFIX, applets };
}

// ---------------------------------------------------------------------------
// the large tar, streamed

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** A ustar header for a regular file (or a directory when `size` < 0). */
function ustarHeader(name: string, size: number, mode: number): Buffer {
  const h = Buffer.alloc(512);
  const isDir = size < 0;
  h.write(name, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(isDir ? 0 : size, 12), 124, 'ascii');
  h.write(octal(1, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(isDir ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/**
 * Streams a tar of `totalBytes` of random file contents (files of `fileBytes`, in directories
 * of 64) to `path`; memory stays at one chunk. Returns its digest and size.
 */
export async function writeBigTar(path: string, opts: { seed: string; totalBytes: number; fileBytes: number }): Promise<{ digest: string; size: number; files: number }> {
  const random = new RandomBytes(`${opts.seed}:big`);
  const files = Math.ceil(opts.totalBytes / opts.fileBytes);
  const hash = createHash('sha256');
  let size = 0;
  const CHUNK = 1 << 20;
  async function* tarStream(): AsyncGenerator<Buffer> {
    const emit = (b: Buffer): Buffer => {
      hash.update(b);
      size += b.length;
      return b;
    };
    yield emit(ustarHeader('big/', -1, 0o755));
    for (let i = 0; i < files; i++) {
      const dirName = `big/d${String(Math.floor(i / 64)).padStart(3, '0')}/`;
      if (i % 64 === 0) yield emit(ustarHeader(dirName, -1, 0o755));
      const fileSize = Math.min(opts.fileBytes, opts.totalBytes - i * opts.fileBytes);
      yield emit(ustarHeader(`${dirName}r${String(i).padStart(5, '0')}.bin`, fileSize, 0o644));
      for (let left = fileSize; left > 0; left -= CHUNK) yield emit(random.take(Math.min(CHUNK, left)));
      const pad = (512 - (fileSize % 512)) % 512;
      if (pad > 0) yield emit(Buffer.alloc(pad));
    }
    yield emit(Buffer.alloc(1024));
  }
  await pipeline(tarStream, createWriteStream(path));
  return { digest: `sha256:${hash.digest('hex')}`, size, files };
}
