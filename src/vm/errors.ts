/**
 * Errors of the VM adapter that are not a step's outcome: the step could not be run at all.
 * A script that fails or hits a limit is NOT an error: run() resolves with `outcome.ok === false`
 * and a reason. Cancellation rejects with VmCancelledError (vm-runner.ts).
 */
export class VmError extends Error {
  /** The tail of the guest's console (kernel + init messages), when there is one. */
  readonly console: string | undefined;

  constructor(message: string, options: { cause?: unknown; console?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'VmError';
    this.console = options.console;
  }
}

/** The job's inputs could not be turned into disks (unreadable stream, a tar mksquashfs rejects, bad limits). */
export class VmInputError extends VmError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'VmInputError';
  }
}

/** QEMU could not be started or failed on its own (not the guest): missing binary, bad assets, no KVM. */
export class VmStartError extends VmError {
  constructor(message: string, options: { cause?: unknown; console?: string } = {}) {
    super(message, options);
    this.name = 'VmStartError';
  }
}

/**
 * The host cannot take the step now (its VM temp dir lacks room for the step's disks beside
 * the running steps' and the reserve): nothing was started. Not a failure: run it later.
 */
export class VmHostBusyError extends VmError {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'VmHostBusyError';
  }
}
