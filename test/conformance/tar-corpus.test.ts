/**
 * Issue 13's conformance corpus: tars written by tools we did not write (GNU tar, bsdtar,
 * Python's tarfile, busybox tar, `docker export`), each uploaded to the real service as
 * contents, built as a `rootfs`, and compared entry by entry with what GNU tar extracts from
 * the input: names, link targets and xattr values as bytes, types, modes, sizes, content
 * sha256, hard-link groups; owners the spec's uid/gid (or the tar's, with preserveOwners) and
 * every mtime the build's `created`.
 *
 * Each writer writes its own copy of one source tree (test/support/tar-corpus.ts), leaving out
 * only what its format cannot represent (CASES below says what and why). Before the build,
 * GNU tar's extraction of each input is compared with the source tree too, so a writer that
 * silently drops something (bsdtar exits 0 after leaving out a name too long for ustar) fails
 * here as "the writer lost", not as a baler difference.
 *
 * One service and one dockerd for the file; all builds are submitted together. The table
 * (writer × format → entries compared, differences) is printed at the end, passing or not.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensureDebianRoot } from '../../scripts/debian-root.mjs';
import { dockerAvailable, startDockerd, type Dockerd } from '../support/dockerd.ts';
import { downloadImage, startService, submitBuild, uploadFile, waitForBuild, type Service } from '../support/service.ts';
import { ALL_FEATURES, compareTrees, gnuExtract, makeTree, walkTree, writeTar, type Feature, type TarWriter, type TreeEntry } from '../support/tar-corpus.ts';

const CREATED = '2024-05-06T07:08:09Z';
const MTIME = Date.parse(CREATED) / 1000;
const UID = 1001;
const GID = 1002;

interface Case {
  writer: TarWriter | { tool: 'docker-export'; format: 'container' } | { tool: 'mmdebstrap'; format: 'minbase bookworm' };
  /** Features of ALL_FEATURES the writer's tree leaves out, each with why. */
  leftOut: Partial<Record<Feature, string>>;
  preserveOwners?: boolean;
  /** Shown in the table after the format. */
  note?: string;
}

const NO_XATTRS = 'writes no xattrs';
const NO_SPARSE = 'no sparse form';
const NO_V7 = 'v7 has no long names, no fifos or devices (GNU tar: "Unknown file type")';
const USTAR_IDS = 'ustar: ids of 7 octal digits (2097151) at most';
const USTAR_255 = 'ustar: prefix 155 + name 100, split at a /';
const USTAR_LINK = 'ustar: link targets of 100 bytes at most';
const SPARSE_TESTED = 'with -S / a sparse source in its own case';

