/**
 * A worker whose VM temp dir (a small tmpfs here: needs root) has no room for a step's disks
 * does not start it: the build waits in the queue, its record and log say why, it spends no
 * attempt, and it runs once there is room. Real API, worker and QEMU (TCG here).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';
import { fillerFile, mountTmpfs, unmount } from '../vm/support.ts';

describe.skipIf(process.getuid?.() !== 0)('a worker without disk room for a VM step', () => {
  let service: Service;
  let work: string;
  let vmTmp: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'baler-test-vm-room-'));
    vmTmp = join(work, 'vm-tmp');
    await mountTmpfs(vmTmp, 512);
    // 300 of 512 MiB taken: a step of diskSize 64 (256 MiB of disks) and a 32 MiB reserve do not fit.
    await fillerFile(join(vmTmp, 'filler'), 300);
    service = await startService({ BALER_VM_TMPDIR: vmTmp, BALER_VM_POOL: '0', BALER_VM_DISK_RESERVE_MIB: '32' });
  }, 180_000);

  afterAll(async () => {
    await service?.stop();
    if (vmTmp) unmount(vmTmp);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keeps the build waiting, saying why in its record and log, and runs it once there is room', async () => {
    const id = await submitBuild(service, { name: 'needs-room', runAsRoot: 'echo ran > /ran', diskSize: 64 }, { noCache: true });
    type Record = { status: string; waiting?: string; attempt?: number };
    const get = async (): Promise<Record> => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as Record;
    let seen: Record | undefined;
    await until(async () => (seen = await get()).waiting !== undefined, 120_000);
    expect(seen?.status).toBe('queued');
    expect(seen?.waiting).toMatch(
      /^this VM step may take up to 25\d MiB of the worker's disk \(a 64 MiB scratch disk and its output and \d+ MiB of inputs\); its VM temp dir has 2\d\d MiB free, running VM steps may still write 0 MiB of it and 32 MiB are kept free \(BALER_VM_DISK_RESERVE_MIB\): waiting for room$/,
    );
    const log = await (await fetch(`${service.url}/v1/builds/${id}/logs`)).text();
    expect(log).toBe(`baler: ${seen?.waiting}\n`);
    // It is tried again, and waits again: no attempt is spent, nothing fails.
    const waits = () => service.output().split('build waits for room on this worker').length - 1;
    await until(() => waits() >= 2, 60_000);
    await until(async () => (await get()).status === 'queued', 30_000);
    expect(await get()).toMatchObject({ status: 'queued', attempt: 1, waiting: seen?.waiting });

    await rm(join(vmTmp, 'filler'));
    const done = await waitForBuild(service, id, 300_000);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(await get()).not.toHaveProperty('waiting');
  }, 420_000);
});
