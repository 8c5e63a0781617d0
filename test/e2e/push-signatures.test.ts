/**
 * A push with a signing key carries cosign's signature and attestations (issue 16), checked with
 * tools we did not write: Debian's docker-registry (distribution 2.8, no referrers API), skopeo
 * to read the registry, openssl to verify. One service with a P-256 key; pure-layer builds (one
 * single-platform, one for linux/amd64 and linux/arm64: each platform manifest and the index signed).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let registry: TestRegistry;
let service: Service;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-push-sign-'));
  const keygen = await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(dir, 'key.pem')]);
  expect(keygen.code, keygen.stderr).toBe(0);
  expect((await run('openssl', ['pkey', '-in', join(dir, 'key.pem'), '-pubout', '-out', join(dir, 'pub.pem')])).code).toBe(0);
  registry = await startRegistry();
  await writeFile(join(dir, 'registries.json'), JSON.stringify({ [registry.host]: { insecure: true } }));
  service = await startService({ BALER_REGISTRIES_FILE: join(dir, 'registries.json'), BALER_SIGNING_KEY_FILE: join(dir, 'key.pem') });
}, 60_000);

afterAll(async () => {
  await service?.stop();
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Artifacts {
  subject: string;
  signature?: { tag: string; digest: string };
  attestations?: { tag: string; digest: string; signed: boolean };
  referrer?: string;
}
interface Layer {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}
type PushView = { status: string; manifestDigest?: string; error?: string; artifacts?: Artifacts[] };

const skopeo = async (args: string[]) => {
  const res = await run('skopeo', [...args.slice(0, 1), '--tls-verify=false', ...args.slice(1)]);
  expect(res.code, res.stderr).toBe(0);
  return res.stdout;
};
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
/** `openssl dgst -sha256 -verify`: whether the DER signature verifies over the file's bytes. */
async function opensslVerifies(data: Buffer, signatureB64: string): Promise<boolean> {
  await writeFile(join(dir, 'data'), data);
  await writeFile(join(dir, 'sig.der'), Buffer.from(signatureB64, 'base64'));
  const res = await run('openssl', ['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.der'), join(dir, 'data')]);
  return res.code === 0 && res.stdout.includes('Verified OK');
}
const flipped = (b: Buffer) => {
  const c = Buffer.from(b);
  const i = c.length >> 1;
  c.writeUInt8((c.readUInt8(i) ^ 1) & 0xff, i);
  return c;
};
/** The blobs of an image as skopeo copies them to a `dir:` layout: by hex digest. */
async function blobsOf(ref: string, into: string): Promise<Map<string, Buffer>> {
  await skopeo(['copy', `docker://${ref}`, `dir:${into}`]);
  const blobs = new Map<string, Buffer>();
  for (const name of await readdir(into)) if (/^[a-f0-9]{64}$/.test(name)) blobs.set(`sha256:${name}`, await readFile(join(into, name)));
  return blobs;
}

