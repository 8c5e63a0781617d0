/**
 * Issue 16 through the real service: a succeeded build's SBOMs and provenance, served as
 * documents and as DSSE envelopes signed with the operator's key (BALER_SIGNING_KEY_FILE),
 * per platform of a multi-platform build, through the CLI, and a build-cache hit with the SBOMs
 * of the build that made it and a provenance of its own naming that build's. Pure-layer builds: no VM boots.
 */
import { generateKeyPairSync, verify } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baler } from '../support/cli.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

let service: Service;
let work: string;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-attest-e2e-'));
  await writeFile(join(work, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  // Two packages at most: a database of three is over the SBOM's budget.
  service = await startService({ BALER_SIGNING_KEY_FILE: join(work, 'key.pem'), BALER_BUILDER_ID: 'https://builder.example/baler', BALER_VM_POOL: '0', BALER_SBOM_MAX_PACKAGES: '2' });
}, 60_000);
afterAll(async () => {
  await service?.stop();
  await rm(work, { recursive: true, force: true });
});

interface Envelope {
  payloadType: string;
  payload: string;
  signatures: Array<{ keyid?: string; sig: string }>;
}
interface Attestations {
  sbomSpdx: string;
  sbomCycloneDx: string;
  provenance: string;
}

const get = (path: string) => fetch(`${service.url}${path}`);
/** DSSE's pre-authentication encoding, written here from the spec (not the service's). */
const pae = (type: string, payload: Buffer) => Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${payload.length} `), payload]);

async function attested(id: string): Promise<Attestations> {
  const build = (await (await get(`/v1/builds/${id}`)).json()) as { result: { attestations: Attestations } };
  return build.result.attestations;
}

describe('attestations', () => {
  let buildId: string;
  let fileDigest: string;

  beforeAll(async () => {
    await writeFile(join(work, 'tool'), 'a tool\n');
    fileDigest = await uploadFile(service, join(work, 'tool'));
    buildId = await submitBuild(service, {
      name: 'attest/pure',
      contents: [
        { text: 'hello\n', to: '/etc/hello' },
        { file: fileDigest, to: '/usr/bin/tool', mode: '0755' },
      ],
    });
    expect((await waitForBuild(service, buildId)).status).toBe('succeeded');
  }, 60_000);

  it('serves the SBOM in SPDX (the default) and CycloneDX, and the provenance, each as its media type', async () => {
    expect(await attested(buildId)).toEqual({ sbomSpdx: expect.stringMatching(/^sha256:/), sbomCycloneDx: expect.stringMatching(/^sha256:/), provenance: expect.stringMatching(/^sha256:/) });
    const spdx = await get(`/v1/builds/${buildId}/sbom`);
    expect(spdx.status).toBe(200);
    expect(spdx.headers.get('content-type')).toMatch(/^application\/spdx\+json/);
    expect(await spdx.json()).toMatchObject({ spdxVersion: 'SPDX-2.3' });
    const cdx = await get(`/v1/builds/${buildId}/sbom?format=cyclonedx`);
    expect(cdx.headers.get('content-type')).toMatch(/^application\/vnd\.cyclonedx\+json/);
    expect(await cdx.json()).toMatchObject({ bomFormat: 'CycloneDX', specVersion: '1.6' });
    const provenance = await get(`/v1/builds/${buildId}/provenance`);
    expect(provenance.headers.get('content-type')).toMatch(/^application\/vnd\.in-toto\+json/);
    const statement = (await provenance.json()) as { _type: string; predicateType: string };
    expect(statement).toMatchObject({ _type: 'https://in-toto.io/Statement/v1', predicateType: 'https://slsa.dev/provenance/v1' });
    expect(JSON.stringify(statement)).toContain('https://builder.example/baler');
  });

  it('gives the DSSE envelopes, signed with the operator key over exactly the documents served', async () => {
    for (const [path, type] of [
      ['sbom', 'application/spdx+json'],
      ['sbom?format=cyclonedx', 'application/vnd.cyclonedx+json'],
      ['provenance', 'application/vnd.in-toto+json'],
    ] as const) {
      const res = await get(`/v1/builds/${buildId}/${path}${path.includes('?') ? '&' : '?'}envelope=1`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/vnd\.dsse\.envelope\.v1\+json/);
      const envelope = (await res.json()) as Envelope;
      expect(envelope.payloadType).toBe(type);
      const payload = Buffer.from(envelope.payload, 'base64');
      expect(payload.equals(Buffer.from(await (await get(`/v1/builds/${buildId}/${path}`)).arrayBuffer()))).toBe(true);
      expect(envelope.signatures).toHaveLength(1);
      const sig = Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64');
      expect(verify(null, pae(type, payload), publicKey, sig), path).toBe(true);
      const flipped = Buffer.from(payload);
      flipped[0] = (flipped[0] ?? 0) ^ 1;
      expect(verify(null, pae(type, flipped), publicKey, sig)).toBe(false);
    }
  });

  it('answers 404 for an unknown build, 400 for an unknown format or platform form, 404 for a platform it has not', async () => {
    for (const path of ['sbom', 'provenance']) {
      const res = await get(`/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa/${path}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    expect((await get(`/v1/builds/${buildId}/sbom?format=xml`)).status).toBe(400);
    expect((await get(`/v1/builds/${buildId}/sbom?platform=linux/arm64`)).status).toBe(404);
  });

  it("a build taken from the build cache has the SBOMs of the build that made it, and a provenance of its own naming that build's", async () => {
    const res = await fetch(`${service.url}/v1/builds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'attest/pure',
        contents: [
          { text: 'hello\n', to: '/etc/hello' },
          { file: fileDigest, to: '/usr/bin/tool', mode: '0755' },
        ],
      }),
    });
    expect(res.status).toBe(201);
    const hit = (await res.json()) as { id: string; cachedFrom: string };
    expect(hit.cachedFrom).toBe(buildId);
    const [mine, theirs] = [await attested(hit.id), await attested(buildId)];
    expect({ sbomSpdx: mine.sbomSpdx, sbomCycloneDx: mine.sbomCycloneDx }).toEqual({ sbomSpdx: theirs.sbomSpdx, sbomCycloneDx: theirs.sbomCycloneDx });
    expect(mine.provenance).not.toBe(theirs.provenance);
    const envelope = (await (await get(`/v1/builds/${hit.id}/provenance?envelope=1`)).json()) as Envelope;
    const payload = Buffer.from(envelope.payload, 'base64');
    expect(verify(null, pae(envelope.payloadType, payload), publicKey, Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64'))).toBe(true);
    const statement = JSON.parse(payload.toString()) as {
      predicate: { runDetails: { metadata: { invocationId: string }; byproducts: Array<{ name: string; content?: string; digest?: { sha256: string } }> } };
    };
    expect(statement.predicate.runDetails.metadata.invocationId).toBe(hit.id);
    const byproduct = (name: string) => statement.predicate.runDetails.byproducts.find((b) => b.name === name);
    expect(Buffer.from(byproduct('cached-from/build')?.content ?? '', 'base64').toString()).toBe(buildId);
    expect(byproduct('cached-from/provenance')?.digest?.sha256).toBe(theirs.provenance.slice('sha256:'.length));
  });

  it('attests each platform of a multi-platform build; ?platform= picks one', async () => {
    const id = await submitBuild(service, { name: 'attest/multi', platforms: ['linux/amd64', 'linux/arm64'], contents: [{ text: 'hi\n', to: '/hi' }] });
    const build = (await waitForBuild(service, id)) as { status: string; result?: { platforms?: Array<{ platform: string; attestations?: Attestations }> } };
    expect(build.status).toBe('succeeded');
    const [amd64, arm64] = build.result?.platforms ?? [];
    expect(amd64?.attestations?.provenance).toMatch(/^sha256:/);
    expect(arm64?.attestations?.provenance).toMatch(/^sha256:/);
    expect(arm64?.attestations?.provenance).not.toBe(amd64?.attestations?.provenance);
    const res = await get(`/v1/builds/${id}/sbom?platform=linux/arm64&format=cyclonedx`);
    expect(res.status).toBe(200);
    expect((await get(`/v1/builds/${id}/provenance?platform=linux/s390x`)).status).toBe(400);
  }, 60_000);

  it('baler sbom and baler provenance print them', async () => {
    const sbom = await baler(service.url, ['sbom', buildId, '--format', 'cyclonedx']);
    expect(sbom.code, sbom.stderr).toBe(0);
    expect(JSON.parse(sbom.stdout)).toMatchObject({ bomFormat: 'CycloneDX' });
    const provenance = await baler(service.url, ['provenance', buildId, '--envelope']);
    expect(provenance.code, provenance.stderr).toBe(0);
    expect(JSON.parse(provenance.stdout)).toMatchObject({ payloadType: 'application/vnd.in-toto+json' });
    const missing = await baler(service.url, ['sbom', 'aaaaaaaaaaaaaaaaaaaaaaaaaa']);
    expect(missing.code).not.toBe(0);
  }, 60_000);

  it("lists the packages of the image's dpkg database; one over the SBOM budgets leaves the build succeeded, saying why it has none", async () => {
    const paragraph = (name: string) => `Package: ${name}\nStatus: install ok installed\nVersion: 1.${name.length}\nArchitecture: amd64\n\n`;
    const rootWith = async (names: string[]) => {
      const root = join(work, `root-${names.length}`);
      await mkdir(join(root, 'var/lib/dpkg'), { recursive: true });
      await writeFile(join(root, 'var/lib/dpkg/status'), names.map(paragraph).join(''));
      execFileSync('tar', ['-cf', `${root}.tar`, '-C', root, 'var']);
      return uploadFile(service, `${root}.tar`);
    };
    const small = await submitBuild(service, { name: 'attest/dpkg', contents: [{ tar: await rootWith(['zlib1g', 'base-files']) }] });
    expect((await waitForBuild(service, small)).status).toBe('succeeded');
    const spdx = (await (await get(`/v1/builds/${small}/sbom`)).json()) as { packages: Array<{ name: string; versionInfo?: string }> };
    expect(spdx.packages.map((p) => p.name)).toEqual(expect.arrayContaining(['zlib1g', 'base-files']));
    const cdx = (await (await get(`/v1/builds/${small}/sbom?format=cyclonedx`)).json()) as { components: Array<{ purl?: string }> };
    expect(cdx.components.map((c) => c.purl)).toEqual(expect.arrayContaining([expect.stringMatching(/^pkg:deb\/[^/]+\/zlib1g@1\.6\?arch=amd64/)]));

    const big = await submitBuild(service, { name: 'attest/dpkg-big', contents: [{ tar: await rootWith(['a', 'b', 'c']) }] });
    const built = (await waitForBuild(service, big)) as { status: string; result?: { attestations?: unknown; attestationError?: string } };
    expect(built.status).toBe('succeeded');
    expect(built.result?.attestations).toBeUndefined();
    expect(built.result?.attestationError).toMatch(/BALER_SBOM_MAX_PACKAGES/);
    const res = await get(`/v1/builds/${big}/sbom`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/no attestations: .*BALER_SBOM_MAX_PACKAGES/);
    expect((await get(`/v1/builds/${big}/image`)).status).toBe(200);
  }, 60_000);
});
