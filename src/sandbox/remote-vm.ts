/**
 * The VM runner across the sandbox boundary. QEMU, the warm-VM pool and the step's temp files
 * belong to the worker's main thread (shared by its builds, and killed with it); a build in
 * the sandbox asks for a step with RemoteVmRunner, and the main thread runs it with
 * serveVmRunner, pulling the step's input tars from the sandbox as the runner reads them.
 */
import type { Readable } from 'node:stream';
import type { Logger } from '../log.ts';
import type { VmJob, VmResult, VmRunner } from '../vm/vm-runner.ts';
import { Transfer, type RpcEndpoint } from './port-rpc.ts';
import { receiveStream, sendStream } from './port-stream.ts';
import { METHODS, type RemoteVmJob, type RemoteVmStarted, type VmInput } from './sandbox-protocol.ts';
import type { MessagePort } from 'node:worker_threads';

/** In the sandbox: VM steps run by the main thread. */
export class RemoteVmRunner implements VmRunner {
  private nextJob = 0;
  private readonly jobs = new Map<number, VmJob>();

  constructor(private readonly rpc: RpcEndpoint) {
    rpc.handle(METHODS.vmOpenInput, async (jobId: number, which: VmInput) => {
      const job = this.jobs.get(jobId);
      const open = which === 'lower' ? job?.lowerTar : job?.upperTar;
      if (!open) throw new Error(`VM step ${jobId} has no ${which} input`);
      const port = sendStream(await open());
      return new Transfer(port, [port]);
    });
  }

  async run(job: VmJob): Promise<VmResult> {
    const id = this.nextJob++;
    this.jobs.set(id, job);
    try {
      const remote: RemoteVmJob = {
        platform: job.platform,
        lowerCount: job.lowerCount,
        inputBytes: job.inputBytes,
        runAsRoot: job.runAsRoot,
        extraCommands: job.extraCommands,
        shadowSetup: job.shadowSetup,
        clock: job.clock,
        limits: job.limits,
        hasLower: job.lowerTar !== undefined,
        hasUpper: job.upperTar !== undefined,
      };
      const { resultId, outcome } = await this.rpc.call<RemoteVmStarted>(METHODS.vmRun, [id, remote]);
      return {
        outcome,
        openUpperTar: async () => receiveStream(await this.rpc.call<MessagePort>(METHODS.vmOpenUpper, [resultId])),
        dispose: () => this.rpc.call<void>(METHODS.vmDispose, [resultId]),
      };
    } finally {
      this.jobs.delete(id);
    }
  }
}

/** What a VM step of the sandbox's build gets from the main thread besides the runner. */
export interface VmHost {
  onLog?: (text: string) => void;
  signal?: AbortSignal;
  logger?: Logger;
}

/**
 * In the main thread: runs the sandbox's VM steps on `vm`. Returns `disposeAll`, which removes
 * what steps the sandbox did not dispose of itself left behind (it may have been stopped).
 */
export function serveVmRunner(rpc: RpcEndpoint, vm: VmRunner, host: VmHost): { disposeAll(): Promise<void> } {
  const results = new Map<number, VmResult>();
  let nextResult = 0;
  let closed = false;
  const input = (jobId: number, which: VmInput) => async (): Promise<Readable> => receiveStream(await rpc.call<MessagePort>(METHODS.vmOpenInput, [jobId, which]));
  rpc.handle(METHODS.vmRun, async (jobId: number, job: RemoteVmJob): Promise<RemoteVmStarted> => {
    const { hasLower, hasUpper, ...params } = job;
    const result = await vm.run({
      ...params,
      lowerTar: hasLower ? input(jobId, 'lower') : undefined,
      upperTar: hasUpper ? input(jobId, 'upper') : undefined,
      onLog: host.onLog,
      signal: host.signal,
      logger: host.logger,
    });
    if (closed) {
      // The sandbox is gone (stopped while the step ran): nobody will read or dispose of it.
      await result.dispose();
      throw new Error('the build ended while its VM step ran');
    }
    const resultId = nextResult++;
    results.set(resultId, result);
    return { resultId, outcome: result.outcome };
  });
  rpc.handle(METHODS.vmOpenUpper, async (resultId: number) => {
    const result = results.get(resultId);
    if (!result) throw new Error(`no VM result ${resultId}`);
    const port = sendStream(await result.openUpperTar());
    return new Transfer(port, [port]);
  });
  rpc.handle(METHODS.vmDispose, async (resultId: number) => {
    const result = results.get(resultId);
    results.delete(resultId);
    await result?.dispose();
  });
  return {
    async disposeAll() {
      closed = true;
      const left = [...results.values()];
      results.clear();
      await Promise.all(left.map((r) => r.dispose()));
    },
  };
}
