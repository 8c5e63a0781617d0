/**
 * Memory must not grow with image size: a 1 GiB blob is uploaded through the API and built
 * into an image by the worker while both processes' resident memory is sampled.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';

const GIB = 1024 ** 3;
const CHUNK = 1024 ** 2;
/** Far below the 1 GiB that holding the blob would take; what the processes need to run. */
const RSS_LIMIT_MB = 256;

let service: Service;

beforeAll(async () => {
  service = await startService();
}, 60_000);

afterAll(async () => service?.stop(), 60_000);

async function memoryKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
}

it('API and worker stay flat while a 1 GiB blob is uploaded and built', async () => {
  const apiPid = service.apiPid;
  const workerPid = await service.workerPid();
  const before = { api: await memoryKb(apiPid, 'VmRSS'), worker: await memoryKb(workerPid, 'VmRSS') };
  const peak = { api: 0, worker: 0 };
  const sampler = setInterval(() => {
    void memoryKb(apiPid, 'VmRSS').then((kb) => (peak.api = Math.max(peak.api, kb)));
    void memoryKb(workerPid, 'VmRSS').then((kb) => (peak.worker = Math.max(peak.worker, kb)));
  }, 50);

  try {
    const block = randomBytes(CHUNK);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= GIB) return controller.close();
        block.writeUInt32LE(sent / CHUNK, 0); // every chunk differs
        controller.enqueue(new Uint8Array(block));
        sent += CHUNK;
      },
    });
    const upload = await fetch(`${service.url}/v1/blobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(upload.status).toBe(201);
    const { digest, size } = (await upload.json()) as { digest: string; size: number };
    expect(size).toBe(GIB);

    const id = await submitBuild(service, { name: 'big', compression: 'none', contents: [{ file: digest, to: '/big.bin' }] });
    const build = await waitForBuild(service, id, 300_000);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.result?.archive.size).toBeGreaterThan(GIB);
  } finally {
    clearInterval(sampler);
  }
  const hwm = { api: await memoryKb(apiPid, 'VmHWM'), worker: await memoryKb(workerPid, 'VmHWM') };
  const mb = (kb: number) => Math.round(kb / 1024);
  console.log(
    `memory for a 1 GiB blob: API peak RSS ${mb(hwm.api)} MB (${mb(before.api)} MB before), ` +
      `worker peak RSS ${mb(hwm.worker)} MB (${mb(before.worker)} MB before); sampled peaks ${mb(peak.api)} / ${mb(peak.worker)} MB`,
  );
  expect(mb(hwm.api)).toBeLessThan(RSS_LIMIT_MB);
  expect(mb(hwm.worker)).toBeLessThan(RSS_LIMIT_MB);
  // Flat: what it took to stream 1 GiB is a small fraction of 1 GiB.
  expect(mb(peak.api - before.api)).toBeLessThan(100);
  expect(mb(peak.worker - before.worker)).toBeLessThan(100);
}, 600_000);
