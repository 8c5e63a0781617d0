/**
 * Test-support helpers shared by the dockerd and podman harnesses:
 *  - `run`: a promise wrapper around child_process.spawn;
 *  - small Linux helpers for tearing down private container-engine state
 *    (processes, mounts, cgroups) that belongs to one temp root.
 *
 * Nothing here touches system-wide state except paths that are unique to
 * one harness instance (its temp root / its random cgroup name).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; 128 + signal number when the process died from a signal. */
  code: number;
}

export interface RunOptions {
  /** Written to the child's stdin (stdin is closed afterwards). */
  input?: string;
  /** Merged over process.env (a value of `undefined` removes the variable). */
  env?: Record<string, string | undefined>;
  /** Kill the child (SIGKILL) and reject after this many ms. Default: no timeout. */
  timeoutMs?: number;
  cwd?: string;
}

/** Spawn `cmd args`, collect stdout/stderr, resolve with the exit code (never rejects on non-zero). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const [k, v] of Object.entries(opts.env ?? {})) {
      if (v === undefined) delete env[k];
      else env[k] = v;
    }
    const child = spawn(cmd, args, {
      env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {
      /* EPIPE if the child does not read its input; the exit code tells the story */
    });
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`failed to spawn ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) {
        reject(new Error(`timed out after ${opts.timeoutMs} ms: ${cmd} ${args.join(' ')}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
        return;
      }
      resolve({ stdout, stderr, code: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0) });
    });
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/**
 * Parent dir for harness temp roots: os.tmpdir(), unless that is so long that unix socket paths
 * below it (e.g. <root>/exec/containerd/containerd.sock.ttrpc, limit 107 bytes) could overflow.
 */
export function harnessTmpBase(): string {
  const base = tmpdir();
  return base.length <= 40 ? base : '/tmp';
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A PATH that resolves the Debian-packaged engine binaries, not the ones in /usr/local. */
export const SYSTEM_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

// ---------------------------------------------------------------------------
// CLI argument defaults

export interface ContainerDefault {
  /** Flag spellings that mean "the caller already chose" (matched as `--flag` or `--flag=...`). */
  flags: readonly string[];
  /** Only count a flag as present if its value starts with this (e.g. `nofile=` for `--ulimit`). */
  valuePrefix?: string;
  /** Inserted when the flag is absent. */
  args: readonly string[];
}

function flagPresent(args: readonly string[], d: ContainerDefault): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    for (const f of d.flags) {
      let value: string | undefined;
      if (a === f) value = args[i + 1] ?? '';
      else if (a.startsWith(f + '=')) value = a.slice(f.length + 1);
      else continue;
      if (d.valuePrefix === undefined || value.startsWith(d.valuePrefix)) return true;
    }
  }
  return false;
}

/**
 * For `run`/`create` (also `container run|create`), insert each default's args right after the
 * subcommand unless the caller already passed that flag. Other commands are returned unchanged.
 */
export function withContainerDefaults(args: readonly string[], defaults: readonly ContainerDefault[]): string[] {
  const i = args[0] === 'container' ? 1 : 0;
  const sub = args[i];
  if (sub !== 'run' && sub !== 'create') return [...args];
  const insert: string[] = [];
  for (const d of defaults) if (!flagPresent(args, d)) insert.push(...d.args);
  return [...args.slice(0, i + 1), ...insert, ...args.slice(i + 1)];
}

// ---------------------------------------------------------------------------
// processes

/** true if pid exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // state is the first field after the parenthesised comm
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** true if pid is alive and its command line contains `needle` (guards against pid reuse). */
export function pidMentions(pid: number, needle: string): boolean {
  return pidAlive(pid) && cmdline(pid).includes(needle);
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Live pids whose command line mentions `needle` (e.g. a harness temp root). */
export function pidsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if (cmdline(pid).includes(needle) && pidAlive(pid)) pids.push(pid);
  }
  return pids;
}

/** Live pids whose executable is one of `exes` (absolute paths). */
export function pidsWithExe(exes: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      if (exes.includes(exe) && pidAlive(pid)) pids.push(pid);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return pids;
}

