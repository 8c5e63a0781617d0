import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { fieldProblem, pointerToken, Problem, type FieldError } from '../problem.ts';
import { QuotaExceededError, StoreFullError } from '../store/blob-store.ts';
import { loadSchemas } from './openapi.ts';

type ErrorObject = FastifySchemaValidationError;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route answering 405 for the methods a path lacks (see addMethodNotAllowedRoutes). */
    methodNotAllowed?: boolean;
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function sendProblem(reply: FastifyReply, problem: Problem, request: FastifyRequest): FastifyReply {
  for (const [name, value] of Object.entries(problem.headers ?? {})) void reply.header(name, value);
  return reply.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(problem.toJSON(request.url));
}

/**
 * A 400 for request validation failures, naming every offending field twice: in `detail`
 * (`invalid build spec: /contents/2/mode: must match …`) and as `errors` items, by JSON
 * Pointer into the body or by query parameter name, with readable messages.
 */
export function validationProblem(errors: ErrorObject[], context: string | undefined, what: string, body?: unknown, explain?: (pointer: string) => string | null): Problem {
  const described = describeValidationErrors(errors, body).map((item) => ({ ...item, message: explain?.(item.pointer) ?? item.message }));
  const items: FieldError[] = context === 'querystring' ? described.map(({ pointer, message }) => ({ parameter: unescapePointer(pointer.slice(1)), message })) : described;
  return fieldProblem(400, `invalid ${what}`, items);
}

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

const CONTENT_KINDS: Record<string, string> = {
  tar: 'TarContent',
  file: 'FileContent',
  text: 'TextContent',
  dir: 'DirContent',
  symlink: 'SymlinkContent',
};

/** The required and allowed keys of each content entry shape, from the published schemas. */
const contentShapes = new Map(
  loadSchemas()
    .filter((schema) => Object.values(CONTENT_KINDS).includes(schema.$id))
    .map((schema) => [schema.$id, { required: new Set(schema.required as string[]), allowed: new Set(Object.keys(schema.properties as object)) }]),
);

function describeValidationErrors(errors: ErrorObject[], body: unknown): Array<{ pointer: string; message: string }> {
  const out: Array<{ pointer: string; message: string }> = [];
  const seen = new Set<string>();
  for (const error of errors) {
    const message = describe(error, body);
    if (message === null) continue;
    // Ajv's instancePath is already a JSON Pointer; a missing or unknown member is named below it.
    const pointer =
      error.keyword === 'additionalProperties' || error.keyword === 'required'
        ? `${error.instancePath}/${pointerToken(String(error.params.additionalProperty ?? error.params.missingProperty))}`
        : error.instancePath;
    const key = `${pointer}\n${message}`;
    if (!seen.has(key)) out.push({ pointer, message });
    seen.add(key);
  }
  return out.length > 0 ? out : [{ pointer: '', message: 'invalid request' }];
}

/**
 * One readable message for an Ajv error, or null to drop it. A content entry matches one of
 * several shapes (oneOf) and Ajv reports every shape's complaints; only those of the shape
 * the entry's key selects are kept.
 */
function describe(error: ErrorObject, body: unknown): string | null {
  const item = /^\/contents\/(\d+)$/.exec(error.instancePath);
  if (item) {
    const entry = (body as { contents?: unknown[] })?.contents?.[Number(item[1])];
    const kind = entry && typeof entry === 'object' ? Object.keys(CONTENT_KINDS).find((k) => k in entry) : undefined;
    const shape = kind ? contentShapes.get(CONTENT_KINDS[kind] ?? '') : undefined;
    if (!shape) {
      return error.keyword === 'oneOf' ? `a content entry needs exactly one of the keys ${Object.keys(CONTENT_KINDS).join(', ')}` : null;
    }
    if (error.keyword === 'oneOf') return null;
    if (error.keyword === 'required' && !shape.required.has(String(error.params.missingProperty))) return null;
    if (error.keyword === 'additionalProperties' && shape.allowed.has(String(error.params.additionalProperty))) return null;
  }
  switch (error.keyword) {
    case 'additionalProperties':
      return 'unknown field';
    case 'required':
      return 'is required';
    case 'pattern':
      return `must match ${String(error.params.pattern)}`;
    default:
      return error.message ?? 'is invalid';
  }
}

/**
 * Error and not-found handling for the whole API: every client mistake becomes a problem
 * document with its 4xx status, a tenant's quota 413 and a full store 507; anything else is
 * logged and becomes a 500 without details.
 */
export function registerProblemHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof Problem) return sendProblem(reply, error, request);
    // Whatever stored on a tenant's behalf (a merge, the compressed pieces of a download).
    if (error instanceof QuotaExceededError) return sendProblem(reply, new Problem(413, error.message, { cause: error }), request);
    if (error instanceof StoreFullError) return sendProblem(reply, new Problem(507, error.message, { cause: error }), request);
    if (error.validation) {
      const context = error.validationContext;
      return sendProblem(reply, validationProblem(error.validation as ErrorObject[], context, context === 'querystring' ? 'query' : `request ${context ?? ''}`.trim(), request.body), request);
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return sendProblem(reply, new Problem(status, clientMessage(error)), request);
    }
    if (isRedisUnavailable(error)) {
      request.log.warn({ err: error }, 'redis unavailable');
      void reply.header('Retry-After', '5');
      return sendProblem(reply, new Problem(503, 'the queue (Redis) is not reachable right now; retry shortly'), request);
    }
    request.log.error({ err: error }, 'request failed');
    return sendProblem(reply, new Problem(500, 'internal error; see the service log'), request);
  });

  app.setNotFoundHandler((request, reply) => sendProblem(reply, new Problem(404, `no route ${request.method} ${request.url.split('?')[0]}`), request));
}

/** ioredis' ways of saying the server is gone (a restart, a network cut): not our bug, a 503. */
function isRedisUnavailable(error: Error): boolean {
  return error.name === 'MaxRetriesPerRequestError' || /Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET/.test(error.message);
}

function clientMessage(error: FastifyError): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'request body is larger than the limit';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported content type; send application/json';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the request body is empty; send a JSON document';
    default:
      return error instanceof SyntaxError || error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ? `malformed JSON: ${error.message}` : error.message;
  }
}

/**
 * 405 for a known path with a method it does not have, with `Allow`. Fastify answers those
 * with 404 on its own, so every registered path gets the missing methods routed here.
 */
export function addMethodNotAllowedRoutes(app: FastifyInstance, routes: Map<string, Set<string>>): void {
  const all = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;
  for (const [url, methods] of routes) {
    const missing = all.filter((m) => !methods.has(m));
    if (missing.length === 0) continue;
    const allow = [...methods].sort().join(', ');
    app.route({
      method: missing,
      url,
      config: { methodNotAllowed: true },
      // Do not parse (or wait for) any body for a request that is refused anyway.
      handler: (request, reply) => {
        void reply.header('Allow', allow);
        return sendProblem(reply, new Problem(405, `${request.method} is not allowed here; allowed: ${allow}`), request);
      },
    });
  }
}
