/** selectPlatform: the entry of a registry's index for the build's platform, or a RegistryError naming the platforms there are. */
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../src/digest.ts';
import type { Descriptor, IndexManifest } from '../../src/registry/manifest.ts';
import { selectPlatform } from '../../src/registry/select-platform.ts';

const entry = (n: number, platform?: Descriptor['platform']): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${String(n).padStart(64, '0')}` as Digest,
  size: 1,
  ...(platform ? { platform } : {}),
});
const index = (...manifests: Descriptor[]): IndexManifest => ({ schemaVersion: 2, manifests });

describe('selectPlatform', () => {
  // As BuildKit pushes one: two images and their attestation manifests (unknown/unknown).
  const amd64 = entry(1, { os: 'linux', architecture: 'amd64' });
  const arm64 = entry(2, { os: 'linux', architecture: 'arm64', variant: 'v8' });
  const attestation = entry(3, { os: 'unknown', architecture: 'unknown' });
  const buildkit = index(amd64, arm64, attestation, attestation);

  it('picks the entry for the architecture, and the variant when one is asked', () => {
    expect(selectPlatform(buildkit, { architecture: 'arm64' }, 'r/a:1')).toBe(arm64);
    expect(selectPlatform(buildkit, { architecture: 'arm64', variant: 'v8' }, 'r/a:1')).toBe(arm64);
    expect(selectPlatform(buildkit, { architecture: 'amd64' }, 'r/a:1')).toBe(amd64);
  });

  it("prefers the architecture's default variant whatever the order", () => {
    const v3 = entry(4, { os: 'linux', architecture: 'amd64', variant: 'v3' });
    expect(selectPlatform(index(v3, amd64), { architecture: 'amd64' }, 'r/a:1')).toBe(amd64);
    expect(selectPlatform(index(v3), { architecture: 'amd64' }, 'r/a:1')).toBe(v3);
  });

  it('fails naming the platforms the index has', () => {
    expect(() => selectPlatform(buildkit, { architecture: 's390x' }, 'r/a:1')).toThrow('r/a:1 has no linux/s390x image; it has: linux/amd64, linux/arm64/v8, unknown/unknown');
    expect(() => selectPlatform(buildkit, { architecture: 'arm64', variant: 'v9' }, 'r/a:1')).toThrow(/^r\/a:1 has no linux\/arm64\/v9 image; /);
    expect(() => selectPlatform(index(entry(5)), { architecture: 'amd64' }, 'r/a:1')).toThrow(`r/a:1 has no linux/amd64 image; it has: ${entry(5).digest}`);
    try {
      selectPlatform(buildkit, { architecture: 's390x' }, 'r/a:1');
    } catch (err) {
      expect(err).toMatchObject({ name: 'RegistryError', kind: 'platform' });
    }
  });
});
