/**
 * A worker's VMs: one QemuVmRunner per platform it serves, each with its own warm pool, all
 * over one temp dir's disk admission. A step runs on the runner of its platform.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { digestFromHash, type Digest } from '../digest.ts';
import { tmpdir } from 'node:os';
import type { VmAssets } from './assets/vm-assets.ts';
import { DiskAdmission } from './disk-admission.ts';
import { VmStartError } from './errors.ts';
import type { VmAccel, VmPlatform } from './platform.ts';
import { DEFAULT_VM_PLATFORM } from './platforms/index.ts';
import { QemuVmRunner, type QemuVmRunnerOptions } from './qemu-vm-runner.ts';
import { isNative, type ServedPlatformChoice } from './served-platforms.ts';
import { MiB } from './step-files.ts';
import type { VmJob, VmResult, VmRunner } from './vm-runner.ts';

/** What every platform's runner is made with (the platform, the admission and when its pool starts are this file's). */
type SharedOptions = Omit<QemuVmRunnerOptions, 'platform' | 'admission' | 'warmOnFirstRun' | 'assets'> & {
  /** A platform's kernel and initramfs; default: ensureVmAssets for it. */
  assets?: (platform: VmPlatform) => Promise<VmAssets>;
};

export class PlatformRunners implements VmRunner {
  readonly #runners: ReadonlyMap<string, QemuVmRunner>;
  #assetDigests: Promise<Array<{ platform: string; kernel: Digest; initramfs: Digest }>> | undefined;

  constructor(runners: readonly QemuVmRunner[]) {
    this.#runners = new Map(runners.map((r) => [r.platform.name, r]));
  }

  /** The platforms served, in the order given (the host's own first). */
  get platforms(): VmPlatform[] {
    return [...this.#runners.values()].map((r) => r.platform);
  }

  /** Each platform served and how its VMs run. */
  async served(): Promise<Array<{ platform: string; accel: VmAccel }>> {
    return Promise.all([...this.#runners.values()].map(async (r) => ({ platform: r.platform.name, accel: await r.accel() })));
  }

  /** The sha256 of each platform's kernel and initramfs (what provenance names of a VM step), hashed once. */
  assetDigests(): Promise<Array<{ platform: string; kernel: Digest; initramfs: Digest }>> {
    this.#assetDigests ??= Promise.all(
      [...this.#runners.values()].map(async (r) => {
        const assets = await r.assets();
        return { platform: r.platform.name, kernel: await fileDigest(assets.kernel), initramfs: await fileDigest(assets.initrd) };
      }),
    );
    return this.#assetDigests;
  }

  /** Runs the step on its platform's runner (a step that names none: the default platform's). */
  async run(job: VmJob): Promise<VmResult> {
    const name = job.platform ?? DEFAULT_VM_PLATFORM.name;
    const runner = this.#runners.get(name);
    if (!runner) throw new VmStartError(`this worker runs no ${name} VMs (it runs ${[...this.#runners.keys()].join(', ')})`);
    return runner.run(job);
  }

  /** Kills every platform's waiting warm VMs (running steps go on). */
  async close(): Promise<void> {
    await Promise.all([...this.#runners.values()].map((r) => r.close()));
  }
}

/**
 * A runner per chosen platform, with its kernel and initramfs built (or found in the cache)
 * before any job. An emulated platform's pool boots at its first step. A platform whose assets
 * cannot be had is an error when the operator named it or it is the first (the host's own);
 * an emulated one chosen by default is dropped, with a warning.
 */
export async function startPlatformRunners(choice: ServedPlatformChoice, options: SharedOptions): Promise<PlatformRunners> {
  const tmpDir = options.tmpDir ?? (process.env.BALER_VM_TMPDIR || tmpdir());
  const admission = new DiskAdmission(tmpDir, (options.diskReserveMiB ?? 0) * MiB);
  const { assets, ...shared } = options;
  const runners = choice.platforms.map(
    (platform) => new QemuVmRunner({ ...shared, tmpDir, platform, admission, warmOnFirstRun: !isNative(platform), ...(assets ? { assets: () => assets(platform) } : {}) }),
  );
  const ready = await Promise.allSettled(runners.map((r) => r.assets()));
  const kept: QemuVmRunner[] = [];
  for (const [i, runner] of runners.entries()) {
    const outcome = ready[i];
    if (outcome?.status === 'fulfilled') {
      kept.push(runner);
      continue;
    }
    await runner.close();
    if (choice.configured || i === 0) {
      await Promise.all(runners.map((r) => r.close()));
      throw outcome?.reason;
    }
    options.logger?.warn({ err: outcome?.reason, platform: runner.platform.name }, `not serving ${runner.platform.name}: its VM assets cannot be built`);
  }
  return new PlatformRunners(kept);
}

async function fileDigest(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return digestFromHash(hash);
}
