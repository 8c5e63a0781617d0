/**
 * Checks what the service did (its contract log, BALER_CONTRACT_LOG: the routes it registered
 * and every response it sent) against openapi.yaml. Generic: it knows no route by name, so
 * routes added later are checked the same way.
 */
import { readFile } from 'node:fs/promises';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { ContractLogLine } from '../../src/api/contract-log.ts';
import { HTTP_METHODS, isJsonMediaType, openApiDocument } from '../../src/api/openapi.ts';

type RouteLine = Extract<ContractLogLine, { kind: 'route' }>;
export type ResponseLine = Extract<ContractLogLine, { kind: 'response' }>;

interface DocumentedResponse {
  content?: Record<string, unknown>;
  $ref?: string;
}
interface DocumentedOperation {
  operationId: string;
  responses: Record<string, DocumentedResponse>;
}

const document = openApiDocument() as unknown as {
  paths: Record<string, Record<string, DocumentedOperation>>;
  components: { responses: Record<string, DocumentedResponse> };
};
const DOCUMENT_ID = 'https://baler.invalid/openapi.yaml';

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);
ajv.addSchema({ $id: DOCUMENT_ID, ...(document as unknown as Record<string, unknown>) });

export async function readContractLog(files: string[]): Promise<{ routes: RouteLine[]; responses: ResponseLine[] }> {
  const lines: ContractLogLine[] = [];
  for (const file of files) {
    for (const text of (await readFile(file, 'utf8')).split('\n')) if (text) lines.push(JSON.parse(text) as ContractLogLine);
  }
  return {
    routes: lines.filter((l): l is RouteLine => l.kind === 'route'),
    responses: lines.filter((l): l is ResponseLine => l.kind === 'response'),
  };
}

/**
 * The documented path a route's URL is: `/v1/builds/:id` is `/v1/builds/{id}`; a route of a
 * concrete file (`/app.js`, served by a static-file plugin) is the templated path it matches
 * (`/{file}`), when no path is documented as it is.
 */
export function openApiPath(fastifyUrl: string): string {
  const path = fastifyUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
  if (document.paths[path]) return path;
  const templated = Object.keys(document.paths).find((p) => p.includes('{') && new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path));
  return templated ?? path;
}

/** The documented operation a request was served by; HEAD falls back to GET (RFC 9110 §9.3.2). */
function operationOf(method: string, path: string): { operation: DocumentedOperation; pointer: string } | null {
  const item = document.paths[path];
  const m = method.toLowerCase();
  for (const candidate of m === 'head' ? ['head', 'get'] : [m]) {
    const operation = item?.[candidate];
    if (operation) return { operation, pointer: `/paths/${escapePointerToken(path)}/${candidate}` };
  }
  return null;
}

const escapePointerToken = (token: string) => token.replace(/~/g, '~0').replace(/\//g, '~1');

/** Registered routes without a documented operation. */
export function undocumentedRoutes(routes: RouteLine[]): string[] {
  return [...new Set(routes.filter((r) => !r.methodNotAllowed && !operationOf(r.method, openApiPath(r.url))).map((r) => `${r.method} ${openApiPath(r.url)}`))];
}

/** Documented operations no route serves. */
export function unservedOperations(routes: RouteLine[]): string[] {
  const served = new Set(routes.filter((r) => !r.methodNotAllowed).map((r) => `${r.method.toLowerCase()} ${openApiPath(r.url)}`));
  const missing: string[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) if (item[method] && !served.has(`${method} ${path}`)) missing.push(`${method.toUpperCase()} ${path}`);
  }
  return missing;
}

/** What is wrong with one response, measured against the document; null when it conforms. */
export function responseViolation(line: ResponseLine): string | null {
  const what = `${line.method} ${line.route ?? '(no route)'} → ${line.status} ${line.contentType ?? '(no content type)'}`;
  if (line.route === null || !operationOf(line.method, openApiPath(line.route))) {
    // The answers every path may give (openapi.yaml's description): an unknown path is 404, a
    // method a path lacks is 405; without a token either is 401 first.
    const general = line.route === null ? [404, 401] : [405, 401];
    if (!general.includes(line.status)) return `${what}: no documented operation, and not one of ${general.join('/')}`;
    if (line.route !== null && !document.paths[openApiPath(line.route)]) return `${what}: the path is not documented`;
    return line.contentType === 'application/problem+json' ? bodyViolation(line, '/components/responses/Problem/content/application~1problem+json/schema', what) : `${what}: not a problem document`;
  }
  const { operation, pointer } = operationOf(line.method, openApiPath(line.route)) as NonNullable<ReturnType<typeof operationOf>>;
  const documented = operation.responses[String(line.status)];
  if (!documented) return `${what}: status not documented for ${operation.operationId}`;
  let responsePointer = `${pointer}/responses/${line.status}`;
  let response = documented;
  if (documented.$ref) {
    responsePointer = documented.$ref.slice(1);
    response = document.components.responses[documented.$ref.replace('#/components/responses/', '')] as DocumentedResponse;
  }
  const types = Object.keys(response.content ?? {});
  if (line.contentType === null) return types.length === 0 ? null : `${what}: no content type, documented ${types.join(', ')}`;
  // A documented type may carry parameters (`text/plain; version=0.0.4`); the record has none.
  const type = types.find((t) => t.split(';')[0]!.trim() === line.contentType || t === '*/*' || (t.endsWith('/*') && line.contentType?.startsWith(t.slice(0, -1))));
  if (!type) return `${what}: content type not documented for ${operation.operationId} (${types.join(', ') || 'none'})`;
  if (!isJsonMediaType(type)) return null;
  return bodyViolation(line, `${responsePointer}/content/${escapePointerToken(type)}/schema`, what);
}

function bodyViolation(line: ResponseLine, schemaPointer: string, what: string): string | null {
  if (line.body === undefined || line.method === 'HEAD') return null;
  const validate = ajv.getSchema(`${DOCUMENT_ID}#${schemaPointer}`);
  if (!validate) return `${what}: no schema at ${schemaPointer}`;
  if (validate(JSON.parse(line.body))) return null;
  return `${what}: body does not match ${schemaPointer}: ${ajv.errorsText(validate.errors)} in ${line.body.slice(0, 300)}`;
}
