/**
 * A lab of network namespaces on one private subnet, for multi-host tests: each "host" is a
 * namespace with one veth into a bridge that lives in a "switch" namespace of its own.
 *
 * Safety first: before anything else the whole subnet gets a `blackhole` route in the root
 * namespace, so no mistake can send a packet for it off this machine. The root namespace never
 * holds the subnet's prefix route (the bridge is in the switch namespace); it reaches exactly
 * the hosts it is given (`reachFromRoot`) through a veth of its own with /32 routes, more
 * specific than the blackhole. Everything made is recorded and removed by `destroy()`
 * (processes by pid, namespaces, the root veth, the route), also after a failure midway.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { pidAlive, run } from './run.ts';

export const LAB_SUBNET = '10.213.0.0/24';
const PREFIX = '10.213.0';
/** The root namespace's own address in the lab. */
const ROOT_ADDRESS = `${PREFIX}.254`;

export interface LabHost {
  name: string;
  /** The namespace's name (`ip netns`). */
  netns: string;
  address: string;
  /** Its veth's peer on the bridge, in the switch namespace: set it down to cut the host off. */
  switchPort: string;
}

export interface LabProcess {
  host: LabHost;
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<void>;
}

async function ip(args: string[]): Promise<string> {
  const result = await run('ip', args, { timeoutMs: 20_000 });
  if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr.trim()}`);
  return result.stdout;
}

export class NetnsLab {
  private readonly hosts: LabHost[] = [];
  private readonly processes: LabProcess[] = [];
  private switchNetns: string | undefined;
  private rootVeth: string | undefined;
  private routeAdded = false;

  /** Names are `<tag>-<pid>-…`, so a later run can tell our leftovers from a live run's. */
  private constructor(private readonly tag: string) {}

  static async create(tag = 'blc'): Promise<NetnsLab> {
    const lab = new NetnsLab(`${tag}${process.pid}`);
    try {
      await lab.sweepStale(tag);
      // Before anything else: nothing for the lab's subnet ever leaves this machine.
      await ip(['route', 'add', 'blackhole', LAB_SUBNET]);
      lab.routeAdded = true;
      lab.switchNetns = `${lab.tag}-sw`;
      await ip(['netns', 'add', lab.switchNetns]);
      await ip(['-n', lab.switchNetns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', lab.switchNetns, 'link', 'add', 'br0', 'type', 'bridge']);
      await ip(['-n', lab.switchNetns, 'link', 'set', 'br0', 'up']);
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    return lab;
  }

  /**
   * Namespaces, the root veth and the route of earlier runs whose process is gone (a run killed
   * before its cleanup). A live run's are left alone, and then the route add below fails loudly.
   */
  private async sweepStale(tag: string): Promise<void> {
    let any = false;
    for (const netns of (await ip(['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '')) {
      const owner = new RegExp(`^${tag}(\\d+)-`).exec(netns)?.[1];
      if (!owner) continue;
      if (pidAlive(Number(owner))) return;
      any = true;
      // Its processes (ours: they run in our namespace) go first.
      for (const pid of (await ip(['netns', 'pids', netns]).catch(() => '')).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await ip(['netns', 'del', netns]).catch(() => '');
    }
    const links = await ip(['-o', 'link', 'show']);
    for (const m of links.matchAll(new RegExp(`^\\d+: (${tag}(\\d+)r)[@:]`, 'gm'))) {
      if (pidAlive(Number(m[2]))) return;
      any = true;
      await ip(['link', 'del', m[1] as string]).catch(() => '');
    }
    if (any) await ip(['route', 'del', 'blackhole', LAB_SUBNET]).catch(() => '');
  }

  /** A host: a namespace with `lo` and one veth (`eth0`) on the bridge, at 10.213.0.<index>. */
  async addHost(name: string, index: number): Promise<LabHost> {
    if (!this.switchNetns) throw new Error('lab destroyed');
    const host: LabHost = { name, netns: `${this.tag}-${name}`, address: `${PREFIX}.${index}`, switchPort: `p-${name}` };
    await ip(['netns', 'add', host.netns]);
    this.hosts.push(host);
    await ip(['-n', host.netns, 'link', 'set', 'lo', 'up']);
    // Both ends are made inside the namespaces: no interface name ever appears in the root namespace.
    await ip(['-n', host.netns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', host.switchPort, 'netns', this.switchNetns]);
    await ip(['-n', this.switchNetns, 'link', 'set', host.switchPort, 'master', 'br0', 'up']);
    await ip(['-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
    await ip(['-n', host.netns, 'link', 'set', 'eth0', 'up']);
    return host;
  }

  /**
   * Let the root namespace (the test itself) reach these hosts: a veth of its own on the
   * bridge, with a /32 route per host (more specific than the blackhole; every other lab
   * address still goes nowhere).
   */
  async reachFromRoot(hosts: LabHost[]): Promise<void> {
    if (!this.switchNetns) throw new Error('lab destroyed');
    this.rootVeth = `${this.tag}r`;
    await ip(['link', 'add', this.rootVeth, 'type', 'veth', 'peer', 'name', 'p-root', 'netns', this.switchNetns]);
    await ip(['-n', this.switchNetns, 'link', 'set', 'p-root', 'master', 'br0', 'up']);
    await ip(['addr', 'add', `${ROOT_ADDRESS}/32`, 'dev', this.rootVeth]);
    await ip(['link', 'set', this.rootVeth, 'up']);
    for (const host of hosts) await ip(['route', 'add', `${host.address}/32`, 'dev', this.rootVeth, 'src', ROOT_ADDRESS]);
  }

  /** Cut a host off the network: its port on the bridge goes down (its processes live on). */
  async cut(host: LabHost): Promise<void> {
    await ip(['-n', this.switchNetns as string, 'link', 'set', host.switchPort, 'down']);
  }

  /**
   * Start a process in a host's namespace. `ip netns exec` and `setpriv` exec it, so the pid is
   * the command's; it is SIGKILLed if this process dies without cleaning up.
   */
  spawn(host: LabHost, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd?: string): LabProcess {
    const child = spawn('ip', ['netns', 'exec', host.netns, 'setpriv', '--pdeathsig', 'KILL', '--', cmd, ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    const proc: LabProcess = { host, child, pid: child.pid as number, output: () => output, exited };
    this.processes.push(proc);
    return proc;
  }

  /** Every process's output so far, headed by its host and pid (for a failure's report). */
  outputs(): string {
    return this.processes.map((p) => `=== ${p.host.name} (pid ${p.pid})\n${p.output()}`).join('\n');
  }

  /** Send one process (by its pid) a signal, SIGKILL by default, and wait for it to be gone. */
  async kill(proc: LabProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill(signal);
    await proc.exited;
  }

  /** Remove everything this lab made, whatever state it is in; reports what it could not remove. */
  async destroy(): Promise<void> {
    const problems: string[] = [];
    // SIGTERM first (the RGW runner stops its daemons in order), SIGKILL what is left after 5 s.
    const live = this.processes.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    for (const proc of live) proc.child.kill('SIGTERM');
    await Promise.race([Promise.all(live.map((p) => p.exited)), new Promise((r) => setTimeout(r, 5000))]);
    for (const proc of live) {
      if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
      await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (pidAlive(proc.pid)) problems.push(`process ${proc.pid} still alive`);
    }
    // Whatever they started that still runs in our namespaces (e.g. ceph daemons): by pid.
    for (const host of this.hosts) {
      for (const pid of (await ip(['netns', 'pids', host.netns]).catch(() => '')).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    if (this.rootVeth) await ip(['link', 'del', this.rootVeth]).catch((e: Error) => problems.push(e.message));
    for (const host of this.hosts) await ip(['netns', 'del', host.netns]).catch((e: Error) => problems.push(e.message));
    if (this.switchNetns) await ip(['netns', 'del', this.switchNetns]).catch(() => {});
    this.switchNetns = undefined;
    if (this.routeAdded) await ip(['route', 'del', 'blackhole', LAB_SUBNET]).catch((e: Error) => problems.push(e.message));
    this.routeAdded = false;
    if (problems.length > 0) throw new Error(`lab cleanup incomplete: ${problems.join('; ')}`);
  }
}
