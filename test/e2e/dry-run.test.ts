/**
 * `POST /v1/builds?dryRun=true` against the real service: the plan says what a submission
 * would build and what the caches already hold, and nothing is queued or recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService, submitBuild, waitForBuild, type Service } from '../support/service.ts';

let service: Service;

beforeAll(async () => {
  // One queued build per tenant: a dry run that queued anything would use the quota up.
  service = await startService({ BALER_TENANT_MAX_QUEUED: '1', BALER_VM_POOL: '0' });
}, 120_000);

afterAll(async () => service?.stop());

interface PlannedLayer {
  step: string;
  contents?: number[];
  diffId?: string;
  size?: number;
  cached: boolean | null;
}
interface Plan {
  dryRun: true;
  spec: { name: string; tag: string; created: string; priority: number };
  blobs: Array<{ digest: string; size: number }>;
  base?: { from: unknown; imageId?: string; layers?: number; cached: boolean | null };
  layers: PlannedLayer[];
  cached: boolean;
  cachedFrom?: string;
}

async function dryRun(spec: unknown, query = ''): Promise<Plan> {
  const res = await fetch(`${service.url}/v1/builds?dryRun=true${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Plan;
}

async function uploadText(text: string): Promise<string> {
  const res = await fetch(`${service.url}/v1/blobs`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: text });
  return ((await res.json()) as { digest: string }).digest;
}

describe('dry run', () => {
  let digest: string;
  let spec: { name: string; contents: unknown[] };
  beforeAll(async () => {
    digest = await uploadText('dry run\n');
    spec = {
      name: 'dry',
      contents: [
        { file: digest, to: '/a' },
        { text: 'b\n', to: '/b' },
      ],
    };
  });

  it('resolves a spec and plans it without queueing or recording anything', async () => {
    for (let i = 0; i < 3; i++) {
      const plan = await dryRun(spec);
      expect(plan).toMatchObject({ dryRun: true, cached: false, spec: { name: 'dry', tag: 'latest', created: '1970-01-01T00:00:01Z', priority: 100 } });
      expect(plan.blobs).toEqual([{ digest, size: 8 }]);
      expect(plan.base).toBeUndefined();
      expect(plan.layers).toEqual([{ step: 'contents', contents: [0, 1], cached: false }]);
    }
    expect(service.output()).not.toMatch(/build queued/);
    // The tenant may queue one build: the dry runs took no place in the queue.
    const id = await submitBuild(service, spec);
    expect((await waitForBuild(service, id)).status).toBe('succeeded');
  });

  it('says what the build and layer caches hold', async () => {
    const id = await submitBuild(service, spec);
    const built = await waitForBuild(service, id);
    const cachedFrom = built.cachedFrom ?? id;
    const plan = await dryRun(spec);
    expect(plan).toMatchObject({ cached: true, cachedFrom });
    expect(plan.layers).toEqual([{ step: 'contents', contents: [0, 1], diffId: built.result?.diffIds[0], size: expect.any(Number), cached: true }]);

    const fresh = await dryRun(spec, '&noCache=true');
    expect(fresh.cached).toBe(false);
    expect(fresh.layers[0]?.cached).toBe(false);

    // On top of that build, with a script: the base's layer is reused, the script would run.
    const onTop = await dryRun({ name: 'dry-top', fromImage: { build: id }, runAsRoot: 'touch /c' });
    expect(onTop.base).toEqual({ from: { build: id }, imageId: built.result?.imageId, layers: 1, cached: true });
    expect(onTop.layers).toEqual([
      { step: 'base', diffId: built.result?.diffIds[0], size: expect.any(Number), cached: true },
      { step: 'script', cached: false },
    ]);
    expect(onTop.cached).toBe(false);
  });

  it('plans one layer per entry with layering, and an uploaded base archive as to be imported', async () => {
    const layered = await dryRun({ ...spec, layering: { maxLayers: 5 } });
    expect(layered.layers.map((l) => [l.step, l.contents])).toEqual([
      ['contents', [0]],
      ['contents', [1]],
    ]);
    const onArchive = await dryRun({ name: 'dry-archive', fromImage: { blob: digest }, contents: [{ text: 'x', to: '/x' }] });
    expect(onArchive.base).toEqual({ from: { blob: digest }, cached: false });
    expect(onArchive.layers).toEqual([{ step: 'contents', contents: [0], cached: false }]);
  });

  it('refuses what a submission would refuse, pointing at the field', async () => {
    const res = await fetch(`${service.url}/v1/builds?dryRun=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'dry',
        contents: [
          { text: 'x', to: '/x' },
          { file: `sha256:${'1'.repeat(64)}`, to: '/y' },
        ],
      }),
    });
    expect(res.status).toBe(422);
    const problem = (await res.json()) as { errors: Array<{ pointer: string }> };
    expect(problem.errors.map((e) => e.pointer)).toEqual(['/contents/1/file']);
  });
});
