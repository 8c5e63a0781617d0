import { sbomOverBudget, type SbomBudgets } from './sbom-budgets.ts';

/** What os-release(5) says of the distribution, as far as package URLs need it. */
export interface OsRelease {
  /** `ID`: `debian`, `ubuntu`, `alpine`, `wolfi`… */
  id?: string;
  /** `VERSION_ID`: `12`, `24.04`, `3.20.0`… */
  versionId?: string;
}

/** `KEY=value` lines, values maybe quoted (shell-style, as os-release(5) allows); only ID and VERSION_ID kept. */
export function parseOsRelease(data: Buffer, what: string, budgets: SbomBudgets): OsRelease {
  const out: OsRelease = {};
  for (const line of data.toString('utf8').split('\n')) {
    if (Buffer.byteLength(line) > budgets.maxFieldBytes) throw sbomOverBudget(budgets, 'maxFieldBytes', `${what}: a line of more than ${budgets.maxFieldBytes} bytes`);
    const match = /^\s*(ID|VERSION_ID)=(.*)$/.exec(line);
    if (!match) continue;
    let value = (match[2] ?? '').trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    // Only what a purl namespace or qualifier can hold plainly.
    if (!/^[A-Za-z0-9._~+-]+$/.test(value)) continue;
    if (match[1] === 'ID') out.id = value.toLowerCase();
    else out.versionId = value;
  }
  return out;
}