/**
 * Writer × format, and what each tree leaves out (everything else of ALL_FEATURES is in it: files
 * of 0 bytes, 22 bytes and 1.5 MiB, directories, symlinks, hard links, a name with a tab and a newline,
 * modes 4755/2755/1777/0600, 127-byte and > 255-byte paths, 157-byte symlink and 127-byte hard
 * link targets, non-UTF-8 names, user xattrs, a fifo, dev/null and dev/loop9, owners up to
 * 3000000:4000000, an 8 MiB sparse file):
 *
 * | writer         | format                | leaves out                                  | because |
 * |----------------|-----------------------|---------------------------------------------|---------|
 * | GNU tar        | v7                    | long100 long255 longLink fifo devices bigIds xattrs sparse | v7: names and targets ≤ 99/100 bytes, no fifo or device types, 7-digit ids; GNU tar writes xattrs in posix only |
 * | GNU tar        | ustar                 | long255 longLink bigIds xattrs sparse       | ustar: prefix 155 + name 100 split at a /, targets ≤ 100 bytes, ids ≤ 2097151; no sparse form |
 * | GNU tar        | oldgnu, gnu           | xattrs, sparse (in the -S case)             | GNU tar writes xattrs in posix only |
 * | GNU tar        | oldgnu -S, gnu -S     | xattrs                                      | sparse as GNU 'S' entries (6 regions: an extension block) |
 * | GNU tar        | posix (also --gzip, --xz, --bzip2, --zstd) | sparse (in the -S cases)       | — |
 * | GNU tar        | posix -S 0.0/0.1/1.0  | —                                           | PAX GNU.sparse.* records, each version |
 * | bsdtar         | ustar (± sparse file) | long255 longLink bigIds xattrs              | ustar limits; libarchive's ustar writer drops xattrs and writes the sparse file whole |
 * | bsdtar         | pax (± sparse file)   | —                                           | the sparse file as PAX GNU.sparse 1.0; xattrs as SCHILY.xattr and LIBARCHIVE.xattr |
 * | bsdtar         | gnutar (± sparse file)| xattrs                                      | libarchive's gnutar writer drops xattrs and writes the sparse file whole |
 * | Python tarfile | USTAR                 | long255 longLink bigIds xattrs sparse       | ustar limits; tarfile reads no xattrs and writes no sparse entries |
 * | Python tarfile | GNU, PAX              | xattrs sparse                               | tarfile reads no xattrs and writes no sparse entries |
 * | busybox tar    | gnu (its only one: GNU magic, L/K long names) | xattrs sparse                               | busybox writes neither |
 * | docker export  | (Go archive/tar)      | xattrs sparse                               | docker export writes no user.* xattrs (its archive code reads security.capability only); Go's archive/tar writes no sparse entries |
 *
 * The sparse file is only in the sparse cases, so that the others stay small. docker export is
 * of a container created (not started) from `docker import` of GNU tar's posix tar of the tree;
 * it adds .dockerenv, dev/console (a regular file), dev/pts, dev/shm, etc/hostname, etc/hosts,
 * etc/mtab, etc/resolv.conf, proc and sys, which are compared like the rest.
 *
 * mmdebstrap is not given the source tree: its case is the Debian root that
 * scripts/debian-root.mjs caches (`mmdebstrap --variant=minbase bookworm`, GNU format, as
 * test/e2e/debian-root.test.ts uses it), uploaded exactly as mmdebstrap wrote it, with
 * preserveOwners (a Debian root's owners are part of it: root:shadow on /etc/shadow, _apt, …).
 * What the build should drop is only what the device policy drops: its character devices
 * under dev/ (console, full, null, ptmx, random, tty, urandom, zero); dev/fd, dev/stdin,
 * dev/stdout, dev/stderr (symlinks), dev/pts and dev/shm are kept and compared.
 */
