/**
 * Issue 15, `platforms`: a two-platform contents-only build (no VM step, so no arm64 VM),
 * each platform with a file of its own, a static busybox of its architecture (the host's
 * Debian busybox-static; Debian's arm64 one, support/arm64-busybox.ts) and one shared file,
 * through the API: the oci-archive holds an image index over linux/amd64 and linux/arm64
 * (skopeo), `?platform=` downloads one image (skopeo, and `docker load` in a private dockerd),
 * a push uploads both and the index under one tag (Debian's docker-registry, skopeo
 * `--override-arch`) and each image fetched from there runs: amd64 natively in the dockerd,
 * arm64 emulated by qemu-aarch64-static over its unpacked layers; the oci-archive lists each
 * image's SBOM as an attestation manifest; and a rebuild without the caches gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { arm64Busybox } from '../support/arm64-busybox.ts';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { busyboxTar } from '../support/images.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';
import { until } from '../support/wait.ts';

let registry: TestRegistry;
let dockerd: Dockerd;
let service: Service;
let work: string;
let build: MultiBuild;
let SPEC: Omit<typeof BASE_SPEC, 'contents'> & { contents: Array<Record<string, string | undefined>> };

type Descriptor = { mediaType: string; digest: string; size: number; platform?: { architecture: string; os: string }; annotations?: Record<string, string> };
type PlatformImage = { platform: string; imageId: string; diffIds: string[]; manifest: { digest: string; size: number }; archive: { digest: string } };
type MultiBuild = BuildView & {
  result?: BuildView['result'] & { index?: { digest: string; size: number; mediaType: string }; platforms?: PlatformImage[] };
  platforms?: Array<{ platform: string; status: string; error?: string }>;
  pushes?: Record<string, { status: string; manifestDigest?: string; error?: string }>;
};

// What each platform's image prints when run: the machine its busybox runs as, and its own file.
const CMD = ['/bin/busybox', 'sh', '-c', 'echo "$(uname -m) $(cat /etc/arch.txt)"'];
const PRINTS = { amd64: 'x86_64 amd64', arm64: 'aarch64 arm64' };
const BASE_SPEC = {
  name: 'multi/hello',
  tag: '1.0',
  platforms: ['linux/amd64', 'linux/arm64'],
  contents: [
    { text: 'shared\n', to: '/etc/shared.txt' },
    { text: 'amd64\n', to: '/etc/arch.txt', platform: 'linux/amd64' },
    { text: 'arm64\n', to: '/etc/arch.txt', platform: 'linux/arm64' },
  ],
  config: { Cmd: CMD },
};

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const getBuild = async (id: string) => (await (await fetch(`${service.url}/v1/builds/${id}`)).json()) as MultiBuild;
const skopeo = async (args: string[]) => {
  const r = await run('skopeo', args);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
};

/** Unpacks an image skopeo copied to `dir:` into `root`; its config. */
async function unpackImage(dir: string, root: string): Promise<{ root: string; config: { architecture: string; config: { Cmd?: string[] } } }> {
  const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
  await mkdir(root, { recursive: true });
  // GNU tar detects the layers' compression itself.
  for (const layer of manifest.layers) {
    const r = await run('tar', ['-xf', join(dir, layer.digest.slice('sha256:'.length)), '-C', root]);
    expect(r.code, r.stderr).toBe(0);
  }
  return { root, config: JSON.parse(await readFile(join(dir, manifest.config.digest.slice('sha256:'.length)), 'utf8')) };
}

/** Whether binfmt_misc has `name` registered and enabled, with F (the interpreter works in a chroot). */
function binfmtRuns(name: string): boolean {
  const entry = `/proc/sys/fs/binfmt_misc/${name}`;
  if (!existsSync(entry)) return false;
  const text = readFileSync(entry, 'utf8');
  return /^enabled$/m.test(text) && /^flags: \w*F/m.test(text);
}

