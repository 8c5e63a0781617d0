import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifySchema } from 'fastify';
import { parse } from 'yaml';

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Parameter {
  name: string;
  in: 'query' | 'path' | 'header' | 'cookie';
  required?: boolean;
  schema?: Json;
}

interface Operation {
  operationId?: string;
  parameters?: Array<Parameter | { $ref: string }>;
  requestBody?: { content?: Record<string, { schema?: Json }> };
  responses?: Record<string, { $ref: string } | { content?: Record<string, { schema?: Json }> }>;
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

export interface OpenApiDocument {
  paths: Record<string, Partial<Record<(typeof HTTP_METHODS)[number], Operation>> & { parameters?: Operation['parameters'] }>;
  components: {
    schemas: Record<string, Json>;
    parameters?: Record<string, Parameter>;
    responses?: Record<string, { content?: Record<string, { schema?: Json }> }>;
  };
}

let cached: OpenApiDocument | undefined;

/** openapi.yaml, parsed once per process. */
export function openApiDocument(): OpenApiDocument {
  cached ??= parse(readFileSync(OPENAPI_PATH, 'utf8')) as OpenApiDocument;
  return cached;
}

/**
 * The shared schemas, read from openapi.yaml (the published contract) so that what the
 * server validates and what clients are told cannot drift apart. Each schema gets its name as
 * `$id`, and `#/components/schemas/X` references become `X#` for Fastify's shared schemas.
 */
export function loadSchemas(): Array<{ $id: string } & JsonObject> {
  return Object.entries(openApiDocument().components.schemas).map(([name, schema]) => ({
    $id: name,
    ...(rewriteRefs(schema) as JsonObject),
  }));
}

/**
 * The Fastify route schema of one documented operation: its query parameters (unknown ones
 * refused), its JSON request body, and a serialiser schema per documented status and JSON
 * media type (fast-json-stringify, which also keeps undocumented fields out of responses).
 * Path parameters and headers are checked by the handlers: a malformed build id is a 404,
 * like any unknown one.
 */
export function operationSchema(operationId: string): FastifySchema {
  const document = openApiDocument();
  const found = findOperation(document, operationId);
  if (!found) throw new Error(`openapi.yaml has no operation ${operationId}`);
  const { operation, pathParameters } = found;
  const schema: FastifySchema = {};

  const query = [...pathParameters, ...(operation.parameters ?? [])].map((p) => ('$ref' in p ? resolveParameter(document, p.$ref) : p)).filter((p) => p.in === 'query');
  if (query.length > 0) {
    schema.querystring = {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(query.map((p) => [p.name, rewriteRefs(p.schema ?? {})])),
      ...(query.some((p) => p.required) ? { required: query.filter((p) => p.required).map((p) => p.name) } : {}),
    };
  }

  const body = operation.requestBody?.content?.['application/json']?.schema;
  if (body) schema.body = rewriteRefs(body);

  const response: Record<string, { content: Record<string, { schema: Json }> }> = {};
  for (const [status, documented] of Object.entries(operation.responses ?? {})) {
    const resolved = '$ref' in documented ? resolveResponse(document, documented.$ref) : documented;
    const content = Object.entries(resolved.content ?? {}).filter(([type, media]) => isJsonMediaType(type) && media.schema);
    if (content.length > 0) {
      response[status] = { content: Object.fromEntries(content.map(([type, media]) => [type, { schema: rewriteRefs(media.schema as Json) }])) };
    }
  }
  if (Object.keys(response).length > 0) schema.response = response;
  return schema;
}

export function isJsonMediaType(type: string): boolean {
  return type === 'application/json' || type.endsWith('+json');
}

function findOperation(document: OpenApiDocument, operationId: string): { operation: Operation; pathParameters: Parameter[] } | null {
  for (const item of Object.values(document.paths)) {
    for (const method of HTTP_METHODS) {
      const operation = item[method];
      if (operation?.operationId === operationId) {
        const pathParameters = (item.parameters ?? []).map((p) => ('$ref' in p ? resolveParameter(document, p.$ref) : p));
        return { operation, pathParameters };
      }
    }
  }
  return null;
}

function resolveParameter(document: OpenApiDocument, ref: string): Parameter {
  const parameter = document.components.parameters?.[ref.replace('#/components/parameters/', '')];
  if (!parameter) throw new Error(`openapi.yaml: unresolved ${ref}`);
  return parameter;
}

function resolveResponse(document: OpenApiDocument, ref: string): { content?: Record<string, { schema?: Json }> } {
  const response = document.components.responses?.[ref.replace('#/components/responses/', '')];
  if (!response) throw new Error(`openapi.yaml: unresolved ${ref}`);
  return response;
}

function rewriteRefs(node: Json): Json {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node !== null && typeof node === 'object') {
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = key === '$ref' && typeof value === 'string' ? value.replace('#/components/schemas/', '') + '#' : rewriteRefs(value);
    }
    return out;
  }
  return node;
}
