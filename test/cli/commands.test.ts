/**
 * `baler status|logs|cancel|download|push` and the token, against the real service (src/main.ts
 * with its worker and a private Redis) with bearer tokens on.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baler, BALER_BIN } from '../support/cli.ts';
import { startService, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

const TOKEN = 'cli-test-token-0123456789';

let service: Service;
let work: string;
let built: string;
const as = { env: { BALER_TOKEN: TOKEN } };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-cli-'));
  const tokens = join(work, 'tokens');
  await writeFile(tokens, `cli ${TOKEN}\n`);
  service = await startService({ BALER_TOKENS_FILE: tokens });
  // A build with a log and a small image (no busybox: it would not be run).
  const spec = join(work, 'logged.json');
  await writeFile(spec, JSON.stringify({ name: 'logged', contents: [{ text: 'hi\n', to: '/etc/motd' }], runAsRoot: 'echo line one\necho line two\n' }));
  const submitted = await baler(service.url, ['build', spec, '--wait'], as);
  expect(submitted.code, submitted.stderr).toBe(0);
  built = submitted.stdout.trim();
}, 300_000);
afterAll(async () => {
  await service?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('tokens', () => {
  it('without one: the 401 problem', async () => {
    const { code, stderr } = await baler(service.url, ['status', built]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: Unauthorized \(401\): /);
  });

  it('--token works like BALER_TOKEN', async () => {
    const { code, stdout } = await baler(service.url, ['--token', TOKEN, 'status', built]);
    expect(code).toBe(0);
    expect(stdout).toContain(`build ${built}: succeeded`);
  });
});

describe('status', () => {
  it('in words', async () => {
    const { code, stdout } = await baler(service.url, ['status', built], as);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^build ${built}: succeeded\n  image     logged:latest \\(docker-archive, gzip\\)\n  created   `));
    expect(stdout).toMatch(/^  finished  \S+ \([\d.]+ s\)$/m);
    expect(stdout).toMatch(/^  image id  sha256:[a-f0-9]{64}$/m);
    expect(stdout).toMatch(/^  archive   sha256:[a-f0-9]{64}, [\d.]+ (B|KiB|MiB)$/m);
  });

  it('--json: the build record', async () => {
    const { stdout } = await baler(service.url, ['status', built, '--json'], as);
    expect(JSON.parse(stdout)).toMatchObject({ id: built, status: 'succeeded', spec: { name: 'logged' } });
  });

  it('of no such build: the 404 problem', async () => {
    const { code, stderr } = await baler(service.url, ['status', 'aaaaaaaaaaaaaaaaaaaaaaaaaa'], as);
    expect(code).toBe(1);
    expect(stderr).toBe('error: Not Found (404): build aaaaaaaaaaaaaaaaaaaaaaaaaa not found\n');
  });
});

describe('logs', () => {
  it('prints the log', async () => {
    const { code, stdout } = await baler(service.url, ['logs', built], as);
    expect(code).toBe(0);
    expect(stdout).toContain('line one\nline two\n');
  });

  it('--follow of a finished build prints it all and ends', async () => {
    for (const extra of [[], ['--poll']]) {
      const { code, stdout } = await baler(service.url, ['logs', built, '--follow', ...extra], as);
      expect(code).toBe(0);
      expect(stdout).toContain('line one\nline two\n');
    }
  });
});

describe('download', () => {
  it("writes the archive, under the server's file name by default", async () => {
    const { code, stderr } = await baler(service.url, ['download', built], { ...as, cwd: work });
    expect(code, stderr).toBe(0);
    const build = JSON.parse((await baler(service.url, ['status', built, '--json'], as)).stdout) as { result: { archive: { digest: string } } };
    const bytes = await readFile(join(work, 'logged-latest.tar.gz'));
    expect(`sha256:${createHash('sha256').update(bytes).digest('hex')}`).toBe(build.result.archive.digest);
    expect(stderr).toMatch(/^download logged-latest\.tar\.gz: done, [\d.]+ (B|KiB) \(sha256:[a-f0-9]{64}\)$/m);
  });

  it('--format and -o -: another format to stdout', async () => {
    const { code, stdout } = await baler(service.url, ['download', built, '--format', 'rootfs', '-o', '-'], as);
    expect(code).toBe(0);
    expect(stdout).toContain('etc/motd');
  });

  it('a format the server does not have: its 400 problem', async () => {
    const { code, stderr } = await baler(service.url, ['download', built, '--format', 'zip', '-o', join(work, 'x')], as);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: Bad Request \(400\): /);
  });
});

describe('cancel', () => {
  it('stops a build that --wait follows (exit code 1), and a second cancel is the 409 problem', async () => {
    const spec = join(work, 'slow.json');
    await writeFile(spec, JSON.stringify({ name: 'slow', runAsRoot: 'echo sleeping\nsleep 600\n' }));
    // The CLI prints the id on stdout as soon as the build is submitted, then follows it.
    const following = spawn(BALER_BIN, ['build', spec, '--wait', '--no-cache'], { env: { ...process.env, BALER_URL: service.url, BALER_TOKEN: TOKEN } });
    let stdout = '';
    let stderr = '';
    following.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    following.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => following.once('exit', (code) => resolve(code)));
    await until(() => stdout.includes('\n'), 60_000);
    const id = stdout.trim();
    await until(() => stderr.includes(`build ${id}: running`), 120_000);
    const cancelled = await baler(service.url, ['cancel', id], as);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toBe(`build ${id}: cancelled\n`);
    expect(await exited).toBe(1);
    expect(stdout).toBe(`${id}\n`);
    expect(stderr).toContain(`build ${id}: cancelled\n`);

    const again = await baler(service.url, ['cancel', id, '--json'], as);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(`error: Conflict (409): build ${id} is cancelled; only queued or running builds can be cancelled\n`);
  }, 300_000);
});

describe('push', () => {
  it('to a registry the operator does not allow: the 422 problem', async () => {
    const { code, stderr } = await baler(service.url, ['push', built, '127.0.0.1:5999/logged:1'], as);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^error: Unprocessable Content \(422\): .*127\.0\.0\.1:5999/);
  });
});
