/** The allow-list, reference parsing and the Bearer token flow (against a fake fetch). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRegistryLimits } from '../../src/config.ts';
import { parseChallenge } from '../../src/registry/auth-challenge.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { loadRegistries, parseReference, registryFor, RegistryError } from '../../src/registry/registries.ts';
import { DEFAULT_REGISTRY_LIMITS } from '../../src/registry/registry-limits.ts';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['reg.example:5000/app', { host: 'reg.example:5000', repository: 'app', tag: 'latest', digest: undefined }],
    ['127.0.0.1:5000/team/app:1.0', { host: '127.0.0.1:5000', repository: 'team/app', tag: '1.0', digest: undefined }],
    [`Reg.Example/a/b@${D}`, { host: 'reg.example', repository: 'a/b', tag: undefined, digest: D }],
    [`localhost:5000/a:v1@${D}`, { host: 'localhost:5000', repository: 'a', tag: 'v1', digest: D }],
  ])('%s', (ref, expected) => {
    expect(parseReference(ref)).toEqual(expected);
  });

  it.each([
    ['app:1.0', /must start with the registry host/],
    ['reg:5000/App', /lowercase/],
    ['reg:5000/app:-bad', /tag '-bad' is not valid/],
    ['reg:5000/app@sha256:abc', /not a sha256 digest/],
    ['reg:5000/', /no repository name/],
    ['reg_x:5000/app', /not a registry host/],
  ])('%s is refused', (ref, message) => {
    expect(() => parseReference(ref)).toThrow(message);
    expect(() => parseReference(ref)).toThrow(RegistryError);
  });
});

describe('the allow-list', () => {
  it('is empty without BALER_REGISTRIES_FILE, and read from it otherwise', async () => {
    expect(loadRegistries(undefined).size).toBe(0);
    const dir = await mkdtemp(join(tmpdir(), 'baler-registries-'));
    try {
      const file = join(dir, 'registries.json');
      await writeFile(file, JSON.stringify({ 'Reg.Example:5000': { insecure: true, username: 'u', password: 'p' }, 'other.example': {} }));
      const registries = loadRegistries(file);
      const none = { redirectHosts: [], tokenRealmHosts: [], limits: DEFAULT_REGISTRY_LIMITS };
      expect(registryFor(registries, 'reg.example:5000')).toEqual({ insecure: true, username: 'u', password: 'p', ...none });
      expect(registryFor(registries, 'other.example')).toEqual({ insecure: false, username: undefined, password: undefined, ...none });
      expect(() => registryFor(registries, 'evil.example')).toThrow(/registry 'evil.example' is not allowed.*\(reg.example:5000, other.example\)/);
      await writeFile(file, JSON.stringify({ 'reg.example': { insecure: 'yes' } }));
      expect(() => loadRegistries(file)).toThrow(/insecure must be true or false/);
      await writeFile(file, JSON.stringify({ 'reg.example': { username: 'u' } }));
      expect(() => loadRegistries(file)).toThrow(/both username and password/);
      expect(() => loadRegistries(join(dir, 'missing.json'))).toThrow(/cannot read/);

      await writeFile(file, JSON.stringify({ 'reg.example': { redirectHosts: ['Storage.Example', 'cdn.example:8443'], tokenRealmHosts: ['auth.example'] } }));
      const limits = loadRegistryLimits({ BALER_REGISTRY_MAX_REDIRECTS: '2', BALER_REGISTRY_MAX_DOCUMENT_BYTES: '1000' });
      expect(registryFor(loadRegistries(file, limits), 'reg.example')).toMatchObject({
        redirectHosts: ['storage.example', 'cdn.example:8443'],
        tokenRealmHosts: ['auth.example'],
        limits: { ...DEFAULT_REGISTRY_LIMITS, maxRedirects: 2, maxDocumentBytes: 1000 },
      });
      await writeFile(file, JSON.stringify({ 'reg.example': { redirectHosts: 'storage.example' } }));
      expect(() => loadRegistries(file)).toThrow(/redirectHosts must be a list of host\[:port\]/);
      await writeFile(file, JSON.stringify({ 'reg.example': { tokenRealmHosts: ['https://auth.example/token'] } }));
      expect(() => loadRegistries(file)).toThrow(/tokenRealmHosts: 'https:\/\/auth.example\/token' is not a host\[:port\]/);
      expect(() => loadRegistryLimits({ BALER_REGISTRY_MAX_TOKEN_BYTES: 'lots' })).toThrow(/BALER_REGISTRY_MAX_TOKEN_BYTES must be a non-negative integer/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('Bearer token flow', () => {
  it('parses challenges', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    expect(parseChallenge('Basic realm="x"')?.scheme).toBe('basic');
    expect(parseChallenge('Bearer')).toEqual({ scheme: 'bearer', params: {} });
    // Longer than any real challenge: not parsed at all (a malformed one stops the scan at once).
    expect(parseChallenge(`Bearer realm="${'a'.repeat(5000)}"`)).toBeNull();
    expect(parseChallenge(`Bearer ${'a'.repeat(4000)}`)).toEqual({ scheme: 'bearer', params: {} });
  });

  function fakeRegistry(password: string) {
    const seen: string[] = [];
    const fetchFn: typeof fetch = async (input, init) => {
      const url = new URL(String(input instanceof Request ? input.url : input));
      const headers = new Headers(init?.headers);
      seen.push(`${init?.method ?? 'GET'} ${url.origin}${url.pathname}${url.search} ${headers.get('authorization') ?? ''}`);
      if (url.origin === 'https://auth.example') {
        if (headers.get('authorization') !== `Basic ${Buffer.from(`u:${password}`).toString('base64')}`) return new Response('no', { status: 401 });
        return Response.json({ token: `tok-${url.searchParams.getAll('scope').join('+')}` });
      }
      if (!headers.get('authorization')?.startsWith('Bearer tok-')) {
        return new Response('{"errors":[{"code":"UNAUTHORIZED"}]}', {
          status: 401,
          headers: { 'www-authenticate': `Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"` },
        });
      }
      return new Response('{}', { status: 200 });
    };
    return { fetchFn, seen };
  }

  it('fetches a token from the realm with the configured credentials, then reuses it', async () => {
    const { fetchFn, seen } = fakeRegistry('p');
    const client = new RegistryClient('reg.example', { insecure: false, username: 'u', password: 'p', tokenRealmHosts: ['auth.example'] }, { fetch: fetchFn });
    expect(await client.hasBlob('a/b', D as `sha256:${string}`)).not.toBeNull();
    await client.hasBlob('a/b', D as `sha256:${string}`);
    expect(seen).toEqual([
      `HEAD https://reg.example/v2/a/b/blobs/${D} `,
      `GET https://auth.example/token?service=reg&scope=repository%3Aa%2Fb%3Apull Basic ${Buffer.from('u:p').toString('base64')}`,
      `HEAD https://reg.example/v2/a/b/blobs/${D} Bearer tok-repository:a/b:pull`,
      `HEAD https://reg.example/v2/a/b/blobs/${D} Bearer tok-repository:a/b:pull`,
    ]);
  });

  it('a token service refusing the credentials is a clear auth error', async () => {
    const { fetchFn } = fakeRegistry('other');
    const client = new RegistryClient('reg.example', { insecure: false, username: 'u', password: 'p', tokenRealmHosts: ['auth.example'] }, { fetch: fetchFn });
    await expect(client.getManifest('a/b', 'latest')).rejects.toThrow("registry reg.example rejected the configured credentials (user 'u')");
  });
});
