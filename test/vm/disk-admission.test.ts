/**
 * Disk admission of VM steps, on a small tmpfs as the VM temp dir (needs root to mount it): a
 * step is started only when the filesystem can take every byte its disks may come to, beside
 * what running steps may still write and the reserve; otherwise nothing is started and the
 * error says why. A warm VM's disks (the pool's size) are charged in full: when they do not
 * fit but the job's own do, the job boots cold. Real QEMU (TCG here) only for the last test.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DiskAdmission } from '../../src/vm/disk-admission.ts';
import { VmHostBusyError, VmInputError } from '../../src/vm/errors.ts';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { FILES, makeStepDir, MiB } from '../../src/vm/step-files.ts';
import { until } from '../support/wait.ts';
import { fillerFile, job, mountTmpfs, processesMentioning, unmount } from './support.ts';

const root = process.getuid?.() === 0;
let work: string;
let small: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-disk-admission-'));
  small = join(work, 'small');
  if (root) await mountTmpfs(small, 512);
});

afterEach(async () => {
  for (const name of await readdir(small).catch(() => [] as string[])) await rm(join(small, name), { recursive: true, force: true });
});

afterAll(async () => {
  if (root) unmount(small);
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(!root)('DiskAdmission', () => {
  it("counts what live steps hold, less what their files take already, and keeps the reserve; a dead worker's hold does not count", async () => {
    const admission = new DiskAdmission(small, 32 * MiB);
    const a = await makeStepDir(small);
    expect(await admission.admit(a, 300 * MiB, 'a')).toEqual({ ok: true });
    const b = await makeStepDir(small);
    const refused = await admission.admit(b, 200 * MiB, 'its disks');
    expect(refused).toMatchObject({ ok: false, never: false });
    expect(!refused.ok && refused.reason).toMatch(
      /^this VM step may take up to 200 MiB of the worker's disk \(its disks\); its VM temp dir has 5\d\d MiB free, running VM steps may still write 300 MiB of it and 32 MiB are kept free \(BALER_VM_DISK_RESERVE_MIB\): waiting for room$/,
    );
    // Refused: it holds nothing.
    expect(await admission.hasRoom(150 * MiB)).toBe(true);

    // What step a wrote takes free space and counts against its hold once, not twice.
    await fillerFile(join(a, FILES.scratch), 200);
    expect(await admission.admit(b, 200 * MiB, 'its disks')).toMatchObject({ ok: false });
    expect(await admission.admit(b, 150 * MiB, 'its disks')).toEqual({ ok: true });
    expect(await admission.hasRoom(40 * MiB)).toBe(false);

    // A dead worker's step: its files take what they take, its hold no longer counts.
    const dead = spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim();
    await writeFile(join(a, FILES.owner), `${dead}\n`);
    expect(await admission.hasRoom(100 * MiB)).toBe(true);
  });

  it('says when a step can never fit', async () => {
    const admission = new DiskAdmission(small, 32 * MiB);
    const dir = await makeStepDir(small);
    const refused = await admission.admit(dir, 500 * MiB, 'its disks');
    expect(refused).toMatchObject({ ok: false, never: true });
    expect(!refused.ok && refused.reason).toBe(
      "this VM step may take up to 500 MiB of the worker's disk (its disks): more than its VM temp dir can ever hold (512 MiB, of which 32 MiB are kept free (BALER_VM_DISK_RESERVE_MIB))",
    );
  });
});

describe.skipIf(!root)('QemuVmRunner on a small temp dir', () => {
  it('starts nothing for a step whose disks do not fit now, and says why; fails one that never fits', async () => {
    const runner = new QemuVmRunner({ tmpDir: small, poolSize: 0, diskReserveMiB: 32 });
    await fillerFile(join(small, 'filler'), 300);
    // diskSize 64: a 64 MiB scratch disk and a 192 MiB output disk, 256 MiB with the status disk.
    const busy = runner.run(job({ runAsRoot: 'true', inputBytes: 3 * MiB, limits: { diskMiB: 64, memoryMiB: 256, timeoutSeconds: 30 } }));
    await expect(busy).rejects.toBeInstanceOf(VmHostBusyError);
    await expect(busy).rejects.toThrow(
      /^this VM step may take up to 260 MiB of the worker's disk \(a 64 MiB scratch disk and its output and 3 MiB of inputs\); its VM temp dir has 2\d\d MiB free, running VM steps may still write 0 MiB of it and 32 MiB are kept free \(BALER_VM_DISK_RESERVE_MIB\): waiting for room$/,
    );
    await expect(runner.run(job({ runAsRoot: 'true', limits: { diskMiB: 512, memoryMiB: 256, timeoutSeconds: 30 } }))).rejects.toThrow(VmInputError);
    await expect(runner.run(job({ runAsRoot: 'true', limits: { diskMiB: 512, memoryMiB: 256, timeoutSeconds: 30 } }))).rejects.toThrow(
      /more than its VM temp dir can ever hold .*; ask for a smaller diskSize$/,
    );
    expect(await readdir(small)).toEqual(['filler']);
    expect(processesMentioning(small)).toEqual([]);
  });

  it("boots a job cold when a warm VM's disks do not fit but its own do, and warm when they do", async () => {
    const records: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    // The pool's VMs: 96 MiB scratch disks, 352 MiB of disks in all.
    const runner = new QemuVmRunner({ tmpDir: small, poolSize: 1, poolLimits: { memoryMiB: 256, diskMiB: 96 }, diskReserveMiB: 32, logger });
    try {
      await until(() => runner.warmVms().some((v) => v.ready), 180_000);
      const [waiting] = runner.warmVms();
      await fillerFile(join(small, 'filler'), 150);
      const stepEnded = () => records.filter((r) => r.msg === 'VM step ended').pop();

      const cold = await runner.run(job({ runAsRoot: 'echo cold > /where', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 60 } }));
      await cold.dispose();
      expect(cold.outcome).toEqual({ ok: true });
      expect(stepEnded()?.pooled).toBe(false);
      // The warm VM was not taken (and thrown away) for nothing.
      expect(runner.warmVms().map((v) => v.pid)).toEqual([waiting?.pid]);

      await rm(join(small, 'filler'));
      const warm = await runner.run(job({ runAsRoot: 'echo warm > /where', limits: { diskMiB: 16, memoryMiB: 256, timeoutSeconds: 60 } }));
      await warm.dispose();
      expect(warm.outcome).toEqual({ ok: true });
      expect(stepEnded()?.pooled).toBe(true);
    } finally {
      await runner.close();
    }
    expect(processesMentioning(small)).toEqual([]);
  }, 400_000);
});
