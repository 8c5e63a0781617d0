/**
 * apt for a platform's Debian packages. The host's architecture: the host's apt as it is.
 * Another architecture: a private apt state under the asset cache (its own lists, package
 * cache, sources and an empty dpkg status), so the host's dpkg architectures and package lists
 * are never touched; its sources are the host's Debian ones. It refreshes its lists when the
 * host's have changed since it last did (the host's `apt-get update` moves versions on, for both).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sh, trySh } from './host-files.ts';

export interface Apt {
  /** The Debian architecture its packages are for. */
  readonly architecture: string;
  /** `-o` options of apt-get and apt-cache (none for the host's apt). */
  readonly options: readonly string[];
  /** Where its package lists are (their fingerprint says when candidates may have changed). */
  readonly listsDir: string;
}

const HOST_LISTS = '/var/lib/apt/lists';

export function hostApt(architecture: string): Apt {
  return { architecture, options: [], listsDir: HOST_LISTS };
}

/** Runs apt-get (`cwd`: where `download` puts its .debs). */
export function aptGet(apt: Apt, args: readonly string[], cwd?: string): string {
  // As root, apt-get download warns that _apt cannot write to the cwd; harmless.
  return sh('apt-get', [...apt.options, ...args], cwd ? { cwd } : {});
}

/** Runs apt-cache; undefined when it fails. */
export function aptCache(apt: Apt, args: readonly string[]): string | undefined {
  return trySh('apt-cache', [...apt.options, ...args]);
}

/** The Package lists' newest mtime in `dir` (0: none). */
async function newestList(dir: string): Promise<number> {
  let newest = 0;
  try {
    for (const name of await readdir(dir)) if (/_Packages(\.\w+)?$/.test(name)) newest = Math.max(newest, (await stat(join(dir, name))).mtimeMs);
  } catch {
    /* no lists */
  }
  return newest;
}

/** The host's Debian sources as one-line entries; the release's main archive when apt knows none. */
function debianSources(): string {
  const targets = trySh('apt-get', ['indextargets', '--format', '$(REPO_URI) $(RELEASE) $(COMPONENT)', 'Created-By: Packages', 'Origin: Debian']);
  const lines = new Set((targets ?? '').split('\n').filter((l) => l.split(' ').length === 3));
  if (lines.size === 0) {
    let osRelease = '';
    try {
      osRelease = readFileSync('/etc/os-release', 'utf8');
    } catch {
      /* no release file: stable */
    }
    const codename = /^VERSION_CODENAME=(\S+)$/m.exec(osRelease)?.[1] ?? 'stable';
    lines.add(`http://deb.debian.org/debian/ ${codename} main`);
  }
  return [...lines].map((l) => `deb ${l}\n`).join('');
}

/**
 * The private apt for `architecture` in `cacheDir`/apt-<architecture>, its lists fetched when
 * it has none or the host's lists changed since (apt dates lists by the archive's
 * Last-Modified, which differs between architectures: `updated-for` keeps the host's). A failed refresh of lists it already has is logged, not
 * thrown: the cached versions still build.
 */
export async function foreignApt(cacheDir: string, architecture: string, log: (message: string) => void): Promise<Apt> {
  const dir = join(cacheDir, `apt-${architecture}`);
  const listsDir = join(dir, 'lists');
  await mkdir(join(listsDir, 'partial'), { recursive: true });
  await mkdir(join(dir, 'cache', 'archives', 'partial'), { recursive: true });
  if (!existsSync(join(dir, 'status'))) await writeFile(join(dir, 'status'), '');
  const sources = join(dir, 'sources.list');
  const apt: Apt = {
    architecture,
    listsDir,
    options: [
      ...['-o', `APT::Architecture=${architecture}`, '-o', `APT::Architectures=${architecture}`],
      ...['-o', `Dir::State::Lists=${listsDir}`, '-o', `Dir::Cache=${join(dir, 'cache')}`, '-o', `Dir::State::status=${join(dir, 'status')}`],
      ...['-o', `Dir::Etc::sourcelist=${sources}`, '-o', 'Dir::Etc::sourceparts=-', '-q'],
    ],
  };
  const ours = await newestList(listsDir);
  const stamp = join(dir, 'updated-for');
  const host = String(await newestList(HOST_LISTS));
  const updatedFor = existsSync(stamp) ? (await readFile(stamp, 'utf8')).trim() : undefined;
  if (ours === 0 || updatedFor !== host) {
    log(`updating the ${architecture} package lists in ${listsDir}`);
    try {
      // The host's sources as they are now (apt-get indextargets takes seconds: only here).
      await writeFile(sources, debianSources());
      aptGet(apt, ['update']);
      await writeFile(stamp, `${host}\n`);
    } catch (err) {
      if (ours === 0) throw err;
      log(`updating the ${architecture} package lists failed, using the ones there: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return apt;
}