async function pushed(buildId: string, ref: string): Promise<PushView> {
  const res = await fetch(`${service.url}/v1/builds/${buildId}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ref }) });
  expect(res.status).toBe(202);
  const getPush = async () => ((await (await fetch(`${service.url}/v1/builds/${buildId}`)).json()) as { pushes?: Record<string, PushView> }).pushes?.[ref];
  await until(async () => ['succeeded', 'failed'].includes((await getPush())?.status ?? ''), 30_000);
  const push = (await getPush()) as PushView;
  expect(push.status, push.error).toBe('succeeded');
  return push;
}

/** The provenance statement in an `.att` image's first layer, after checking its DSSE signature with openssl. */
async function verifiedProvenance(attRef: string, into: string): Promise<{ subject: Array<{ digest: { sha256: string } }> }> {
  const manifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${attRef}`])) as { layers: Layer[] };
  const [layer] = manifest.layers as [Layer];
  expect(layer.annotations?.predicateType).toBe('https://slsa.dev/provenance/v1');
  const envelope = JSON.parse(((await blobsOf(attRef, into)).get(layer.digest) as Buffer).toString('utf8')) as { payloadType: string; payload: string; signatures: Array<{ sig: string }> };
  const body = Buffer.from(envelope.payload, 'base64');
  const pae = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(envelope.payloadType)} ${envelope.payloadType} ${body.length} `), body]);
  expect(await opensslVerifies(pae, envelope.signatures[0]?.sig ?? '')).toBe(true);
  return JSON.parse(body.toString('utf8')) as { subject: Array<{ digest: { sha256: string } }> };
}

it('pushes a .sig whose payload verifies with openssl and .att envelopes whose provenance names the pushed manifest', async () => {
  const build = await waitForBuild(service, await submitBuild(service, { name: 'sign/app', contents: [{ text: 'signed\n', to: '/etc/signed' }] }));
  expect(build.status).toBe('succeeded');
  const repo = `${registry.host}/sign/app`;
  const ref = `${repo}:1`;
  const push = await pushed(build.id, ref);

  // The manifest the registry has, hashed as skopeo gives it, is what everything names.
  const manifestDigest = `sha256:${sha256(await skopeo(['inspect', '--raw', `docker://${ref}`]))}`;
  expect(push.manifestDigest).toBe(manifestDigest);
  const hex = manifestDigest.slice('sha256:'.length);
  expect(push.artifacts).toEqual([
    {
      subject: manifestDigest,
      signature: { tag: `sha256-${hex}.sig`, digest: expect.stringMatching(/^sha256:/) },
      attestations: { tag: `sha256-${hex}.att`, digest: expect.stringMatching(/^sha256:/), signed: true },
    },
  ]);
  // docker-registry 2.8 has no referrers API: none pushed, and the log says why.
  expect(service.output()).toContain('no OCI referrers API');

  // .sig: one layer, the simple-signing payload for this repository and manifest; its annotation verifies.
  const sigManifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${repo}:sha256-${hex}.sig`])) as { layers: Layer[] };
  expect(sigManifest.layers).toHaveLength(1);
  const [sigLayer] = sigManifest.layers as [Layer];
  expect(sigLayer.mediaType).toBe('application/vnd.dev.cosign.simplesigning.v1+json');
  const sigBlobs = await blobsOf(`${repo}:sha256-${hex}.sig`, join(dir, 'sig'));
  const payload = sigBlobs.get(sigLayer.digest) as Buffer;
  expect(JSON.parse(payload.toString('utf8'))).toMatchObject({
    critical: { identity: { 'docker-reference': repo }, image: { 'docker-manifest-digest': manifestDigest }, type: 'cosign container image signature' },
  });
  const signature = sigLayer.annotations?.['dev.cosignproject.cosign/signature'] ?? '';
  expect(await opensslVerifies(payload, signature)).toBe(true);
  expect(await opensslVerifies(flipped(payload), signature)).toBe(false);

  // .att: provenance, SPDX and CycloneDX as DSSE envelopes of in-toto statements about the pushed manifest.
  const attManifest = JSON.parse(await skopeo(['inspect', '--raw', `docker://${repo}:sha256-${hex}.att`])) as { layers: Layer[] };
  expect(attManifest.layers.map((l) => [l.mediaType, l.annotations?.predicateType])).toEqual([
    ['application/vnd.dsse.envelope.v1+json', 'https://slsa.dev/provenance/v1'],
    ['application/vnd.dsse.envelope.v1+json', 'https://spdx.dev/Document'],
    ['application/vnd.dsse.envelope.v1+json', 'https://cyclonedx.org/bom'],
  ]);
  const attBlobs = await blobsOf(`${repo}:sha256-${hex}.att`, join(dir, 'att'));
  for (const layer of attManifest.layers) {
    const envelope = JSON.parse((attBlobs.get(layer.digest) as Buffer).toString('utf8')) as { payloadType: string; payload: string; signatures: Array<{ sig: string }> };
    const body = Buffer.from(envelope.payload, 'base64');
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(envelope.payloadType)} ${envelope.payloadType} ${body.length} `), body]);
    expect(envelope.signatures).toHaveLength(1);
    expect(await opensslVerifies(pae, envelope.signatures[0]?.sig ?? ''), layer.annotations?.predicateType).toBe(true);
    expect(await opensslVerifies(flipped(pae), envelope.signatures[0]?.sig ?? '')).toBe(false);
    const statement = JSON.parse(body.toString('utf8')) as { subject: Array<{ digest: { sha256: string } }>; predicateType: string };
    expect(statement.predicateType).toBe(layer.annotations?.predicateType);
    expect(statement.subject.map((s) => s.digest.sha256)).toEqual([hex]);
  }
}, 60_000);

it('signs each platform manifest and the index of a multi-platform push; each platform provenance names its own manifest', async () => {
  const build = await waitForBuild(service, await submitBuild(service, { name: 'sign/multi', platforms: ['linux/amd64', 'linux/arm64'], contents: [{ text: 'both\n', to: '/etc/both' }] }));
  expect(build.status).toBe('succeeded');
  const repo = `${registry.host}/sign/multi`;
  const push = await pushed(build.id, `${repo}:1`);
  const index = JSON.parse(await skopeo(['inspect', '--raw', `docker://${repo}:1`])) as { manifests: Array<{ digest: string }> };
  const platformDigests = index.manifests.map((m) => m.digest);
  expect(push.artifacts?.map((a) => [a.subject, a.signature !== undefined, a.attestations !== undefined])).toEqual([
    [platformDigests[0], true, true],
    [platformDigests[1], true, true],
    [push.manifestDigest, true, false],
  ]);
  for (const [i, digest] of platformDigests.entries()) {
    const statement = await verifiedProvenance(`${repo}:sha256-${digest.slice(7)}.att`, join(dir, `att-${i}`));
    expect(statement.subject.map((s) => s.digest.sha256)).toEqual([digest.slice(7)]);
  }
}, 60_000);
