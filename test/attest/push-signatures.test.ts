/**
 * What a push adds beside a manifest, against Debian's docker-registry: without a key, unsigned
 * attestations under `.att` and no `.sig`; where the registry answers the OCI referrers API
 * (distribution 2.8 does not: the test's fetch answers that one request), a referrer manifest
 * whose subject is the image. The signed path, verified with openssl, is test/e2e/push-signatures.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pushSignaturesAndAttestations } from '../../src/attest/push-signatures.ts';
import type { ImageAttestations } from '../../src/attest/image-attestations.ts';
import { signatureImage } from '../../src/attest/signing/cosign-signature.ts';
import { dsseEnvelope } from '../../src/attest/signing/dsse.ts';
import { loadSigningKey } from '../../src/attest/signing/signing-key.ts';
import { type Digest, hexOf } from '../../src/digest.ts';
import type { Logger } from '../../src/log.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { openPushTarget, type PushedManifest, pushInMemoryImage } from '../../src/registry/push.ts';
import type { Registries } from '../../src/registry/registries.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';

let registry: TestRegistry;
let registries: Registries;
let store: FsBlobStore;
let dir: string;
let stored: ImageAttestations;

const put = async (payloadType: string, doc: unknown) => (await store.put(Readable.from([Buffer.from(JSON.stringify(dsseEnvelope(payloadType, Buffer.from(JSON.stringify(doc)))))]))).digest;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-push-sig-'));
  store = await FsBlobStore.create(join(dir, 'store'));
  registry = await startRegistry();
  registries = new Map([[registry.host, { insecure: true }]]);
  // A stored provenance naming another digest (as a single-platform build's names its config digest).
  const other = `sha256:${'ab'.repeat(32)}`;
  stored = {
    provenance: await put('application/vnd.in-toto+json', {
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'x:1', digest: { sha256: hexOf(other as Digest) } }],
      predicateType: 'https://slsa.dev/provenance/v1',
      predicate: { p: 1 },
    }),
    sbomSpdx: await put('application/spdx+json', { spdxVersion: 'SPDX-2.3' }),
    sbomCycloneDx: await put('application/vnd.cyclonedx+json', { bomFormat: 'CycloneDX' }),
  };
});

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Some image manifest in the repository to sign and attest. */
async function pushedManifest(repo: string, seed: string): Promise<PushedManifest> {
  const image = signatureImage(Buffer.from(seed), '');
  const target = await openPushTarget(store, `${registry.host}/${repo}:img`, { registries });
  await pushInMemoryImage(target, image, 'img');
  return { digest: image.manifestDigest, size: image.manifest.length, mediaType: image.mediaType };
}

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = { info: (a: unknown, b?: string) => lines.push(typeof a === 'string' ? a : (b ?? '')) } as unknown as Logger;
  return { log, lines };
}

it('without a key: unsigned attestations about the pushed manifest under .att, no .sig, and the log says so', async () => {
  const manifest = await pushedManifest('nokey/app', 'one');
  const { log, lines } = recordingLog();
  const [artifacts] = await pushSignaturesAndAttestations(store, `${registry.host}/nokey/app:img`, [{ manifest, attestations: stored }], { registries, log });
  const hex = hexOf(manifest.digest);
  expect(artifacts).toEqual({ subject: manifest.digest, attestations: { tag: `sha256-${hex}.att`, digest: expect.stringMatching(/^sha256:/), signed: false } });
  expect(lines.join('\n')).toMatch(/no signing key.*no \.sig pushed, attestations pushed unsigned/);
  expect(lines.join('\n')).toMatch(/no OCI referrers API/);

  const client = new RegistryClient(registry.host, { insecure: true });
  await expect(client.getManifest('nokey/app', `sha256-${hex}.sig`)).rejects.toThrow(/not found/);
  const att = await client.getManifest('nokey/app', `sha256-${hex}.att`);
  const layers = (JSON.parse(att.bytes.toString('utf8')) as { layers: Array<{ digest: Digest; annotations: Record<string, string> }> }).layers;
  expect(layers.map((l) => l.annotations.predicateType)).toEqual(['https://slsa.dev/provenance/v1', 'https://spdx.dev/Document', 'https://cyclonedx.org/bom']);
  for (const layer of layers) {
    const envelope = JSON.parse((await client.getBlobBytes('nokey/app', layer.digest)).toString('utf8')) as { payload: string; signatures: unknown[] };
    expect(envelope.signatures).toEqual([]);
    const statement = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as { subject: Array<{ digest: { sha256: string } }>; predicate: unknown };
    expect(statement.subject[0]?.digest.sha256).toBe(hex);
    expect(statement.predicate).toBeTruthy();
  }
});

it('where the registry answers the referrers API: the attestations also go up as a referrer whose subject is the image', async () => {
  const manifest = await pushedManifest('ref/app', 'two');
  const keyFile = join(dir, 'key.pem');
  await writeFile(keyFile, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const signingKey = await loadSigningKey(keyFile);
  // distribution 2.8 has no referrers API; this fetch answers it as a registry that has one would.
  const fetchWithReferrers: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    if (url.pathname.includes('/referrers/')) {
      return new Response(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }), {
        status: 200,
        headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' },
      });
    }
    return fetch(input, init);
  };
  const { log } = recordingLog();
  const [artifacts] = await pushSignaturesAndAttestations(store, `${registry.host}/ref/app:img`, [{ manifest, attestations: stored }], { registries, signingKey, log, fetch: fetchWithReferrers });
  expect(artifacts?.signature?.tag).toBe(`sha256-${hexOf(manifest.digest)}.sig`);
  expect(artifacts?.attestations?.signed).toBe(true);
  expect(artifacts?.referrer).toMatch(/^sha256:/);

  const client = new RegistryClient(registry.host, { insecure: true });
  const referrer = JSON.parse((await client.getManifest('ref/app', artifacts?.referrer as Digest)).bytes.toString('utf8')) as { subject: unknown; layers: unknown[]; artifactType: string };
  expect(referrer.subject).toEqual({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size });
  expect(referrer.layers).toHaveLength(3);
  expect(referrer.artifactType).toBe('application/vnd.dsse.envelope.v1+json');
});
