/**
 * Every client mistake gets an RFC 9457 problem with the right 4xx, never a 500, against the
 * real service (its own process, real Redis, a real worker).
 */
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';

const UPLOAD_LIMIT = 1024 * 1024;
const JSON_LIMIT = 64 * 1024;
const NOT_STORED = `sha256:${'0'.repeat(64)}`;

let service: Service;

beforeAll(async () => {
  service = await startService({ BALER_MAX_UPLOAD_BYTES: String(UPLOAD_LIMIT), BALER_MAX_JSON_BYTES: String(JSON_LIMIT) });
}, 60_000);

afterAll(async () => {
  // No request above may have crashed or 500'd the service.
  expect(service.output()).not.toMatch(/"level":(50|60)/);
  await service?.stop();
});

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: Array<{ pointer?: string; parameter?: string; message: string }>;
}

async function expectProblem(res: Response, status: number): Promise<Problem> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Problem;
  expect(body).toMatchObject({ status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  return body;
}

const post = (path: string, body: string, type = 'application/json') => fetch(`${service.url}${path}`, { method: 'POST', headers: { 'content-type': type }, body });

describe('client mistakes', () => {
  it('malformed JSON is 400', async () => {
    const problem = await expectProblem(await post('/v1/builds', '{"name": "x",'), 400);
    expect(problem.detail).toMatch(/malformed JSON/);
  });

  it('a schema violation is 400 and names the field', async () => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', contents: [{ text: 'x' }], uid: -1, extra: true })), 400);
    expect(problem.errors).toEqual(
      expect.arrayContaining([{ pointer: '/extra', message: 'unknown field' }, { pointer: '/contents/0/to', message: 'is required' }, expect.objectContaining({ pointer: '/uid' })]),
    );
  });

  it('detail and errors point at the bad field with a JSON Pointer (RFC 6901)', async () => {
    const spec = { name: 'ok', contents: [{ dir: '/a' }, { dir: '/b' }, { text: 'x', to: '/x', mode: 755 }], config: { 'a/b~c': 1 } };
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify(spec)), 400);
    expect(problem.detail).toContain('/contents/2/mode: must be string');
    expect(problem.detail).toContain('/config/a~1b~0c: unknown field');
    expect(problem.errors).toContainEqual({ pointer: '/contents/2/mode', message: 'must be string' });
    expect(problem.errors).toContainEqual({ pointer: '/config/a~1b~0c', message: 'unknown field' });
  });

  it('a bad query parameter is 400 naming the parameter', async () => {
    const problem = await expectProblem(await post('/v1/builds?dryRun=yes', JSON.stringify({ name: 'ok' })), 400);
    expect(problem.errors).toEqual([{ parameter: 'dryRun', message: 'must be equal to one of the allowed values' }]);
    expect(problem.detail).toBe('invalid query: ?dryRun: must be equal to one of the allowed values');
  });

  it('a variant its architecture lacks, or scripts for an architecture baler has no VM of, is 400 naming the field', async () => {
    const variant = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', variant: 'v8' })), 400);
    expect(variant.errors).toEqual([{ pointer: '/variant', message: "amd64 images have no variant, not 'v8'" }]);
    expect((await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', architecture: 'arm64', variant: 'v7' })), 400)).errors).toContainEqual(
      expect.objectContaining({ pointer: '/variant' }),
    );
    const scripts = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', architecture: 'riscv64', runAsRoot: 'true' })), 400);
    expect(scripts.errors).toEqual([{ pointer: '/runAsRoot', message: 'scripts run in a VM of the platform built; baler has no linux/riscv64 VM (it has linux/amd64, linux/arm64)' }]);
  });

  it('a missing name is 400', async () => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ contents: [] })), 400);
    expect(problem.errors).toContainEqual({ pointer: '/name', message: 'is required' });
  });

  it.each([
    ['UpperCase', /lowercase/],
    ['a//b', /empty path components/],
    ['-leading', /must be lowercase letters and digits/],
    ['x'.repeat(256), /at most 255/],
    ['my.registry:port/app', /numeric port/],
  ])('name %j is 400 saying which rule failed', async (name, rule) => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ name })), 400);
    expect(problem.errors?.find((e) => e.pointer === '/name')?.message).toMatch(rule);
  });

  it('a bad tag is 400 saying which rule failed', async () => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', tag: '.hidden' })), 400);
    expect(problem.errors?.find((e) => e.pointer === '/tag')?.message).toMatch(/not starting with '\.' or '-'/);
  });

  it('a content entry of no known kind is 400', async () => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', contents: [{ copy: 'x' }] })), 400);
    expect(problem.errors?.[0]?.message).toMatch(/exactly one of the keys tar, file, text, dir, symlink/);
  });

  it('a JSON body nested deeper than 32 levels is 400', async () => {
    const deep = `{"name":"x","config":{"Labels":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`;
    const problem = await expectProblem(await post('/v1/builds', deep), 400);
    expect(problem.detail).toMatch(/nests deeper than 32 levels/);
  });

  it('a JSON body that is not an object is 400', async () => {
    await expectProblem(await post('/v1/builds', '[1,2]'), 400);
    await expectProblem(await post('/v1/builds', 'null'), 400);
  });

  it('a spec naming a blob that is not stored is 422', async () => {
    const problem = await expectProblem(await post('/v1/builds', JSON.stringify({ name: 'ok', contents: [{ dir: '/d' }, { tar: NOT_STORED }] })), 422);
    expect(problem.detail).toContain(`/contents/1/tar: blob ${NOT_STORED} not found`);
    expect(problem.errors).toEqual([{ pointer: '/contents/1/tar', message: `blob ${NOT_STORED} not found (upload it to /v1/blobs first)` }]);
  });

  it('an upload whose content does not match ?digest= is 422, and nothing is stored', async () => {
    const problem = await expectProblem(await post(`/v1/blobs?digest=${NOT_STORED}`, 'some bytes', 'application/octet-stream'), 422);
    expect(problem.detail).toMatch(/does not match/);
    expect((await fetch(`${service.url}/v1/blobs/${NOT_STORED}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('a malformed ?digest= is 400', async () => {
    await expectProblem(await post('/v1/blobs?digest=md5:abc', 'x', 'application/octet-stream'), 400);
  });

  it('an unknown build is 404, for the build and its image', async () => {
    await expectProblem(await fetch(`${service.url}/v1/builds/aaaaaaaaaaaaaaaaaaaaaaaaaa`), 404);
    await expectProblem(await fetch(`${service.url}/v1/builds/not-an-id/image`), 404);
    await expectProblem(await fetch(`${service.url}/v1/blobs/${NOT_STORED}`), 404);
  });

  it('a JSON body over the limit is 413', async () => {
    const big = JSON.stringify({ name: 'ok', contents: [{ text: 'x'.repeat(JSON_LIMIT), to: '/big' }] });
    await expectProblem(await post('/v1/builds', big), 413);
  });

  it('an upload over the limit is 413, declared or streamed', async () => {
    await expectProblem(await post('/v1/blobs', 'x'.repeat(UPLOAD_LIMIT + 1), 'application/octet-stream'), 413);
    // Chunked, with no Content-Length: refused while streaming.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 5) controller.enqueue(new Uint8Array(UPLOAD_LIMIT / 2));
        else controller.close();
      },
    });
    const res = await fetch(`${service.url}/v1/blobs`, { method: 'POST', body, duplex: 'half' } as RequestInit).catch((err: Error) => err);
    // The server may answer 413 and close before the client has sent everything.
    if (res instanceof Response) await expectProblem(res, 413);
    else expect(res.message).toMatch(/fetch failed|socket|closed/);
  });

  it('a wrong method is 405 with Allow', async () => {
    const res = await fetch(`${service.url}/v1/builds`, { method: 'PUT' });
    await expectProblem(res, 405);
    expect(res.headers.get('allow')).toBe('GET, HEAD, POST');
    const del = await fetch(`${service.url}/v1/blobs/${NOT_STORED}`, { method: 'DELETE' });
    await expectProblem(del, 405);
    expect(del.headers.get('allow')).toBe('GET, HEAD');
  });

  it('a build spec in another content type is 415', async () => {
    await expectProblem(await post('/v1/builds', 'name=x', 'application/x-www-form-urlencoded'), 415);
  });

  it('an unknown route is 404', async () => {
    await expectProblem(await fetch(`${service.url}/v2/nothing`), 404);
  });
});

describe('builds that fail', () => {
  it('a tar blob that is not a tar ends failed with the reason, and its image is 409', async () => {
    const path = join(tmpdir(), `not-a-tar-${process.pid}`);
    await writeFile(path, 'this is plain text, not a tar archive\n'.repeat(40));
    const digest = await uploadFile(service, path);
    const id = await submitBuild(service, { name: 'broken', contents: [{ tar: digest }] });
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/not a valid tar: not a tar archive: bad header checksum/);
    const problem = await expectProblem(await fetch(`${service.url}/v1/builds/${id}/image`), 409);
    expect(problem.detail).toMatch(/failed/);
  });

  it('a gzip blob with a broken stream ends failed with the reason', async () => {
    const path = join(tmpdir(), `bad-gzip-${process.pid}`);
    await writeFile(path, Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), Buffer.alloc(100, 0xff)]));
    const id = await submitBuild(service, { name: 'broken', contents: [{ tar: await uploadFile(service, path) }] });
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/not valid gzip/);
  });

  it('a tar with a device node outside /dev/ ends failed (devices are for the operator to allow)', async () => {
    const dir = join(tmpdir(), `device-${process.pid}`);
    await run('sh', ['-c', `mkdir -p ${dir} && mknod ${dir}/null c 1 3 && tar -C ${dir} -cf ${dir}.tar .`]);
    const id = await submitBuild(service, { name: 'device', contents: [{ tar: await uploadFile(service, `${dir}.tar`) }] });
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/'null' is a device node outside \/dev\/; .* unless the operator sets BALER_ALLOW_DEVICES=1$/);
  });

  it('a tar entry escaping with .. ends failed', async () => {
    const dir = join(tmpdir(), `dotdot-${process.pid}`);
    await run('sh', ['-c', `mkdir -p ${dir}/a && echo x > ${dir}/a/f && tar -C ${dir}/a -P -cf ${dir}.tar ../a/f`]);
    const id = await submitBuild(service, { name: 'escape', contents: [{ tar: await uploadFile(service, `${dir}.tar`) }] });
    const build = await waitForBuild(service, id);
    expect(build.status).toBe('failed');
    expect(build.error?.detail).toMatch(/contains '\.\.'/);
  });

  it('a running or queued build answers 409 for its image', async () => {
    const path = join(tmpdir(), `ok-${process.pid}`);
    await writeFile(path, 'x');
    const id = await submitBuild(service, { name: 'pending', contents: [{ file: await uploadFile(service, path), to: '/x' }] });
    const res = await fetch(`${service.url}/v1/builds/${id}/image`);
    // It may already have succeeded on a fast machine; then the download works.
    expect([200, 409]).toContain(res.status);
    await waitForBuild(service, id);
  });
});
