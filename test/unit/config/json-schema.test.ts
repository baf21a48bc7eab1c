/**
 * The JSON Schema editors check the config with (config/onward.schema.json): in step with the
 * zod schema, and accepting every YAML file onward ships, which onward's own loader accepts too.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvFormats from 'ajv-formats';
import { parse } from 'yaml';
import { configJsonSchema, loadConfig, parseConfig } from '../../../src/config/index.js';
import { REPO_ROOT } from '../../helpers/common.js';

const SCHEMA_FILE = join(REPO_ROOT, 'config', 'onward.schema.json');
const REGENERATE = 'npm run build && node bin/onward config-schema > config/onward.schema.json';
const SCHEMA_COMMENT = '# yaml-language-server: $schema=./onward.schema.json';

// ajv-formats is CommonJS: its module.exports is the plugin, and so is module.exports.default.
const addFormats = ajvFormats.default;

function validator(): (data: unknown) => string[] {
  const ajv = new Ajv2020({ allErrors: true, strict: true });
  addFormats(ajv);
  const validate = ajv.compile(configJsonSchema());
  return (data) => (validate(data) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`));
}

/** Parses YAML as onward's loader does (YAML 1.2 core schema). */
const yamlData = (text: string): unknown => parse(text, { version: '1.2', schema: 'core' }) as unknown;

/** An environment in which every `${VAR}` the text names is set, as the operator's would be. */
function envFor(text: string): NodeJS.ProcessEnv {
  return Object.fromEntries([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m): [string, string] => [m[1] ?? '', 'example-value']));
}

interface Shipped {
  readonly name: string;
  readonly text: string;
  /** Loads it through onward's own loader, as `serve` would. */
  readonly load: () => unknown;
}

const shippedConfigs: Shipped[] = readdirSync(join(REPO_ROOT, 'config'))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => {
    const path = join(REPO_ROOT, 'config', f);
    const text = readFileSync(path, 'utf8');
    return { name: `config/${f}`, text, load: () => loadConfig(path, envFor(text)) };
  });

/** Every ```yaml block in docs/ that is a config (has top-level `targets:` or `listen:`). */
const docExamples: Shipped[] = readdirSync(join(REPO_ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .flatMap((f) =>
    [...readFileSync(join(REPO_ROOT, 'docs', f), 'utf8').matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)]
      .map((m, i) => ({ name: `docs/${f} yaml block ${i + 1}`, text: m[1] ?? '' }))
      .filter(({ text }) => /^(targets|listen):/m.test(text))
      .map(({ name, text }) => ({ name, text, load: () => parseConfig(text, envFor(text), name) })),
  );

describe('config JSON Schema', () => {
  it('is checked in as config/onward.schema.json, exactly as `onward config-schema` prints it', () => {
    const generated = JSON.stringify(configJsonSchema(), null, 2) + '\n';
    const file = readFileSync(SCHEMA_FILE, 'utf8');
    if (file !== generated) throw new Error(`config/onward.schema.json is out of date with src/config/schema.ts; regenerate it: ${REGENERATE}`);
  });

  it('accepts durations and sizes as written in YAML and rejects unknown keys and bad units', () => {
    const check = validator();
    const base = 'targets: { out: { type: file, path: ./out } }\nroutes: [{ match: "*", target: out }]\n';
    expect(check(yamlData(base + 'shutdownGrace: 30s\nlimits: { maxMessageSize: 25MB, idleTimeout: 1.5h }\nretry: { schedule: [500ms, 5m, 4h, 5d] }'))).toEqual([]);
    expect(check(yamlData(base + 'admin: { port: "${ADMIN_PORT}", token: "${TOKEN}" }\nspool: { minFreeDisk: 0, groupCommit: false }'))).toEqual([]);
    expect(check(yamlData(base + 'shutdownGrace: 30 secs'))).not.toEqual([]);
    expect(check(yamlData(base + 'limits: { maxMessageSize: 25 megabytes }'))).not.toEqual([]);
    expect(check(yamlData(base + 'spool: { paht: ./data }'))).not.toEqual([]);
    expect(check(yamlData('targets: { out: { type: file, path: ./out } }'))).not.toEqual([]);
  });

  it.each(shippedConfigs.map((c) => [c.name, c] as const))('config file %s points editors at the schema', (_name, c) => {
    expect(c.text.split('\n')[0]).toBe(SCHEMA_COMMENT);
  });

  it.each([...shippedConfigs, ...docExamples].map((c) => [c.name, c] as const))('%s validates against the schema and onward loads it', (_name, c) => {
    expect(validator()(yamlData(c.text))).toEqual([]);
    expect(c.load).not.toThrow();
  });
});
