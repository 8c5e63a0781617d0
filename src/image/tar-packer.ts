import { once } from 'node:events';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

export type TarHeaderInput = Partial<tar.Header> & { name: string };

const EMPTY = Buffer.alloc(0);

/**
 * tar-stream replaces a mode of 0 with its default (0644/0755) but writes only the 07777
 * bits; a file-type bit outside them keeps a real 0000 mode (as /etc/shadow has on some
 * distributions) from being "fixed".
 */
function fixMode(header: TarHeaderInput): tar.Header {
  return { ...header, mode: ((header.mode ?? 0) & 0o7777) | 0o100000 } as tar.Header;
}

/**
 * A promise-based face over tar-stream's pack: add entries one after the other (awaiting
 * each, which is where back-pressure comes from) and read the archive from `readable`.
 */
export class TarPacker {
  private readonly pack = tar.pack();
  /** The archive as a Node stream (tar-stream's own streams are streamx, not Node's). */
  readonly readable: Readable = Readable.from(this.pack);

  add(header: TarHeaderInput, data?: Buffer | string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      // A regular file always gets a body, even an empty one, or tar-stream waits for it.
      const body = data ?? ((header.type ?? 'file') === 'file' ? EMPTY : undefined);
      if (body === undefined) this.pack.entry(fixMode(header), done);
      else this.pack.entry(fixMode(header), body, done);
    });
  }

  /** Add an entry whose data (exactly `header.size` bytes) comes from a stream. */
  async addStream(header: TarHeaderInput, source: Readable, onChunk?: (chunk: Buffer) => void): Promise<void> {
    let entry!: ReturnType<typeof this.pack.entry>;
    const finished = new Promise<void>((resolve, reject) => {
      entry = this.pack.entry(fixMode(header), (err) => (err ? reject(err) : resolve()));
    });
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        onChunk?.(chunk);
        if (!entry.write(chunk)) await once(entry as unknown as NodeJS.EventEmitter, 'drain');
      }
      (entry as unknown as { end(): void }).end();
    } catch (err) {
      entry.destroy(err as Error);
      throw err;
    }
    await finished;
  }

  finalize(): void {
    this.pack.finalize();
  }

  destroy(err: unknown): void {
    this.pack.destroy(err instanceof Error ? err : new Error(String(err)));
  }
}
