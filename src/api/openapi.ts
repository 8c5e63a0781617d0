import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The request schemas, read from openapi.yaml (the published contract) so that what the
 * server validates and what clients are told cannot drift apart. Each schema gets its name as
 * `$id`, and `#/components/schemas/X` references become `X#` for Fastify's shared schemas.
 */
export function loadSchemas(): Array<{ $id: string } & Record<string, Json>> {
  const document = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { components: { schemas: Record<string, Json> } };
  return Object.entries(document.components.schemas).map(([name, schema]) => ({
    $id: name,
    ...(rewriteRefs(schema) as Record<string, Json>),
  }));
}

function rewriteRefs(node: Json): Json {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node !== null && typeof node === 'object') {
    const out: Record<string, Json> = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] = key === '$ref' && typeof value === 'string' ? value.replace('#/components/schemas/', '') + '#' : rewriteRefs(value);
    }
    return out;
  }
  return node;
}
