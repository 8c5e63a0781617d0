/**
 * The guest's console costs the host fixed memory and no disk, however much the guest writes
 * to it: the ring keeps its last bytes in order, and a real VM flooding its console (TCG
 * here: the serial line carries ~60 KB/s) leaves no file behind and still names its last line
 * when it stops without a status.
 */
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleTail } from '../../src/vm/console-tail.ts';
import { QemuVmRunner } from '../../src/vm/qemu-vm-runner.ts';
import { FILES } from '../../src/vm/step-files.ts';
import { job } from './support.ts';

describe('ConsoleTail', () => {
  it('keeps the last bytes, in order, in fixed memory, whatever the chunk sizes', () => {
    const tail = new ConsoleTail(1000);
    let all = '';
    for (let i = 0; i < 20_000; i++) {
      const line = `line ${i} ${'x'.repeat(i % 97)}\n`;
      all += line;
      tail.push(Buffer.from(line));
    }
    const big = 'B'.repeat(3000) + 'end\n';
    all += big;
    tail.push(Buffer.from(big));
    tail.push(Buffer.from('after\n'));
    all += 'after\n';
    expect(tail.totalBytes).toBe(Buffer.byteLength(all));
    expect(tail.tail().toString()).toBe(all.slice(-1000));
    expect(tail.tail(10).toString()).toBe(all.slice(-10));
    // Fewer bytes than the capacity: all of them.
    const short = new ConsoleTail(1000);
    short.push(Buffer.from('abc'));
    short.push(Buffer.from('def'));
    expect(short.tail().toString()).toBe('abcdef');
  });

  it('holds no more than its capacity after 100 MiB', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // V8 frees array buffers on a sweeper thread after a GC: wait for it to settle, on a busy
    // machine too (a ring that kept its chunks would hold 100 MiB however long this waits).
    const settled = async () => {
      let last = Number.NaN;
      for (let i = 0; i < 20; i++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 25));
        const now = process.memoryUsage().arrayBuffers;
        if (now === last) return now;
        last = now;
      }
      return last;
    };
    const before = await settled();
    const tail = new ConsoleTail(16 * 1024);
    for (let i = 0; i < 1600; i++) tail.push(Buffer.alloc(64 * 1024, i % 256));
    const held = (await settled()) - before;
    expect(tail.totalBytes).toBe(100 * 1024 * 1024);
    expect(held).toBeLessThan(1024 * 1024);
  });
});

describe('a VM flooding its console', () => {
  let work: string;
  let vmTmp: string;
  let runner: QemuVmRunner;
  const records: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'baler-console-test-'));
    vmTmp = join(work, 'vm-tmp');
    await mkdir(vmTmp);
    const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
    runner = new QemuVmRunner({ tmpDir: vmTmp, poolSize: 0, logger });
    await runner.assets();
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('leaves no console file, and the step that stops without a status names its last line', async () => {
    // Watch the step dir while the guest floods: nothing but the step's own disks may grow there.
    let largestOther = 0;
    let stepDirs = 0;
    const disks = new Set<string>([FILES.job, FILES.lower, FILES.upper, FILES.scratch, FILES.out, FILES.status]);
    const watching = setInterval(() => {
      void (async () => {
        for (const dir of await readdir(vmTmp).catch(() => [] as string[])) {
          stepDirs = Math.max(stepDirs, 1);
          for (const name of await readdir(join(vmTmp, dir)).catch(() => [] as string[])) {
            if (disks.has(name)) continue;
            const st = await stat(join(vmTmp, dir, name)).catch(() => undefined);
            largestOther = Math.max(largestOther, st?.size ?? 0);
          }
        }
      })();
    }, 200);
    const line = 'flood 0123456789abcdefghijklmnopqrstuvwxyz 0123456789abcdefghijklmnopqrstuvwxyz';
    const t0 = Date.now();
    const result = await runner
      .run(
        job({
          // Then the guest resets without writing a status: the reason quotes the console's last
          // line (the kernel's message may land after part of a flood line).
          runAsRoot: `timeout 12 yes "${line}" >/dev/console || true\necho b >/proc/sysrq-trigger\nsleep 60`,
          limits: { diskMiB: 32, memoryMiB: 256, timeoutSeconds: 90 },
        }),
      )
      .finally(() => clearInterval(watching));
    const seconds = (Date.now() - t0) / 1000;
    await result.dispose();
    const ended = records.filter((r) => r.msg === 'VM step ended').pop();
    const consoleBytes = Number(ended?.consoleBytes);
    console.log(`console flood: ${consoleBytes} bytes in ${seconds.toFixed(1)} s (TCG); largest other file in the step dir: ${largestOther} bytes`);
    expect(stepDirs).toBe(1);
    // None of the flood went to a file ...
    expect(largestOther).toBeLessThan(4096);
    // ... and it was many times what the host keeps (16 KiB).
    expect(consoleBytes).toBeGreaterThan(200_000);
    expect(result.outcome.ok).toBe(false);
    expect(!result.outcome.ok && result.outcome.reason).toMatch(/^the VM stopped before the step finished \(.*\[ *\d+\.\d+\] sysrq: Resetting\)$/);
    expect(await readdir(vmTmp)).toEqual([]);
  }, 180_000);
});
