/**
 * A real S3 server for tests: a single-node Ceph RADOS Gateway (scripts/rgw/run-rgw.sh) on
 * loopback, in a temp dir, on free ports. Starts in a few seconds; stop() takes it all down.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from '../../src/redis-server.ts';
import { run, type RunResult } from './run.ts';

const RUN_RGW = fileURLToPath(new URL('../../scripts/rgw/run-rgw.sh', import.meta.url));

export interface Rgw {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Created when asked for in startRgw(). */
  bucket?: string;
  /** The state directory (ceph.conf, logs). */
  dir: string;
  /** `radosgw-admin …` against this cluster (quotas, bucket stats). */
  admin(args: string[]): Promise<RunResult>;
  /** An S3 client for this endpoint, set up as RGW 16.2 needs. */
  client(): S3Client;
  stop(): Promise<void>;
}

export async function startRgw(opts: { bucket?: string; timeoutMs?: number } = {}): Promise<Rgw> {
  const dir = await mkdtemp(join(tmpdir(), 'baler-rgw-'));
  const [port, monPort] = [await freePort(), await freePort()];
  const accessKeyId = `AK${randomBytes(8).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(20).toString('hex');
  const child = spawn(RUN_RGW, [], {
    env: {
      ...process.env,
      RGW_DIR: join(dir, 'state'),
      RGW_ADDR: '127.0.0.1',
      RGW_PORT: String(port),
      RGW_MON_PORT: String(monPort),
      RGW_ACCESS_KEY: accessKeyId,
      RGW_SECRET_KEY: secretAccessKey,
      // Our stdin pipe closes when this process dies, however: RGW stops then too.
      RGW_STOP_ON_EOF: '1',
    },
    // Its own process group: stop() reaches every daemon at once as a last resort.
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // The script stops its daemons in order; the group kill catches anything left.
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid), 30_000);
      await exited;
      clearTimeout(timer);
    }
    killGroup(child.pid);
    child.stdin.destroy();
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  while (!output.includes('rgw ready\n')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`RGW did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  const client = () =>
    new S3Client({
      endpoint,
      region,
      forcePathStyle: true,
      credentials: { accessKeyId, secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  if (opts.bucket) {
    const s3 = client();
    try {
      await s3.send(new CreateBucketCommand({ Bucket: opts.bucket }));
    } catch (err) {
      await stop();
      throw err;
    } finally {
      s3.destroy();
    }
  }
  return {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    bucket: opts.bucket,
    dir: join(dir, 'state'),
    admin: (args) => run('radosgw-admin', ['-c', join(dir, 'state', 'ceph.conf'), ...args], { timeoutMs: 60_000 }),
    client,
    stop,
  };
}

function killGroup(pid: number | undefined): void {
  if (!pid) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}
