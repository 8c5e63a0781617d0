/**
 * Issue 15: a base is resolved to the build's platform, through the API. A two-platform image
 * made here with buildah (two contents-only images, linux/amd64 and linux/arm64/v8, each with
 * /etc/platform saying which; `buildah manifest create/add`, `manifest push --all`) is the base
 * as an oci-archive and from Debian's docker-registry on loopback; a multi-image docker-archive
 * (the test's own tar code) and an earlier build are bases too. Each resolves to the
 * `architecture` asked (the arm64 builds need no VM: contents only), and asking for a platform
 * the base lacks fails the build with 422 naming the platforms it has.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBuildah } from '../../bench/support/buildah.ts';
import { dockerPlatformArchive, platformImage } from '../image/sources/platform-archives.ts';
import { startRegistry, type TestRegistry } from '../registry/registry-server.ts';
import { run } from '../support/run.ts';
import { startService, submitBuild, uploadFile, waitForBuild, type BuildView, type Service } from '../support/service.ts';

const PLATFORMS = [
  { architecture: 'amd64', variant: undefined },
  { architecture: 'arm64', variant: 'v8' },
] as const;

let work: string;
let registry: TestRegistry;
let service: Service;
let ociArchive: string;
let listRef: string;
/** The diff_id of each platform's one layer, as the oci-archive's configs say. */
const diffIdOf = new Map<string, string>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-platform-bases-'));
  registry = await startRegistry();
  const buildah = await startBuildah(work);
  try {
    const ok = async (args: string[]) => {
      const result = await buildah.buildah(args);
      expect(result.code, `buildah ${args.join(' ')}\n${result.stderr}`).toBe(0);
      return result.stdout.trim();
    };
    await ok(['manifest', 'create', 'localhost/plat:multi']);
    for (const { architecture, variant } of PLATFORMS) {
      const root = join(work, `root-${architecture}`);
      await mkdir(join(root, 'etc'), { recursive: true });
      await writeFile(join(root, 'etc/platform'), `linux/${architecture}\n`);
      const ctr = (await ok(['from', 'scratch'])).split('\n').pop() as string;
      await ok(['copy', ctr, `${root}/`, '/']);
      await ok(['config', '--os', 'linux', '--arch', architecture, ...(variant ? ['--variant', variant] : []), ctr]);
      await ok(['commit', '--quiet', ctr, `localhost/plat:${architecture}`]);
      await ok(['manifest', 'add', 'localhost/plat:multi', `containers-storage:localhost/plat:${architecture}`]);
    }
    ociArchive = join(work, 'multi-oci.tar');
    await ok(['manifest', 'push', '--all', 'localhost/plat:multi', `oci-archive:${ociArchive}:plat/multi:1`]);
    listRef = `${registry.host}/plat/multi:1`;
    await ok(['manifest', 'push', '--all', '--tls-verify=false', 'localhost/plat:multi', `docker://${listRef}`]);
  } finally {
    await buildah.cleanup();
  }
  await readDiffIds(ociArchive);
  const registries = join(work, 'registries.json');
  await writeFile(registries, JSON.stringify({ [registry.host]: { insecure: true } }));
  service = await startService({ BALER_REGISTRIES_FILE: registries });
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
}, 60_000);

/** Each platform's layer diff_id, read from the oci-archive buildah wrote (index.json → image index → manifests → configs). */
async function readDiffIds(archive: string): Promise<void> {
  const dir = join(work, 'oci-extracted');
  await mkdir(dir);
  expect((await run('tar', ['-xf', archive, '-C', dir])).code).toBe(0);
  const blob = async (digest: string) => JSON.parse(await readFile(join(dir, 'blobs/sha256', digest.slice('sha256:'.length)), 'utf8'));
  const top = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const index = (await blob(top.manifests[0]?.digest as string)) as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
  for (const entry of index.manifests) {
    const manifest = (await blob(entry.digest)) as { config: { digest: string } };
    const config = (await blob(manifest.config.digest)) as { architecture: string; rootfs: { diff_ids: string[] } };
    expect(config.architecture).toBe(entry.platform.architecture);
    diffIdOf.set(config.architecture, config.rootfs.diff_ids[0] as string);
  }
  expect([...diffIdOf.keys()].sort()).toEqual(['amd64', 'arm64']);
}

async function build(spec: Record<string, unknown>): Promise<BuildView> {
  return waitForBuild(service, await submitBuild(service, { name: 'platform/child', contents: [{ text: 'added\n', to: '/added' }], ...spec }), 120_000);
}

