import { printable } from '../../image/printable.ts';
import type { DatabasePackage } from './database-package.ts';
import { PackageDatabaseError } from './package-database-error.ts';
import { sbomOverBudget, type SbomBudgets } from './sbom-budgets.ts';

/**
 * The packages of apk's installed database (`/lib/apk/db/installed`): one block of `X:value`
 * lines per package, blocks separated by empty lines. Kept: `P:` name, `V:` version, `A:`
 * architecture, `L:` licence, `o:` origin (the source package, whose version apk does not
 * record apart: an origin's subpackages are built at its version). Every other line (file
 * lists, checksums, dependencies) is read past. Every line counts against the field budget and
 * every block against the package budget: O(n) in the file's bytes.
 */
export function apkInstalledPackages(data: Buffer, what: string, budgets: SbomBudgets): DatabasePackage[] {
  // latin1: string length is byte length, as the budgets count; kept values are decoded as UTF-8.
  const text = data.toString('latin1');
  const packages: DatabasePackage[] = [];
  let block = new Map<string, string>();
  let blocks = 0;
  let lineNo = 0;

  const endBlock = () => {
    if (block.size === 0) return;
    const name = block.get('P');
    const version = block.get('V');
    const architecture = block.get('A');
    if (!name || !version || !architecture) {
      throw new PackageDatabaseError(`${what}: the package block ending at line ${lineNo} has no ${!name ? 'P: (name)' : !version ? 'V: (version)' : 'A: (architecture)'}`);
    }
    const pkg: DatabasePackage = { type: 'apk', name, version, architecture };
    const license = block.get('L');
    if (license) pkg.license = license;
    const origin = block.get('o');
    if (origin) pkg.sourceName = origin;
    packages.push(pkg);
    block = new Map();
  };

  for (let start = 0; start < text.length; ) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    lineNo++;
    if (line.length > budgets.maxFieldBytes) throw sbomOverBudget(budgets, 'maxFieldBytes', `${what}: a line of more than ${budgets.maxFieldBytes} bytes at line ${lineNo}`);
    if (line === '') {
      endBlock();
      continue;
    }
    if (line.length < 2 || line[1] !== ':') throw new PackageDatabaseError(`${what}: line ${lineNo} is not 'X:value' ('${printable(line.slice(0, 80))}')`);
    if (block.size === 0 && ++blocks > budgets.maxPackages) throw sbomOverBudget(budgets, 'maxPackages', `${what}: more than ${budgets.maxPackages} packages`);
    const key = line[0] as string;
    if (key === 'P' || key === 'V' || key === 'A' || key === 'L' || key === 'o') block.set(key, Buffer.from(line.slice(2), 'latin1').toString('utf8'));
    else if (block.size === 0) block.set('', ''); // a block has begun, even before its P: line
  }
  endBlock();
  return packages;
}
