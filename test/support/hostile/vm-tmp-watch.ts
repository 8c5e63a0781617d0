/**
 * Watches a worker's VM temp dir (BALER_VM_TMPDIR) while a step runs: the largest guest
 * console log seen on the host, and the most disk the step files took at once (allocated
 * blocks: sparse images count only what was written).
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface VmTmpPeak {
  consoleBytes: number;
  diskBytes: number;
}

export class VmTmpWatch {
  private readonly peak: VmTmpPeak = { consoleBytes: 0, diskBytes: 0 };
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(private readonly dir: string) {
    this.loop = this.watch();
  }

  private async watch(): Promise<void> {
    while (!this.stopped) {
      let disk = 0;
      const entries = await readdir(this.dir, { withFileTypes: true, recursive: true }).catch(() => []);
      for (const entry of entries) {
        if (!entry.isFile()) continue;
        const info = await stat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => undefined);
        if (!info) continue;
        disk += info.blocks * 512;
        if (entry.name === 'console.log') this.peak.consoleBytes = Math.max(this.peak.consoleBytes, info.size);
      }
      this.peak.diskBytes = Math.max(this.peak.diskBytes, disk);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async stop(): Promise<VmTmpPeak> {
    this.stopped = true;
    await this.loop;
    return { ...this.peak };
  }
}
