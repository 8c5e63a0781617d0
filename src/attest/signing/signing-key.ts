import { createHash, createPrivateKey, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';

/** The operator's signing key (BALER_SIGNING_KEY_FILE), as attestations and signatures use it. */
export interface SigningKey {
  /** sha256 (hex) of the public key's SubjectPublicKeyInfo DER: the `keyid` of DSSE signatures. */
  keyId: string;
  /** The public key, SPKI PEM: what `GET /v1/signing-key` serves and `openssl … -verify` takes. */
  publicKeyPem: string;
  algorithm: 'ecdsa-p256' | 'ed25519';
  /** ECDSA P-256 over SHA-256 (a DER signature, as openssl and cosign make), or Ed25519 (64 bytes). */
  sign(data: Buffer): Buffer;
}

/** A PEM private key is a few hundred bytes; anything much larger is not one. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

/**
 * Reads a PEM private key (PKCS#8, or SEC1 `EC PRIVATE KEY`), unencrypted, ECDSA P-256 or
 * Ed25519. Anything else throws an error naming the file and what it holds, meant to stop the
 * process at startup rather than fail builds later.
 */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  const pem = await readBounded(path);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    // PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional PEM's `Proc-Type: 4,ENCRYPTED`.
    const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: *4, *ENCRYPTED/.test(pem) || (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE';
    const why = encrypted ? 'it is encrypted; give an unencrypted PEM private key' : 'it is not a PEM private key';
    throw new Error(`BALER_SIGNING_KEY_FILE ${path}: ${why} (ECDSA P-256 or Ed25519, e.g. \`openssl genpkey -algorithm ed25519\`)`, { cause: err });
  }
  const algorithm = algorithmOf(privateKey);
  if (!algorithm) {
    const curve = privateKey.asymmetricKeyDetails?.namedCurve;
    throw new Error(`BALER_SIGNING_KEY_FILE ${path}: a key of type ${privateKey.asymmetricKeyType}${curve ? ` (curve ${curve})` : ''}; baler signs with ECDSA P-256 or Ed25519 keys only`);
  }
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  return {
    keyId: createHash('sha256').update(spki).digest('hex'),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    algorithm,
    sign: algorithm === 'ed25519' ? (data) => sign(null, data, privateKey) : (data) => sign('sha256', data, { key: privateKey, dsaEncoding: 'der' }),
  };
}

function algorithmOf(key: KeyObject): SigningKey['algorithm'] | null {
  if (key.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa-p256';
  return null;
}

async function readBounded(path: string): Promise<string> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw new Error(`BALER_SIGNING_KEY_FILE ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  try {
    const { size } = await file.stat();
    if (size > MAX_KEY_FILE_BYTES) throw new Error(`BALER_SIGNING_KEY_FILE ${path}: ${size} bytes, too large for a PEM private key`);
    return await file.readFile('utf8');
  } finally {
    await file.close();
  }
}
