/**
 * The device rule (src/image/device-policy.ts) on what a runAsRoot script leaves, with a real
 * worker and a real VM (TCG here, slow: one build). The operator allows devices here, so the
 * one build shows both halves: the node under /dev/ dropped with a line in the build log, the
 * node elsewhere kept. Refusal without the setting, and the same rule for contents and base
 * layers: test/image/device-nodes.test.ts and test/image/build-budgets.test.ts.
 */
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { indexTar } from '../../src/image/tar-index.ts';
import { baseImageTar } from '../support/base-image.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-devices-e2e-'));
  service = await startService({ BALER_ALLOW_DEVICES: '1', BALER_VM_POOL: '0' });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

// Where the root has a /dev, the guest binds its own over it: the script takes that away
// first (this root has none), so that its node lands in the step's output as a root
// filesystem's would.
const SCRIPT = `
/bin/busybox umount -l /dev || true
/bin/busybox mkdir -p /dev /usr
/bin/busybox mknod /dev/foo c 1 3
/bin/busybox mknod /usr/x c 1 3
`;

it('a runAsRoot doing mknod /dev/foo and /usr/x: /dev/foo dropped with a log line, /usr/x kept (BALER_ALLOW_DEVICES=1)', async () => {
  const base = await uploadFile(service, await baseImageTar());
  const id = await submitBuild(service, { name: 'devices/vm', compression: 'none', format: 'docker-archive', contents: [{ tar: base }], runAsRoot: SCRIPT });
  const build = await waitForBuild(service, id, 600_000);
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
  const log = await (await fetch(`${service.url}/v1/builds/${id}/logs`)).text();
  expect(log).toContain('baler: the VM step output: dropped 1 device node under /dev/ (a container runtime mounts its own /dev)\n');

  // The image's top layer, read from the store (diff_id = blob digest).
  const top = build.result?.diffIds?.at(-1) as string;
  const blob = join(service.dataDir, 'store', 'blobs', 'sha256', top.slice('sha256:'.length));
  const devices: string[] = [];
  for await (const e of indexTar(createReadStream(blob))) {
    if (e.type.endsWith('device')) devices.push(`${e.name} ${e.devmajor}/${e.devminor}`);
  }
  expect(devices).toEqual(['usr/x 1/3']);
}, 660_000);
