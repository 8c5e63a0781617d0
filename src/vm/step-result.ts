/** A finished step as VmRunner hands it back: its outcome, its upper tar, and dispose() removing its dir. */
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { VmError } from './errors.ts';
import { FILES } from './step-files.ts';
import type { VmOutcome, VmResult } from './vm-runner.ts';

/** The result over the step's dir (QEMU has exited); `tarBytes`: the upper tar's length in its out file. */
export function stepResult(dir: string, outcome: VmOutcome, tarBytes: number): VmResult {
  let disposed = false;
  const outPath = join(dir, FILES.out);
  return {
    outcome,
    openUpperTar: async (): Promise<Readable> => {
      if (!outcome.ok) throw new VmError(`the VM step failed (${outcome.reason}): there is no upper tar`);
      if (disposed) throw new VmError('the VM step was disposed: its upper tar is gone');
      return createReadStream(outPath, { start: 0, end: tarBytes - 1 });
    },
    dispose: async (): Promise<void> => {
      if (disposed) return;
      disposed = true;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