const CASES: Case[] = [
  { writer: { tool: 'gnu-tar', format: 'v7' }, leftOut: { long100: NO_V7, long255: NO_V7, longLink: NO_V7, fifo: NO_V7, devices: NO_V7, xattrs: NO_XATTRS, sparse: NO_SPARSE, bigIds: USTAR_IDS } },
  { writer: { tool: 'gnu-tar', format: 'ustar' }, leftOut: { long255: USTAR_255, longLink: USTAR_LINK, bigIds: USTAR_IDS, xattrs: NO_XATTRS, sparse: NO_SPARSE } },
  { writer: { tool: 'gnu-tar', format: 'oldgnu' }, leftOut: { xattrs: NO_XATTRS, sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'oldgnu', sparse: '' }, leftOut: { xattrs: NO_XATTRS } },
  { writer: { tool: 'gnu-tar', format: 'gnu' }, leftOut: { xattrs: NO_XATTRS, sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'gnu' }, leftOut: { xattrs: NO_XATTRS, sparse: SPARSE_TESTED }, preserveOwners: true },
  { writer: { tool: 'gnu-tar', format: 'gnu', sparse: '' }, leftOut: { xattrs: NO_XATTRS } },
  { writer: { tool: 'gnu-tar', format: 'posix' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'posix' }, leftOut: { sparse: SPARSE_TESTED }, preserveOwners: true },
  { writer: { tool: 'gnu-tar', format: 'posix', compress: 'gzip' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'posix', compress: 'xz' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'posix', compress: 'bzip2' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'posix', compress: 'zstd' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'gnu-tar', format: 'posix', sparse: '0.0' }, leftOut: {} },
  { writer: { tool: 'gnu-tar', format: 'posix', sparse: '0.1' }, leftOut: {} },
  { writer: { tool: 'gnu-tar', format: 'posix', sparse: '1.0' }, leftOut: {} },
  { writer: { tool: 'bsdtar', format: 'ustar' }, leftOut: { long255: USTAR_255, longLink: USTAR_LINK, bigIds: USTAR_IDS, xattrs: NO_XATTRS, sparse: SPARSE_TESTED } },
  { writer: { tool: 'bsdtar', format: 'ustar' }, leftOut: { long255: USTAR_255, longLink: USTAR_LINK, bigIds: USTAR_IDS, xattrs: NO_XATTRS }, note: 'sparse source' },
  { writer: { tool: 'bsdtar', format: 'pax' }, leftOut: { sparse: SPARSE_TESTED } },
  { writer: { tool: 'bsdtar', format: 'pax' }, leftOut: {}, note: 'sparse source' },
  { writer: { tool: 'bsdtar', format: 'gnutar' }, leftOut: { xattrs: NO_XATTRS, sparse: SPARSE_TESTED } },
  { writer: { tool: 'bsdtar', format: 'gnutar' }, leftOut: { xattrs: NO_XATTRS }, note: 'sparse source' },
  { writer: { tool: 'python', format: 'ustar' }, leftOut: { long255: USTAR_255, longLink: USTAR_LINK, bigIds: USTAR_IDS, xattrs: NO_XATTRS, sparse: NO_SPARSE } },
  { writer: { tool: 'python', format: 'gnu' }, leftOut: { xattrs: NO_XATTRS, sparse: NO_SPARSE } },
  { writer: { tool: 'python', format: 'pax' }, leftOut: { xattrs: NO_XATTRS, sparse: NO_SPARSE } },
  { writer: { tool: 'busybox', format: 'gnu' }, leftOut: { xattrs: NO_XATTRS, sparse: NO_SPARSE } },
  { writer: { tool: 'docker-export', format: 'container' }, leftOut: { xattrs: 'docker export writes no user.* xattrs', sparse: NO_SPARSE } },
  { writer: { tool: 'mmdebstrap', format: 'minbase bookworm' }, leftOut: {}, preserveOwners: true },
];

function caseName(c: Case): string {
  const w = c.writer;
  const tool = { 'gnu-tar': 'GNU tar', bsdtar: 'bsdtar', python: 'Python tarfile', busybox: 'busybox tar', 'docker-export': 'docker export', mmdebstrap: 'mmdebstrap' }[w.tool];
  let format: string = w.format;
  if ('sparse' in w && w.sparse !== undefined) format += w.sparse ? ` -S ${w.sparse}` : ' -S';
  if ('compress' in w && w.compress) format += ` --${w.compress}`;
  if (c.note) format += ` (${c.note})`;
  if (c.preserveOwners) format += ' preserveOwners';
  return `${tool} ${format}`;
}

interface Outcome {
  /** Entries of the input as GNU tar extracts it (what the output is compared with). */
  entries: number;
  /** The writer's tar against the source tree: what the writer lost or changed. */
  writerLost: string[];
  /** The build's rootfs against the input. */
  differences: string[];
  /** From the start of the case to its end, and the build's own part (submitted → ended). */
  seconds: number;
  buildSeconds: number;
}

let service: Service;
let dockerd: Dockerd | undefined;
let work: string;
const outcomes = new Map<string, Promise<Outcome>>();
const finished = new Map<string, Outcome | Error>();
const started = Date.now();