/** Send `signal`, then wait up to `timeoutMs` for the pids to go away. Returns the survivors. */
export async function killAndWait(pids: readonly number[], signal: NodeJS.Signals, timeoutMs: number): Promise<number[]> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(pidAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(50);
    alive = alive.filter(pidAlive);
  }
  return alive;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when all are gone (or after a final 5 s). */
export async function terminate(pids: readonly number[], graceMs: number): Promise<void> {
  const survivors = await killAndWait(pids, 'SIGTERM', graceMs);
  if (survivors.length > 0) await killAndWait(survivors, 'SIGKILL', 5000);
}

// ---------------------------------------------------------------------------
// mounts

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

interface MountInfo {
  mountPoint: string;
  fsType: string;
}

function mountInfo(): MountInfo[] {
  const result: MountInfo[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left?.split(' ') ?? [];
    const mp = fields[4];
    const fsType = right?.split(' ')[0];
    if (mp !== undefined && fsType !== undefined) {
      result.push({ mountPoint: unescapeMountPath(mp), fsType });
    }
  }
  return result;
}

/** Mount points at or below `root`. */
export function mountsUnder(root: string): string[] {
  return mountInfo()
    .map((m) => m.mountPoint)
    .filter((mp) => mp === root || mp.startsWith(root + '/'));
}

/** Lazily unmount everything at or below `root`, deepest first (`-n`: no /run/mount/utab bookkeeping). */
export async function unmountUnder(root: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const mps = [...new Set(mountsUnder(root))].sort((a, b) => b.length - a.length);
    if (mps.length === 0) return;
    for (const mp of mps) {
      await run('/bin/umount', ['-n', '-l', mp], { timeoutMs: 10_000 });
    }
  }
  const left = mountsUnder(root);
  if (left.length > 0) throw new Error(`could not unmount: ${left.join(', ')}`);
}

// ---------------------------------------------------------------------------
// cgroups

/** Every directory that a relative cgroup path `name` can resolve to for this process, on v1 and v2. */
function cgroupCandidates(name: string): string[] {
  const mounts = mountInfo()
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2')
    .map((m) => m.mountPoint);
  const ownPaths = new Set<string>(['/']);
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const path = line.split(':').slice(2).join(':');
      if (path) ownPaths.add(path);
    }
  } catch {
    /* no cgroups */
  }
  const out = new Set<string>();
  for (const mp of mounts) {
    for (const own of ownPaths) {
      const dir = join(mp, own, name);
      if (existsSync(dir)) out.add(dir);
    }
  }
  return [...out];
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string): void => {
    try {
      for (const line of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        if (line.trim()) pids.push(Number(line));
      }
      for (const e of readdirSync(d)) {
        const sub = join(d, e);
        if (isDir(sub)) walk(sub);
      }
    } catch {
      /* vanished */
    }
  };
  walk(dir);
  return pids;
}

/** Live pids in any cgroup named `name` (relative to ours) or below it. */
export function pidsInCgroup(name: string): number[] {
  const all = new Set<number>();
  for (const dir of cgroupCandidates(name)) for (const pid of cgroupPids(dir)) all.add(pid);
  all.delete(process.pid);
  return [...all].filter(pidAlive);
}

function rmdirTree(dir: string): void {
  for (const e of readdirSync(dir)) {
    const sub = join(dir, e);
    if (isDir(sub)) rmdirTree(sub);
  }
  rmdirSync(dir);
}

/** Remove the (empty) cgroup directories named `name`; retries while the kernel finishes tearing down tasks. */
export async function removeCgroup(name: string): Promise<void> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 50; attempt++) {
    const dirs = cgroupCandidates(name);
    if (dirs.length === 0) return;
    lastError = undefined;
    for (const dir of dirs) {
      try {
        rmdirTree(dir);
      } catch (e) {
        lastError = e;
      }
    }
    if (lastError === undefined) return;
    await sleep(100);
  }
  throw new Error(`could not remove cgroup ${name}: ${String(lastError)}`);
}
