/**
 * The JSON Schemas shipped in `schemas/`, loaded by name for `open(name, { schema: 'flags' })`.
 * The `.schema.json` files are the source of truth; `npm run gen:types` derives `types/`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { SharedStructError } from '../lib/errors.js';

export type { SchemaTypes, SchemaName } from './types/index.js';

const DIR = new URL('./', import.meta.url);
const NAME = /^[a-z0-9][a-z0-9-]*$/;
const cache = new Map<string, object>();

/** Names of the shipped schemas (`flags`, `worker-state`, ...). */
export function schemaNames(): string[] {
  return readdirSync(DIR)
    .filter((f) => f.endsWith('.schema.json'))
    .map((f) => f.slice(0, -'.schema.json'.length))
    .sort();
}

/** The schema called `name`, parsed once. Unknown names reject `INVALID_ARGUMENT` listing the known ones. */
export function loadSchema(name: string): object {
  const hit = cache.get(name);
  if (hit) return hit;
  if (!NAME.test(name) || !schemaNames().includes(name)) {
    throw new SharedStructError('INVALID_ARGUMENT', `option 'schema': no schema named '${name}' (known: ${schemaNames().join(', ')})`);
  }
  const schema = JSON.parse(readFileSync(new URL(`${name}.schema.json`, DIR), 'utf8')) as object;
  cache.set(name, schema);
  return schema;
}
