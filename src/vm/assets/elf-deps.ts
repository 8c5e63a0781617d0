/**
 * What a 64-bit little-endian ELF binary needs to run, read from its program headers: its
 * loader (PT_INTERP) and the sonames of its DT_NEEDED entries. For binaries of a foreign
 * architecture, where the host's ldd cannot run them.
 */

const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PT_LOAD = 1;
const DT_NULL = 0n;
const DT_NEEDED = 1n;
const DT_STRTAB = 5n;

interface ElfNeeds {
  /** The loader's path, absent for a static binary. */
  interpreter: string | undefined;
  /** DT_NEEDED sonames, in order. */
  needed: string[];
}

function cString(buf: Buffer, at: number): string {
  const end = buf.indexOf(0, at);
  return buf.subarray(at, end < 0 ? buf.length : end).toString('latin1');
}

export function elfNeeds(elf: Buffer): ElfNeeds {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a 64-bit little-endian ELF binary');
  const phoff = Number(elf.readBigUInt64LE(0x20));
  const phentsize = elf.readUInt16LE(0x36);
  const phnum = elf.readUInt16LE(0x38);
  const loads: { vaddr: bigint; offset: bigint; filesz: bigint }[] = [];
  let interpreter: string | undefined;
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    const type = elf.readUInt32LE(p);
    const offset = elf.readBigUInt64LE(p + 8);
    const vaddr = elf.readBigUInt64LE(p + 16);
    const filesz = elf.readBigUInt64LE(p + 32);
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    else if (type === PT_INTERP) interpreter = cString(elf, Number(offset));
    else if (type === PT_DYNAMIC) dynamic = { offset: Number(offset), size: Number(filesz) };
  }
  if (!dynamic) return { interpreter, needed: [] };
  const entries: [bigint, bigint][] = [];
  for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
    const tag = elf.readBigInt64LE(at);
    if (tag === DT_NULL) break;
    entries.push([tag, elf.readBigUInt64LE(at + 8)]);
  }
  const strtabVaddr = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  const load = loads.find((l) => strtabVaddr !== undefined && strtabVaddr >= l.vaddr && strtabVaddr < l.vaddr + l.filesz);
  if (strtabVaddr === undefined || !load) throw new Error('ELF binary has no string table for its dynamic section');
  const strtab = Number(strtabVaddr - load.vaddr + load.offset);
  const needed = entries.filter(([tag]) => tag === DT_NEEDED).map(([, val]) => cString(elf, strtab + Number(val)));
  return { interpreter, needed };
}
