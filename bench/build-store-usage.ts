import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../test/support/run.ts';
import { MiB } from './build-context.ts';

// The store on disk: what a bench run's builds leave in DATA_DIR.

export interface StoreUsage {
  label: string;
  builds: number;
  /** Everything under DATA_DIR except redis/ (the queue's AOF). */
  bytes: number;
  blobsBytes: number;
  blobCount: number;
  breakdown: string;
}

async function duBytes(path: string): Promise<number> {
  const r = await run('du', ['-sb', path], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`du -sb ${path}: ${r.stderr}`);
  return Number(r.stdout.split(/\s/)[0]);
}

export async function storeUsage(dataDir: string, label: string, builds: number): Promise<StoreUsage> {
  let bytes = 0;
  const parts: string[] = [];
  for (const entry of readdirSync(dataDir).sort()) {
    if (entry === 'redis') continue;
    const b = await duBytes(join(dataDir, entry));
    bytes += b;
    parts.push(`${entry}/ ${(b / MiB).toFixed(1)} MiB`);
  }
  let blobCount = 0;
  let blobsBytes = 0;
  try {
    blobCount = readdirSync(join(dataDir, 'blobs', 'sha256')).length;
    blobsBytes = await duBytes(join(dataDir, 'blobs'));
  } catch {
    /* another layout */
  }
  return { label, builds, bytes, blobsBytes, blobCount, breakdown: parts.join(', ') };
}

export async function storeBytes(dataDir: string): Promise<number> {
  let bytes = 0;
  for (const entry of readdirSync(dataDir)) if (entry !== 'redis') bytes += await duBytes(join(dataDir, entry));
  return bytes;
}
