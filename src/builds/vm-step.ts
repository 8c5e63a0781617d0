import { BudgetExceededError } from '../budget.ts';
import type { Digest } from '../digest.ts';
import type { FsTree } from '../image/fs-tree.ts';
import { LayerInputError } from '../image/layer-entry.ts';
import { writeLayerTar } from '../image/layer-writer.ts';
import { layerTreeFromUpper, overlayLowerTree } from '../image/overlay-form.ts';
import { QuotaExceededError, StoreFullError } from '../store/blob-store.ts';
import type { BuildContext } from './build-deps.ts';
import { vmPlatformName } from './build-platform.ts';
import type { VmStep } from './step-plan.ts';

/** A VM step ended without success because of the build's own script or limits. */
export class VmStepError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'VmStepError';
  }
}

/**
 * runAsRoot and extraCommands: the contents go in as the upper dir over the layers below (the
 * base's, then this build's own, bottom first), the scripts run in a VM, and the upper dir that
 * comes back is the new layer's tree.
 */
export async function runVmStep(step: VmStep, contents: FsTree, lowerLayers: Digest[], ctx: BuildContext): Promise<FsTree> {
  const { store, usage, observer } = ctx;
  const { inputs } = step;
  ctx.signal?.throwIfAborted();
  usage.addLayerBytes(contents.layerBytes, 'the VM step input (contents)');
  const upperInput = await store.put(writeLayerTar(contents.sortedEntries(), store, inputs.mtime).stream);
  const lowers = lowerLayers.length > 0 ? await overlayLowerTree(lowerLayers, store, { usage }) : undefined;
  // What the inputs may take on the worker's disk (held before they are written there).
  const lowerBytes = (await Promise.all(lowerLayers.map(async (d) => (await store.stat(d))?.size ?? 0))).reduce((a, b) => a + b, 0);

  const result = await ctx.vm.run({
    platform: vmPlatformName(inputs.architecture),
    lowerTar: lowers ? async () => writeLayerTar(lowers.sortedEntries(), store).stream : undefined,
    lowerCount: lowerLayers.length,
    upperTar: () => store.open(upperInput.digest),
    inputBytes: lowerBytes + upperInput.size,
    runAsRoot: inputs.runAsRoot,
    extraCommands: inputs.extraCommands,
    shadowSetup: inputs.shadowSetup,
    clock: inputs.mtime,
    limits: { diskMiB: inputs.diskSize, memoryMiB: inputs.memorySize, timeoutSeconds: step.timeoutSeconds },
    onLog: (text) => observer.log(text),
    signal: ctx.signal,
    logger: ctx.logger,
  });
  try {
    if (!result.outcome.ok) throw new VmStepError(result.outcome.reason);
    const upper = await store.put(await result.openUpperTar());
    ctx.logger?.debug({ upper: upper.digest, size: upper.size }, 'VM step output stored');
    return await layerTreeFromUpper(upper.digest, store, { mode: 0o755, uid: 0, gid: 0 }, { allowDevices: inputs.allowDevices, usage, onLog: (text) => observer.log(text) });
  } catch (err) {
    if (err instanceof VmStepError || err instanceof LayerInputError || err instanceof BudgetExceededError || err instanceof StoreFullError || err instanceof QuotaExceededError) throw err;
    throw new Error(`reading the VM step's output failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await result.dispose();
  }
}
