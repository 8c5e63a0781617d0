/**
 * The operator's caps on VM steps, end to end: a spec over `diskSize`, `memorySize` or `timeout`
 * caps is refused at submission (400, dry runs too), naming the field, the cap and its setting.
 * The real API (no worker: nothing is built).
 *
 * No arm64 row (issue 15): the caps are checked on the spec at submission (src/builds/vm-caps.ts),
 * before a queue or platform is chosen, so an `architecture: "arm64"` spec meets the same check
 * (test/faults/hostile-vm.test.ts submits one over each cap, rows `… (arm64)`, in test:faults).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { startService, type Service } from '../support/service.ts';

const CAPS = { BALER_MAX_DISK_SIZE_MIB: '2048', BALER_MAX_MEMORY_SIZE_MIB: '1024', BALER_MAX_VM_TIMEOUT_S: '900' };

async function submit(service: Service, spec: unknown, query = ''): Promise<{ status: number; type: string | null; body: { errors?: unknown; detail?: string } }> {
  const res = await fetch(`${service.url}/v1/builds${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as { errors?: unknown; detail?: string } };
}

describe('caps on VM steps', () => {
  let service: Service;

  beforeAll(async () => {
    service = await startService({ BALER_LOCAL_WORKERS: '0', ...CAPS });
  }, 180_000);

  afterAll(async () => {
    await service?.stop();
  });

  it.each([
    ['diskSize', 2049, "2049 MiB is over this service's cap of 2048 MiB (BALER_MAX_DISK_SIZE_MIB)"],
    ['memorySize', 2048, "2048 MiB is over this service's cap of 1024 MiB (BALER_MAX_MEMORY_SIZE_MIB)"],
    ['timeout', 901, "901 s is over this service's cap of 900 s (BALER_MAX_VM_TIMEOUT_S)"],
  ])('refuses %s over its cap with 400 naming the cap and its setting, dry runs too', async (field, value, message) => {
    const spec = { name: 'capped', runAsRoot: 'true', [field]: value };
    for (const query of ['', '?dryRun=true']) {
      const answer = await submit(service, spec, query);
      expect(answer.status).toBe(400);
      expect(answer.type).toMatch(/^application\/problem\+json/);
      expect(answer.body.errors).toEqual([{ pointer: `/${field}`, message }]);
      expect(answer.body.detail).toBe(`invalid build spec: /${field}: ${message}`);
    }
  });

  it('names every field over its cap at once, and takes a spec at the caps', async () => {
    const over = await submit(service, { name: 'capped', runAsRoot: 'true', diskSize: 4096, memorySize: 4096, timeout: 3600 });
    expect(over.status).toBe(400);
    expect((over.body.errors as Array<{ pointer: string }>).map((e) => e.pointer)).toEqual(['/diskSize', '/memorySize', '/timeout']);
    const atCaps = { name: 'capped', runAsRoot: 'true', diskSize: 2048, memorySize: 1024, timeout: 900 };
    expect((await submit(service, atCaps, '?dryRun=true')).status).toBe(200);
    expect((await submit(service, atCaps)).status).toBe(202);
  });

  it('does not start with a cap below the field’s default', () => {
    expect(() => loadConfig({ BALER_MAX_DISK_SIZE_MIB: '512' })).toThrow('BALER_MAX_DISK_SIZE_MIB must be at least 1024 (the default diskSize), got 512');
    expect(loadConfig({})).toMatchObject({ maxDiskSizeMiB: 4096, maxMemorySizeMiB: 4096, maxVmTimeoutSeconds: 3600, vmDiskReserveMiB: 1024 });
  });
});
