/**
 * Hostile sparse files (`tar -S`, src/image/tar-sparse.ts) in contents tars, against the real
 * service and its real worker process: a PAX 1.0 map of ten million segments, a GNU `S` header
 * chained to two million extension blocks, and a file of 1 PiB with one byte of data. Each must
 * fail with a 422 naming its budget, in seconds, while the worker never restarts, its
 * event-loop delay p99 stays under 200 ms and its RSS under 512 MiB, and a bystander's normal
 * build right after succeeds within 30 s.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAttack, submitAndWait } from '../support/hostile/attack.ts';
import { BUDGETS, budgetNamed } from '../support/hostile/budgets.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { GNU_EXTENSION_CHAIN, PAX_MAP_BOMB, PETABYTE_FILE, writeGnuExtensionChain, writePaxMapBomb, writePetabyteFile } from '../support/hostile/sparse-maps.ts';
import { chargedBytes } from '../support/hostile/tenant-bytes.ts';
import { ATTACK_MS } from '../support/hostile/timing.ts';

const ATTACKER = 'sparse';
let hostile: HostileService;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-hostile-sparse-'));
  // Room for the uploads and their decompressed copies (the chain is about 1 GB unpacked).
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 4 * 1024 ** 3 });
}, 180_000);

afterAll(async () => {
  await hostile?.stop();
  await rm(work, { recursive: true, force: true });
}, 60_000);

/**
 * How long a refusal may take from submission: the map bombs are refused at their budget (the
 * chain after reading 100,000 blocks, 50 MB), the 1 PiB file before a byte is written. Most of
 * this is the decompressed copy of the upload; generous for a 2-core machine under load.
 */
const REFUSED_WITHIN_MS = 60_000;

interface SparseAttack {
  title: string;
  attack: string;
  write: (path: string) => Promise<string>;
  gzip: boolean;
  /** The budget the refusal must name. */
  budget: string;
}

const SPARSE_ATTACKS: SparseAttack[] = [
  {
    title: `a PAX 1.0 map of ${PAX_MAP_BOMB.segments.toLocaleString('en')} segments in the entry's data fails with 422 naming the sparse-segments budget`,
    attack: 'sparse map of 10M segments (PAX 1.0)',
    write: (path) => writePaxMapBomb(path),
    gzip: true,
    budget: BUDGETS.sparseSegments,
  },
  {
    title: `a GNU S header chained to ${GNU_EXTENSION_CHAIN.extensionBlocks.toLocaleString('en')} empty extension blocks fails with 422 naming the sparse-segments budget`,
    attack: 'sparse map of 2M GNU extension blocks',
    write: (path) => writeGnuExtensionChain(path),
    gzip: true,
    budget: BUDGETS.sparseSegments,
  },
  {
    title: 'a sparse file of 1 PiB with one byte of data fails with 422 naming the layer-bytes budget, nothing written',
    attack: `sparse file of 1 PiB (${PETABYTE_FILE.realSize} bytes), 1 byte of data`,
    write: (path) => writePetabyteFile(path),
    gzip: false,
    budget: BUDGETS.buildLayerBytes,
  },
];

for (const { title, attack, write, gzip, budget } of SPARSE_ATTACKS) {
  it(
    title,
    async () => {
      const client = hostile.as(ATTACKER);
      const tar = await write(join(work, `${attack.replace(/\W+/g, '-')}.tar${gzip ? '.gz' : ''}`));
      const spec = { name: 'hostile/sparse', contents: [{ tar: await client.uploadOk(tar) }] };
      const chargedBefore = await chargedBytes(hostile.service.redisUrl, ATTACKER);
      const report = await runAttack(hostile, attack, () => submitAndWait(client, spec, ATTACK_MS), { chargedTenant: ATTACKER });
      expect(report.result.status, `${report.result.outcome}: ${report.result.detail}`).toBe(422);
      expect(budgetNamed(report.result.detail), report.result.detail).toBe(budget);
      expect(report.result.timeToEndMs, 'time from submission to the refusal (ms)').toBeLessThan(REFUSED_WITHIN_MS);
      // Refused, not attempted: what the build stored besides the upload (its decompressed copy) is no layer.
      if (!gzip) expect((report.charged ?? 0) - chargedBefore, 'bytes the refused build stored').toBeLessThan(1024 * 1024);
    },
    ATTACK_MS + 180_000,
  );
}
