/**
 * Reads, substitutes, validates and freezes the YAML config, reporting every problem at
 * once as `<key path>: <what was expected>` lines in one ONWARD_ERR_CONFIG_INVALID error.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { isMap, isScalar, isSeq, parseDocument, type Document, type YAMLError } from 'yaml';
import type { z } from 'zod';
import { RelayError } from '../errors.js';
import { configSchema } from './schema.js';
import type { Config } from './types.js';

type KeyPath = readonly (string | number)[];
type Env = NodeJS.ProcessEnv;

export const DEFAULT_CONFIG_PATH = './config/onward.yaml';

/** `--config` flag, else `$ONWARD_CONFIG`, else `./config/onward.yaml` (empty counts as unset). */
export function resolveConfigPath(flag?: string, env: Env = process.env): string {
  const fromEnv = env['ONWARD_CONFIG'];
  if (flag !== undefined && flag !== '') return flag;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return DEFAULT_CONFIG_PATH;
}

/**
 * Loads the config file at `path`.
 * @throws RelayError ONWARD_ERR_CONFIG_UNREADABLE when the file cannot be read,
 *   ONWARD_ERR_CONFIG_INVALID (one line per problem) when it is not a valid config.
 */
export function loadConfig(path: string, env: Env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new RelayError('ONWARD_ERR_CONFIG_UNREADABLE', `cannot read config file ${path}: ${reason}`, {
      cause: err,
    });
  }
  return parseConfig(text, env, path);
}

/** Everything `loadConfig` does after reading the file. `sourceName` labels YAML syntax errors. */
export function parseConfig(yamlText: string, env: Env = process.env, sourceName = 'config'): Config {
  const doc = parseDocument(yamlText, {
    version: '1.2',
    schema: 'core',
    uniqueKeys: true,
    prettyErrors: true,
  });
  if (doc.errors.length > 0) fail(doc.errors.map((err) => formatYamlError(err, doc, sourceName)));

  let parsed: unknown;
  try {
    parsed = doc.toJS() ?? {};
  } catch (err) {
    fail([`${sourceName}: ${err instanceof Error ? err.message : String(err)}`]);
  }
  const problems: string[] = [];
  const envProblemPaths = new Set<string>();
  const raw = substituteEnv(parsed, [], env, problems, envProblemPaths);
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    for (const issue of result.error.issues) {
      // A field whose ${VAR} is unset already has its problem; skip the knock-on type error.
      if (!envProblemPaths.has(formatPath(issue.path))) problems.push(...formatIssue(issue));
    }
  }
  problems.push(...checkAcrossFields(raw));
  if (!result.success || problems.length > 0) fail(problems);
  return deepFreeze(result.data);
}

function fail(problems: readonly string[]): never {
  throw new RelayError('ONWARD_ERR_CONFIG_INVALID', problems.join('\n'));
}

/** `routes[1].target`, `targets.hooks.url`, `targets["a b"].url`. */
export function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][\w-]*$/.test(segment)) {
      out += out === '' ? segment : `.${segment}`;
    } else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

const ENV_REFERENCE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{/g;

/** `${VAR}` in every string value; `$${` stands for a literal `${`. */
function substituteEnv(
  value: unknown,
  path: KeyPath,
  env: Env,
  problems: string[],
  problemPaths: Set<string>,
): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REFERENCE, (match: string, name: string | undefined) => {
      if (match === '$${') return '${';
      const where = formatPath(path);
      const substitute = name === undefined ? undefined : env[name];
      if (substitute !== undefined) return substitute;
      problemPaths.add(where);
      problems.push(
        name === undefined
          ? `${where}: expected \${NAME} with a name of letters, digits and _ (write $\${ for a literal \${)`
          : `${where}: environment variable ${name} is not set`,
      );
      return match;
    });
  }
  if (Array.isArray(value)) {
    return value.map((item, i) => substituteEnv(item, [...path, i], env, problems, problemPaths));
  }
  if (isRecord(value)) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        substituteEnv(item, [...path, key], env, problems, problemPaths),
      ]),
    );
  }
  return value;
}

