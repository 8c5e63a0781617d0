/**
 * Signing, checked with a tool we did not write: keys made by `openssl genpkey`, DSSE envelopes
 * and cosign simple-signing payloads verified by `openssl dgst -verify` (ECDSA P-256) and
 * `openssl pkeyutl -verify -rawin` (Ed25519), the signed bytes rebuilt here from the spec.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IN_TOTO_PAYLOAD_TYPE, provenanceStatement, statementPayload } from '../../src/attest/provenance/statement.ts';
import {
  attestationTag,
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIMPLE_SIGNING_MEDIA_TYPE,
  cosignSignature,
  signatureImage,
  signatureTag,
  simpleSigningPayload,
} from '../../src/attest/signing/cosign-signature.ts';
import { dsseEnvelope, pae } from '../../src/attest/signing/dsse.ts';
import { loadSigningKey, type SigningKey } from '../../src/attest/signing/signing-key.ts';
import { digestOf, hexOf } from '../../src/digest.ts';
import { IMAGE_MANIFEST, provenanceInput } from './provenance-fixture.ts';

let dir: string;
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'baler-signing-'));
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'p256.pem');
  openssl('genpkey', '-algorithm', 'ed25519', '-out', 'ed25519.pem');
  // The SEC1 form (`BEGIN EC PRIVATE KEY`) older tools write.
  openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'p256-sec1.pem');
  openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', 'p384.pem');
  openssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024', '-out', 'rsa.pem');
  openssl('genpkey', '-algorithm', 'ed25519', '-aes256', '-pass', 'pass:secret', '-out', 'encrypted.pem');
  await writeFile(join(dir, 'garbage.pem'), 'not a key\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Whether openssl accepts `signature` over `data` with the PEM public key. */
async function opensslVerifies(key: SigningKey, data: Buffer, signature: Buffer): Promise<boolean> {
  await writeFile(join(dir, 'pub.pem'), key.publicKeyPem);
  await writeFile(join(dir, 'data.bin'), data);
  await writeFile(join(dir, 'sig.bin'), signature);
  const args =
    key.algorithm === 'ecdsa-p256'
      ? ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.bin', 'data.bin']
      : ['pkeyutl', '-verify', '-pubin', '-inkey', 'pub.pem', '-rawin', '-in', 'data.bin', '-sigfile', 'sig.bin'];
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (result.status !== 0 && result.status !== 1) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
  return result.status === 0;
}

