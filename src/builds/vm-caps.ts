/**
 * The operator's caps on a spec's VM step (below the schema's own maximums): what one build may
 * ask a worker for in disk, memory and time. Checked at submission, so a build over them is
 * refused (400) before it takes a place in the queue.
 */
import type { Config } from '../config.ts';
import type { FieldError } from '../problem.ts';
import { VM_DEFAULTS, type BuildSpec } from './spec.ts';

export type VmCaps = Pick<Config, 'maxDiskSizeMiB' | 'maxMemorySizeMiB' | 'maxVmTimeoutSeconds'>;

const CAPPED = [
  { field: 'diskSize', cap: 'maxDiskSizeMiB', setting: 'BALER_MAX_DISK_SIZE_MIB', unit: 'MiB' },
  { field: 'memorySize', cap: 'maxMemorySizeMiB', setting: 'BALER_MAX_MEMORY_SIZE_MIB', unit: 'MiB' },
  { field: 'timeout', cap: 'maxVmTimeoutSeconds', setting: 'BALER_MAX_VM_TIMEOUT_S', unit: 's' },
] as const;

/** One error per field of `spec` over its cap (the defaults count: they are what the step gets). */
export function vmCapViolations(spec: BuildSpec, caps: VmCaps): FieldError[] {
  const errors: FieldError[] = [];
  for (const { field, cap, setting, unit } of CAPPED) {
    const value = spec[field] ?? VM_DEFAULTS[field];
    const max = caps[cap];
    if (value > max) errors.push({ pointer: `/${field}`, message: `${value} ${unit} is over this service's cap of ${max} ${unit} (${setting})` });
  }
  return errors;
}