async function download(id: string, query = ''): Promise<{ path: string; res: Response; bytes: Buffer }> {
  const res = await fetch(`${service.url}/v1/builds/${id}/image${query}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(res.status, bytes.toString('utf8', 0, 500)).toBe(200);
  const path = join(work, `${id}-${Math.random().toString(36).slice(2)}.tar`);
  await writeFile(path, bytes);
  return { path, res, bytes };
}

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), 'baler-multi-platform-'));
  const registries = join(work, 'registries.json');
  await writeFile(registries, JSON.stringify({ [registry.host]: { insecure: true } }));
  const [amd64Tar, arm64Tar] = await Promise.all([busyboxTar(), arm64Busybox().then((b) => busyboxTar(b))]);
  [service, dockerd] = await Promise.all([startService({ BALER_REGISTRIES_FILE: registries }), startDockerd()]);
  const [amd64Blob, arm64Blob] = await Promise.all([uploadFile(service, amd64Tar), uploadFile(service, arm64Tar)]);
  SPEC = { ...BASE_SPEC, contents: [...BASE_SPEC.contents, { tar: amd64Blob, platform: 'linux/amd64' }, { tar: arm64Blob, platform: 'linux/arm64' }] };
  build = (await waitForBuild(service, await submitBuild(service, SPEC))) as MultiBuild;
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([service?.stop(), dockerd?.stop()]);
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

it('builds one image per platform and an index over them; the status shows each platform', async () => {
  expect(build.status, JSON.stringify(build.error)).toBe('succeeded');
  const record = await getBuild(build.id);
  expect(record.platforms).toEqual([
    { platform: 'linux/amd64', status: 'succeeded' },
    { platform: 'linux/arm64', status: 'succeeded' },
  ]);
  const result = record.result;
  expect(result?.archive.mediaType).toBe('application/x-tar');
  expect(result?.index?.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(result?.platforms?.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64']);
  // The shared entry and the platform's own are one layer; the two platforms' layers differ.
  const [amd64, arm64] = result?.platforms ?? [];
  expect(amd64?.imageId).not.toBe(arm64?.imageId);
  expect(amd64?.diffIds).toHaveLength(1);
  expect(amd64?.diffIds).not.toEqual(arm64?.diffIds);
  expect(result?.imageId).toBe(amd64?.imageId);
});

it('serves the index as an oci-archive that skopeo reads, each platform selectable', async () => {
  const { path, res, bytes } = await download(build.id);
  expect(res.headers.get('etag')).toContain(build.result?.archive.digest.slice('sha256:'.length));
  expect(sha256(bytes)).toBe(build.result?.archive.digest);
  const index = JSON.parse(await skopeo(['inspect', '--raw', `oci-archive:${path}`])) as { mediaType: string; manifests: Descriptor[] };
  expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  // The images, then each one's SBOM as an attestation manifest (BuildKit's layout; see README).
  expect(index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`)).toEqual(['linux/amd64', 'linux/arm64', 'unknown/unknown', 'unknown/unknown']);
  const record = await getBuild(build.id);
  expect(index.manifests.slice(0, 2).map((m) => m.digest)).toEqual(record.result?.platforms?.map((p) => p.manifest.digest));
  expect(index.manifests.slice(2).map((m) => [m.annotations?.['vnd.docker.reference.type'], m.annotations?.['vnd.docker.reference.digest']])).toEqual(
    record.result?.platforms?.map((p) => ['attestation-manifest', p.manifest.digest]),
  );

  for (const arch of ['amd64', 'arm64']) {
    const chosen = JSON.parse(await skopeo(['inspect', '--override-arch', arch, `oci-archive:${path}`])) as { Architecture: string; Digest: string };
    expect(chosen.Architecture).toBe(arch);
    const dir = join(work, `copy-${arch}`);
    await skopeo(['copy', '--override-arch', arch, `oci-archive:${path}`, `dir:${dir}`]);
    const config = JSON.parse(await readFile(join(dir, (JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { config: { digest: string } }).config.digest.slice(7)), 'utf8'));
    expect(config.architecture).toBe(arch);
  }
});

