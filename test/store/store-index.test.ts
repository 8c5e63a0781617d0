import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Registry } from 'prom-client';
import { afterEach, expect, it } from 'vitest';
import { FsCompressedLayerIndex, layerIndexOf, MemoryCompressedLayerIndex } from '../../src/image/sinks/layer-compression.ts';
import { WriteCountingStore } from '../../src/metrics/store-writes.ts';
import { FsRegistryIndex, registryIndexOf } from '../../src/registry/registry-index.ts';
import type { BlobStore } from '../../src/store/blob-store.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const counter = () => new Counter({ name: 'written_bytes', help: 'test', registers: [new Registry()] });

it('a store and its wrappers share one index of each kind, kept beside the store', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'baler-store-index-'));
  dirs.push(dir);
  const store = await FsBlobStore.create(dir);
  const wrapped = new WriteCountingStore(store, counter());
  const layers = layerIndexOf(store);
  expect(layers).toBeInstanceOf(FsCompressedLayerIndex);
  expect((layers as FsCompressedLayerIndex).dir).toBe(join(dir, 'index', 'compressed-layers'));
  expect(layerIndexOf(wrapped)).toBe(layers);
  expect(layerIndexOf(store)).toBe(layers);
  const registry = registryIndexOf(wrapped);
  expect(registry).toBeInstanceOf(FsRegistryIndex);
  expect((registry as FsRegistryIndex).dir).toBe(join(dir, 'index', 'registry'));
  expect(registryIndexOf(store)).toBe(registry);
});

it('stores with their indexes in memory each have their own', async () => {
  const inMemory = (): BlobStore => ({ indexHome: { kind: 'memory' } }) as BlobStore;
  const [a, b] = [inMemory(), inMemory()];
  expect(layerIndexOf(a)).toBeInstanceOf(MemoryCompressedLayerIndex);
  expect(layerIndexOf(a)).toBe(layerIndexOf(a));
  expect(layerIndexOf(a)).not.toBe(layerIndexOf(b));
});