/** Checks that span several keys. Runs on the raw data so they show up with schema errors. */
function checkAcrossFields(raw: unknown): string[] {
  const problems: string[] = [];
  if (!isRecord(raw)) return problems;
  const targets = raw['targets'];
  if (isRecord(targets)) {
    const known = new Set(Object.keys(targets));
    const routes = Array.isArray(raw['routes']) ? (raw['routes'] as unknown[]) : [];
    routes.forEach((route, i) => {
      const ref = isRecord(route) ? route['target'] : undefined;
      const refs: readonly unknown[] = Array.isArray(ref) ? ref : [ref];
      const seen = new Set<string>();
      refs.forEach((name, j) => {
        if (typeof name !== 'string' || name === '') return;
        const where = Array.isArray(ref) ? `routes[${i}].target[${j}]` : `routes[${i}].target`;
        if (!known.has(name)) problems.push(`${where}: unknown target ${JSON.stringify(name)}`);
        else if (seen.has(name)) problems.push(`${where}: target ${JSON.stringify(name)} is listed twice`);
        seen.add(name);
      });
    });
    const bounces = raw['bounces'];
    const via = isRecord(bounces) ? bounces['via'] : undefined;
    if (typeof via === 'string' && !known.has(via)) {
      problems.push(`bounces.via: unknown target ${JSON.stringify(via)}`);
    }
    const events = raw['events'];
    const eventsTarget = isRecord(events) ? events['target'] : undefined;
    if (typeof eventsTarget === 'string' && eventsTarget !== '') {
      const t = targets[eventsTarget];
      if (!known.has(eventsTarget)) problems.push(`events.target: unknown target ${JSON.stringify(eventsTarget)}`);
      else if (!isRecord(t) || t['type'] !== 'http' || (t['format'] ?? 'json') !== 'json') {
        problems.push(`events.target: target ${JSON.stringify(eventsTarget)} must be an http target with format: json (events are JSON documents)`);
      }
    }
  }
  const admin = isRecord(raw['admin']) ? raw['admin'] : {};
  const adminHost = admin['host'] ?? '127.0.0.1';
  const token = admin['token'];
  if (typeof adminHost === 'string' && !isLoopback(adminHost) && (token === undefined || token === null)) {
    problems.push('admin.token: required when admin.host is not a loopback address');
  }
  const submission = raw['submission'];
  if (isRecord(submission)) {
    const listenPart = isRecord(submission['listen']) ? submission['listen'] : {};
    const host = listenPart['host'] ?? '127.0.0.1';
    const keys = submission['keys'];
    if (typeof host === 'string' && !isLoopback(host) && (!Array.isArray(keys) || keys.length === 0)) {
      problems.push('submission.keys: required when submission.listen.host is not a loopback address');
    }
  }
  const listen = Array.isArray(raw['listen']) ? (raw['listen'] as unknown[]) : [];
  const tls = raw['tls'];
  listen.forEach((listener, i) => {
    const implicitTls = isRecord(listener) ? listener['implicitTls'] : undefined;
    if ((implicitTls === true || implicitTls === 'true') && (tls === undefined || tls === null)) {
      problems.push(`listen[${i}].implicitTls: requires a tls section with key and cert`);
    }
  });
  return problems;
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether a listen host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const family = net.isIP(host);
  if (family === 0) return host.toLowerCase() === 'localhost';
  return LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

const NOUNS: Readonly<Record<string, string>> = {
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
};

function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // Never echo the string itself: a misplaced value may be a secret.
  return typeof value === 'string' ? 'a string' : JSON.stringify(value);
}

function formatIssue(issue: z.core.$ZodIssue): string[] {
  const where = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`);
    case 'invalid_type': {
      const expected = NOUNS[issue.expected] ?? issue.expected;
      if (issue.input === undefined) return [`${where}: required, expected ${expected}`];
      return [`${where}: expected ${expected}, got ${describeValue(issue.input)}`];
    }
    case 'invalid_value': {
      const options = issue.values.map((v) => String(v)).join(', ');
      const got = `got ${JSON.stringify(issue.input) ?? 'nothing'}`;
      return [`${where}: expected ${issue.values.length > 1 ? `one of ${options}` : options}, ${got}`];
    }
    case 'invalid_union': {
      const options = 'options' in issue && Array.isArray(issue.options) ? issue.options : null;
      if (options === null) return [`${where}: ${issue.message}`];
      const missing = issue.input === undefined || (isRecord(issue.input) && issue.input['type'] === undefined);
      return [`${where}: ${missing ? 'required, ' : ''}expected one of ${options.join(', ')}`];
    }
    case 'too_small': {
      const min = Number(issue.minimum);
      if (issue.origin === 'array') return [`${where}: expected at least ${min} ${min === 1 ? 'entry' : 'entries'}`];
      if (issue.origin === 'string') return [`${where}: expected a non-empty string`];
      return [`${where}: expected a number ${issue.inclusive ? '>=' : '>'} ${min}`];
    }
    case 'too_big':
      return [`${where}: expected a number ${issue.inclusive ? '<=' : '<'} ${Number(issue.maximum)}`];
    case 'invalid_key':
      return [`${where}: ${issue.issues[0]?.message ?? 'invalid key'}`];
    default:
      return [`${where}: ${issue.message}`];
  }
}

function formatYamlError(err: YAMLError, doc: Document, sourceName: string): string {
  const start = err.linePos?.[0];
  const what = err.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
  const path = err.code === 'DUPLICATE_KEY' ? keyPathAt(doc.contents, err.pos[0], []) : null;
  if (path !== null) {
    const at = start ? ` (line ${start.line}, column ${start.col})` : '';
    return `${formatPath(path)}: duplicate key${at}`;
  }
  return start ? `${sourceName}:${start.line}:${start.col}: ${what}` : `${sourceName}: ${what}`;
}

/** The key path of the mapping key that covers `offset`, if any. */
function keyPathAt(node: unknown, offset: number, path: KeyPath): KeyPath | null {
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '?';
      const range = isScalar(pair.key) ? pair.key.range : undefined;
      if (range && offset >= range[0] && offset < range[1]) return [...path, key];
      const found = keyPathAt(pair.value, offset, [...path, key]);
      if (found) return found;
    }
  } else if (isSeq(node)) {
    for (const [i, item] of node.items.entries()) {
      const found = keyPathAt(item, offset, [...path, i]);
      if (found) return found;
    }
  }
  return null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const item of Object.values(value)) deepFreeze(item);
  }
  return value;
}