it('downloads one platform with ?platform= in any format; a platform the build lacks is 404 naming those it has', async () => {
  const record = await getBuild(build.id);
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const arch = platform.slice('linux/'.length);
    // Debian 12's skopeo cannot read a gzip'd docker-archive (README): an uncompressed one.
    const docker = await download(build.id, `?format=docker-archive&compression=none&platform=${platform}`);
    const inspected = JSON.parse(await skopeo(['inspect', `docker-archive:${docker.path}`])) as { Architecture: string };
    expect(inspected.Architecture).toBe(arch);
    // And Docker loads the gzip'd docker-archive as that platform's image.
    const gzipped = await download(build.id, `?format=docker-archive&platform=${platform}`);
    const load = await dockerd.docker(['load', '-i', gzipped.path]);
    expect(load.code, load.stderr).toBe(0);
    const loaded = await dockerd.docker(['image', 'inspect', '--format', '{{.Architecture}} {{.Id}}', 'multi/hello:1.0']);
    expect(loaded.stdout.trim()).toBe(`${arch} ${record.result?.platforms?.find((p) => p.platform === platform)?.imageId}`);
    const dockerOci = await download(build.id, `?format=docker-archive-oci&platform=${platform}`);
    expect(JSON.parse(await skopeo(['inspect', `docker-archive:${dockerOci.path}`])).Architecture).toBe(arch);
    // The platform's own oci-archive is the one its result describes.
    const oci = await download(build.id, `?format=oci-archive&platform=${platform}`);
    expect(sha256(oci.bytes)).toBe(record.result?.platforms?.find((p) => p.platform === platform)?.archive.digest);
  }
  // Without ?platform=, a single-image format is this host's platform.
  const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const docker = await download(build.id, '?format=docker-archive&compression=none');
  expect(JSON.parse(await skopeo(['inspect', `docker-archive:${docker.path}`])).Architecture).toBe(host);

  const single = await waitForBuild(service, await submitBuild(service, { name: 'multi/single', contents: [{ text: 'x', to: '/x' }] }));
  const notBuilt = await fetch(`${service.url}/v1/builds/${single.id}/image?platform=linux/arm64`);
  expect(notBuilt.status).toBe(404);
  expect(((await notBuilt.json()) as { detail: string }).detail).toMatch(/linux\/amd64/);
});

