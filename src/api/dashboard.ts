import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/** The dashboard's files: plain ES modules and CSS, served as they are (no build step). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../dashboard/', import.meta.url));

/**
 * What the browser may do on a dashboard page: run and load only these files, talk only to
 * this origin, no inline script or style, no framing. The API calls carry the token, so a
 * script injected from elsewhere would be one that could read it.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * `/` and its files: public (the token is asked for by the page itself and sent by its
 * scripts on every API call), each with a strict Content-Security-Policy.
 */
export const dashboardRoutes: FastifyPluginAsync<{ tokens: boolean }> = async (app, opts) => {
  // Only the files that exist get a route (no wildcard), so unknown paths stay the API's 404s
  // and 405s; every route of this plugin is marked public for the token check.
  app.addHook('onRoute', (route) => {
    route.config = { ...route.config, public: true };
  });
  app.addHook('onRequest', async (_request, reply) => {
    void reply.headers({
      'Content-Security-Policy': DASHBOARD_CSP,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      'Cross-Origin-Opener-Policy': 'same-origin',
    });
  });
  // What the page needs to know before its first API call: whether to ask for a token.
  app.get('/config.json', async () => ({ tokens: opts.tokens }));
  await app.register(fastifyStatic, {
    root: DASHBOARD_DIR,
    prefix: '/',
    wildcard: false,
    // Another plugin may serve files too: keep `reply.sendFile` out of the shared reply.
    decorateReply: false,
    // Revalidate every time (ETag): a new version of the service is seen at once.
    cacheControl: true,
    maxAge: 0,
  });
};
