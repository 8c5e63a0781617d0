import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';

/** How often the file's mtime is looked at, at most; a rotation takes effect within this. */
const RECHECK_MS = 1000;

interface TokenEntry {
  tenant: string;
  /** sha256 of the token, raw bytes. */
  hash: Buffer;
}

/**
 * Bearer tokens from the file named by BALER_TOKENS_FILE: one `TENANT TOKEN` pair a line,
 * TOKEN either the token itself or `sha256:<hex>` of it; `#` starts a comment. The file is
 * re-read when it changes, so tokens rotate without a restart.
 */
export class TokenFile {
  private entries: TokenEntry[] = [];
  private mtimeMs = -1;
  private checkedAt = 0;

  private constructor(readonly path: string) {}

  static async load(path: string): Promise<TokenFile> {
    const file = new TokenFile(path);
    await file.refresh(true);
    return file;
  }

  private async refresh(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.checkedAt < RECHECK_MS) return;
    this.checkedAt = now;
    const info = await stat(this.path);
    if (!force && info.mtimeMs === this.mtimeMs) return;
    this.entries = parseTokens(await readFile(this.path, 'utf8'), this.path);
    this.mtimeMs = info.mtimeMs;
  }

  /** The tenant a token belongs to, or null. Compares hashes in constant time. */
  async tenantOf(token: string): Promise<string | null> {
    await this.refresh().catch(() => {
      // A file being rewritten may be missing for a moment: keep the tokens we had.
    });
    const hash = createHash('sha256').update(token).digest();
    let tenant: string | null = null;
    for (const entry of this.entries) if (timingSafeEqual(entry.hash, hash)) tenant = entry.tenant;
    return tenant;
  }
}

export function parseTokens(text: string, source: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const [tenant, token, ...rest] = line.split(/\s+/);
    if (!tenant || !token || rest.length > 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(tenant)) {
      throw new Error(`${source}:${i + 1}: expected 'TENANT TOKEN' (tenant: letters, digits, '.', '_', '-')`);
    }
    const hashed = /^sha256:([a-f0-9]{64})$/.exec(token);
    entries.push({ tenant, hash: hashed ? Buffer.from(hashed[1] as string, 'hex') : createHash('sha256').update(token).digest() });
  }
  return entries;
}
