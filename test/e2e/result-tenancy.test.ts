/**
 * Issue 12, attack 7, against the real service and a real VM (TCG here: two script runs in
 * all): a `runAsRoot` result is reused only by the tenant whose script made it, a contents
 * layer may be shared, and no answer to one tenant names another's build.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobOwners } from '../../src/auth/blob-owners.ts';
import { connectRedis } from '../../src/redis.ts';
import { startService, type BuildView, type Service } from '../support/service.ts';

let service: Service;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-result-tenancy-'));
  await writeFile(join(dir, 'tokens'), 'alpha token-a\nbeta token-b\n');
  service = await startService({ BALER_TOKENS_FILE: join(dir, 'tokens') });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await rm(dir, { recursive: true, force: true });
});

interface Accepted {
  id: string;
  status: string;
  cached?: boolean;
  cachedFrom?: string;
}
interface Plan {
  cached: boolean;
  cachedFrom?: string;
  layers: Array<{ step: string; diffId?: string; cached: boolean | null }>;
}

/** Every answer beta was given, to check at the end that none names a build of alpha's. */
const seenByBeta: string[] = [];
const alphaBuilds = new Set<string>();

/** One tenant's view of the API. */
function tenant(token: string) {
  const call = async (path: string, init: RequestInit = {}) => {
    const res = await fetch(`${service.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers } });
    const text = await res.text();
    if (token === 'token-b') seenByBeta.push(text);
    return { status: res.status, text };
  };
  const self = {
    async submit(spec: unknown): Promise<{ status: number; body: Accepted }> {
      const res = await call('/v1/builds', { method: 'POST', body: JSON.stringify(spec) });
      const body = JSON.parse(res.text) as Accepted;
      if (token === 'token-a') alphaBuilds.add(body.id);
      return { status: res.status, body };
    },
    async dryRun(spec: unknown): Promise<Plan> {
      const res = await call('/v1/builds?dryRun=true', { method: 'POST', body: JSON.stringify(spec) });
      expect(res.status, res.text).toBe(200);
      return JSON.parse(res.text) as Plan;
    },
    get: async (id: string) => JSON.parse((await call(`/v1/builds/${id}`)).text) as BuildView & { cached?: boolean },
    log: async (id: string) => (await call(`/v1/builds/${id}/logs`)).text,
    list: async () => (await call('/v1/builds?limit=100')).text,
    async wait(id: string): Promise<BuildView> {
      for (const deadline = Date.now() + 240_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        const build = await self.get(id);
        if (['succeeded', 'failed', 'cancelled'].includes(build.status)) return build;
      }
      throw new Error(`build ${id} did not finish`);
    },
  };
  return self;
}
const alpha = tenant('token-a');
const beta = tenant('token-b');

/** What the script wrote to /random, as its log shows it; undefined when it did not run. */
const randomOf = (log: string) => /random=([0-9a-f]{32})/.exec(log)?.[1];

describe('a runAsRoot spec submitted by two tenants', () => {
  // Stands for a script that makes a secret: host keys, a password, a token.
  const spec = { name: 'tenancy/vm', runAsRoot: 'r=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d " \\n"); echo "random=$r"; echo "$r" > /random' };
  let alphaBuild: BuildView;
  let betaBuild: BuildView;

  it("is built afresh for the second tenant: its script runs again and makes other bytes; alpha's build is named nowhere", async () => {
    const first = await alpha.submit(spec);
    expect(first.status).toBe(202);
    alphaBuild = await alpha.wait(first.body.id);
    expect(alphaBuild.status, JSON.stringify(alphaBuild.error)).toBe('succeeded');
    const alphaRandom = randomOf(await alpha.log(alphaBuild.id));
    expect(alphaRandom).toBeDefined();

    // Neither the build nor the script's layer is found for beta.
    const plan = await beta.dryRun(spec);
    expect(plan.cached).toBe(false);
    expect(plan.cachedFrom).toBeUndefined();
    expect(plan.layers).toEqual([{ step: 'script', cached: false }]);

    const second = await beta.submit(spec);
    expect(second.status).toBe(202);
    expect(second.body.cachedFrom).toBeUndefined();
    betaBuild = await beta.wait(second.body.id);
    expect(betaBuild.status, JSON.stringify(betaBuild.error)).toBe('succeeded');
    expect(betaBuild.cachedFrom).toBeUndefined();
    const betaRandom = randomOf(await beta.log(betaBuild.id));
    expect(betaRandom).toBeDefined();
    expect(betaRandom).not.toBe(alphaRandom);
    expect(betaBuild.result?.diffIds).toHaveLength(1);
    expect(betaBuild.result?.diffIds).not.toEqual(alphaBuild.result?.diffIds);
  }, 300_000);

  it('is a hit for each tenant on its own build, and its script layer is reused within the tenant', async () => {
    const alphaAgain = await alpha.submit(spec);
    expect(alphaAgain.status).toBe(201);
    expect(alphaAgain.body.cachedFrom).toBe(alphaBuild.id);
    expect((await alpha.dryRun(spec)).cachedFrom).toBe(alphaBuild.id);

    const betaAgain = await beta.submit(spec);
    expect(betaAgain.status).toBe(201);
    expect(betaAgain.body.cachedFrom).toBe(betaBuild.id);
    // beta's image and SBOMs; the hit's provenance is its own (naming beta's build: test/e2e/attestations.test.ts).
    const { attestations, ...image } = betaBuild.result as NonNullable<typeof betaBuild.result> & { attestations?: Record<string, string> };
    expect(await beta.get(betaAgain.body.id)).toMatchObject({
      cached: true,
      cachedFrom: betaBuild.id,
      result: { ...image, attestations: { sbomSpdx: attestations?.sbomSpdx, sbomCycloneDx: attestations?.sbomCycloneDx } },
    });
    const plan = await beta.dryRun(spec);
    expect(plan).toMatchObject({ cached: true, cachedFrom: betaBuild.id });
    expect(plan.layers).toEqual([{ step: 'script', diffId: betaBuild.result?.diffIds[0], size: expect.any(Number), cached: true }]);

    // Another tag, another image: alpha's own script layer, the script not run again.
    const retagged = await alpha.submit({ ...spec, tag: 'two' });
    expect(retagged.status).toBe(202);
    const built = await alpha.wait(retagged.body.id);
    expect(built.status).toBe('succeeded');
    expect(built.result?.diffIds).toEqual(alphaBuild.result?.diffIds);
    expect(randomOf(await alpha.log(built.id))).toBeUndefined();
  }, 120_000);

  it("charges a hit's blobs to the tenant that takes it", async () => {
    const redis = connectRedis(service.redisUrl);
    try {
      const owners = new BlobOwners(redis);
      const hit = await beta.get((await beta.submit(spec)).body.id);
      expect(hit.cached).toBe(true);
      const blobs = [hit.result?.imageId, ...(hit.result?.diffIds ?? [])] as Array<`sha256:${string}`>;
      for (const digest of blobs) expect(await owners.owns('beta', digest), digest).toBe(true);
      // beta uploaded nothing: what it holds is the hit's result.
      expect(await owners.bytesOf('beta')).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
  });
});

describe('a contents-only spec submitted by two tenants', () => {
  const spec = { name: 'tenancy/contents', contents: [{ text: 'the same for everyone\n', to: '/same' }] };

  it("shares the layer, not the build: beta's build is its own and names no other", async () => {
    const first = await alpha.submit(spec);
    expect(first.status).toBe(202);
    const alphaBuild = await alpha.wait(first.body.id);
    expect(alphaBuild.status).toBe('succeeded');

    const plan = await beta.dryRun(spec);
    expect(plan.cached).toBe(false);
    expect(plan.cachedFrom).toBeUndefined();
    expect(plan.layers).toEqual([{ step: 'contents', contents: [0], diffId: alphaBuild.result?.diffIds[0], size: expect.any(Number), cached: true }]);

    const second = await beta.submit(spec);
    expect(second.status).toBe(202);
    const betaBuild = await beta.wait(second.body.id);
    expect(betaBuild.status).toBe('succeeded');
    expect(betaBuild.cachedFrom).toBeUndefined();
    expect(betaBuild.result?.diffIds).toEqual(alphaBuild.result?.diffIds);

    const again = await beta.submit(spec);
    expect(again.status).toBe(201);
    expect(again.body.cachedFrom).toBe(betaBuild.id);
  }, 60_000);
});

it('no answer to beta named a build of alpha', async () => {
  seenByBeta.push(await beta.list());
  expect(alphaBuilds.size).toBeGreaterThan(0);
  expect(seenByBeta.length).toBeGreaterThan(1);
  for (const id of alphaBuilds) for (const text of seenByBeta) expect(text).not.toContain(id);
});
