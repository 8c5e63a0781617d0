import type { SigningKey } from './signing-key.ts';

/** A DSSE v1 envelope (github.com/secure-systems-lab/dsse): what cosign and in-toto tools read. */
export interface DsseEnvelope {
  payloadType: string;
  /** Base64 of the payload bytes. */
  payload: string;
  /** Empty when the service has no signing key: the attestation is unsigned. */
  signatures: Array<{ keyid: string; sig: string }>;
}

/**
 * DSSE's pre-authentication encoding, the bytes actually signed:
 * `DSSEv1 <len(type)> <type> <len(body)> <body>`, lengths in bytes as ASCII decimal. Signing
 * these and not the payload alone binds the payload type too.
 */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${payload.length} `, 'ascii'), payload]);
}

/** The envelope of a payload, signed with `key` when there is one. */
export function dsseEnvelope(payloadType: string, payload: Buffer, key?: SigningKey): DsseEnvelope {
  return {
    payloadType,
    payload: payload.toString('base64'),
    signatures: key ? [{ keyid: key.keyId, sig: key.sign(pae(payloadType, payload)).toString('base64') }] : [],
  };
}
