import type { FastifyPluginAsync } from 'fastify';
import { Problem } from '../problem.ts';
import { operationSchema } from './openapi.ts';

export interface SigningKeyRouteOptions {
  /** The public half of BALER_SIGNING_KEY_FILE (SPKI PEM); null: the service signs nothing. */
  publicKeyPem: string | null;
}

/**
 * `GET /v1/signing-key`: the public key attestations and image signatures verify with, for
 * `openssl … -verify` and `cosign verify --key`. Public: a verifier needs no token.
 */
export const signingKeyRoutes: FastifyPluginAsync<SigningKeyRouteOptions> = async (app, { publicKeyPem }) => {
  app.get('/v1/signing-key', { config: { public: true }, schema: operationSchema('getSigningKey') }, async (_request, reply) => {
    if (publicKeyPem === null) throw new Problem(404, 'this service has no signing key (BALER_SIGNING_KEY_FILE is unset): its attestations are unsigned');
    return reply.type('application/x-pem-file').header('Cache-Control', 'no-cache').send(publicKeyPem);
  });
};
