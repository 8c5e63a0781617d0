/**
 * A worker whose VM temp dir (a small tmpfs here: needs root) has no room for a step's disks
 * does not start it: the build waits in the queue, its record and log say why, it spends no
 * attempt, and it runs once there is room. Real API, worker and QEMU (TCG here).
 *
 * The worker serves linux/amd64 and linux/arm64 (issue 15), and a build of each waits: every
 * platform's runner admits its steps on the one temp dir (platform-runners.ts), and an arm64
 * build waits in, and comes back from, a queue of its own (baler-builds-arm64-…).
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
    service = await startService({ BALER_VM_TMPDIR: vmTmp, BALER_VM_POOL: '0', BALER_VM_DISK_RESERVE_MIB: '32', BALER_VM_PLATFORMS: 'linux/amd64,linux/arm64' });
  }, 180_000);

  afterAll(async () => {
    await service?.stop();
    if (vmTmp) unmount(vmTmp);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('keeps the builds waiting, saying why in their records and logs, and runs them once there is room (amd64 and arm64)', async () => {
    const spec = { name: 'needs-room', runAsRoot: 'echo "ran on $(uname -m)" > /ran; cat /ran', diskSize: 64 };
    const ids = { amd64: await submitBuild(service, spec, { noCache: true }), arm64: await submitBuild(service, { ...spec, architecture: 'arm64' }, { noCache: true }) };
    type Record = { status: string; waiting?: string; attempt?: number };
    const get = async (id: string): Promise<Record> => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as Record;
    const waits = (id: string) =>
      service
        .output()
        .split('\n')
        .filter((l) => l.includes(`"buildId":"${id}"`) && l.includes('build waits for room on this worker')).length;
    for (const id of Object.values(ids)) {
      let seen: Record | undefined;
      await until(async () => (seen = await get(id)).waiting !== undefined, 120_000);
      expect(seen?.status).toBe('queued');
      expect(seen?.waiting).toMatch(
        /^this VM step may take up to 25\d MiB of the worker's disk \(a 64 MiB scratch disk and its output and \d+ MiB of inputs\); its VM temp dir has 2\d\d MiB free, running VM steps may still write 0 MiB of it and 32 MiB are kept free \(BALER_VM_DISK_RESERVE_MIB\): waiting for room$/,
      );
      const log = await (await fetch(`${service.url}/v1/builds/${id}/logs`)).text();
      // That line once per wait (the other build's checks may have let this one wait again).
      expect(new Set(log.split('\n'))).toEqual(new Set([`baler: ${seen?.waiting}`, '']));
      // It is tried again, and waits again: no attempt is spent, nothing fails.
      await until(() => waits(id) >= 2, 60_000);
      await until(async () => (await get(id)).status === 'queued', 30_000);
      expect(await get(id)).toMatchObject({ status: 'queued', attempt: 1, waiting: seen?.waiting });
    }

    await rm(join(vmTmp, 'filler'));
    for (const [arch, machine] of [
      ['amd64', 'x86_64'],
      ['arm64', 'aarch64'],
    ] as const) {
      const done = await waitForBuild(service, ids[arch], 300_000);
      expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
      expect(await get(ids[arch])).not.toHaveProperty('waiting');
      expect(await (await fetch(`${service.url}/v1/builds/${ids[arch]}/logs`)).text()).toContain(`ran on ${machine}`);
    }
  }, 420_000);
});
