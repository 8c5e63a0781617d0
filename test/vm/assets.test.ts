/**
 * The VM asset build's own formats (src/vm/assets): the initramfs's cpio, the kernel payload's
 * LZ4, and what it reads from binaries it cannot run (another architecture's): their ELF
 * dependencies and busybox's applets, checked here against the host's own tools.
 */
import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Cpio } from '../../src/vm/assets/cpio.ts';
import { hostRoot, unpackedRoot } from '../../src/vm/assets/guest-root.ts';
import { sharedLibraries } from '../../src/vm/assets/host-files.ts';
import { lz4LegacyDecode } from '../../src/vm/assets/lz4-legacy.ts';
import { amd64 } from '../../src/vm/platforms/amd64.ts';

describe('VM assets', () => {
  it('writes a newc cpio that busybox cpio lists, parents first, padded to 512 bytes', () => {
    const cpio = new Cpio();
    cpio.file('baler/bin/tool', Buffer.from('#!/bin/sh\n'), 0o755);
    cpio.symlink('bin', 'baler/bin');
    cpio.chardev('dev/null', 1, 3, 0o666);
    const archive = cpio.finish();
    expect(archive.length % 512).toBe(0);
    expect(archive.subarray(0, 6).toString()).toBe('070701');
    const listed = spawnSync('busybox', ['cpio', '-t'], { input: archive, encoding: 'utf8' });
    expect(listed.stdout.split('\n').filter(Boolean)).toEqual(['baler', 'baler/bin', 'baler/bin/tool', 'bin', 'dev', 'dev/null']);
  });

  it('decodes the LZ4 legacy frames of a kernel payload: literals and matches, trailing size ignored', () => {
    const block = Buffer.from([0x14, 0x61, 0x01, 0x00, 0x50, ...Buffer.from('hello')]);
    const frame = Buffer.alloc(8 + block.length + 4);
    frame.writeUInt32LE(0x184c2102, 0);
    frame.writeUInt32LE(block.length, 4);
    block.copy(frame, 8);
    frame.writeUInt32LE(12345, 8 + block.length);
    expect(lz4LegacyDecode(frame).toString()).toBe(`${'a'.repeat(9)}hello`);
    expect(() => lz4LegacyDecode(Buffer.alloc(8))).toThrow(/not an LZ4 legacy frame/);
  });

  it.runIf(process.arch === 'x64')("reads a binary's loader and libraries from its ELF headers as ldd finds them, and busybox's applets as --list prints them", () => {
    // The host's root read as if it were another architecture's unpacked packages.
    const asForeign = unpackedRoot('/', amd64);
    for (const tool of ['tar', 'setcap', 'getfattr']) {
      const bin = hostRoot(amd64).toolPath(tool);
      const read = asForeign.sharedLibraries(bin).map((l) => l.name);
      expect(read.sort()).toEqual(
        sharedLibraries(bin)
          .map((p) => basename(p))
          .sort(),
      );
    }
    expect(asForeign.busyboxApplets()).toEqual(hostRoot(amd64).busyboxApplets());
  });
});