/** DSSE's PAE, written out from the spec (not with the code under test). */
function specPae(payloadType: string, payload: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(payloadType)} ${payloadType} ${payload.length} `), payload]);
}

function flipOneByte(bytes: Buffer, at: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[at] = (copy[at] as number) ^ 0x01;
  return copy;
}

describe('loadSigningKey', () => {
  it.each([
    ['p256.pem', 'ecdsa-p256'],
    ['p256-sec1.pem', 'ecdsa-p256'],
    ['ed25519.pem', 'ed25519'],
  ] as const)('%s: %s, key id = sha256 of the public key DER, public key as openssl writes it', async (file, algorithm) => {
    const key = await loadSigningKey(join(dir, file));
    expect(key.algorithm).toBe(algorithm);
    const der = openssl('pkey', '-in', file, '-pubout', '-outform', 'DER');
    expect(key.keyId).toBe(createHash('sha256').update(der).digest('hex'));
    expect(key.publicKeyPem).toBe(openssl('pkey', '-in', file, '-pubout').toString());
  });

  it.each([
    ['rsa.pem', /a key of type rsa; baler signs with ECDSA P-256 or Ed25519 keys only/],
    ['p384.pem', /a key of type ec \(curve secp384r1\); baler signs with ECDSA P-256 or Ed25519 keys only/],
    ['encrypted.pem', /it is encrypted; give an unencrypted PEM private key/],
    ['garbage.pem', /it is not a PEM private key/],
    ['missing.pem', /BALER_SIGNING_KEY_FILE .*missing\.pem: ENOENT/],
  ])('refuses %s, saying why', async (file, message) => {
    await expect(loadSigningKey(join(dir, file))).rejects.toThrow(message);
  });
});

describe('DSSE', () => {
  it('encodes PAE as the DSSE spec says', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
    // Lengths count bytes, not characters.
    expect(pae('t', Buffer.from('é')).equals(Buffer.concat([Buffer.from('DSSEv1 1 t 2 '), Buffer.from('é')]))).toBe(true);
  });

  it('leaves an envelope unsigned without a key', () => {
    const payload = statementPayload(provenanceStatement(provenanceInput()));
    expect(dsseEnvelope(IN_TOTO_PAYLOAD_TYPE, payload)).toEqual({ payloadType: IN_TOTO_PAYLOAD_TYPE, payload: payload.toString('base64'), signatures: [] });
  });

  it.each(['p256.pem', 'ed25519.pem'])('a provenance envelope signed with %s verifies with openssl; one flipped payload byte does not', async (file) => {
    const key = await loadSigningKey(join(dir, file));
    const envelope = dsseEnvelope(IN_TOTO_PAYLOAD_TYPE, statementPayload(provenanceStatement(provenanceInput())), key);
    // What a verifier has: the envelope (as JSON) and the public key.
    const received = JSON.parse(JSON.stringify(envelope)) as typeof envelope;
    expect(received.signatures).toHaveLength(1);
    const [signature] = received.signatures;
    expect(signature?.keyid).toBe(key.keyId);
    const payload = Buffer.from(received.payload, 'base64');
    expect(JSON.parse(payload.toString()).subject[0].digest.sha256).toBe(hexOf(IMAGE_MANIFEST));
    const sig = Buffer.from(signature?.sig ?? '', 'base64');
    expect(await opensslVerifies(key, specPae(received.payloadType, payload), sig)).toBe(true);
    expect(await opensslVerifies(key, specPae(received.payloadType, flipOneByte(payload, payload.indexOf('sha256') + 10)), sig)).toBe(false);
    // The payload type is signed too.
    expect(await opensslVerifies(key, specPae('application/json', payload), sig)).toBe(false);
  });
});

describe('cosign simple signing', () => {
  const REPOSITORY = 'registry.example:5000/team/app';

  it("writes cosign's payload byte for byte, and its tag", () => {
    expect(simpleSigningPayload(IMAGE_MANIFEST, REPOSITORY).toString()).toBe(
      `{"critical":{"identity":{"docker-reference":"${REPOSITORY}"},"image":{"docker-manifest-digest":"${IMAGE_MANIFEST}"},"type":"cosign container image signature"},"optional":null}`,
    );
    expect(signatureTag(IMAGE_MANIFEST)).toBe(`sha256-${hexOf(IMAGE_MANIFEST)}.sig`);
    expect(attestationTag(IMAGE_MANIFEST)).toBe(`sha256-${hexOf(IMAGE_MANIFEST)}.att`);
  });

  it.each(['p256.pem', 'ed25519.pem'])('a signature image made with %s verifies with openssl; a flipped payload byte does not', async (file) => {
    const key = await loadSigningKey(join(dir, file));
    const payload = simpleSigningPayload(IMAGE_MANIFEST, REPOSITORY);
    const image = signatureImage(payload, cosignSignature(payload, key));
    // What a verifier reads from the registry: the manifest, then the layer it names.
    const manifest = JSON.parse(image.manifest.toString());
    expect(image.manifestDigest).toBe(digestOf(image.manifest));
    expect(manifest).toMatchObject({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json' } });
    expect(manifest.layers).toHaveLength(1);
    const [layer] = manifest.layers;
    expect(layer.mediaType).toBe(COSIGN_SIMPLE_SIGNING_MEDIA_TYPE);
    const blobs = new Map(image.blobs.map((b) => [b.digest, b.bytes]));
    for (const d of [manifest.config, layer]) {
      expect(digestOf(blobs.get(d.digest) as Buffer)).toBe(d.digest);
      expect(blobs.get(d.digest)?.length).toBe(d.size);
    }
    expect(JSON.parse((blobs.get(manifest.config.digest) as Buffer).toString()).rootfs).toEqual({ type: 'layers', diff_ids: [layer.digest] });
    const layerBytes = blobs.get(layer.digest) as Buffer;
    expect(JSON.parse(layerBytes.toString()).critical.image['docker-manifest-digest']).toBe(IMAGE_MANIFEST);
    const sig = Buffer.from(layer.annotations[COSIGN_SIGNATURE_ANNOTATION], 'base64');
    expect(await opensslVerifies(key, layerBytes, sig)).toBe(true);
    expect(await opensslVerifies(key, flipOneByte(layerBytes, layerBytes.indexOf('sha256:') + 20), sig)).toBe(false);
  });

  it('makes the same signature image from the same payload and key', async () => {
    const key = await loadSigningKey(join(dir, 'ed25519.pem'));
    const payload = simpleSigningPayload(IMAGE_MANIFEST, REPOSITORY);
    // Ed25519 signatures are deterministic (RFC 8032): so is the whole image.
    expect(signatureImage(payload, cosignSignature(payload, key)).manifest.equals(signatureImage(payload, cosignSignature(payload, key)).manifest)).toBe(true);
  });
});
