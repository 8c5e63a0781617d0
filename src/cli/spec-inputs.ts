/**
 * Local files named in a spec, uploaded as blobs. Where the API wants a blob digest
 * (`contents[].tar`, `contents[].file`, `fromImage.blob`), the CLI also takes a path relative to
 * the context directory; anything that is not `sha256:<64 hex>` is such a path. A directory
 * named as a `tar` is packed into one (sorted, owners 0, fixed mtimes, so the same tree gives
 * the same digest and the build cache hits). Each input is hashed first, so a blob the server
 * already has is not sent again.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdtemp, readdir, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { printable } from '../image/printable.ts';
import { decodeName } from '../image/tar-name.ts';
import { TarStreamWriter } from '../image/tar-writer.ts';
import type { BalerClient } from './client.ts';
import type { Reporter } from './reporter.ts';

const SLASH = Buffer.from('/');

const DIGEST = /^sha256:[a-f0-9]{64}$/;

type Kind = 'tar' | 'file' | 'blob';

/** One place in the spec that names a local path. */
interface LocalInput {
  kind: Kind;
  /** As written in the spec. */
  path: string;
  set(digest: string): void;
}

/** The places in `spec` (a parsed spec file, changed in place) that name local paths. */
function localInputs(spec: Record<string, unknown>): LocalInput[] {
  const inputs: LocalInput[] = [];
  const from = spec.fromImage as Record<string, unknown> | undefined;
  if (from && typeof from.blob === 'string' && !DIGEST.test(from.blob)) {
    inputs.push({ kind: 'blob', path: from.blob, set: (d) => (from.blob = d) });
  }
  if (Array.isArray(spec.contents)) {
    for (const entry of spec.contents as Array<Record<string, unknown>>) {
      for (const kind of ['tar', 'file'] as const) {
        const value = entry?.[kind];
        if (typeof value === 'string' && !DIGEST.test(value)) inputs.push({ kind, path: value, set: (d) => (entry[kind] = d) });
      }
    }
  }
  return inputs;
}

/** Upload every local input of `spec` (relative to `context`) and put the digests in its place. */
export async function uploadSpecInputs(client: BalerClient, spec: Record<string, unknown>, context: string, reporter: Reporter): Promise<void> {
  const inputs = localInputs(spec);
  if (inputs.length === 0) return;
  const scratch = await mkdtemp(join(tmpdir(), 'baler-cli-'));
  try {
    const digests = new Map<string, string>();
    for (const input of inputs) {
      const full = resolve(context, input.path);
      let digest = digests.get(`${input.kind === 'tar' ? 'tar' : 'file'}:${full}`);
      if (!digest) {
        digest = await uploadPath(client, full, input, scratch, reporter);
        digests.set(`${input.kind === 'tar' ? 'tar' : 'file'}:${full}`, digest);
      }
      input.set(digest);
    }
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

async function uploadPath(client: BalerClient, full: string, input: LocalInput, scratch: string, reporter: Reporter): Promise<string> {
  const info = await stat(full).catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${input.kind} '${input.path}': ${err.code === 'ENOENT' ? 'no such file (paths are relative to the context directory)' : err.message}`);
  });
  let file = full;
  if (info.isDirectory()) {
    if (input.kind !== 'tar') throw new Error(`${input.kind} '${input.path}' is a directory; only a "tar" entry may name a directory`);
    file = join(scratch, `${basename(full) || 'root'}.tar`);
    await packDirectory(full, file);
  } else if (!info.isFile()) {
    throw new Error(`${input.kind} '${input.path}' is not a file or directory`);
  }
  const { digest, size } = await hashFile(file);
  const label = `upload ${input.path}`;
  const head = await client.request(`/v1/blobs/${digest}`, { method: 'HEAD' }, [404]);
  if (head.ok) {
    const task = reporter.bytes(label, size);
    task.advance(size);
    task.done(`${digest.slice(0, 19)}…, already on the server`);
    return digest;
  }
  const task = reporter.bytes(label, size);
  const counted = createReadStream(file).pipe(
    new Transform({
      transform(chunk: Buffer, _enc, done) {
        task.advance(chunk.length);
        done(null, chunk);
      },
    }),
  );
  const res = await client.request(`/v1/blobs?digest=${digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
    body: counted as unknown as BodyInit,
  });
  const uploaded = (await res.json()) as { digest: string };
  task.done(uploaded.digest.slice(0, 19) + '…');
  return uploaded.digest;
}

async function hashFile(file: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/**
 * `dir` as a tar at `out`: entries sorted by their names' bytes, owners 0, mtime 0 (the build
 * sets every mtime anyway). Names and link targets are read as bytes (a name that is not UTF-8
 * stays itself: readdir's strings would make it U+FFFD, a name no file has) and written with
 * the service's own tar writer, which keeps them so (tar-name.ts).
 */
export async function packDirectory(dir: string, out: string): Promise<void> {
  const writer = new TarStreamWriter();
  const written = pipeline(writer.stream, createWriteStream(out));
  const common = { uid: 0, gid: 0, mtime: 0, size: 0 };
  const walk = async (at: Buffer, rel: Buffer | null): Promise<void> => {
    const names = (await readdir(at, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      const full = Buffer.concat([at, SLASH, name]);
      const path = rel ? Buffer.concat([rel, SLASH, name]) : name;
      const info = await lstat(full);
      const mode = info.mode & 0o7777;
      if (info.isDirectory()) {
        await writer.add({ ...common, name: `${decodeName(path)}/`, type: 'directory', mode });
        await walk(full, path);
      } else if (info.isSymbolicLink()) {
        await writer.add({ ...common, name: decodeName(path), type: 'symlink', linkname: decodeName(await readlink(full, { encoding: 'buffer' })), mode });
      } else if (info.isFile()) {
        await writer.addStream({ ...common, name: decodeName(path), type: 'file', mode, size: info.size }, createReadStream(full));
      } else {
        throw new Error(`${printable(decodeName(full))}: only files, directories and symlinks can be packed`);
      }
    }
  };
  try {
    await walk(Buffer.from(dir), null);
    await writer.finish();
  } catch (err) {
    writer.fail(err);
    await written.catch(() => undefined);
    throw err;
  }
  await written;
}
