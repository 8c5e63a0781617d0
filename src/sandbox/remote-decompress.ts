/**
 * Decompressor processes across the sandbox boundary. A child process is reaped by the thread
 * that started it: one started by a build's sandbox thread, which a cancel or the build time
 * limit terminates at any moment, would be left a zombie (and, busy, run on until its pipes
 * broke). So the worker's main thread starts them (serveDecompressors) and the sandbox streams
 * the compressed bytes there and the decompressed bytes back (decompressInMainThread). When
 * the sandbox thread ends, its ends of both streams close, which kills the process (SIGKILL);
 * so does the end of the build, for any process still running then.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';
import { isProcessDecompression, runDecompressorProcess, type ProcessDecompression } from '../image/sources/archive/decompressor-process.ts';
import { Transfer, type RpcEndpoint } from './port-rpc.ts';
import { receiveStream, sendStream } from './port-stream.ts';
import { METHODS } from './sandbox-protocol.ts';

/** In the sandbox: `kind`'s decompressor over `source`, run by the main thread. */
export function decompressInMainThread(rpc: RpcEndpoint, kind: ProcessDecompression, source: Readable): Readable {
  const out = new PassThrough();
  const input = sendStream(source);
  rpc.call<MessagePort>(METHODS.decompress, [kind, input], [input]).then(
    (port) => {
      const decompressed = receiveStream(port);
      if (out.destroyed) {
        decompressed.destroy();
        return;
      }
      decompressed.on('error', (err) => out.destroy(err));
      out.on('close', () => decompressed.destroy());
      decompressed.pipe(out);
    },
    (err: unknown) => {
      source.destroy();
      out.destroy(err instanceof Error ? err : new Error(String(err)));
    },
  );
  return out;
}

/**
 * In the main thread: run the decompressors a build's sandbox asks for. It names a kind, never
 * a command. Returns `stopAll`, which kills those still running (the build's end).
 */
export function serveDecompressors(rpc: RpcEndpoint): { stopAll(): void } {
  const running = new Set<Readable>();
  rpc.handle(METHODS.decompress, (kind: unknown, inputPort: MessagePort) => {
    if (!isProcessDecompression(kind)) throw new Error(`no decompressor for '${String(kind)}'`);
    const out = runDecompressorProcess(kind, receiveStream(inputPort));
    running.add(out);
    out.once('close', () => running.delete(out));
    const port = sendStream(out);
    return new Transfer(port, [port]);
  });
  return {
    stopAll() {
      for (const out of running) out.destroy();
      running.clear();
    },
  };
}