/** The file a build's image holds at `path`, from its flattened root. */
async function fileOf(id: string, path: string): Promise<string> {
  const res = await fetch(`${service.url}/v1/builds/${id}/image?format=rootfs&compression=none`);
  expect(res.status).toBe(200);
  const tar = join(work, `${id}-rootfs.tar`);
  await writeFile(tar, Buffer.from(await res.arrayBuffer()));
  const out = await run('tar', ['-xOf', tar, path]);
  expect(out.code, out.stderr).toBe(0);
  return out.stdout;
}

function expectResolvedTo(child: BuildView, architecture: string): void {
  expect(child.status, JSON.stringify(child.error)).toBe('succeeded');
  expect(child.result?.diffIds[0]).toBe(diffIdOf.get(architecture));
}

function expectMissing(child: BuildView, message: RegExp): void {
  expect(child.status).toBe('failed');
  expect(child.error?.status).toBe(422);
  expect(child.error?.detail).toMatch(message);
}

describe.each([
  ['an oci-archive of an image index (buildah manifest push --all)', 'blob'],
  ['a manifest list in a registry (buildah manifest push --all to docker-registry)', 'ref'],
] as const)('%s', (_name, kind) => {
  let fromImage: Record<string, string>;
  beforeAll(async () => {
    fromImage = kind === 'blob' ? { blob: await uploadFile(service, ociArchive) } : { ref: listRef };
  });

  it('resolves to arm64 and to amd64 (the default)', async () => {
    const arm = await build({ fromImage, architecture: 'arm64' });
    expectResolvedTo(arm, 'arm64');
    expect(await fileOf(arm.id, 'etc/platform')).toBe('linux/arm64\n');
    expectResolvedTo(await build({ fromImage, architecture: 'amd64' }), 'amd64');
    const amd = await build({ fromImage });
    expectResolvedTo(amd, 'amd64');
    expect(await fileOf(amd.id, 'etc/platform')).toBe('linux/amd64\n');
  }, 240_000);

  it('fails with 422 naming the platforms it has, for one it lacks', async () => {
    expectMissing(await build({ fromImage, architecture: 's390x' }), /has no linux\/s390x image; it has: linux\/amd64, linux\/arm64\/v8$/);
  }, 120_000);
});

describe('a multi-image docker-archive (docker save of several tags)', () => {
  const amd64 = platformImage({ architecture: 'amd64' });
  const arm64 = platformImage({ architecture: 'arm64', variant: 'v8' });
  let blob: string;
  beforeAll(async () => {
    const path = join(work, 'multi-docker.tar');
    await writeFile(
      path,
      dockerPlatformArchive([
        { image: amd64, repoTags: ['plat/app:amd64'] },
        { image: arm64, repoTags: ['plat/app:arm64'] },
      ]),
    );
    blob = await uploadFile(service, path);
  });

  it("without a name, takes the image whose config is for the build's architecture", async () => {
    const arm = await build({ fromImage: { blob }, architecture: 'arm64' });
    expect(arm.status, JSON.stringify(arm.error)).toBe('succeeded');
    expect(await fileOf(arm.id, 'etc/platform')).toBe('linux/arm64/v8\n');
    expect(await fileOf((await build({ fromImage: { blob } })).id, 'etc/platform')).toBe('linux/amd64\n');
    expectMissing(await build({ fromImage: { blob }, architecture: 's390x' }), /^the archive has no linux\/s390x image; it has: linux\/amd64, linux\/arm64\/v8$/);
  }, 240_000);

  it('a named image of another architecture is refused', async () => {
    expectMissing(
      await build({ fromImage: { blob }, fromImageName: 'plat/app', fromImageTag: 'amd64', architecture: 'arm64' }),
      /^the archive has no linux\/arm64 image plat\/app:amd64; it has: linux\/amd64$/,
    );
  }, 120_000);
});

it('an earlier build as base must be for the same architecture', async () => {
  const amd = await build({ contents: [{ text: 'base\n', to: '/base' }] });
  expect(amd.status).toBe('succeeded');
  expectMissing(await build({ fromImage: { build: amd.id }, architecture: 'arm64' }), new RegExp(`^base build ${amd.id} has no linux/arm64 image; it has: linux/amd64$`));
  const arm = await build({ contents: [{ text: 'base\n', to: '/base' }], architecture: 'arm64' });
  expect(arm.status).toBe('succeeded');
  expect((await build({ fromImage: { build: arm.id }, architecture: 'arm64' })).status).toBe('succeeded');
}, 240_000);
