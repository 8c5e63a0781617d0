/**
 * Where package databases live in an image (layer paths: relative, normalised), and which tar
 * entries can change them.
 */

export const DPKG_STATUS = 'var/lib/dpkg/status';
/** Distroless: one file per package, each a control paragraph (`status.d/NAME`). */
export const DPKG_STATUS_DIR = 'var/lib/dpkg/status.d';
export const APK_INSTALLED = 'lib/apk/db/installed';
/** os-release(5): the distribution, for package URLs; /etc's wins, /usr/lib's is the fallback. */
export const OS_RELEASE = ['etc/os-release', 'usr/lib/os-release'];

const LOCATIONS = [DPKG_STATUS, DPKG_STATUS_DIR, APK_INSTALLED, ...OS_RELEASE];

export type DatabaseKind = 'dpkg-status' | 'dpkg-status-d' | 'apk-installed' | 'os-release';

/** The kind of database the file at `path` is, if it is one. */
export function databaseKind(path: string): DatabaseKind | undefined {
  if (path === DPKG_STATUS) return 'dpkg-status';
  if (path === APK_INSTALLED) return 'apk-installed';
  if (OS_RELEASE.includes(path)) return 'os-release';
  if (path.startsWith(`${DPKG_STATUS_DIR}/`)) {
    const name = path.slice(DPKG_STATUS_DIR.length + 1);
    // Distroless keeps each package's md5sums beside it; only direct children are packages.
    if (!name.includes('/') && !name.endsWith('.md5sums')) return 'dpkg-status-d';
  }
  return undefined;
}

/** Whether an entry, whiteout or opaque directory at `path` can hide or replace a database file. */
export function touchesDatabases(path: string): boolean {
  if (path === '') return true;
  for (const location of LOCATIONS) {
    if (location === path || location.startsWith(`${path}/`) || path.startsWith(`${location}/`)) return true;
  }
  return false;
}

/** Whether `path` is `dir` or under it ('' is the root: everything is under it). */
export function isWithin(path: string, dir: string): boolean {
  return dir === '' || path === dir || path.startsWith(`${dir}/`);
}
