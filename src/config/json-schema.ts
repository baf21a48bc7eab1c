/**
 * The JSON Schema of the config file as an operator writes it (before defaults and unit
 * conversion), for editors: `onward config-schema` prints it, config/onward.schema.json is
 * a checked-in copy.
 */
import { z } from 'zod';
import { inputForms, type JsonSchema } from './input-forms.js';
import { configSchema } from './schema.js';

export function configJsonSchema(): JsonSchema {
  const schema = z.toJSONSchema(configSchema, {
    io: 'input',
    override: ({ zodSchema, jsonSchema }) => {
      const form = inputForms.get(zodSchema);
      if (form !== undefined) {
        for (const key of Object.keys(jsonSchema)) Reflect.deleteProperty(jsonSchema, key);
        Object.assign(jsonSchema, structuredClone(form));
      } else if (zodSchema instanceof z.ZodDefault && inputForms.has(zodSchema.def.innerType)) {
        // zod leaves out a default whose field parses through a transform (the default is an
        // output value); for these fields (numbers, booleans) it reads the same as input.
        jsonSchema.default = structuredClone(zodSchema.def.defaultValue);
      }
    },
  });
  return { ...schema, title: 'onward configuration', description: 'onward.yaml, the config file of the onward relay (see docs/configuration.md)' };
}
