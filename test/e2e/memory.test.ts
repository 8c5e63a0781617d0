/**
 * Memory must not grow with image size: a 1 MiB blob and then a 1 GiB blob are uploaded
 * through the API and built into images by the worker while both processes' resident memory
 * is sampled. The 1 GiB build may cost little more than the 1 MiB one.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';

const GIB = 1024 ** 3;
const CHUNK = 1024 ** 2;
/**
 * Far below the 1 GiB that holding the blob would take; what the processes need to run. A
 * worker running a build holds three V8 heaps: its own, the build's sandbox thread and the
 * spare thread started for the next build (build-sandbox.ts).
 */
const RSS_LIMIT_MB = { api: 256, worker: 384 };
/** What streaming 1 GiB may cost beyond streaming 1 MiB: a small fraction of 1 GiB. */
const GROWTH_LIMIT_MB = 64;

let service: Service;

beforeAll(async () => {
  service = await startService();
}, 60_000);

afterAll(async () => service?.stop(), 60_000);

async function memoryKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
}

/** Uploads `bytes` of distinct chunks, builds them into an image, and returns both processes' peak RSS meanwhile. */
async function buildPeak(bytes: number): Promise<{ api: number; worker: number }> {
  const apiPid = service.apiPid;
  const workerPid = await service.workerPid();
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
        if (sent >= bytes) return controller.close();
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
    expect(size).toBe(bytes);

    const id = await submitBuild(service, { name: 'big', compression: 'none', contents: [{ file: digest, to: '/big.bin' }] });
    const build = await waitForBuild(service, id, 300_000);
    expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
    expect(build.result?.archive.size).toBeGreaterThan(bytes);
  } finally {
    clearInterval(sampler);
  }
  return peak;
}

it('API and worker stay flat while a 1 GiB blob is uploaded and built', async () => {
  const mb = (kb: number) => Math.round(kb / 1024);
  const small = await buildPeak(CHUNK);
  const big = await buildPeak(GIB);
  const hwm = { api: await memoryKb(service.apiPid, 'VmHWM'), worker: await memoryKb(await service.workerPid(), 'VmHWM') };
  console.log(
    `memory for a 1 GiB blob: API peak RSS ${mb(big.api)} MB (${mb(small.api)} MB for 1 MiB), ` +
      `worker peak RSS ${mb(big.worker)} MB (${mb(small.worker)} MB for 1 MiB); high-water marks ${mb(hwm.api)} / ${mb(hwm.worker)} MB`,
  );
  expect(mb(hwm.api)).toBeLessThan(RSS_LIMIT_MB.api);
  expect(mb(hwm.worker)).toBeLessThan(RSS_LIMIT_MB.worker);
  // Flat: what it took to stream 1 GiB is a small fraction of 1 GiB.
  expect(mb(big.api - small.api)).toBeLessThan(GROWTH_LIMIT_MB);
  expect(mb(big.worker - small.worker)).toBeLessThan(GROWTH_LIMIT_MB);
}, 600_000);
