/**
 * How the fields that zod reads through a transform (durations, sizes, `${VAR}`-tolerant
 * numbers and booleans) are written in the YAML file. zod cannot derive that from a
 * transform, so schema.ts registers each such field here and json-schema.ts puts the form
 * in the JSON Schema that editors check the file with.
 */
import { z } from 'zod';

export type JsonSchema = z.core.JSONSchema.BaseSchema;

/** zod schema → the JSON Schema of its input, replacing whatever zod would emit for it. */
export const inputForms = z.registry<JsonSchema>();

/** Any string scalar may be (or contain) a `${VAR}` reference, substituted before validation. */
const ENV_REF: JsonSchema = { type: 'string', pattern: '\\$\\{[^}]+\\}', description: 'a ${VAR} reference' };

export const DURATION_FORM: JsonSchema = {
  description: 'a duration: 500ms, 30s, 5m, 4h, 5d (decimals allowed), or 0',
  anyOf: [{ type: 'string', pattern: '^\\s*(?:0|\\d+(?:\\.\\d+)?\\s*(?:ms|s|m|h|d))\\s*$' }, { const: 0 }, ENV_REF],
};

export const SIZE_FORM: JsonSchema = {
  description: 'a size: bytes, or B/KB/MB/GB (powers of 1024) such as 512KB, 25MB, 1.5GB',
  anyOf: [{ type: 'string', pattern: '^\\s*\\d+(?:(?:\\.\\d+)?\\s*[kKmMgG]?[bB])?\\s*$' }, { type: 'integer', minimum: 0 }, ENV_REF],
};

export function intForm(min: number, max: number): JsonSchema {
  const integer: JsonSchema = { type: 'integer', minimum: min };
  if (max < Number.MAX_SAFE_INTEGER) integer.maximum = max;
  return { anyOf: [integer, { type: 'string', pattern: '^\\s*\\d+\\s*$' }, ENV_REF] };
}

export const BOOL_FORM: JsonSchema = { anyOf: [{ type: 'boolean' }, { type: 'string', enum: ['true', 'false'] }, ENV_REF] };
