/**
 * A step's claim on the temp dir's free space (disk-admission.ts): its disks at their full
 * size and its inputs, held from before they are written until the step's dir is removed.
 */
import type { DiskAdmission } from './disk-admission.ts';
import { VmHostBusyError, VmInputError } from './errors.ts';
import { diskCapacityBytes, MiB, type WrittenInputs } from './step-files.ts';
import type { VmJob } from './vm-runner.ts';

/** What a step's dir may come to: disks of `diskMiB` (the VM's, not the job's) and the inputs. */
export function holdBytes(diskMiB: number, job: VmJob, inputBytes = job.inputBytes ?? 0): number {
  return diskCapacityBytes(diskMiB) + inputBytes;
}

/** What the written inputs take (the job, lower and upper disks: read-only to the guest, they grow no more). */
function inputBytesOf(inputs: WrittenInputs): number {
  return inputs.bytes.job + inputs.bytes.lower + inputs.bytes.upper;
}

/**
 * Holds room for the step in `dir` (a VM with disks of `diskMiB`). Throws VmHostBusyError
 * when there is none now, VmInputError when there never is.
 */
export async function admitStep(admission: DiskAdmission, dir: string, diskMiB: number, job: VmJob): Promise<void> {
  const inputs = job.inputBytes ? ` and ${Math.ceil(job.inputBytes / MiB)} MiB of inputs` : '';
  const what = `a ${diskMiB} MiB scratch disk and its output${inputs}${diskMiB === job.limits.diskMiB ? '' : `: a warm VM's disks, for diskSize ${job.limits.diskMiB} MiB`}`;
  const admitted = await admission.admit(dir, holdBytes(diskMiB, job), what);
  if (admitted.ok) return;
  if (admitted.never) throw new VmInputError(`${admitted.reason}; ask for a smaller diskSize`);
  throw new VmHostBusyError(admitted.reason);
}

/** Holds, in place of the estimate, what the step's dir may come to now that its inputs are written. */
export function holdWritten(admission: DiskAdmission, dir: string, diskMiB: number, job: VmJob, inputs: WrittenInputs): Promise<void> {
  return admission.hold(dir, holdBytes(diskMiB, job, inputBytesOf(inputs)));
}
