/**
 * The platform rule every kind of base shares (src/image/platform.ts): how an index entry or a
 * config fits the build's linux/<architecture>[/<variant>], and the sentence a missing one fails with.
 */
import { describe, expect, it } from 'vitest';
import { bestFit, statedPlatform, missingPlatformMessage, platformFit, platformText, statesOtherPlatform } from '../../src/image/platform.ts';

describe('platformFit', () => {
  it('needs os linux (or none) and the architecture', () => {
    expect(platformFit({ os: 'linux', architecture: 'arm64' }, { architecture: 'arm64' })).toBe(0);
    expect(platformFit({ architecture: 'arm64' }, { architecture: 'arm64' })).toBe(0);
    expect(platformFit({ os: 'windows', architecture: 'amd64' }, { architecture: 'amd64' })).toBeUndefined();
    expect(platformFit({ os: 'linux', architecture: 'amd64' }, { architecture: 'arm64' })).toBeUndefined();
    expect(platformFit({ os: 'unknown', architecture: 'unknown' }, { architecture: 'amd64' })).toBeUndefined();
    expect(platformFit(undefined, { architecture: 'amd64' })).toBeUndefined();
  });

  it("takes no variant as the architecture's default one, and ranks other variants after it", () => {
    expect(platformFit({ architecture: 'arm64', variant: 'v8' }, { architecture: 'arm64' })).toBe(0);
    expect(platformFit({ architecture: 'arm64' }, { architecture: 'arm64', variant: 'v8' })).toBe(0);
    expect(platformFit({ architecture: 'amd64', variant: 'v1' }, { architecture: 'amd64' })).toBe(0);
    expect(platformFit({ architecture: 'amd64', variant: 'v3' }, { architecture: 'amd64' })).toBe(1);
    expect(platformFit({ architecture: 'amd64', variant: 'v3' }, { architecture: 'amd64', variant: 'v2' })).toBeUndefined();
    expect(platformFit({ architecture: 'arm', variant: 'v7' }, { architecture: 'arm', variant: 'v7' })).toBe(0);
    expect(platformFit({ architecture: 'arm', variant: 'v6' }, { architecture: 'arm', variant: 'v7' })).toBeUndefined();
  });

  it('bestFit takes the first best entry', () => {
    const entries = [{ p: { architecture: 'amd64', variant: 'v3' } }, { p: { architecture: 'arm64' } }, { p: { architecture: 'amd64' } }, { p: { architecture: 'amd64' } }];
    expect(bestFit(entries, (e) => e.p, { architecture: 'amd64' })).toBe(entries[2]);
    expect(bestFit(entries.slice(0, 2), (e) => e.p, { architecture: 'amd64' })).toBe(entries[0]);
    expect(bestFit(entries, (e) => e.p, { architecture: 's390x' })).toBeUndefined();
  });
});

describe('statesOtherPlatform (an image taken at its own word)', () => {
  it('only what a config says can rule the build platform out', () => {
    expect(statesOtherPlatform({ os: 'linux', architecture: 'amd64' }, { architecture: 'arm64' })).toBe(true);
    expect(statesOtherPlatform({ os: 'windows', architecture: 'amd64' }, { architecture: 'amd64' })).toBe(true);
    expect(statesOtherPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }, { architecture: 'arm64' })).toBe(false);
    expect(statesOtherPlatform({ architecture: 'arm64', variant: 'v8' }, { architecture: 'arm64', variant: 'v9' })).toBe(true);
    expect(statesOtherPlatform({ architecture: 'arm64' }, { architecture: 'arm64', variant: 'v9' })).toBe(false);
    expect(statesOtherPlatform({}, { architecture: 's390x' })).toBe(false);
  });

  it('reads a config or an index entry leniently', () => {
    expect(statedPlatform({ architecture: 'arm64', os: 'linux', variant: 'v8', config: {} })).toEqual({ architecture: 'arm64', os: 'linux', variant: 'v8' });
    expect(statedPlatform({ architecture: 5, os: '' })).toEqual({});
    expect(statedPlatform(null)).toEqual({});
    // No architecture is named like this: it fits nothing, and the text is not kept.
    expect(statedPlatform({ os: 'linux', architecture: 'a'.repeat(100_000) })).toEqual({ os: 'linux', architecture: '?' });
  });
});

it('says what is missing and what there is, in one sentence for every kind of base', () => {
  expect(platformText({ os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe('linux/arm64/v8');
  expect(platformText({ architecture: 'arm64' })).toBe('?/arm64');
  expect(missingPlatformMessage('base image', { architecture: 'arm64' }, 'linux/amd64, linux/s390x')).toBe('base image has no linux/arm64 image; it has: linux/amd64, linux/s390x');
  expect(missingPlatformMessage('the archive', { architecture: 'arm64', variant: 'v8' }, '', 'app:1')).toBe('the archive has no linux/arm64/v8 image app:1; it has: none');
});
