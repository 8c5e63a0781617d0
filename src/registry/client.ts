import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { digestFromHash, digestOf, isDigest, type Digest } from '../digest.ts';
import { pipeThrough } from '../streams.ts';
import { readCapped } from './bounded-body.ts';
import { MANIFEST_ACCEPT, parseManifest, type FetchedManifest } from './manifest.ts';
import { RegistryError, registryFor, type ImageReference, type Registries } from './registries.ts';
import { RegistryTransport, type ClientOptions } from './registry-transport.ts';

/**
 * A small Docker Registry HTTP API v2 / OCI distribution client for one registry of the
 * allow-list: manifests, blobs, mounts and uploads, over RegistryTransport (auth, redirects).
 * Everything large is streamed; manifests and configs are read whole but capped. The registry
 * is not trusted beyond its content (verified by digest): whom else it may make baler contact
 * and what may carry its credentials is RegistryHosts' rule, what it may send is bounded by
 * RegistryLimits.
 */
export class RegistryClient extends RegistryTransport {
  /** The client for the ref's registry, if the operator allows it (RegistryError otherwise). */
  static forReference(ref: ImageReference, registries: Registries, opts?: ClientOptions): RegistryClient {
    return new RegistryClient(ref.host, registryFor(registries, ref.host), opts);
  }

  /** `GET /v2/`: the registry speaks API v2 and the credentials (if it wants any) work. */
  async ping(): Promise<void> {
    const res = await this.request('/v2/', { scope: '', what: 'ping /v2/' });
    if (!res.ok) throw await this.unexpected(res, 'ping /v2/');
    await res.body?.cancel();
  }

