/**
 * Disk admission of VM steps on a worker's VM temp dir. A step's disk files start sparse, but
 * its guest can fill them, so each step holds what its files may come to (the `reserved` file
 * in its dir) and is admitted only when the filesystem's free space covers what every live
 * step may still write (its hold less what its files already take) plus the operator's
 * reserve. The hold is written before the check (announce, then check): steps of several
 * workers sharing the temp dir never both take the same room; at worst both wait.
 */
import { lstat, readdir, readFile, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FILES, MiB, stepDirOwnerAlive, TEMP_PREFIX } from './step-files.ts';

export type Admission = { ok: true } | { ok: false; reason: string /** Not even on an empty temp dir. */; never: boolean };

interface Room {
  free: number;
  total: number;
  /** What live steps may still write: their holds less what their files take already. */
  held: number;
}

const mib = (bytes: number): number => Math.ceil(bytes / MiB);

export class DiskAdmission {
  /** One admission at a time in this process: two steps of one worker never refuse each other. */
  #turn: Promise<unknown> = Promise.resolve();

  constructor(
    readonly tmpDir: string,
    readonly reserveBytes: number,
  ) {}

  /** Whether `bytes` more would be admitted now; holds nothing (a hint before taking a warm VM). */
  async hasRoom(bytes: number): Promise<boolean> {
    const room = await this.#room();
    return room.free - room.held - bytes >= this.reserveBytes;
  }

  /**
   * Holds `bytes` for the step in `dir` when the temp dir can take them now; otherwise holds
   * nothing and says why. `what` says what the bytes are, for that reason.
   */
  admit(dir: string, bytes: number, what: string): Promise<Admission> {
    const turn = this.#turn.then(async (): Promise<Admission> => {
      await this.hold(dir, bytes);
      const room = await this.#room();
      if (room.free - room.held >= this.reserveBytes) return { ok: true };
      await this.hold(dir, 0);
      const need = `this VM step may take up to ${mib(bytes)} MiB of the worker's disk (${what})`;
      const reserve = `${mib(this.reserveBytes)} MiB are kept free (BALER_VM_DISK_RESERVE_MIB)`;
      if (bytes + this.reserveBytes > room.total) {
        return { ok: false, never: true, reason: `${need}: more than its VM temp dir can ever hold (${mib(room.total)} MiB, of which ${reserve})` };
      }
      const others = room.held - Math.max(0, bytes - (await allocatedBytes(dir)));
      return {
        ok: false,
        never: false,
        reason: `${need}; its VM temp dir has ${mib(room.free)} MiB free, running VM steps may still write ${mib(others)} MiB of it and ${reserve}: waiting for room`,
      };
    });
    this.#turn = turn.catch(() => {});
    return turn;
  }

  /** Sets the step's hold to `bytes` (0: none), without a check: a correction once its inputs are written. */
  async hold(dir: string, bytes: number): Promise<void> {
    await writeFile(join(dir, FILES.reserved), `${bytes}\n`);
  }

  async #room(): Promise<Room> {
    const fs = await statfs(this.tmpDir);
    let held = 0;
    for (const name of await readdir(this.tmpDir).catch(() => [] as string[])) {
      if (!name.startsWith(TEMP_PREFIX)) continue;
      const dir = join(this.tmpDir, name);
      const hold = Number((await readFile(join(dir, FILES.reserved), 'utf8').catch(() => '')).trim());
      // No hold (a warm VM waiting for a job), or a dead worker's step (its files take what they take).
      if (!(hold > 0) || !(await stepDirOwnerAlive(dir))) continue;
      held += Math.max(0, hold - (await allocatedBytes(dir)));
    }
    return { free: fs.bavail * fs.bsize, total: fs.blocks * fs.bsize, held };
  }
}

/** The bytes the files in `dir` take on disk (sparse holes do not count). */
async function allocatedBytes(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const st = await lstat(join(dir, name)).catch(() => undefined);
    if (st?.isFile()) bytes += st.blocks * 512;
  }
  return bytes;
}
