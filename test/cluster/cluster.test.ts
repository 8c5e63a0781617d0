/**
 * Many hosts (`npm run test:cluster`): Redis and the S3 store (Ceph RGW) in one network
 * namespace, two API replicas and three workers each in their own, on a private subnet
 * (test/support/netns-lab.ts); the hosts share no filesystem, only the network.
 * 30 builds go in through both APIs, alternating; mid-build one worker host is cut off the
 * network (its link down: the process lives on, unreachable) and another worker is SIGKILLed.
 * Every build must end `succeeded`, each image with the archive digest of an undisturbed
 * single-host build of the same spec (the ordinary `npm start` service, built first).
 *
 * Nothing is timed: the test waits on states (a build's log shows its VM step running, another
 * worker's log shows it started the cut-off build again, every build finished). The numbers
 * (builds, cuts, kills, total time, time to recover) are printed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetnsLab, type LabHost, type LabProcess } from '../support/netns-lab.ts';
import { startService } from '../support/service.ts';
import { until } from '../support/wait.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = join(REPO, 'src/main.ts');
const WORKER = join(REPO, 'workers/build-worker.ts');
const RUN_RGW = join(REPO, 'scripts/rgw/run-rgw.sh');
const REDIS_PORT = 6379;
const RGW_PORT = 7480;
// Not 6789: ceph takes that for its v1 protocol, and the runner's monmap says v2.
const RGW_MON_PORT = 6799;
const API_PORT = 8080;
const BUILDS = 30;
// Short, so a cut-off worker's build is taken up again soon (not so short that a worker busy on
// two loaded cores misses a renewal).
const LOCK_MS = 5000;
const STALLED_CHECK_MS = 2000;

interface BuildView {
  id: string;
  status: string;
  error?: unknown;
  result?: { archive: { digest: string } };
}

/** A deterministic 2 MiB blob (a sha256 chain): uploaded through one API, used through both. */
function blobBytes(): Buffer {
  const parts: Buffer[] = [];
  let h = Buffer.from('baler cluster');
  for (let i = 0; i < (2 * 1024 * 1024) / 32; i++) parts.push((h = createHash('sha256').update(h).digest()));
  return Buffer.concat(parts);
}

/** 8 pure-contents specs and 2 with a VM step long enough to be cut in the middle of. */
function specs(blob: string): Record<string, object> {
  const all: Record<string, object> = {};
  for (let i = 0; i < 8; i++) {
    all[`p${i}`] = {
      name: 'cluster/pure',
      tag: `p${i}`,
      contents: [{ file: blob, to: '/data/blob.bin' }, { text: `pure ${i}\n`, to: '/etc/motd' }, { dir: '/var/empty' }, ...Array.from({ length: i }, (_, j) => ({ text: `${j}\n`, to: `/n/${j}` }))],
      config: { Cmd: ['/bin/sh'] },
    };
  }
  for (let i = 0; i < 2; i++) {
    all[`v${i}`] = {
      name: 'cluster/vm',
      tag: `v${i}`,
      contents: [{ text: `vm ${i}\n`, to: '/etc/motd' }],
      runAsRoot: `echo vm-step-running; sleep 4; echo ${i} > /done`,
    };
  }
  return all;
}

/** Which spec each of the 30 builds is: the 6 VM builds first (the workers are mid-VM-step when cut), then the pure ones. */
const PLAN: string[] = [...Array.from({ length: 6 }, (_, i) => `v${i % 2}`), ...Array.from({ length: 24 }, (_, i) => `p${i % 8}`)];

async function api(url: string, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`${url}${path}`, init);
}