/** Where docker export puts what any container has; the comparison with the source skips them. */
const DOCKER_OWN = /^(\.dockerenv|dev|dev\/.*|etc|etc\/(hostname|hosts|mtab|resolv\.conf)|proc|sys)$/;

async function dockerExport(src: string, dir: string): Promise<string> {
  if (!dockerd) throw new Error('no dockerd');
  const input = join(dir, 'import.tar');
  await writeTar({ tool: 'gnu-tar', format: 'posix' }, src, input);
  const imported = await dockerd.docker(['import', input, 'corpus:latest']);
  if (imported.code !== 0) throw new Error(`docker import: ${imported.stderr}`);
  const created = await dockerd.docker(['create', '--name', 'corpus', 'corpus:latest', '/nothing']);
  if (created.code !== 0) throw new Error(`docker create: ${created.stderr}`);
  const out = join(dir, 'input.tar');
  const exported = await dockerd.docker(['export', '--output', out, 'corpus']);
  if (exported.code !== 0) throw new Error(`docker export: ${exported.stderr}`);
  return out;
}

/**
 * The input as the build should hand it back (owners and mtimes are the spec's, compared
 * separately): issue 13's device policy drops the character and block devices under /dev/
 * (every runtime mounts its own /dev); /dev itself and everything else under it are kept
 * (README, "Device nodes"). Trees that can hold devices have dev/null and dev/loop9; docker
 * export adds dev/console (a regular file there), dev/pts and dev/shm.
 */
function expectedOf(input: TreeEntry[]): TreeEntry[] {
  const isDevice = (e: TreeEntry) => e.type === 'character-device' || e.type === 'block-device';
  return input.filter((e) => !(isDevice(e) && e.path.subarray(0, 4).equals(Buffer.from('dev/'))));
}

/** Source trees by feature set: writers only read them, so cases with the same set share one. */
const sources = new Map<string, Promise<{ src: string; source: TreeEntry[] }>>();

function sourceTree(features: Feature[]): Promise<{ src: string; source: TreeEntry[] }> {
  const key = features.join(',');
  let tree = sources.get(key);
  if (!tree) {
    tree = (async () => {
      const src = join(work, `src-${sources.size}`);
      await mkdir(src);
      await makeTree(src, new Set(features));
      return { src, source: await walkTree(src) };
    })();
    sources.set(key, tree);
  }
  return tree;
}

async function runCase(c: Case, index: number): Promise<Outcome> {
  const t0 = Date.now();
  const dir = join(work, String(index));
  await mkdir(dir, { recursive: true });
  const w = c.writer;
  let input: string;
  let extracted: TreeEntry[];
  let writerLost: string[] = [];
  if (w.tool === 'mmdebstrap') {
    // The cached root as it is (made by scripts/setup.mjs; a stat here): no source tree to lose from.
    input = (await ensureDebianRoot()).tar;
    await gnuExtract(input, join(dir, 'in'));
    extracted = await walkTree(join(dir, 'in'));
  } else {
    const { src, source } = await sourceTree(ALL_FEATURES.filter((f) => !(f in c.leftOut)));
    input = w.tool === 'docker-export' ? await dockerExport(src, dir) : join(dir, 'input.tar');
    if (w.tool !== 'docker-export') await writeTar(w, src, input);
    await gnuExtract(input, join(dir, 'in'));
    extracted = await walkTree(join(dir, 'in'));
    writerLost = compareTrees(source, extracted, { owners: !!c.preserveOwners });
    if (w.tool === 'docker-export') writerLost = writerLost.filter((d) => !DOCKER_OWN.test(d.replace(/: unexpected \S+$/, '')));
  }

  const blob = await uploadFile(service, input);
  const id = await submitBuild(
    service,
    {
      name: `corpus/case${index}`,
      format: 'rootfs',
      compression: 'none',
      uid: UID,
      gid: GID,
      created: CREATED,
      contents: [{ tar: blob, ...(c.preserveOwners ? { preserveOwners: true } : {}) }],
    },
    { noCache: true },
  );
  const submitted = Date.now();
  const build = await waitForBuild(service, id, 240_000);
  const buildSeconds = (Date.now() - submitted) / 1000;
  const expected = expectedOf(extracted);
  if (build.status !== 'succeeded') {
    return { entries: expected.length, writerLost, differences: [`build ${build.status}: ${build.error?.detail ?? ''}`], seconds: (Date.now() - t0) / 1000, buildSeconds };
  }
  const output = join(dir, 'output.tar');
  await downloadImage(service, id, output);
  await gnuExtract(output, join(dir, 'out'));
  const actual = await walkTree(join(dir, 'out'));
  const differences = compareTrees(expected, actual, { owner: c.preserveOwners ? undefined : { uid: UID, gid: GID }, mtime: MTIME });
  await rm(dir, { recursive: true, force: true });
  return { entries: expected.length, writerLost, differences, seconds: (Date.now() - t0) / 1000, buildSeconds };
}

