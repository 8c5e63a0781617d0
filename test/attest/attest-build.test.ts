/**
 * The attestation seam (src/attest/attest-build.ts) over whatever SBOM and provenance libraries
 * are at their paths: what it gathers for them, what it stores, and what it does when they fail.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { attestCachedResult, attestResult, contentsComponents, type AttestDeps, type BuildFacts } from '../../src/attest/attest-build.ts';
import type { SigningKey } from '../../src/attest/signing/signing-key.ts';
import { BudgetExceededError } from '../../src/budget.ts';
import type { BuildResult } from '../../src/builds/build-result.ts';
import { resolveSpec } from '../../src/builds/spec.ts';
import { digestOf, type Digest } from '../../src/digest.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';

const packages = vi.hoisted(() => ({ fail: undefined as Error | undefined, calls: [] as unknown[][] }));
vi.mock('../../src/attest/sbom/image-packages.ts', () => ({
  imagePackages: async (...args: unknown[]) => {
    packages.calls.push(args);
    if (packages.fail) throw packages.fail;
    return [];
  },
}));

let dir: string;
let store: FsBlobStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-attest-'));
  store = await FsBlobStore.create(join(dir, 'store'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const d = (s: string) => digestOf(s);
const archive = { digest: d('archive'), size: 1, mediaType: 'application/x-tar', format: 'docker-archive' as const, compression: 'gzip' as const, filename: 'x.tar.gz' };
const result: BuildResult = { imageId: d('config'), diffIds: [d('layer1'), d('layer2')], layers: [], archive, base: { imageId: d('base') } };
const facts = (spec = resolveSpec({ name: 'app', tag: '1', fromImage: { ref: `registry.example/base@${d('manifest')}` }, contents: [{ text: 'x', to: '/x' }] }, new Date())): BuildFacts => ({
  buildId: 'b1',
  spec,
  startedOn: '2026-12-03T00:00:00Z',
  finishedOn: '2026-12-03T00:00:01Z',
});
const deps = (extra: Partial<AttestDeps> = {}): AttestDeps => ({ store, builderId: 'urn:test', balerVersion: '0.0.0-test', worker: 'test-worker', ...extra });
const envelopeOf = async (digest: Digest) => JSON.parse((await buffer(await store.open(digest))).toString()) as { payloadType: string; payload: string; signatures: Array<{ sig: string }> };

describe('attestResult', () => {
  it('stores the two SBOMs and the provenance as DSSE envelopes and names them on the result', async () => {
    packages.fail = undefined;
    packages.calls.length = 0;
    const attested = await attestResult(result, facts(), deps());
    expect(attested).toMatchObject({ ...result, attestations: { sbomSpdx: expect.any(String), sbomCycloneDx: expect.any(String), provenance: expect.any(String) } });
    expect(attested.attestationError).toBeUndefined();
    // The packages of the image's layers, bottom first.
    expect(packages.calls[0]?.[0]).toEqual(result.diffIds);
    const { sbomSpdx, sbomCycloneDx, provenance } = attested.attestations as NonNullable<BuildResult['attestations']>;
    const types = await Promise.all([sbomSpdx, sbomCycloneDx, provenance].map(async (digest) => (await envelopeOf(digest)).payloadType));
    expect(types).toEqual(['application/spdx+json', 'application/vnd.cyclonedx+json', 'application/vnd.in-toto+json']);
    const statement = await envelopeOf(provenance);
    // Unsigned without a key, and said so by an empty list.
    expect(statement.signatures).toEqual([]);
    const text = Buffer.from(statement.payload, 'base64').toString();
    expect(text).toContain(`registry.example/base@${d('manifest')}`);
    expect(text).toContain('urn:test');
  });

  it('gives the same SBOM bytes for the same build (the SBOMs of a build are reproducible)', async () => {
    const [a, b] = [await attestResult(result, facts(), deps()), await attestResult(result, facts(), deps())];
    expect(a.attestations?.sbomSpdx).toBe(b.attestations?.sbomSpdx);
    expect(a.attestations?.sbomCycloneDx).toBe(b.attestations?.sbomCycloneDx);
  });

  it('signs with the key it is given, over the PAE of each payload', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const key: SigningKey = { keyId: 'k1', publicKeyPem: '', algorithm: 'ed25519', sign: (data) => sign(null, data, privateKey) };
    const attested = await attestResult(result, facts(), deps({ signingKey: key }));
    const envelope = await envelopeOf(attested.attestations?.provenance as Digest);
    const payload = Buffer.from(envelope.payload, 'base64');
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${envelope.payloadType.length} ${envelope.payloadType} ${payload.length} `), payload]);
    expect(verify(null, pae, publicKey, Buffer.from(envelope.signatures[0]?.sig ?? '', 'base64'))).toBe(true);
  });

  it("names the VM kernel and initramfs of the image's platform when a script ran, none otherwise", async () => {
    const vmAssets = [
      { platform: 'linux/amd64', kernel: d('k-amd64'), initramfs: d('i-amd64') },
      { platform: 'linux/arm64', kernel: d('k-arm64'), initramfs: d('i-arm64') },
    ];
    const internal = async (spec: Parameters<typeof resolveSpec>[0]) => {
      const attested = await attestResult(result, facts(resolveSpec(spec, new Date())), deps({ vmAssets }));
      const envelope = await envelopeOf(attested.attestations?.provenance as Digest);
      return JSON.parse(Buffer.from(envelope.payload, 'base64').toString()).predicate.buildDefinition.internalParameters;
    };
    expect((await internal({ name: 'vm', runAsRoot: 'true' })).vmAssets).toEqual({ 'linux/amd64': { kernel: { sha256: d('k-amd64').slice(7) }, initramfs: { sha256: d('i-amd64').slice(7) } } });
    expect((await internal({ name: 'pure' })).vmAssets).toBeUndefined();
  });

  it('keeps the build when an image cannot be attested: attestationError says why', async () => {
    packages.fail = new BudgetExceededError('BALER_SBOM_MAX_PACKAGES', 10, 'layer 1: more than 10 packages');
    const attested = await attestResult(result, facts(), deps());
    packages.fail = undefined;
    expect(attested.attestations).toBeUndefined();
    expect(attested.attestationError).toMatch(/^attestations could not be made: .*BALER_SBOM_MAX_PACKAGES/);
    expect(attested.imageId).toBe(result.imageId);
  });

  it('throws when the build was stopped (cancel, time limit) rather than recording an error', async () => {
    const stop = new AbortController();
    stop.abort();
    await expect(attestResult(result, facts(), deps({ signal: stop.signal }))).rejects.toThrow();
  });

  it('attests each platform of a multi-platform build, its manifest the provenance subject', async () => {
    const spec = resolveSpec({ name: 'multi', platforms: ['linux/amd64', 'linux/arm64'], contents: [{ text: 'a', to: '/a', platform: 'linux/arm64' }] }, new Date());
    const platform = (p: string, m: string) => ({ platform: p, imageId: d(`config-${p}`), diffIds: [d(`layer-${p}`)], layers: [], manifest: { digest: d(m), size: 1 }, archive });
    const multi: BuildResult = { ...result, platforms: [platform('linux/amd64', 'm1'), platform('linux/arm64', 'm2')] };
    const attested = await attestResult(multi, facts(spec), deps());
    expect(attested.attestations).toBeUndefined();
    const [amd64, arm64] = attested.platforms ?? [];
    const subject = async (digest: Digest | undefined) => JSON.parse(Buffer.from((await envelopeOf(digest as Digest)).payload, 'base64').toString()).subject;
    expect(await subject(amd64?.attestations?.provenance)).toEqual([{ name: 'multi:latest', digest: { sha256: d('m1').slice(7) } }]);
    expect(await subject(arm64?.attestations?.provenance)).toEqual([{ name: 'multi:latest', digest: { sha256: d('m2').slice(7) } }]);
  });
});

describe('attestCachedResult', () => {
  it("keeps the original's SBOMs and gives the hit a provenance of its own naming the original build and provenance", async () => {
    const original = await attestResult(result, facts(), deps());
    const hit = await attestCachedResult(original, { ...facts(), buildId: 'b2' }, 'b1', deps({ worker: 'api' }));
    const [was, now] = [original.attestations, hit.attestations] as Array<NonNullable<BuildResult['attestations']>>;
    expect(now).toEqual({ ...was, provenance: expect.not.stringMatching(was?.provenance ?? '') });
    const statement = JSON.parse(Buffer.from((await envelopeOf(now?.provenance as Digest)).payload, 'base64').toString());
    expect(statement.predicate.runDetails.metadata.invocationId).toBe('b2');
    const byproducts = statement.predicate.runDetails.byproducts as Array<{ name: string; content?: string; digest?: { sha256: string } }>;
    expect(byproducts.find((b) => b.name === 'cached-from/provenance')?.digest?.sha256).toBe(was?.provenance.slice(7));
    expect(Buffer.from(byproducts.find((b) => b.name === 'cached-from/build')?.content ?? '', 'base64').toString()).toBe('b1');
  });

  it('leaves an image the original could not attest as it was', async () => {
    const failed = { ...result, attestationError: 'attestations could not be made: x' };
    expect(await attestCachedResult(failed, facts(), 'b1', deps())).toEqual(failed);
  });
});

describe('contentsComponents', () => {
  it("names each entry of the platform with its blob and its files' sha256 where the spec says them", () => {
    const file = d('file bytes');
    const tar = d('tar bytes');
    const components = contentsComponents(
      [
        { text: 'hi\n', to: 'etc//motd' },
        { file, to: '/usr/bin/tool' },
        { tar, to: '/opt' },
        { dir: '/var/empty' },
        { symlink: '/bin/sh', target: 'busybox' },
        { text: 'arm only', to: '/arm', platform: 'linux/arm64' },
      ],
      'linux/amd64',
    );
    expect(components).toEqual([
      { source: 'text', to: '/etc/motd', files: [{ path: '/etc/motd', sha256: digestOf('hi\n').slice(7) }] },
      { source: `file ${file}`, blob: file, to: '/usr/bin/tool', files: [{ path: '/usr/bin/tool', sha256: file.slice(7) }] },
      { source: `tar ${tar}`, blob: tar, to: '/opt', files: [] },
      { source: 'dir', to: '/var/empty', files: [] },
      { source: 'symlink to busybox', to: '/bin/sh', files: [] },
    ]);
  });
});