  /**
   * A manifest by tag or digest, any of the Docker v2 / OCI manifest and list/index types.
   * Verified against `reference` when that is a digest; else against `Docker-Content-Digest`
   * when the registry sends one.
   */
  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const what = `manifest ${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, {
      scope: pullScope(repository),
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      what: `GET ${what}`,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`manifest ${this.host}/${repository}${isDigest(reference) ? '@' : ':'}${reference} not found`, 'not-found', { status: 404 });
    }
    if (!res.ok) throw await this.unexpected(res, `GET ${what}`);
    const bytes = await readCapped(res, this.limits.maxDocumentBytes, () => this.documentTooLarge(what));
    const digest = digestOf(bytes);
    if (isDigest(reference) && digest !== reference) {
      throw new RegistryError(`manifest ${repository}@${reference} from ${this.host} hashes to ${digest}`, 'invalid');
    }
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && isDigest(claimed) && claimed !== digest) {
      throw new RegistryError(`manifest ${repository}:${reference} from ${this.host} hashes to ${digest}, not the ${claimed} the registry claims`, 'invalid');
    }
    return parseManifest(bytes, digest, res.headers.get('content-type'), `${this.host}/${repository}:${reference}`, this.limits.maxIndexManifests);
  }

  /** `PUT` a manifest under a tag (or its digest); returns the digest the registry reports (checked). */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const what = `PUT manifest ${repository}:${reference}`;
    const res = await this.request(`/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      scope: pushScope(repository),
      headers: { 'content-type': mediaType },
      body: bytes,
      what,
    });
    if (res.status !== 201 && res.status !== 200) throw await this.unexpected(res, what);
    await res.body?.cancel();
    const digest = digestOf(bytes);
    const claimed = res.headers.get('docker-content-digest');
    if (claimed && claimed !== digest) {
      throw new RegistryError(`registry ${this.host} stored the manifest as ${isDigest(claimed) ? claimed : 'something else'}, expected ${digest}`, 'invalid');
    }
    return digest;
  }

  /**
   * Whether the registry speaks the OCI 1.1 referrers API for this repository: `GET
   * /v2/<name>/referrers/<digest>` answers 200 with an image index (a registry without it
   * answers 404 or 400). Only the answer's type is looked at; the body is read capped.
   */
  async supportsReferrers(repository: string, digest: Digest): Promise<boolean> {
    const what = `GET referrers ${repository}@${digest}`;
    const res = await this.request(`/v2/${repository}/referrers/${digest}`, { scope: pullScope(repository), headers: { accept: 'application/vnd.oci.image.index.v1+json' }, what });
    if (res.status !== 200) {
      await res.body?.cancel();
      return false;
    }
    const bytes = await readCapped(res, this.limits.maxDocumentBytes, () => this.documentTooLarge(what));
    try {
      const body = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
      return Array.isArray(body.manifests) && (body.mediaType === undefined || body.mediaType === 'application/vnd.oci.image.index.v1+json');
    } catch {
      return false;
    }
  }

  /** `HEAD` a blob: its size if the repository has it, else null. */
  async hasBlob(repository: string, digest: Digest, scope = pullScope(repository)): Promise<number | null> {
    const what = `HEAD blob ${repository}@${digest}`;
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, { method: 'HEAD', scope, what });
    if (res.status !== 404 && !res.ok) throw await this.unexpected(res, what);
    await res.body?.cancel();
    if (res.status === 404) return null;
    return Number(res.headers.get('content-length') ?? -1);
  }

  /**
   * A blob, streamed. The stream fails (RegistryError 'invalid') at its end if the content does
   * not hash to `digest` or is not `size` bytes, so a consumer never takes a bad blob as good.
   */
  async getBlob(repository: string, digest: Digest, size?: number): Promise<Readable> {
    const res = await this.request(`/v2/${repository}/blobs/${digest}`, { scope: pullScope(repository), what: `GET blob ${repository}@${digest}` });
    if (res.status === 404) {
      await res.body?.cancel();
      throw new RegistryError(`blob ${digest} not found in ${this.host}/${repository}`, 'not-found', { status: 404 });
    }
    if (!res.ok || !res.body) throw await this.unexpected(res, `GET blob ${repository}@${digest}`);
    const hash = createHash('sha256');
    let seen = 0;
    const host = this.host;
    const verify = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        seen += chunk.length;
        if (size !== undefined && seen > size) done(new RegistryError(`blob ${digest} from ${host} is larger than the ${size} bytes its manifest says`, 'invalid'));
        else done(null, chunk);
      },
      flush(done) {
        const actual = digestFromHash(hash);
        if (actual !== digest) done(new RegistryError(`blob from ${host} does not match its digest ${digest}: it hashes to ${actual}`, 'invalid'));
        else if (size !== undefined && seen !== size) done(new RegistryError(`blob ${digest} from ${host} is ${seen} bytes, not the ${size} its manifest says`, 'invalid'));
        else done();
      },
    });
    return pipeThrough(Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>), verify);
  }

  /** A small blob (a config), read whole (at most BALER_REGISTRY_MAX_DOCUMENT_BYTES) and verified. */
  async getBlobBytes(repository: string, digest: Digest, size?: number): Promise<Buffer> {
    const what = `blob ${repository}@${digest}`;
    if (size !== undefined && size > this.limits.maxDocumentBytes) throw this.documentTooLarge(what);
    const blob = await this.getBlob(repository, digest, size);
    const chunks: Buffer[] = [];
    let total = 0;
    try {
      for await (const chunk of blob as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > this.limits.maxDocumentBytes) throw this.documentTooLarge(what);
        chunks.push(chunk);
      }
    } finally {
      blob.destroy();
    }
    return Buffer.concat(chunks);
  }

  /**
   * Try to mount `digest` from `from` (same registry) into `repository`. true if mounted; else
   * the upload session the registry opened instead (a Location), or null if none.
   */
  async mountBlob(repository: string, digest: Digest, from: string): Promise<{ mounted: true } | { mounted: false; location: string | null }> {
    const params = new URLSearchParams({ mount: digest, from });
    const res = await this.request(`/v2/${repository}/blobs/uploads/?${params}`, {
      method: 'POST',
      scope: `${pushScope(repository)} ${pullScope(from)}`,
      headers: { 'content-length': '0' },
      what: `mount ${digest} from ${from} into ${repository}`,
    });
    if (res.status === 201 || res.status === 202) await res.body?.cancel();
    if (res.status === 201) return { mounted: true };
    if (res.status === 202) return { mounted: false, location: this.uploadLocation(res) };
    if (res.status === 401 || res.status === 403 || res.status === 404) {
      await res.body?.cancel();
      return { mounted: false, location: null };
    }
    throw await this.unexpected(res, `mount ${digest} from ${from} into ${repository}`);
  }

  /** `POST /v2/<name>/blobs/uploads/`: a new upload session's Location. */
  async startUpload(repository: string): Promise<string> {
    const res = await this.request(`/v2/${repository}/blobs/uploads/`, {
      method: 'POST',
      scope: pushScope(repository),
      headers: { 'content-length': '0' },
      what: `start upload to ${repository}`,
    });
    if (res.status !== 202) throw await this.unexpected(res, `start upload to ${repository}`);
    await res.body?.cancel();
    const location = this.uploadLocation(res);
    if (!location) throw new RegistryError(`registry ${this.host} opened an upload without a Location`, 'protocol');
    return location;
  }

  /**
   * Upload a blob of known digest and size into an open session. At most `chunkSize` bytes:
   * one `PUT ?digest=` with the body (monolithic); else `PATCH` chunks (each a fresh stream of
   * `open(start, end)`, so nothing is held) and a bodiless `PUT ?digest=`.
   */
  async uploadBlob(repository: string, location: string, blob: { digest: Digest; size: number }, open: (start: number, end: number) => Promise<Readable>, chunkSize: number): Promise<void> {
    const scope = pushScope(repository);
    if (blob.size <= chunkSize) {
      const res = await this.request('', {
        url: withDigest(location, blob.digest),
        method: 'PUT',
        scope,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
        stream: () => (blob.size === 0 ? Promise.resolve(Readable.from([])) : open(0, blob.size - 1)),
        what: `upload blob ${blob.digest} to ${repository}`,
      });
      if (res.status !== 201) throw await this.unexpected(res, `upload blob ${blob.digest} to ${repository}`);
      await res.body?.cancel();
      return;
    }
    for (let start = 0; start < blob.size; start += chunkSize) {
      const end = Math.min(blob.size, start + chunkSize) - 1;
      const res = await this.request('', {
        url: location,
        method: 'PATCH',
        scope,
        headers: {
          'content-type': 'application/octet-stream',
          'content-range': `${start}-${end}`,
          'content-length': String(end - start + 1),
        },
        stream: () => open(start, end),
        what: `upload chunk ${start}-${end} of ${blob.digest} to ${repository}`,
      });
      if (res.status !== 202) throw await this.unexpected(res, `upload chunk ${start}-${end} of ${blob.digest} to ${repository}`);
      await res.body?.cancel();
      location = this.uploadLocation(res) ?? location;
    }
    const res = await this.request('', {
      url: withDigest(location, blob.digest),
      method: 'PUT',
      scope,
      headers: { 'content-length': '0' },
      body: '',
      what: `finish upload of ${blob.digest} to ${repository}`,
    });
    if (res.status !== 201) throw await this.unexpected(res, `finish upload of ${blob.digest} to ${repository}`);
    await res.body?.cancel();
  }

  /**
   * The upload session's Location, absolute; null if the answer has none. It gets the
   * credentials, so it must be on the registry's own origin (RegistryError 'not-allowed').
   */
  private uploadLocation(res: Response): string | null {
    const location = res.headers.get('location');
    if (!location) return null;
    let url: URL;
    try {
      url = new URL(location, this.hosts.origin);
    } catch (err) {
      throw new RegistryError(`registry ${this.host} opened an upload at a Location that is not a URL`, 'invalid', { cause: err });
    }
    this.hosts.checkUploadLocation(url);
    return url.toString();
  }
}

const pullScope = (repository: string): string => `repository:${repository}:pull`;
const pushScope = (repository: string): string => `repository:${repository}:pull,push`;

function withDigest(location: string, digest: Digest): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.toString();
}