let setupSeconds = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'baler-corpus-'));
  const t0 = Date.now();
  [service, dockerd] = await Promise.all([
    // No warm VM (no build here runs a script; booting one under TCG takes a core for seconds).
    startService({ BALER_WORKER_CONCURRENCY: '3', BALER_VM_POOL: '0' }),
    dockerAvailable() ? startDockerd() : Promise.resolve(undefined),
  ]);
  setupSeconds = (Date.now() - t0) / 1000;
  CASES.forEach((c, i) => {
    const outcome = runCase(c, i);
    outcome.then(
      (o) => finished.set(caseName(c), o),
      (e: unknown) => finished.set(caseName(c), e instanceof Error ? e : new Error(String(e))),
    );
    outcomes.set(caseName(c), outcome);
  });
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(outcomes.values());
  const rows = CASES.map((c) => {
    const name = caseName(c);
    const o = finished.get(name);
    if (!o) return `| ${name} | – | – | – | not run |`;
    if (o instanceof Error) return `| ${name} | – | – | – | ${o.message.split('\n')[0]} |`;
    const first = o.differences[0] ?? o.writerLost.map((d) => `writer lost: ${d}`)[0] ?? '';
    return `| ${name} | ${o.entries} | ${o.differences.length} | ${o.seconds.toFixed(1)} (${o.buildSeconds.toFixed(1)}) | ${first.slice(0, 140)} |`;
  });
  const total = ((Date.now() - started) / 1000).toFixed(1);
  console.log(
    [
      '',
      `tar corpus (${total} s, service and dockerd started in ${setupSeconds.toFixed(1)} s): writer × format → entries compared, differences`,
      '| writer format | entries | differences | s (build) | first difference |',
      '|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n'),
  );
  await Promise.all([service?.stop(), dockerd?.stop()]);
  await rm(work, { recursive: true, force: true });
}, 120_000);

/** The first differences, and how many more: enough to see what differs without a wall of text. */
function firstOf(lines: string[], n = 20): string[] {
  return lines.length <= n ? lines : [...lines.slice(0, n), `… and ${lines.length - n} more`];
}

it.each(CASES.map((c) => [caseName(c), c] as const))(
  '%s: the rootfs holds exactly what GNU tar extracts from the input',
  async (name, c) => {
    if (c.writer.tool === 'docker-export' && !dockerd) throw new Error('docker export needs the private dockerd (root, docker.io, containerd, runc)');
    const outcome = await outcomes.get(name);
    if (!outcome) throw new Error(`case ${name} not started`);
    expect(firstOf(outcome.writerLost), 'the writer lost or changed something the case table says it keeps').toEqual([]);
    expect(firstOf(outcome.differences), `${name}: ${outcome.entries} entries compared`).toEqual([]);
    expect(outcome.entries).toBeGreaterThan(20);
  },
  300_000,
);
