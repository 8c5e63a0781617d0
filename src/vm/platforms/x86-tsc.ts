/**
 * The host's TSC frequency, which an x86 guest kernel needs handed over: without
 * `tsc_early_khz=` it stalls calibrating under TCG, whose TSC is the host's.
 */
import { readFileSync } from 'node:fs';

/** The host's TSC frequency in kHz. `BALER_VM_TSC_KHZ` overrides. */
export function hostTscKhz(env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = Number(env.BALER_VM_TSC_KHZ);
  if (Number.isSafeInteger(fromEnv) && fromEnv > 0) return fromEnv;
  try {
    const khz = Number(readFileSync('/sys/devices/system/cpu/cpu0/tsc_freq_khz', 'utf8').trim());
    if (Number.isSafeInteger(khz) && khz > 0) return khz;
  } catch {
    /* not exposed by this kernel */
  }
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const mhz = cpuinfo.match(/^cpu MHz\s*:\s*([\d.]+)/m)?.[1];
  if (mhz) return Math.round(Number(mhz) * 1000);
  const ghz = cpuinfo.match(/^model name\s*:.*@\s*([\d.]+)GHz/m)?.[1];
  if (ghz) return Math.round(Number(ghz) * 1e6);
  throw new Error('cannot tell the host TSC frequency: set BALER_VM_TSC_KHZ');
}

/** Whether /proc/cpuinfo shows x86 hardware virtualisation (vmx or svm). */
export function x86CpuHasVirtualization(): boolean {
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}
