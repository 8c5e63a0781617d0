import type { Readable } from 'node:stream';
import type { Digest } from '../digest.ts';
import type { IndexHome } from './store-index.ts';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface PutResult extends BlobInfo {
  /** false when a blob with this digest was already stored (the upload was discarded). */
  created: boolean;
}

export interface PutOptions {
  /** The digest the caller claims; the upload is discarded and DigestMismatchError thrown if it differs. */
  expectedDigest?: Digest;
  /** Abort with BlobTooLargeError once more than this many bytes arrived. */
  maxBytes?: number;
  /**
   * The size the caller knows in advance (an HTTP Content-Length), if any. Not checked by the
   * stores; a charging store reserves it whole before reading (ChargedStore).
   */
  expectedBytes?: number;
}

/** Inclusive byte range, as in HTTP `Range`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Content-addressed blob storage. A blob becomes visible under its digest only once it is
 * complete and verified (ingest to a temporary name, hash, then commit), so a reader never
 * sees half a blob whatever happens to the writer.
 */
export interface BlobStore {
  /** Where the indexes kept beside this store live (storeIndex). */
  readonly indexHome: IndexHome;
  put(source: Readable, opts?: PutOptions): Promise<PutResult>;
  stat(digest: Digest): Promise<BlobInfo | null>;
  /** Stream a blob, or part of it. Throws BlobNotFoundError. */
  open(digest: Digest, range?: ByteRange): Promise<Readable>;
  /** Throws when the store cannot be written. */
  ping(): Promise<void>;
  /** Every stored blob, with when it was last written (a re-upload counts as a write). */
  list(): AsyncIterable<BlobInfo & { modifiedMs: number }>;
  /** Remove a blob; no error if it is already gone. */
  delete(digest: Digest): Promise<void>;
  /**
   * Remove what writers that died mid-upload left in the ingest area, if older than
   * `olderThanMs` (never visible as blobs, but taking space). Returns how many were removed.
   */
  sweepIngest(olderThanMs: number): Promise<number>;
}

/** Ingest leftovers older than this are from a crashed writer (no upload takes a day). */
export const STALE_INGEST_MS = 24 * 3600 * 1000;

/** Whether every blob named is still stored (with the size expected, where one is given). */
export async function allStored(store: BlobStore, blobs: Iterable<{ digest: Digest; size?: number }>): Promise<boolean> {
  for (const { digest, size } of blobs) {
    const info = await store.stat(digest);
    if (!info || (size !== undefined && info.size !== size)) return false;
  }
  return true;
}

export class BlobNotFoundError extends Error {
  constructor(readonly digest: Digest) {
    super(`blob ${digest} not found`);
    this.name = 'BlobNotFoundError';
  }
}

export class DigestMismatchError extends Error {
  constructor(
    readonly expected: Digest,
    readonly actual: Digest,
  ) {
    super(`content digest ${actual} does not match the expected ${expected}`);
    this.name = 'DigestMismatchError';
  }
}

export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`blob is larger than the limit of ${limit} bytes`);
    this.name = 'BlobTooLargeError';
  }
}

/** The store has no room left: nothing was kept of the blob being written. */
export class StoreFullError extends Error {
  constructor(opts?: { cause?: unknown }) {
    super('store full: no space left for blobs', opts);
    this.name = 'StoreFullError';
  }
}

/**
 * Storing a blob would take a tenant over its storage quota: nothing was kept of it. Says how
 * the tenant's own use stands (never another tenant's).
 */
export class QuotaExceededError extends Error {
  constructor(
    readonly quota: number,
    readonly stored: number,
    /** Bytes held meanwhile by the tenant's other writes in progress. */
    readonly reserved: number,
  ) {
    super(`storing this would exceed your quota of ${quota} bytes (${stored} stored, ${reserved} being written by your other requests)`);
    this.name = 'QuotaExceededError';
  }
}