async function submit(url: string, spec: object): Promise<string> {
  const res = await api(url, '/v1/builds?noCache=true', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  if (res.status !== 202) throw new Error(`submit: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

async function upload(url: string, bytes: Buffer): Promise<string> {
  const res = await api(url, '/v1/blobs', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(bytes) });
  if (res.status !== 201 && res.status !== 200) throw new Error(`upload: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { digest: string }).digest;
}

async function build(url: string, id: string): Promise<BuildView> {
  return (await (await api(url, `/v1/builds/${id}`)).json()) as BuildView;
}

const FINAL = ['succeeded', 'failed', 'cancelled'];

/** Build ids a worker has started (its log's "build started" lines), in order. */
function startedBy(worker: LabProcess): string[] {
  return [...worker.output().matchAll(/"buildId":"([a-z0-9]+)"[^\n]*"msg":"build started"/g)].map((m) => m[1] as string);
}

describe('many hosts', () => {
  let lab: NetnsLab | undefined;
  let dataDir: string;
  const reference = new Map<string, string>();
  const blob = blobBytes();

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'baler-cluster-'));
    // The reference: each spec built once by the ordinary single-host service.
    // (Started again if it is slow to come up: on a loaded machine its 30 s start limit can pass.)
    const single = await startService({ BALER_VM_POOL: '0' }).catch(() => startService({ BALER_VM_POOL: '0' }));
    try {
      const digest = await upload(single.url, blob);
      for (const [key, spec] of Object.entries(specs(digest))) {
        const id = await submit(single.url, spec);
        await until(async () => FINAL.includes((await build(single.url, id)).status), 300_000);
        const done = await build(single.url, id);
        expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
        reference.set(key, done.result?.archive.digest as string);
      }
    } finally {
      await single.stop();
    }
  }, 900_000);

  afterAll(async () => {
    try {
      if (process.env.CLUSTER_LOG) await writeFile(process.env.CLUSTER_LOG, lab?.outputs() ?? '');
      await lab?.destroy();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 120_000);

  it('30 builds through two APIs on three workers, one cut off and one killed mid-build: all succeed with single-host bytes', async () => {
    const t0 = Date.now();
    lab = await NetnsLab.create();
    const storeHost = await lab.addHost('store', 2);
    const apiHosts = [await lab.addHost('api1', 11), await lab.addHost('api2', 12)];
    const workerHosts: LabHost[] = [];
    for (let i = 1; i <= 3; i++) workerHosts.push(await lab.addHost(`w${i}`, 20 + i));
    await lab.reachFromRoot(apiHosts);

    const redisUrl = `redis://${storeHost.address}:${REDIS_PORT}`;
    const redis = lab.spawn(storeHost, 'redis-server', ['--bind', storeHost.address, '--port', String(REDIS_PORT), '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], process.env);
    await until(() => redis.output().includes('Ready to accept connections'), 30_000);

    // The store: an S3 bucket on Ceph RGW (scripts/rgw/run-rgw.sh) in the same namespace.
    const s3 = { accessKey: `AK${randomBytes(8).toString('hex').toUpperCase()}`, secretKey: randomBytes(20).toString('hex') };
    // Ceph is slow to come up on a loaded machine (its admin commands have time limits): once more on a failure.
    const startRgw = async (attempt: number): Promise<void> => {
      const rgw = lab!.spawn(storeHost, RUN_RGW, [], {
        ...process.env,
        RGW_DIR: join(dataDir, `rgw${attempt}`),
        RGW_ADDR: storeHost.address,
        RGW_PORT: String(RGW_PORT),
        RGW_MON_PORT: String(RGW_MON_PORT),
        RGW_ACCESS_KEY: s3.accessKey,
        RGW_SECRET_KEY: s3.secretKey,
      });
      const deadline = Date.now() + 300_000;
      while (!rgw.output().includes('rgw ready\n')) {
        if (rgw.child.exitCode !== null || Date.now() > deadline) {
          // SIGTERM: the runner stops its daemons (and frees their ports) before it exits.
          await lab!.kill(rgw, 'SIGTERM');
          if (attempt < 2) return startRgw(attempt + 1);
          throw new Error(`RGW did not start: ${rgw.output().slice(-4000)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await startRgw(1);

    // Hosts share nothing but the network: each its own DATA_DIR; blobs only in the bucket.
    const common = {
      ...process.env,
      REDIS_URL: redisUrl,
      LOG_LEVEL: 'info',
      BALER_STORE: 's3',
      BALER_S3_ENDPOINT: `http://${storeHost.address}:${RGW_PORT}`,
      BALER_S3_BUCKET: 'baler-cluster',
      BALER_S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3.accessKey,
      AWS_SECRET_ACCESS_KEY: s3.secretKey,
    };
    const own = async (host: LabHost) => {
      const dir = join(dataDir, host.name);
      await mkdir(join(dir, 'vm-tmp'), { recursive: true });
      return { DATA_DIR: dir, BALER_VM_TMPDIR: join(dir, 'vm-tmp') };
    };
    const apiUrls = apiHosts.map((h) => `http://${h.address}:${API_PORT}`);
    for (const host of apiHosts) {
      lab.spawn(host, process.execPath, ['--import', 'tsx', MAIN], { ...common, ...(await own(host)), HOST: host.address, PORT: String(API_PORT), BALER_LOCAL_WORKERS: '0', BALER_AUTH: 'none' }, REPO);
    }
    const workers: LabProcess[] = [];
    for (const host of workerHosts) {
      const env = { ...common, ...(await own(host)), BALER_JOB_LOCK_MS: String(LOCK_MS), BALER_STALLED_CHECK_MS: String(STALLED_CHECK_MS), BALER_VM_POOL: '0', BALER_GC_INTERVAL_S: '0' };
      workers.push(lab.spawn(host, process.execPath, ['--import', 'tsx', WORKER], env, REPO));
    }
    for (const url of apiUrls) await until(async () => (await api(url, '/readyz')).ok, 120_000);
    await until(async () => ((await (await api(apiUrls[0] as string, '/v1/workers')).json()) as { workers: unknown[] }).workers.length === 3, 120_000);
    const upAt = Date.now();

    // The blob goes in through one API; builds through both, alternating.
    const digest = await upload(apiUrls[0] as string, blob);
    const all = specs(digest);
    const ids: string[] = [];
    for (let i = 0; i < BUILDS; i++) ids.push(await submit(apiUrls[i % 2] as string, all[PLAN[i] as string] as object));
    const specOf = new Map(ids.map((id, i) => [id, PLAN[i] as string]));
    const urlOf = (i: number) => apiUrls[i % 2] as string;

    // Two workers in the middle of a VM step: one is cut off, the other killed.
    const vmIds = new Set(ids.filter((id) => specOf.get(id)?.startsWith('v')));
    const midVmStep = async (worker: LabProcess): Promise<string | null> => {
      const current = startedBy(worker).at(-1);
      if (!current || !vmIds.has(current)) return null;
      const b = await build(apiUrls[0] as string, current);
      if (b.status !== 'running') return null;
      const log = await (await api(apiUrls[1] as string, `/v1/builds/${current}/logs`)).text();
      return log.includes('vm-step-running') ? current : null;
    };
    let victims: { worker: LabProcess; buildId: string }[] = [];
    await until(async () => {
      const busy = [];
      for (const worker of workers) {
        const id = await midVmStep(worker);
        if (id) busy.push({ worker, buildId: id });
      }
      victims = busy.slice(0, 2);
      return victims.length === 2;
    }, 300_000);
    const [cut, killed] = victims as [{ worker: LabProcess; buildId: string }, { worker: LabProcess; buildId: string }];
    const disturbedAt = Date.now();
    await lab.cut(cut.worker.host);
    await lab.kill(killed.worker);
    const survivor = workers.find((w) => w !== cut.worker && w !== killed.worker) as LabProcess;

    // Both interrupted builds are started again by the surviving worker once their locks lapse.
    await until(() => startedBy(survivor).includes(cut.buildId) && startedBy(survivor).includes(killed.buildId), 600_000);
    const recoveredAt = Date.now();
    // The cut-off and the killed worker drop out of the registry when their heartbeats lapse.
    const liveIds = async () => ((await (await api(apiUrls[1] as string, '/v1/workers')).json()) as { workers: { id: string }[] }).workers.map((w) => w.id);
    await until(async () => (await liveIds()).length === 1, 120_000);
    expect((await liveIds())[0]).toContain(`:${survivor.pid}:`);

    // Every build ends, read through both APIs.
    const finished: BuildView[] = [];
    for (const [i, id] of ids.entries()) {
      await until(async () => FINAL.includes((await build(urlOf(i + 1), id)).status), 900_000);
      finished.push(await build(urlOf(i), id));
    }
    const doneAt = Date.now();

    for (const [i, b] of finished.entries()) {
      expect(b.status, `${b.id} (${PLAN[i]}): ${JSON.stringify(b.error)}`).toBe('succeeded');
      expect(b.result?.archive.digest, `${b.id} (${PLAN[i]})`).toBe(reference.get(PLAN[i] as string));
    }
    // The cut-off worker never finished its build: the survivor did (the record says succeeded).
    expect(startedBy(survivor)).toContain(cut.buildId);
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      [
        `cluster: ${BUILDS} builds (${vmIds.size} with a VM step) through 2 APIs on 3 workers: ${finished.length} succeeded, each with the single-host archive digest`,
        `cluster: cuts 1 (worker ${cut.worker.host.name}, link down mid-VM-step), kills 1 (worker ${killed.worker.host.name}, SIGKILL mid-VM-step)`,
        `cluster: lab up in ${s(upAt - t0)}; submit to disturbance ${s(disturbedAt - upAt)}; recovery (both interrupted builds started again on ${survivor.host.name}) ${s(recoveredAt - disturbedAt)} (lock ${LOCK_MS} ms, stalled check ${STALLED_CHECK_MS} ms); all finished ${s(doneAt - upAt)} after the first submission; total ${s(doneAt - t0)}`,
        `cluster: builds started per worker: ${workers.map((w) => `${w.host.name}=${startedBy(w).length}`).join(', ')}`,
      ].join('\n'),
    );
  }, 1_800_000);
});
