/**
 * `npm run bench:sparse` (node --import tsx bench/sparse.ts [--size 10G] [--format gnu|posix] [--no-verify]):
 * issue 13's measure of a sparse file through the real service. A file of `--size` (10 GiB)
 * holding 64 KiB of data (16 writes of 4 KiB spread over it, one at its very end) is tarred by
 * GNU tar with `-S` (`--format=gnu`: typeflag S; `posix`: PAX 1.0), uploaded, built as contents
 * into a gzip docker-archive and downloaded. It reports the wall time of each phase and the
 * worker's peak RSS (VmHWM: the kernel's own high-water mark, nothing sampled), and with
 * verification on, that the file in the downloaded image has the original's size and sha256.
 *
 * Slow by nature (the layer holds the file as a regular file: 10 GiB hashed twice and
 * deflated once), so never part of `npm test`; it asserts nothing about time.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { harnessTmpBase, run } from '../test/support/run.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild } from '../test/support/service.ts';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '10G' },
    format: { type: 'string', default: 'gnu' },
    verify: { type: 'boolean', default: true },
    'no-verify': { type: 'boolean', default: false },
  },
});
const verify = args.verify && !args['no-verify'];

const WRITES = 16;
const WRITE_BYTES = 4096;

async function sh(script: string): Promise<string> {
  const result = await run('bash', ['-eco', 'pipefail', script]);
  if (result.code !== 0) throw new Error(`${script}\n${result.stderr}`);
  return result.stdout.trim();
}

async function peakRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const timed = async <T>(what: string, times: Record<string, number>, f: () => Promise<T>): Promise<T> => {
  const start = performance.now();
  try {
    return await f();
  } finally {
    times[what] = (performance.now() - start) / 1000;
  }
};

const work = await mkdtemp(join(harnessTmpBase(), 'baler-bench-sparse-'));
const service = await startService();
try {
  const times: Record<string, number> = {};
  const file = join(work, 'src', 'big');
  await sh(`mkdir -p ${work}/src && truncate -s ${args.size} ${file}`);
  const size = (await stat(file)).size;
  const writes = Array.from({ length: WRITES }, (_, i) => (i === WRITES - 1 ? size - WRITE_BYTES : Math.floor((size / WRITES) * i)));
  await sh(writes.map((at) => `head -c ${WRITE_BYTES} /dev/urandom | dd of=${file} bs=${WRITE_BYTES} oflag=seek_bytes seek=${at} conv=notrunc status=none`).join('\n'));
  const tar = join(work, 'sparse.tar');
  const tarArgs = args.format === 'posix' ? '--format=posix --sparse-version=1.0' : `--format=${args.format}`;
  await timed('tar -S', times, () => sh(`tar ${tarArgs} -S -C ${work}/src -cf ${tar} big`));
  const tarBytes = (await stat(tar)).size;

  const worker = await service.workerPid();
  const rssBefore = await peakRssMiB(worker);
  const blob = await timed('upload', times, () => uploadFile(service, tar));
  const build = await timed('build', times, async () => waitForBuild(service, await submitBuild(service, { name: 'bench/sparse', tag: '1', contents: [{ tar: blob }] }, { noCache: true }), 3_600_000));
  if (build.status !== 'succeeded') throw new Error(`build ${build.status}: ${JSON.stringify(build.error)}`);
  const rssPeak = await peakRssMiB(worker);
  const image = join(work, 'image.tar.gz');
  await timed('download', times, () => downloadImage(service, build.id, image));
  const imageBytes = (await stat(image)).size;

  let verified = 'skipped';
  if (verify) {
    const layer = (await sh(`tar -tzf ${image} | grep 'layer.tar$' | head -1`)).trim();
    const [want, got] = await Promise.all([sha256OfFile(file), sh(`tar -xzOf ${image} ${layer} | tar -xOf - big | tee >(wc -c >&2) | sha256sum | cut -d' ' -f1`)]);
    verified = want === got ? `same sha256 (${want.slice(0, 16)}…)` : `DIFFERENT: ${want} vs ${got}`;
    if (want !== got) process.exitCode = 1;
  }

  const lines = [
    `sparse file: ${size} bytes, ${WRITES * WRITE_BYTES} bytes of data; tar ${tarArgs} -S: ${tarBytes} bytes`,
    ...Object.entries(times).map(([what, s]) => `${what}: ${s.toFixed(1)} s`),
    `image (gzip docker-archive): ${imageBytes} bytes`,
    `worker peak RSS: ${rssPeak.toFixed(0)} MiB (${rssBefore.toFixed(0)} MiB before the upload)`,
    `file in the image: ${verified}`,
  ];
  console.log(lines.join('\n'));
} finally {
  await service.stop();
  await rm(work, { recursive: true, force: true });
}
