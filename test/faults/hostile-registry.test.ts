/**
 * A compromised registry on the operator's allow-list (issue 12, attack 8), against the real
 * service and worker: redirects are followed only to allowed hosts, credentials go only to
 * the host they were configured for, and a foreign error comes back as its status and a short
 * sanitised reason. The registry, the host it redirects to and its token realm are node:http
 * servers on loopback (compromised-registry.ts) that record what they receive.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runAttack, submitAndWait, type AttackResult } from '../support/hostile/attack.ts';
import { MAX_ERROR_TEXT_CHARS } from '../support/hostile/budgets.ts';
import { startCompromisedRegistry, type CompromisedRegistry } from '../support/hostile/compromised-registry.ts';
import { startHostileService, type HostileService } from '../support/hostile/hostile-service.ts';
import { until } from '../support/wait.ts';

const ATTACKER = 'registry';
let registry: CompromisedRegistry;
let hostile: HostileService;
let dir: string;

beforeAll(async () => {
  registry = await startCompromisedRegistry();
  dir = await mkdtemp(join(tmpdir(), 'baler-hostile-registry-'));
  const registries = join(dir, 'registries.json');
  await writeFile(registries, JSON.stringify({ [registry.host]: { insecure: true, username: registry.username, password: registry.password } }));
  hostile = await startHostileService({ tenants: [ATTACKER], quota: 256 * 1024 * 1024, env: { BALER_REGISTRIES_FILE: registries } });
}, 180_000);

afterAll(async () => {
  await hostile?.stop();
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
}, 60_000);

const pull = (repository: string) => ({ name: 'hostile/pulled', fromImage: { ref: `${registry.host}/${repository}:1` } });
const CONTROL_CHARACTERS = /[\x00-\x08\x0b-\x1f\x7f]/;

it('a redirect to a host not on the allow-list is not followed: that host receives nothing', async () => {
  const report = await runAttack(hostile, 'registry redirect to another host', () => submitAndWait(hostile.as(ATTACKER), pull('redirect/app'), 60_000));
  expect(registry.elsewhere.requests.filter((r) => r.url.startsWith('/v2/redirect/'))).toEqual([]);
  expect(report.result.outcome).toBe('failed 422');
}, 120_000);

it('a token realm on another port never receives the Basic credentials', async () => {
  const report = await runAttack(hostile, 'registry token realm on another port', () => submitAndWait(hostile.as(ATTACKER), pull('realm/app'), 60_000));
  expect(registry.realm.requests.filter((r) => r.authorization !== undefined)).toEqual([]);
  expect(report.result.outcome).toBe('failed 422');
}, 120_000);

it('a 500 with ANSI escapes and 1 MiB of text is reported as its status and a short, clean reason', async () => {
  const report = await runAttack(hostile, 'registry 500 with ANSI and 1 MiB', () => submitAndWait(hostile.as(ATTACKER), pull('noisy/app'), 60_000));
  // Failed, whatever status baler gives a registry's 500 (a 5xx is retried, as it may pass).
  expect(report.result.build?.status, report.result.outcome).toBe('failed');
  const detail = report.result.detail ?? '';
  expect(detail).toMatch(/500/);
  expect(detail).not.toMatch(CONTROL_CHARACTERS);
  expect(detail.length).toBeLessThanOrEqual(MAX_ERROR_TEXT_CHARS);
  expect(detail).not.toContain('the registry is on fire the registry is on fire');
}, 120_000);

it('an upload Location on another host never receives the Authorization header', async () => {
  const client = hostile.as(ATTACKER);
  const built = await submitAndWait(client, { name: 'hostile/to-push', contents: [{ text: 'pushed\n', to: '/pushed' }] }, 60_000);
  expect(built.outcome, built.detail).toBe('succeeded');
  const id = built.build?.id as string;
  const ref = `${registry.host}/upload/app:1`;
  const report = await runAttack(hostile, 'registry upload Location on another host', async (): Promise<AttackResult> => {
    const startedAt = Date.now();
    const res = await client.request(`/v1/builds/${id}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ref }) });
    if (res.status !== 202) return { outcome: `push refused ${res.status}`, status: res.status, timeToEndMs: Date.now() - startedAt };
    type Pushes = { pushes?: Record<string, { status: string; error?: string }> };
    const push = async () => ((await client.build(id)) as Pushes).pushes?.[ref];
    await until(async () => ['succeeded', 'failed'].includes((await push())?.status ?? ''), 60_000);
    const ended = await push();
    return { outcome: `push ${ended?.status}`, detail: ended?.error, timeToEndMs: Date.now() - startedAt };
  });
  expect(registry.elsewhere.requests.filter((r) => r.url.startsWith('/upload-session') && r.authorization !== undefined)).toEqual([]);
  expect(report.result.outcome).toBe('push failed');
}, 120_000);
