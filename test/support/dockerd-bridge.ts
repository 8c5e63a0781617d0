/**
 * Bridge networking for a private dockerd (compose stacks; image builds that fetch packages),
 * and the removal of exactly what dockerd leaves behind on the host when it has it.
 *
 * dockerd 20.10 with `--iptables` adds chains (DOCKER, DOCKER-USER, DOCKER-ISOLATION-STAGE-1/2)
 * and rules that jump to them or name its bridges and subnets (FORWARD, PREROUTING, OUTPUT,
 * POSTROUTING), and keeps them after it exits. Its default bridge has a name of our choosing
 * and address (set here: dockerd only creates `docker0` itself); the bridges of user-defined networks
 * (`br-<network id>`) go when the networks are removed, or are removed here if dockerd died first.
 *
 * The address range is a private test range; a `blackhole` route for all of it is added before
 * dockerd starts (the bridges' own connected routes are more specific), so that no address of
 * the range that has no bridge can ever leave this machine.
 */
import { run, SYSTEM_PATH, type RunResult } from './run.ts';

export interface BridgeNetwork {
  /** The default bridge's name (<= 15 chars); created by prepare(), must not exist yet. */
  name: string;
  /** The default bridge's address, e.g. 10.214.255.1/24 (set here: dockerd takes `-b` or `--bip`, not both). */
  address: string;
  /** `--default-address-pool base=`: where user-defined networks (compose's) take subnets. */
  pool: string;
  /** `--default-address-pool size=`. */
  poolSubnetSize: number;
  /** The whole range (blackholed; containing bip and pool), e.g. 10.214.0.0/16. */
  range: string;
}

const TABLES = ['filter', 'nat'] as const;
type Table = (typeof TABLES)[number];
type Ruleset = Record<Table, { chains: Set<string>; rules: Set<string> }>;

async function sh(cmd: string, args: string[]): Promise<RunResult> {
  return run(cmd, args, { timeoutMs: 30_000, env: { PATH: SYSTEM_PATH } });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function ruleset(): Promise<Ruleset> {
  const out = {} as Ruleset;
  for (const table of TABLES) {
    const text = await must('iptables-save', ['-t', table]);
    const chains = new Set<string>();
    const rules = new Set<string>();
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0] as string);
      else if (line.startsWith('-A ')) rules.add(line);
    }
    out[table] = { chains, rules };
  }
  return out;
}

/** iptables-save quotes arguments with spaces ("..."); nothing dockerd writes needs more. */
function splitRule(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] as string)));
}

async function links(): Promise<Array<{ name: string; addrs: string[] }>> {
  const parsed = JSON.parse(await must('ip', ['-j', 'addr', 'show'])) as Array<{ ifname: string; addr_info?: Array<{ family: string; local: string }> }>;
  return parsed.map((l) => ({ name: l.ifname, addrs: (l.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local) }));
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

function inRange(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  const size = 2 ** (32 - Number(bits));
  const start = ipv4ToInt(base as string);
  const value = ipv4ToInt(ip);
  return value >= start && value < start + size;
}

const DOCKER_CHAIN = /^DOCKER(-|$)/;

export interface PreparedBridge {
  /** dockerd flags for this network. */
  readonly args: string[];
  /** Remove what dockerd (and prepare) added. Call after dockerd is gone. Idempotent. */
  cleanup(): Promise<void>;
}

/**
 * Checks that nothing on the host already uses what dockerd will take (its iptables chains,
 * the bridge name, the range), adds the blackhole route and the bridge, and remembers the host's
 * iptables rules so that cleanup() removes only what came after and is dockerd's.
 */
export async function prepareBridge(net: BridgeNetwork): Promise<PreparedBridge> {
  const before = await ruleset();
  for (const table of TABLES) {
    const taken = [...before[table].chains].filter((c) => DOCKER_CHAIN.test(c));
    // Another dockerd with iptables on this host: ours would flush its chains, and telling
    // whose rules are whose afterwards would be guesswork.
    if (taken.length > 0) throw new Error(`iptables ${table} already has ${taken.join(', ')}: another Docker engine uses iptables here`);
  }
  const linksBefore = await links();
  if (linksBefore.some((l) => l.name === net.name)) throw new Error(`a link named ${net.name} exists already`);
  const clash = linksBefore.find((l) => l.addrs.some((a) => inRange(a, net.range)));
  if (clash) throw new Error(`${clash.name} already has an address in ${net.range}`);
  const namesBefore = new Set(linksBefore.map((l) => l.name));

  let routeAdded = false;
  let bridgeAdded = false;
  let cleaned: Promise<void> | undefined;
  const cleanup = (): Promise<void> => {
    cleaned ??= (async () => {
      const after = await ruleset();
      for (const table of TABLES) {
        const newChains = [...after[table].chains].filter((c) => !before[table].chains.has(c) && DOCKER_CHAIN.test(c));
        // Rules dockerd put into chains that were there before (FORWARD, PREROUTING, OUTPUT,
        // POSTROUTING): new, and about dockerd's chains, bridges or addresses.
        const ours = (rule: string): boolean => {
          const words = splitRule(rule);
          const chain = words[1] as string;
          if (newChains.includes(chain)) return false; // goes with its chain
          return words.some(
            (w, i) =>
              newChains.includes(w) ||
              ((words[i - 1] === '-i' || words[i - 1] === '-o') && (w === net.name || /^br-[0-9a-f]{12}$/.test(w))) ||
              ((words[i - 1] === '-s' || words[i - 1] === '-d') && /^[\d.]+(\/\d+)?$/.test(w) && inRange(w.split('/')[0] as string, net.range)),
          );
        };
        for (const rule of after[table].rules) {
          if (before[table].rules.has(rule) || !ours(rule)) continue;
          const words = splitRule(rule);
          await sh('iptables', ['-w', '-t', table, '-D', ...words.slice(1)]);
        }
        for (const chain of newChains) await sh('iptables', ['-w', '-t', table, '-F', chain]);
        for (const chain of newChains) await sh('iptables', ['-w', '-t', table, '-X', chain]);
      }
      // Bridges of networks dockerd had no time to remove: new since prepare, in our range.
      for (const link of await links()) {
        const mine = link.name === net.name ? bridgeAdded : !namesBefore.has(link.name) && /^br-[0-9a-f]{12}$/.test(link.name) && link.addrs.some((a) => inRange(a, net.range));
        if (mine) await sh('ip', ['link', 'delete', link.name]);
      }
      if (routeAdded) await sh('ip', ['route', 'del', 'blackhole', net.range]);
    })();
    return cleaned;
  };

  try {
    await must('ip', ['route', 'add', 'blackhole', net.range]);
    routeAdded = true;
    await must('ip', ['link', 'add', 'name', net.name, 'type', 'bridge']);
    bridgeAdded = true;
    await must('ip', ['addr', 'add', net.address, 'dev', net.name]);
    await must('ip', ['link', 'set', net.name, 'up']);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const args = ['--bridge', net.name, '--default-address-pool', `base=${net.pool},size=${net.poolSubnetSize}`, '--iptables=true', '--ip-masq=true'];
  return { args, cleanup };
}
