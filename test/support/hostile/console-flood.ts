/**
 * A console flood from the guest (issue 12, attack 6): the script writes to the guest's
 * kernel console (`device`: ttyS0 on amd64, ttyAMA0 on arm64; the host keeps its tail) as
 * fast as it can, then reboots the guest at once, so that the step ends without a status and
 * the host reads the console to say why.
 */
export const consoleFloodScript = (seconds: number, device: string) =>
  [
    `yes 'console flood: the guest writes this as fast as the serial port takes it' > /dev/${device} &`,
    `sleep ${seconds}`,
    // sysrq b: reboot now, no sync, no status written; QEMU (-no-reboot) exits.
    'echo b > /proc/sysrq-trigger',
    'sleep 30',
  ].join('\n');
