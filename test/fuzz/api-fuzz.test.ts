/**
 * Hostile input at volume: generated specs (and JSON garbage) at the build API, and mutated
 * tars through upload and build. No response may be a 5xx, no process may crash, every build
 * must end, and the service must still be healthy afterwards. Counts: FUZZ_SPECS (default
 * 500) and FUZZ_TARS (default 50); `npm run test:faults` runs 10,000 and 1,000.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { startService, type BuildView, type Service } from '../support/service.ts';

const SPECS = Number(process.env.FUZZ_SPECS ?? 500);
const TARS = Number(process.env.FUZZ_TARS ?? 50);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);

const digest = fc.oneof(
  fc.hexaString({ minLength: 64, maxLength: 64 }).map((h) => `sha256:${h.toLowerCase().padEnd(64, '0')}`),
  fc.string(),
);
const path = fc.oneof(fc.constantFrom('/', '/etc/motd', '../x', '/a/../../b', '', '//x//y', `/${'d'.repeat(5000)}`), fc.string(), fc.fullUnicodeString());
const mode = fc.oneof(fc.constantFrom('0755', '4755', '999', '0', '07777', 'rwx'), fc.string());
const content = fc.oneof(
  fc.record({ tar: digest, to: path, preserveOwners: fc.anything() }, { requiredKeys: ['tar'] }),
  fc.record({ file: digest, to: path, mode }, { requiredKeys: ['file'] }),
  fc.record({ text: fc.string(), to: path, mode }, { requiredKeys: ['text'] }),
  fc.record({ dir: path, mode }, { requiredKeys: [] }),
  fc.record({ symlink: path, target: fc.string() }, { requiredKeys: [] }),
  fc.anything(),
);
const spec = fc.record(
  {
    name: fc.oneof(fc.constantFrom('ok', 'UP', 'a//b', 'host:1/x', 'x'.repeat(300)), fc.string(), fc.anything()),
    tag: fc.oneof(fc.constantFrom('latest', '.x', 'x'.repeat(200)), fc.string()),
    contents: fc.oneof(fc.array(content, { maxLength: 5 }), fc.anything()),
    config: fc.oneof(
      fc.record({ Cmd: fc.array(fc.string()), Env: fc.array(fc.string()), User: fc.string(), ExposedPorts: fc.dictionary(fc.string(), fc.anything()) }, { requiredKeys: [] }),
      fc.anything(),
    ),
    uid: fc.oneof(fc.integer(), fc.double(), fc.string()),
    gid: fc.oneof(fc.integer({ min: -5, max: 2 ** 33 }), fc.constant(null)),
    created: fc.oneof(fc.constantFrom('now', '2024-13-45T99:99:99Z', '1970-01-01T00:00:01Z'), fc.string()),
    compression: fc.oneof(fc.constantFrom('gzip', 'zstd', 'none', 'lz4'), fc.anything()),
    format: fc.oneof(fc.constantFrom('docker-archive', 'rootfs', 'oci-archive', 'zip'), fc.anything()),
    fromImage: fc.oneof(fc.record({ build: fc.string() }), fc.record({ blob: digest }), fc.anything()),
    runAsRoot: fc.oneof(fc.string(), fc.anything()),
    diskSize: fc.oneof(fc.integer(), fc.anything()),
    priority: fc.integer({ min: -10, max: 2000 }),
    unknownField: fc.anything(),
  },
  { requiredKeys: [] },
);
// A valid spec with one field replaced by a generated one: reaches the checks after the schema.
const valid = fc.record(
  {
    name: fc.constantFrom('ok', 'team/app', 'localhost:5000/x'),
    tag: fc.constantFrom('latest', 'v1.2'),
    contents: fc.array(fc.oneof(fc.record({ text: fc.string(), to: fc.constantFrom('/a', '/b/c') }), fc.record({ dir: fc.constantFrom('/d', '/e/f') })), { maxLength: 3 }),
  },
  { requiredKeys: ['name'] },
);
const nearlyValid = fc
  .tuple(valid, fc.constantFrom('name', 'tag', 'contents', 'config', 'uid', 'created', 'compression', 'format', 'fromImage', 'runAsRoot', 'diskSize', 'priority'), spec)
  .map(([v, key, generated]) => ({ ...v, [key]: (generated as Record<string, unknown>)[key] }));
const body = fc.oneof(
  { weight: 4, arbitrary: spec.map((s) => JSON.stringify(s)) },
  { weight: 4, arbitrary: nearlyValid.map((s) => JSON.stringify(s)) },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v).slice(0, -1)) },
);

let service: Service;
beforeAll(async () => {
  // The spec fuzz needs no worker: valid specs just wait in the queue.
  service = await startService({ BALER_LOCAL_WORKERS: '0', BALER_TENANT_MAX_QUEUED: '1000000' });
}, 60_000);
afterAll(async () => service?.stop(), 60_000);

describe('generated specs', () => {
  it(`${SPECS} specs: no 5xx, no crash, still healthy`, async () => {
    const bodies = fc.sample(body, { numRuns: SPECS, seed: SEED });
    const statuses = new Map<number, number>();
    for (const text of bodies) {
      const res = await fetch(`${service.url}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
      await res.arrayBuffer();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500) throw new Error(`status ${res.status} for ${text.slice(0, 500)}`);
    }
    console.log(
      `fuzz: ${bodies.length} generated specs → ${[...statuses]
        .sort()
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}; 0 responses ≥ 500`,
    );
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    expect(service.output()).not.toMatch(/"level":(50|60)/);
  }, 600_000);
});

describe('mutated tars', () => {
  let worker: Service;
  let work: string;
  beforeAll(async () => {
    worker = await startService();
    work = await mkdtemp(join(tmpdir(), 'baler-fuzz-'));
  }, 60_000);
  afterAll(async () => {
    await worker?.stop();
    await rm(work, { recursive: true, force: true });
  }, 60_000);

  it(`${TARS} mutated tars through upload and build: every build ends, no crash, still healthy`, async () => {
    const root = join(work, 'root');
    await run('sh', ['-ec', `mkdir -p ${root}/a/b && echo hi > ${root}/a/f && ln ${root}/a/f ${root}/a/h && ln -s /etc ${root}/s && echo x > ${root}/a/b/${'n'.repeat(120)} && mkdir ${root}/ü`]);
    const tars = await Promise.all(
      ['gnu', 'pax'].map(async (format) => {
        const p = join(work, `${format}.tar`);
        await run('tar', [`--format=${format}`, '-C', root, '-cf', p, '.']);
        return readFile(p);
      }),
    );
    const mutation = fc.record({
      which: fc.nat(1),
      flips: fc.array(fc.record({ at: fc.nat(), byte: fc.nat(255) }), { minLength: 1, maxLength: 8 }),
      truncate: fc.option(fc.nat()),
      headerOnly: fc.boolean(),
    });
    const workerPid = await worker.workerPid();
    const ids: string[] = [];
    for (const m of fc.sample(mutation, { numRuns: TARS, seed: SEED })) {
      const tar = Buffer.from(tars[m.which] as Buffer);
      // Mostly in headers (the first blocks of entries), where parsing decisions are made.
      for (const flip of m.flips) tar[m.headerOnly ? (flip.at % 8) * 512 + (flip.at % 512) : flip.at % tar.length] = flip.byte;
      const data = m.truncate === null ? tar : tar.subarray(0, m.truncate % tar.length);
      const upload = await fetch(`${worker.url}/v1/blobs`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: data });
      expect(upload.status).toBeLessThan(500);
      const { digest: d } = (await upload.json()) as { digest: string };
      const submit = await fetch(`${worker.url}/v1/builds`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'fuzz', compression: 'none', contents: [{ tar: d }] }),
      });
      expect(submit.status).toBe(202);
      ids.push(((await submit.json()) as { id: string }).id);
    }
    const outcomes = new Map<string, number>();
    for (const id of ids) {
      let build: BuildView;
      for (;;) {
        build = (await (await fetch(`${worker.url}/v1/builds/${id}`)).json()) as BuildView;
        if (build.status === 'succeeded' || build.status === 'failed') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (build.status === 'failed') expect(build.error?.status, build.error?.detail).toBe(422);
      outcomes.set(build.status, (outcomes.get(build.status) ?? 0) + 1);
    }
    console.log(`fuzz: ${ids.length} mutated tars → ${[...outcomes].map(([s, n]) => `${s}×${n}`).join(' ')}; worker never restarted`);
    expect(await worker.workerPid()).toBe(workerPid);
    expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
  }, 900_000);
});
