/** The kernel modules the guest loads, with their dependencies, from an unpacked kernel package. */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface KernelModule {
  /** Its name with `_` for `-` (as modprobe and `depends=` name it). */
  name: string;
  data: Buffer;
}

/** `depends=` of a .ko's .modinfo section. */
function moduleDepends(ko: Buffer): string[] {
  const text = ko.toString('latin1');
  const at = text.indexOf('\0depends=');
  if (at < 0) return [];
  const end = text.indexOf('\0', at + 1);
  return text
    .slice(at + 9, end)
    .split(',')
    .filter(Boolean);
}

async function indexModules(dir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  async function walk(d: string): Promise<void> {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (entry.name.endsWith('.ko')) index.set(entry.name.slice(0, -3).replaceAll('-', '_'), p);
    }
  }
  await walk(dir);
  return index;
}

/** The wanted modules of `modulesDir` (/lib/modules/<release>) and their dependencies, dependencies first. */
export async function moduleLoadOrder(modulesDir: string, wanted: readonly string[]): Promise<KernelModule[]> {
  const index = await indexModules(modulesDir);
  const order: KernelModule[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  async function visit(name: string): Promise<void> {
    const n = name.replaceAll('-', '_');
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'visiting') throw new Error(`module dependency cycle at ${n}`);
    const path = index.get(n);
    if (!path) throw new Error(`module ${n} not found in the kernel package (is it built in?)`);
    state.set(n, 'visiting');
    const data = await readFile(path);
    for (const dep of moduleDepends(data)) await visit(dep);
    state.set(n, 'done');
    order.push({ name: n, data });
  }
  for (const w of wanted) await visit(w);
  return order;
}
