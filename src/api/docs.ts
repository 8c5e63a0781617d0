import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync } from 'fastify';
import { Problem } from '../problem.ts';
import { OPENAPI_PATH, operationSchema } from './openapi.ts';

const PAGE_DIR = fileURLToPath(new URL('./docs-page/', import.meta.url));
const SWAGGER_UI_DIR = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** The files the page loads, by name: nothing else under /docs/ is served. */
const ASSETS: Record<string, { path: string; type: string }> = {
  'swagger-ui-bundle.js': { path: join(SWAGGER_UI_DIR, 'swagger-ui-bundle.js'), type: 'text/javascript; charset=utf-8' },
  'swagger-ui.css': { path: join(SWAGGER_UI_DIR, 'swagger-ui.css'), type: 'text/css; charset=utf-8' },
  'favicon-32x32.png': { path: join(SWAGGER_UI_DIR, 'favicon-32x32.png'), type: 'image/png' },
  'init.js': { path: join(PAGE_DIR, 'init.js'), type: 'text/javascript; charset=utf-8' },
};

/** Scripts and styles only from here (Swagger UI styles some elements inline); no framing. */
const CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/**
 * The API's contract for people and tools, public and read-only: `/openapi.yaml` as the
 * server has it, and `/docs`, the same document rendered by Swagger UI (swagger-ui-dist from
 * npm, served from here: no build step, no CDN). Files are read once, at start.
 */
export const docsRoutes: FastifyPluginAsync = async (app) => {
  const document = readFileSync(OPENAPI_PATH);
  const page = readFileSync(join(PAGE_DIR, 'index.html'));
  const assets = new Map(Object.entries(ASSETS).map(([name, { path, type }]) => [name, { body: readFileSync(path), type }]));
  const config = { public: true };

  app.get('/openapi.yaml', { config, schema: operationSchema('getOpenApiDocument') }, async (_request, reply) =>
    reply.type('application/yaml; charset=utf-8').header('Cache-Control', 'no-cache').send(document),
  );
  app.get('/docs', { config, schema: operationSchema('getDocs') }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('Content-Security-Policy', CONTENT_SECURITY_POLICY).header('Cache-Control', 'no-cache').send(page),
  );
  app.get<{ Params: { asset: string } }>('/docs/:asset', { config, schema: operationSchema('getDocsAsset') }, async (request, reply) => {
    const asset = assets.get(request.params.asset);
    if (!asset) throw new Problem(404, `no docs file ${request.params.asset}`);
    return reply.type(asset.type).header('Cache-Control', 'public, max-age=3600').send(asset.body);
  });
};
