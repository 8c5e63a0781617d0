/**
 * The blob stores side by side: a 200 MB blob put and read back through the filesystem store
 * and through the S3 store on a single-node Ceph RGW (loopback, memstore OSD), with this
 * process's peak RSS during each put, and RGW's start time and RSS. Not part of `npm test`:
 *   node --import tsx bench/store.ts [MiB]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { BlobStore } from '../src/store/blob-store.ts';
import { FsBlobStore } from '../src/store/fs-blob-store.ts';
import { S3BlobStore } from '../src/store/s3-blob-store.ts';
import { startRgw } from '../test/support/rgw.ts';
import { run } from '../test/support/run.ts';

const MiB = 1024 * 1024;
const size = Number(process.argv[2] ?? 200) * MiB;

function rssMiB(field: 'VmRSS' | 'VmHWM', pid: number | 'self' = 'self'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** `size` bytes in 1 MiB chunks, no two alike, made as they are read (never all in memory). */
function source(): Readable {
  const seed = randomBytes(MiB);
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= size) return void this.push(null);
      const chunk = Buffer.from(seed);
      chunk.writeDoubleLE(sent, 0);
      sent += chunk.length;
      this.push(chunk);
    },
  });
}

async function measure(name: string, store: BlobStore) {
  global.gc?.();
  const before = rssMiB('VmRSS');
  writeFileSync('/proc/self/clear_refs', '5'); // reset VmHWM: this put's peak is its own
  let sampled = before;
  const sampler = setInterval(() => (sampled = Math.max(sampled, rssMiB('VmRSS'))), 20);
  let t = performance.now();
  const put = await store.put(source());
  const putS = (performance.now() - t) / 1000;
  clearInterval(sampler);
  const peak = Math.max(sampled, rssMiB('VmHWM'));
  t = performance.now();
  let read = 0;
  for await (const chunk of await store.open(put.digest)) read += (chunk as Buffer).length;
  const getS = (performance.now() - t) / 1000;
  if (read !== size) throw new Error(`read ${read} of ${size} bytes`);
  const mbps = (s: number) => (size / MiB / s).toFixed(0);
  console.log(
    `${name.padEnd(4)} put ${mbps(putS).padStart(4)} MiB/s (${putS.toFixed(2)} s)  get ${mbps(getS).padStart(4)} MiB/s (${getS.toFixed(2)} s)  RSS before ${before.toFixed(0)} MiB, peak during put ${peak.toFixed(0)} MiB (+${(peak - before).toFixed(0)})`,
  );
}

const dir = await mkdtemp(join(tmpdir(), 'baler-bench-store-'));
try {
  await measure('fs', await FsBlobStore.create(dir));

  let t = performance.now();
  const rgw = await startRgw();
  console.log(`RGW started in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  try {
    const pids = (await run('pgrep', ['-f', rgw.dir])).stdout.split('\n').filter(Boolean).map(Number);
    const s3 = await S3BlobStore.create({ bucket: 'bench', region: rgw.region, endpoint: rgw.endpoint, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
    const rgwRss = () => pids.reduce((sum, pid) => sum + rssMiB('VmRSS', pid), 0).toFixed(0);
    console.log(`RGW daemons' RSS at start: ${rgwRss()} MiB`);
    await measure('s3', s3);
    console.log(`RGW daemons' RSS after (memstore holds the blob): ${rgwRss()} MiB`);
    s3.close();
  } finally {
    t = performance.now();
    await rgw.stop();
    console.log(`RGW stopped in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
