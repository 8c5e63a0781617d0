import { LayerInputError } from './layer-entry.ts';
import { printable } from './printable.ts';
import type { EntryType } from './tar-entry.ts';

/** The operator's setting that lets device nodes outside /dev/ into layers (src/config.ts). */
export const ALLOW_DEVICES_SETTING = 'BALER_ALLOW_DEVICES';

/** Where device nodes are dropped: a container runtime mounts its own /dev over this directory. */
const DEV_DIR = 'dev/';

function isDevice(type: EntryType): boolean {
  return type === 'character-device' || type === 'block-device';
}

/**
 * The one rule for device nodes, the same for every source of a layer's entries: uploaded
 * contents, base image layers and what a VM step's scripts left (src/image/sources/
 * spec-contents.ts, base-devices.ts, overlay-form.ts use it; overlayfs' 0/0 whiteouts in a VM
 * step's output are deletions, turned into `.wh.` files before this rule sees anything).
 *
 * - A character or block device under `/dev/` is dropped: every runtime mounts its own `/dev`
 *   there, so the node could never be used, and roots made by debootstrap, mmdebstrap or
 *   `docker export` all carry `/dev/null`, `/dev/console`, …. The `/dev` directory itself and
 *   everything else under it (directories such as `/dev/pts`, symlinks such as `/dev/fd`,
 *   files) are kept: harmless, hidden by the same mount, and what the input said.
 * - A device node anywhere else fails the build (LayerInputError: 422), naming its path and
 *   the setting, unless the operator sets BALER_ALLOW_DEVICES=1; then it is kept.
 * - A hard link to a dropped node is dropped with it when it is under `/dev/` too, and fails
 *   the build otherwise (whatever the setting: it would point at nothing).
 *
 * One instance per source (`contents[2]`, `base layer 1 of 3 (…)`, `the VM step output`): it
 * counts what it dropped, for the build log's line. Paths are layer paths: relative to the
 * image's root, no leading `/`.
 */
export class DevicePolicy {
  private readonly droppedPaths = new Set<string>();

  constructor(
    /** The source, as errors and the log line name it. */
    readonly source: string,
    readonly allowDevices: boolean,
  ) {}

  /** How many entries were dropped. */
  get dropped(): number {
    return this.droppedPaths.size;
  }

  /**
   * Whether the entry at `path` goes into the layer; throws for a device node outside /dev/
   * that the operator did not allow. `linkTarget`: a hard link's target, as a layer path.
   */
  admit(path: string, type: EntryType, linkTarget?: string): boolean {
    if (type === 'link' && linkTarget !== undefined && this.droppedPaths.has(linkTarget)) {
      if (path.startsWith(DEV_DIR)) {
        this.droppedPaths.add(path);
        return false;
      }
      throw new LayerInputError(
        `${this.source}: '${printable(path)}' is a hard link to the device node '${printable(linkTarget)}', which is dropped (device nodes under /dev/ are); a link to it may only be under /dev/ too`,
      );
    }
    if (!isDevice(type)) return true;
    if (path.startsWith(DEV_DIR)) {
      this.droppedPaths.add(path);
      return false;
    }
    if (this.allowDevices) return true;
    throw new LayerInputError(
      `${this.source}: '${printable(path)}' is a device node outside /dev/; device nodes are dropped under /dev/ and refused elsewhere unless the operator sets ${ALLOW_DEVICES_SETTING}=1`,
    );
  }

  /** The build log's line about what this source dropped; undefined when it dropped nothing. */
  logLine(): string | undefined {
    const n = this.dropped;
    if (n === 0) return undefined;
    return `baler: ${this.source}: dropped ${n} device node${n === 1 ? '' : 's'} under /dev/ (a container runtime mounts its own /dev)\n`;
  }
}
