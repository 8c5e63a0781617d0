/** The uncompressed ELF vmlinux inside an x86 bzImage: what QEMU boots via PVH. */
import { execFileSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';
import { lz4LegacyDecode } from './lz4-legacy.ts';

/** Payload magic → the decompressor that takes it on stdin. */
const DECOMPRESSORS: Record<string, string[]> = {
  fd377a585a00: ['xz', '-dc'],
  '28b52ffd': ['zstd', '-dc'],
  '894c5a': ['lzop', '-dc'],
  '425a68': ['bzip2', '-dc'],
  '5d0000': ['unlzma', '-c'],
};

/** The payload the bzImage's setup header points at, decompressed. */
export function extractVmlinux(bzImage: Buffer): Buffer {
  if (bzImage.readUInt32LE(0x202) !== 0x53726448) throw new Error('not a bzImage (no HdrS)');
  const setupSects = bzImage[0x1f1] || 4;
  const payloadOffset = bzImage.readUInt32LE(0x248);
  const payloadLength = bzImage.readUInt32LE(0x24c);
  const start = (setupSects + 1) * 512 + payloadOffset;
  const payload = bzImage.subarray(start, start + payloadLength);
  const magic = payload.subarray(0, 6).toString('hex');
  let elf: Buffer;
  if (magic.startsWith('02214c18')) elf = lz4LegacyDecode(payload);
  else if (magic.startsWith('1f8b')) elf = gunzipSync(payload);
  else {
    const hit = Object.entries(DECOMPRESSORS).find(([m]) => magic.startsWith(m));
    if (!hit) throw new Error(`unknown kernel payload compression (magic ${magic})`);
    const [cmd, ...args] = hit[1] as [string, ...string[]];
    // Trailing bytes (the appended size) make some decompressors complain; the output is still whole.
    try {
      elf = execFileSync(cmd, args, { input: payload, maxBuffer: 1 << 30 });
    } catch (err) {
      const stdout = (err as { stdout?: Buffer }).stdout;
      if (stdout?.length) elf = stdout;
      else throw err;
    }
  }
  if (elf.readUInt32BE(0) !== 0x7f454c46) throw new Error('decompressed kernel payload is not an ELF image');
  return elf;
}
