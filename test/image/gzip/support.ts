/** Deterministic test data and the system gzip, for the parallel gzip tests. */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';

/** `length` bytes of incompressible, seeded pseudo-random data (AES-128-CTR keystream). */
export function randomData(length: number, seed = 'seed'): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return Buffer.concat([cipher.update(Buffer.alloc(length)), cipher.final()]);
}

const WORDS = 'the quick brown fox jumps over lazy dog layer image tar gzip deflate block window dictionary build daemon config manifest sha256 etc usr bin lib share'.split(' ');

/** `length` bytes of compressible, text-like data (log lines made of a few words and numbers), seeded. */
export function textData(length: number, seed = 'text'): Buffer {
  const noise = randomData(Math.ceil(length / 4) + 64, seed);
  const parts: string[] = [];
  let size = 0;
  for (let i = 0, n = 0; size < length; i += 4, n++) {
    const a = noise[i % noise.length] as number;
    const b = noise[(i + 1) % noise.length] as number;
    const c = noise[(i + 2) % noise.length] as number;
    const line = `${n} ${WORDS[a % WORDS.length]} ${WORDS[b % WORDS.length]} /${WORDS[c % WORDS.length]}/${a * 256 + b} ${c % 7 === 0 ? 'ERROR' : 'ok'}\n`;
    parts.push(line);
    size += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

/** Half random, half text-like. */
export function mixedData(length: number, seed = 'mixed'): Buffer {
  const half = Math.floor(length / 2);
  return Buffer.concat([randomData(half, seed), textData(length - half, seed)]);
}

/** A stream that delivers `data` in chunks of exactly `size` bytes (object mode, so chunks are never merged). */
export function chunked(data: Buffer, size: number): Readable {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += size) chunks.push(data.subarray(offset, offset + size));
  return Readable.from(chunks);
}

export interface GzipRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs the system gzip (/usr/bin/gzip, or gzip on PATH) with `args`, `input` on stdin. */
export function systemGzip(args: readonly string[], input: Buffer): Promise<GzipRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('gzip', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const stdout = buffer(child.stdout);
    const stderr = buffer(child.stderr);
    child.stdin.on('error', () => {
      /* EPIPE when gzip gives up early; the exit code tells */
    });
    child.on('error', reject);
    child.on('close', (code) => {
      Promise.all([stdout, stderr]).then(([out, err]) => resolve({ code: code ?? -1, stdout: out, stderr: err.toString() }), reject);
    });
    child.stdin.end(input);
  });
}
