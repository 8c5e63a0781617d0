import { spawn, type ChildProcess } from 'node:child_process';

export interface ScriptProcess {
  child: ChildProcess;
  /** What it printed so far, stdout and stderr together. */
  output(): string;
  exited: Promise<unknown>;
}

/** A TypeScript file run as a process of its own (`node --import tsx`), for tests that kill it. */
export function startScript(path: string, env: NodeJS.ProcessEnv): ScriptProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  return { child, output: () => output, exited: new Promise((resolve) => child.once('exit', resolve)) };
}
