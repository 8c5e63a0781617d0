import type { Readable } from 'node:stream';
import type { Logger } from '../log.ts';

/** Resource limits of one VM step. Over any of them the step fails with a reason naming it. */
interface VmLimits {
  /** Size of the scratch disk that holds the upper dir: caps what the step may write. */
  diskMiB: number;
  memoryMiB: number;
  timeoutSeconds: number;
}

/**
 * One VM step: run `runAsRoot` chrooted in the image (lower layers + this build's contents in
 * the upper dir, overlay-mounted), then `extraCommands` in the upper dir, and hand back the
 * upper dir. Every user-supplied script runs inside the VM, never on the host.
 */
export interface VmJob {
  /**
   * The platform the step's VM runs (a VmPlatform's name, `linux/arm64`): a build's scripts
   * run on its architecture. Absent: the runner's own (QemuVmRunner runs one platform).
   */
  platform?: string;
  /**
   * The base image's layers as ONE uncompressed tar stream in overlay form: layer i (0 =
   * bottom) under the directory `i/` (so `0/etc/passwd`, `1/usr/bin/x`, ...), whiteouts as
   * character devices 0/0, opaque directories carrying the xattr `trusted.overlay.opaque=y`
   * (PAX `SCHILY.xattr.trusted.overlay.opaque`). Absent when there is no base image.
   */
  lowerTar?: () => Promise<Readable>;
  /** How many layer directories `lowerTar` holds (0 when there is no base image). */
  lowerCount: number;
  /**
   * About how many bytes `lowerTar` and `upperTar` hold together (a squashfs of the lower tar
   * takes no more than the tar): held on the worker's disk for the step before it is written.
   * Absent: only the disks are held until the inputs are written.
   */
  inputBytes?: number;
  /** This build's contents, a plain uncompressed tar unpacked into the upper dir before the scripts run. */
  upperTar?: () => Promise<Readable>;
  /** Shell script run as root, chrooted in the overlay, inside `unshare -imnpuf`. */
  runAsRoot?: string;
  /** Shell script run in the upper dir, not chrooted (dockerTools' extraCommands). */
  extraCommands?: string;
  /** Create /etc/passwd, shadow, group, gshadow, pam.d/other, login.defs when missing, before runAsRoot. */
  shadowSetup: boolean;
  /** The guest's clock at start (epoch seconds), so nothing of the host's time leaks in. */
  clock: number;
  limits: VmLimits;
  /** Script output (stdout and stderr) as it arrives. */
  onLog?: (text: string) => void;
  /** Aborting kills the VM; run() then rejects with VmCancelledError. */
  signal?: AbortSignal;
  /** Where the runner's lines about this step go (with the build's ids); default: the runner's logger. */
  logger?: Logger;
}

export type VmOutcome =
  | { ok: true }
  | {
      ok: false;
      /** Which limit or failure: the message names it, e.g. `disk full`, `out of memory`, `timed out after 600 s`, `runAsRoot exited with code 3`. */
      reason: string;
    };

export interface VmResult {
  outcome: VmOutcome;
  /**
   * The upper dir as a tar (GNU tar with xattrs, numeric owners) in overlay form: deletions
   * as character devices 0/0 (possibly hard links to one another), opaque directories with
   * `trusted.overlay.opaque=y`. Only meaningful when outcome.ok.
   */
  openUpperTar(): Promise<Readable>;
  /** Removes every temporary file of the step. Always call it. */
  dispose(): Promise<void>;
}

export class VmCancelledError extends Error {
  constructor() {
    super('VM step cancelled');
    this.name = 'VmCancelledError';
  }
}

/** Runs VM steps. QemuVmRunner is the implementation; KVM when usable, else TCG. */
export interface VmRunner {
  run(job: VmJob): Promise<VmResult>;
}
