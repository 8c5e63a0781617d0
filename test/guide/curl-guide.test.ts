/**
 * The README's curl guide, run as written: every `$ command` of its console blocks runs, in
 * order, in one bash session (so variables carry over), against a real service and a private
 * dockerd, and prints what the README shows under it. Only what differs between runs by
 * design is normalised: build ids (random) and the service's address.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDockerd, type Dockerd } from '../support/dockerd.ts';
import { run, SYSTEM_PATH } from '../support/run.ts';
import { startService, type Service } from '../support/service.ts';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));
const GUIDE_ADDRESS = 'http://localhost:8080';

interface GuideStep {
  command: string;
  expected: string;
}

/** The `$ ` commands (with `\` continuation lines) of the console blocks between the guide's markers, each with the output shown under it. */
function parseGuide(markdown: string): GuideStep[] {
  const begin = markdown.indexOf('<!-- curl-guide -->');
  const end = markdown.indexOf('<!-- /curl-guide -->');
  if (begin < 0 || end < begin) throw new Error('README has no <!-- curl-guide --> … <!-- /curl-guide --> section');
  const steps: GuideStep[] = [];
  const blocks = markdown.slice(begin, end).matchAll(/```console\n([\s\S]*?)```/g);
  for (const [, body] of blocks) {
    const lines = body!.replace(/\n$/, '').split('\n');
    for (let i = 0; i < lines.length; ) {
      if (!lines[i]!.startsWith('$ ')) throw new Error(`guide line outside a command's output: ${lines[i]}`);
      let command = lines[i++]!.slice(2);
      while (command.endsWith('\\')) command += '\n' + lines[i++];
      const output: string[] = [];
      while (i < lines.length && !lines[i]!.startsWith('$ ')) output.push(lines[i++]!);
      steps.push({ command, expected: output.join('\n') });
    }
  }
  return steps;
}

const normalise = (text: string): string => text.replace(/\b[a-z2-7]{26}\b/g, '<build id>').trimEnd();

describe('the README curl guide', () => {
  let service: Service;
  let dockerd: Dockerd;
  let workDir: string;

  beforeAll(async () => {
    [service, dockerd, workDir] = await Promise.all([startService(), startDockerd(), mkdtemp(join(tmpdir(), 'baler-guide-'))]);
  });
  afterAll(async () => {
    await Promise.allSettled([service?.stop(), dockerd?.stop(), workDir && rm(workDir, { recursive: true, force: true })]);
  });

  it('every command prints what the guide shows', async () => {
    const steps = parseGuide(await readFile(README, 'utf8'));
    expect(steps.length).toBeGreaterThan(5);
    // One bash for the whole guide; a marker line before each command splits the output.
    const marker = (i: number): string => `@@guide-step-${i}@@`;
    const script = [
      'set -o pipefail',
      // The private dockerd has no bridge network: containers run with --network none.
      'docker() { if [ "$1" = run ]; then shift; command docker run --network none "$@"; else command docker "$@"; fi; }',
      ...steps.flatMap((s, i) => [`printf '\\n%s\\n' '${marker(i)}'`, s.command.replaceAll(GUIDE_ADDRESS, service.url)]),
    ].join('\n');
    const result = await run('bash', ['-c', script], {
      cwd: workDir,
      timeoutMs: 300_000,
      env: { PATH: SYSTEM_PATH, HOME: workDir, DOCKER_HOST: dockerd.host, DOCKER_CONFIG: join(dockerd.root, 'client') },
    });
    const outputs = result.stdout.split(/\n@@guide-step-\d+@@\n/).slice(1);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    for (const [i, step] of steps.entries()) {
      expect({ command: step.command, output: normalise(outputs[i] ?? '') }).toEqual({ command: step.command, output: normalise(step.expected) });
    }
  });
});
