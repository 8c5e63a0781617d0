import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { describeBlobStoreContract } from './blob-store-contract.ts';

describeBlobStoreContract('FsBlobStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'baler-store-'));
  return {
    store: await FsBlobStore.create(root),
    env: { BALER_STORE: 'fs', DATA_DIR: root },
    ingestLeftovers: async () => (await readdir(join(root, 'ingest'))).sort(),
    close: () => rm(root, { recursive: true, force: true }),
  };
});
