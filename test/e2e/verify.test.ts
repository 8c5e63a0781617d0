/**
 * Rebuild to verify end to end (issue 16): the real API and worker, real QEMU (TCG here). A
 * build is rebuilt with no cache and compared: a runAsRoot that writes the same bytes is
 * reproducible, one that writes /dev/urandom bytes is not, and its layer and path are named.
 * The verification's statement is a DSSE envelope signed with the service's key.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseImageTar } from '../support/base-image.ts';
import { baler } from '../support/cli.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

interface Verification {
  buildId: string;
  reproducible?: boolean;
  layers: Array<{ index: number; diffId?: string; rebuiltDiffId?: string; match: boolean }>;
  config: { match: boolean };
  archive: { match: boolean };
  firstDifference?: { layer: number; path?: string; what: string };
  workers?: { original?: string; rebuilt?: string; different?: boolean };
  statement?: string;
  error?: string;
}
type VerifiedBuild = BuildView & { verifies?: string; reproducible?: boolean; verification?: Verification; verificationBuild?: string; worker?: string };

let service: Service;
let work: string;
let baseId: string;
let publicKey: string;

async function build(spec: unknown): Promise<BuildView> {
  const built = await waitForBuild(service, await submitBuild(service, spec), 300_000);
  expect(built.status, JSON.stringify(built.error)).toBe('succeeded');
  return built;
}

async function getBuild(id: string): Promise<VerifiedBuild> {
  return (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as VerifiedBuild;
}

const postVerify = (id: string) => fetch(`${service.url}/v1/builds/${id}/verify`, { method: 'POST' });

/** Verify `id`: the verification build's id, once the original records its outcome. */
async function verified(id: string): Promise<{ record: VerifiedBuild; verificationId: string }> {
  const res = await postVerify(id);
  expect(res.status).toBe(202);
  const accepted = (await res.json()) as { id: string; verifies: string };
  expect(accepted.verifies).toBe(id);
  expect(res.headers.get('location')).toBe(`/v1/builds/${accepted.id}`);
  await until(async () => (await getBuild(id)).verification?.buildId === accepted.id, 300_000);
  return { record: await getBuild(id), verificationId: accepted.id };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-verify-e2e-'));
  const keys = generateKeyPairSync('ed25519');
  const keyFile = join(work, 'signing.pem');
  await writeFile(keyFile, keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  publicKey = keys.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  service = await startService({ BALER_SIGNING_KEY_FILE: keyFile });
  const base = await uploadFile(service, await baseImageTar());
  baseId = (await build({ name: 'baler-e2e/verify-base', contents: [{ tar: base }], config: { Env: ['PATH=/bin'] } })).id;
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

describe('POST /v1/builds/{id}/verify', () => {
  it('a build of contents only: reproducible, every layer matching; a signed statement', async () => {
    const { record, verificationId } = await verified(baseId);
    expect(record.reproducible).toBe(true);
    const v = record.verification as Verification;
    expect(v.reproducible).toBe(true);
    expect(v.layers.map((l) => l.match)).toEqual(record.result?.diffIds.map(() => true));
    expect(v.config.match && v.archive.match).toBe(true);
    expect(v.firstDifference).toBeUndefined();
    // Both built by the one worker there is, and said so.
    expect(v.workers?.different).toBe(false);
    const rebuild = await getBuild(verificationId);
    expect(rebuild.verifies).toBe(baseId);
    expect(rebuild.result?.archive.digest).toBe(record.result?.archive.digest);

    const res = await fetch(`${service.url}/v1/builds/${baseId}/verification`);
    expect(res.status).toBe(200);
    const envelope = (await res.json()) as { payloadType: string; payload: string; signatures: Array<{ sig: string }> };
    const payload = Buffer.from(envelope.payload, 'base64');
    // DSSE's PAE, written here from the spec rather than taken from the service.
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${envelope.payloadType.length} ${envelope.payloadType} ${payload.length} `), payload]);
    expect(envelope.signatures).toHaveLength(1);
    expect(verify(null, pae, publicKey, Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64'))).toBe(true);
    const flipped = Buffer.from(pae);
    flipped[flipped.length - 2] = (flipped[flipped.length - 2] ?? 0) ^ 1;
    expect(verify(null, flipped, publicKey, Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64'))).toBe(false);
    const statement = JSON.parse(payload.toString('utf8'));
    expect(statement).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      predicateType: 'https://baler.dev/verification/v1',
      subject: [{ name: 'baler-e2e/verify-base:latest', digest: { sha256: record.result?.imageId.slice('sha256:'.length) } }],
      predicate: { reproducible: true, rebuild: { buildId: verificationId } },
    });
  }, 120_000);

  it('a runAsRoot build that writes the same bytes is reproducible; one that writes /dev/urandom bytes is not, naming its layer and the path', async () => {
    const spec = (name: string, runAsRoot: string) => ({ name, fromImage: { build: baseId }, runAsRoot });
    // Both built, then both verified: the queue runs them one after another either way.
    const [same, random] = await Promise.all([
      build(spec('baler-e2e/verify-same', 'mkdir -p /out && echo same > /out/same')),
      build(spec('baler-e2e/verify-random', 'mkdir -p /out && echo same > /out/same && head -c 16 /dev/urandom > /out/random')),
    ]);
    const [sameVerified, randomVerified] = await Promise.all([verified(same.id), verified(random.id)]);

    expect(sameVerified.record.reproducible).toBe(true);
    expect(sameVerified.record.verification?.layers.every((l) => l.match)).toBe(true);

    const v = randomVerified.record.verification as Verification;
    expect(randomVerified.record.reproducible).toBe(false);
    expect(v.reproducible).toBe(false);
    const vmLayer = (random.result?.diffIds.length ?? 0) - 1;
    // The base's layer is the base's; the script's layer differs.
    expect(v.layers.map((l) => l.match)).toEqual([...Array(vmLayer).fill(true), false]);
    expect(v.firstDifference).toEqual({ layer: vmLayer, path: '/out/random', what: 'content' });
    expect(v.archive.match).toBe(false);
    expect(v.statement).toMatch(/^sha256:/);
  }, 600_000);

  it('asking again while a verification runs answers it; a build that did not succeed cannot be verified', async () => {
    const first = (await (await postVerify(baseId)).json()) as { id: string };
    const second = await postVerify(baseId);
    expect(second.status).toBe(202);
    expect(((await second.json()) as { id: string }).id).toBe(first.id);
    await until(async () => (await getBuild(baseId)).verification?.buildId === first.id, 120_000);

    const cancelled = await submitBuild(service, { name: 'baler-e2e/verify-cancelled', fromImage: { build: baseId }, runAsRoot: 'sleep 60' });
    expect((await fetch(`${service.url}/v1/builds/${cancelled}`, { method: 'DELETE' })).status).toBe(200);
    const refused = await postVerify(cancelled);
    expect(refused.status).toBe(409);
    expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fetch(`${service.url}/v1/builds/${cancelled}/verification`)).status).toBe(404);
  }, 150_000);

  it('baler verify ID --wait says so, exit code 0 when reproducible', async () => {
    const { code, stdout, stderr } = await baler(service.url, ['verify', baseId, '--wait']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(`build ${baseId}: reproducible (rebuilt on the same worker)\n`);
  }, 60_000);
});