it('pushes every platform and the index under one tag; skopeo --override-arch fetches each image', async () => {
  const ref = `${registry.host}/multi/hello:1.0`;
  expect((await fetch(`${service.url}/v1/builds/${build.id}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ref }) })).status).toBe(202);
  await until(async () => ['succeeded', 'failed'].includes((await getBuild(build.id)).pushes?.[ref]?.status ?? ''), 60_000);
  const record = await getBuild(build.id);
  const pushed = record.pushes?.[ref];
  expect(pushed?.status, pushed?.error).toBe('succeeded');
  // gzip layers, as the build's own: the index is the build's.
  expect(pushed?.manifestDigest).toBe(record.result?.index?.digest);

  const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  expect(sha256(Buffer.from(raw, 'utf8'))).toBe(record.result?.index?.digest);
  const index = JSON.parse(raw) as { mediaType: string; manifests: Descriptor[] };
  expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
  expect(index.manifests.map((m) => m.platform?.architecture)).toEqual(['amd64', 'arm64']);

  for (const p of record.result?.platforms ?? []) {
    const arch = p.platform.slice('linux/'.length);
    const dir = join(work, `pulled-${arch}`);
    await skopeo(['copy', '--src-tls-verify=false', '--override-arch', arch, `docker://${ref}`, `dir:${dir}`]);
    const manifest = await readFile(join(dir, 'manifest.json'));
    expect(sha256(manifest)).toBe(p.manifest.digest);
    expect((JSON.parse(manifest.toString('utf8')) as { config: { digest: string } }).config.digest).toBe(p.imageId);
  }

  // amd64 runs natively: its image as skopeo fetches it, loaded into the dockerd.
  const archive = join(work, 'pulled-amd64.tar');
  await skopeo(['copy', '--src-tls-verify=false', '--override-arch', 'amd64', `docker://${ref}`, `docker-archive:${archive}:multi/pulled:amd64`]);
  const load = await dockerd.docker(['load', '-i', archive]);
  expect(load.code, load.stderr).toBe(0);
  const ran = await dockerd.docker(['run', '--rm', '--network', 'none', 'multi/pulled:amd64']);
  expect(ran.code, ran.stderr).toBe(0);
  expect(ran.stdout.trim()).toBe(PRINTS.amd64);

  // arm64 runs emulated: qemu-aarch64-static runs the image's busybox from its unpacked layers.
  const { root, config } = await unpackImage(join(work, 'pulled-arm64'), join(work, 'root-arm64'));
  expect(config.architecture).toBe('arm64');
  expect(config.config.Cmd).toEqual(CMD);
  const qemu = async (args: string[]) => {
    const r = await run('qemu-aarch64-static', [join(root, 'bin/busybox'), ...args]);
    expect(r.code, r.stderr).toBe(0);
    return r.stdout.trim();
  };
  expect(await qemu(['uname', '-m'])).toBe('aarch64');
  expect(await qemu(['cat', join(root, 'etc/arch.txt')])).toBe('arm64');
  // Where the kernel hands aarch64 binaries to QEMU itself (binfmt_misc, qemu-user-static
  // registers it on most hosts), the image's own command runs in its root, children included.
  if (binfmtRuns('qemu-aarch64')) {
    const chrooted = await run('chroot', [root, ...CMD]);
    expect(chrooted.code, chrooted.stderr).toBe(0);
    expect(chrooted.stdout.trim()).toBe(PRINTS.arm64);
  }
}, 120_000);

it('gives the same bytes when built again without the caches', async () => {
  const again = (await waitForBuild(service, await submitBuild(service, SPEC, { noCache: true }))) as MultiBuild;
  expect(again.status, JSON.stringify(again.error)).toBe('succeeded');
  expect(again.id).not.toBe(build.id);
  const record = await getBuild(again.id);
  const first = await getBuild(build.id);
  expect(record.result?.archive.digest).toBe(first.result?.archive.digest);
  expect(record.result?.index).toEqual(first.result?.index);
  expect(record.result?.platforms?.map((p) => [p.imageId, p.manifest.digest, p.archive.digest])).toEqual(first.result?.platforms?.map((p) => [p.imageId, p.manifest.digest, p.archive.digest]));
}, 120_000);

it('is a base for each platform: a build FROM it takes the image of its own platform', async () => {
  const record = await getBuild(build.id);
  const [amd64, arm64] = record.result?.platforms ?? [];
  const child = (await waitForBuild(
    service,
    await submitBuild(service, { name: 'multi/child', architecture: 'arm64', fromImage: { build: build.id }, contents: [{ text: 'child', to: '/child' }] }),
  )) as MultiBuild;
  expect(child.status, JSON.stringify(child.error)).toBe('succeeded');
  expect(child.result?.diffIds[0]).toBe(arm64?.diffIds[0]);
  const both = (await waitForBuild(
    service,
    await submitBuild(service, { name: 'multi/children', platforms: ['linux/amd64', 'linux/arm64'], fromImage: { build: build.id }, contents: [{ text: 'child', to: '/child' }] }),
  )) as MultiBuild;
  expect(both.status, JSON.stringify(both.error)).toBe('succeeded');
  expect(both.result?.platforms?.map((p) => p.diffIds[0])).toEqual([amd64?.diffIds[0], arm64?.diffIds[0]]);
}, 120_000);

it('fails the build when one platform fails, saying which', async () => {
  const garbage = join(work, 'not-a-tar');
  await writeFile(garbage, Buffer.alloc(2048, 7));
  const blob = await uploadFile(service, garbage);
  const failed = (await waitForBuild(service, await submitBuild(service, { ...SPEC, name: 'multi/broken', contents: [...SPEC.contents, { tar: blob, platform: 'linux/arm64' }] }))) as MultiBuild;
  expect(failed.status).toBe('failed');
  expect(failed.error?.status).toBe(422);
  expect(failed.error?.detail).toMatch(/^linux\/arm64: .*not a valid tar/);
  const record = await getBuild(failed.id);
  expect(record.platforms?.map((p) => p.status)).toEqual(['succeeded', 'failed']);
  expect(record.platforms?.[1]?.error).toMatch(/not a valid tar/);
});

it('refuses platforms with architecture, twice the same platform, and an entry for a platform not built', async () => {
  const post = (spec: unknown) => fetch(`${service.url}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  const both = await post({ name: 'multi/x', architecture: 'arm64', platforms: ['linux/arm64'] });
  expect(both.status).toBe(400);
  expect(((await both.json()) as { detail: string }).detail).toMatch(/architecture or platforms/);
  expect((await post({ name: 'multi/x', platforms: ['linux/arm64', 'linux/arm64'] })).status).toBe(400);
  expect((await post({ name: 'multi/x', platforms: ['linux/s390x'] })).status).toBe(400);
  expect((await post({ name: 'multi/x', platforms: [] })).status).toBe(400);
  const stray = await post({ name: 'multi/x', platforms: ['linux/amd64'], contents: [{ text: 'a', to: '/a', platform: 'linux/arm64' }] });
  expect(stray.status).toBe(400);
  expect(((await stray.json()) as { detail: string }).detail).toMatch(/contents\/0\/platform/);
  expect((await post({ name: 'multi/x', platforms: ['linux/amd64'], format: 'docker-archive' })).status).toBe(400);
});
