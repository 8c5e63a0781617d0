import type { FastifyInstance } from 'fastify';
import type { TokenFile } from '../auth/token-file.ts';
import { DEFAULT_TENANT } from '../builds/tenant.ts';
import { Problem } from '../problem.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking: the token's tenant, or `default` when the service runs without tokens. */
    tenant: string;
  }
  interface FastifyContextConfig {
    /** Served without a token (read-only: health checks, the API's docs, the dashboard's static files). */
    public?: boolean;
  }
}

/**
 * Bearer tokens: with a token file, every route but those marked `config: { public: true }`
 * (health checks, docs, the dashboard's files) needs `Authorization: Bearer <token>`, and the
 * request acts as the token's tenant. Without one, everyone is the default tenant (the service
 * then listens on loopback only; see main.ts).
 */
export function registerAuth(app: FastifyInstance, tokens: TokenFile | null): void {
  app.decorateRequest('tenant', DEFAULT_TENANT);
  if (!tokens) return;
  app.addHook('onRequest', async (request, reply) => {
    if (request.routeOptions.config.public) return;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    const tenant = match ? await tokens.tenantOf(match[1] as string) : null;
    if (!tenant) {
      void reply.header('WWW-Authenticate', 'Bearer realm="baler"');
      throw new Problem(401, match ? 'unknown or revoked token' : 'send Authorization: Bearer <token>');
    }
    request.tenant = tenant;
  });
}
