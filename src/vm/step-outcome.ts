/**
 * What a VM step came to, read once QEMU has exited: the status disk the guest writes last,
 * else the console's tail (a panic, an OOM, a script that rebooted the VM).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConsoleTail } from './console-tail.ts';
import { VmError, VmStartError } from './errors.ts';
import { FILES } from './step-files.ts';
import type { VmOutcome } from './vm-runner.ts';

const CONSOLE_TAIL = 4000;

function sanitize(text: string, max: number): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').slice(0, max);
}

interface GuestStatus {
  result: 'ok' | 'fail';
  reason: string;
  tarBytes: number;
}

async function readStatus(path: string): Promise<GuestStatus | undefined> {
  const buf = await readFile(path);
  const end = buf.indexOf(0);
  const text = buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 1));
  }
  if (fields.get('end') !== '1') return undefined;
  const result = fields.get('result');
  if (result !== 'ok' && result !== 'fail') return undefined;
  const tarBytes = Number(fields.get('tarBytes') ?? '0');
  return {
    result,
    reason: sanitize(fields.get('reason') ?? '', 1000),
    tarBytes: Number.isSafeInteger(tarBytes) && tarBytes >= 0 ? tarBytes : 0,
  };
}

/** The last `bytes` of the guest's console, control characters removed. */
export function consoleText(console: ConsoleTail, bytes = CONSOLE_TAIL): string {
  return sanitize(console.tail(bytes).toString('utf8'), bytes);
}

/**
 * The outcome of a step whose QEMU exited on its own (not timed out, not cancelled). Throws
 * VmStartError when QEMU itself failed, VmError when the guest's report is impossible.
 */
export async function stepOutcome(dir: string, qemu: { binary: string; code: number | null; stderr: string; console: ConsoleTail }): Promise<{ outcome: VmOutcome; tarBytes: number }> {
  const status = await readStatus(join(dir, FILES.status));
  if (!status) {
    const console = consoleText(qemu.console);
    if (qemu.code !== 0) {
      throw new VmStartError(`${qemu.binary} failed (exit code ${qemu.code}): ${sanitize(qemu.stderr.trim(), 2000) || 'no message'}`, { console });
    }
    // The guest stopped on its own without a result: a script rebooted it, or the kernel panicked.
    const last =
      console
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !/reboot: Restarting system/.test(l))
        .pop() ?? '';
    const oom = /Out of memory|oom-kill/i.test(console);
    return {
      outcome: {
        ok: false,
        reason: oom ? 'out of memory: the VM ran out of memory' : `the VM stopped before the step finished${last ? ` (${last.slice(0, 300)})` : ''}`,
      },
      tarBytes: 0,
    };
  }
  if (status.result === 'fail') return { outcome: { ok: false, reason: status.reason || 'the VM step failed' }, tarBytes: 0 };
  const outSize = (await stat(join(dir, FILES.out))).size;
  if (status.tarBytes < 1024 || status.tarBytes > outSize) {
    throw new VmError(`the guest reported an impossible layer size (${status.tarBytes} bytes)`, { console: consoleText(qemu.console) });
  }
  return { outcome: { ok: true }, tarBytes: status.tarBytes };
}
