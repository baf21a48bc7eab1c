/**
 * Fuzz target `config` (`npm run fuzz`; a 1 % slice runs in `npm test`): the real loader
 * (src/config/load.ts) on random YAML documents built from the config's own keys, on random
 * text, on mutations of config/onward.yaml, config/docker.yaml and the docs' YAML examples,
 * and on files (loadConfig). It returns a config or throws RelayError
 * ONWARD_ERR_CONFIG_INVALID / _UNREADABLE whose every line starts with the key path (or the
 * file position) of its problem; never another exception, never a slow answer.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe } from '@jest/globals';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/index.js';
import { RelayError } from '../../src/errors.js';
import { REPO_ROOT } from '../helpers/common.js';
import { fuzzIt } from '../helpers/fuzz-harness.js';

const ENV = { SECRET: 's3cret', EMPTY: '', PORT: '2525', HOST: '127.0.0.1' };
/** Parsing one document must stay far below this (a YAML alias bomb, deep nesting). */
const SLOW_MS = 2000;

/** The YAML seeds: the repo's configs and every ```yaml block of docs/. */
function seeds(): string[] {
  const out = [readFileSync(join(REPO_ROOT, 'config', 'onward.yaml'), 'utf8'), readFileSync(join(REPO_ROOT, 'config', 'docker.yaml'), 'utf8')];
  for (const name of readdirSync(join(REPO_ROOT, 'docs'))) {
    if (!name.endsWith('.md')) continue;
    const text = readFileSync(join(REPO_ROOT, 'docs', name), 'utf8');
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) out.push(m[1]!);
  }
  return out;
}
const SEEDS = seeds();

/** A problem line names where: a key path (`targets.hooks.url`, `routes[1]`, `["a b"]`, `(top level)`) or `config:LINE:COL` / `config`. */
const problemLine = (source: string): RegExp => new RegExp(`^(\\(top level\\)|[A-Za-z_[][^\\n]*?|${source.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(:\\d+:\\d+)?): \\S`);
const PROBLEM_LINE = problemLine('config');

function checkParse(text: string, load: () => unknown = () => parseConfig(text, ENV), pattern = PROBLEM_LINE): void {
  const started = performance.now();
  try {
    const config = load();
    if (typeof config !== 'object' || config === null) throw new Error(`parseConfig returned ${typeof config}`);
  } catch (err) {
    if (!(err instanceof RelayError)) throw new Error(`not a RelayError: ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`, { cause: err });
    if (err.code !== 'ONWARD_ERR_CONFIG_INVALID' && err.code !== 'ONWARD_ERR_CONFIG_UNREADABLE') throw new Error(`unexpected code ${err.code}: ${err.message}`, { cause: err });
    if (err.code === 'ONWARD_ERR_CONFIG_INVALID') {
      if (err.message.trim() === '') throw new Error('empty error message', { cause: err });
      for (const line of err.message.split('\n')) {
        if (!pattern.test(line)) throw new Error(`problem line names no key path: ${JSON.stringify(line)}`, { cause: err });
      }
    }
  }
  const ms = performance.now() - started;
  if (ms > SLOW_MS) throw new Error(`took ${ms.toFixed(0)} ms`);
}

// ---------------------------------------------------------------------------------------
// Documents built from the config's vocabulary

const KEYS = [
  'listen', 'host', 'port', 'implicitTls', 'tls', 'key', 'cert', 'hostname', 'limits', 'maxMessageSize', 'maxRecipients', 'maxConnections',
  'relay', 'allowNetworks', 'users', 'username', 'password', 'spool', 'path', 'maxQueued', 'minFreeDisk', 'retainFinished', 'backend', 'url',
  'dedup', 'window', 'retry', 'schedule', 'jitter', 'maxAge', 'delayWarningAfter', 'targets', 'type', 'format', 'headers', 'signingSecret',
  'signing', 'timeout', 'concurrency', 'circuit', 'failures', 'probe', 'secure', 'auth', 'user', 'pass', 'pool', 'routes', 'match', 'target',
  'bounces', 'from', 'via', 'admin', 'token', 'shutdownGrace', 'log', 'level', 'submission', 'keys', 'name', 'events', 'types', 'smtp',
  'bareLineEndings', 'dkim', 'selector', 'domain', 'hooks', 'upstream', 'outbox', 'a b', '__proto__', 'constructor', '',
];
const SCALARS: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('5m', '30s', '500ms', '4h', '5d', '0', '-1s', '1.5m', '25MB', '1GB', '10KB', '-5MB', 'http', 'smtp', 'file', 'json', 'raw', 'none', 'starttls', 'tls',
    'reject', 'normalize', '*', '*@x.test', '127.0.0.0/8', '::1/128', '999.1.1.1/33', 'http://127.0.0.1:1/', 'not a url', '${SECRET}', '${UNSET}', '${', '$${x}', '${EMPTY}', 'info', 'silent', 'onward', 'both', 'standard', 'upstream', 'outbox', 'hooks'),
  fc.integer({ min: -70000, max: 70000 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
);
const { doc } = fc.letrec<{ doc: unknown; map: Record<string, unknown>; list: unknown[] }>((tie) => ({
  doc: fc.oneof({ depthSize: 'small', withCrossShrink: true }, SCALARS, tie('map'), tie('list')),
  map: fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 8 })), tie('doc'), { maxKeys: 6 }),
  list: fc.array(tie('doc'), { maxLength: 4 }),
}));

/** A document that mostly has the right top-level shape, with random parts. */
const configLike = fc
  .record(
    {
      listen: fc.oneof(fc.constant([{ host: '127.0.0.1', port: 2525 }]), doc),
      hostname: fc.oneof(fc.constant('relay.test'), doc),
      spool: fc.oneof(fc.constant({ path: './data/spool' }), doc),
      targets: fc.oneof(fc.constant({ outbox: { type: 'file', path: './out' } }), fc.dictionary(fc.constantFrom('outbox', 'hooks', 'up', 'a b'), doc, { maxKeys: 3 })),
      routes: fc.oneof(fc.constant([{ match: '*', target: 'outbox' }]), fc.array(fc.record({ match: doc, target: doc }, { requiredKeys: [] }), { maxLength: 3 })),
      retry: doc,
      limits: doc,
      submission: doc,
      admin: doc,
      events: doc,
      extra: doc,
    },
    { requiredKeys: [] },
  )
  .map((d) => stringify(d));

// ---------------------------------------------------------------------------------------
// Mutations of real documents

type Mutation = (text: string) => string;
const YAML_BITS = [':', ': ', '- ', '{', '}', '[', ']', '&a ', '*a', '!!binary ', '!!str ', '"', "'", '#', '\t', '\n', '\n  ', '|', '>', '---\n', '...\n', '%YAML 1.1\n', '<<: *a', '? ', '\u00a0', '\0', '\ufeff', '${X}', 'null', '~', '.inf', '0x1F', '1e400'];
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.tuple(fc.nat(), fc.nat({ max: 40 })).map(([at, n]) => (t: string) => { const i = at % (t.length + 1); return t.slice(0, i) + t.slice(i + n); }),
  fc.tuple(fc.nat(), fc.oneof(fc.constantFrom(...YAML_BITS), fc.string({ maxLength: 6 }))).map(([at, s]) => (t: string) => { const i = at % (t.length + 1); return t.slice(0, i) + s + t.slice(i); }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => (t: string) => { const lines = t.split('\n'); const i = a % lines.length; const j = b % lines.length; [lines[i], lines[j]] = [lines[j]!, lines[i]!]; return lines.join('\n'); }),
  fc.nat().map((a) => (t: string) => { const lines = t.split('\n'); const i = a % lines.length; lines.splice(i, 0, lines[i]!); return lines.join('\n'); }),
  fc.tuple(fc.nat(), fc.constantFrom('', ' ', '  ', '    ', '\t')).map(([a, ind]) => (t: string) => { const lines = t.split('\n'); const i = a % lines.length; lines[i] = ind + lines[i]!.trimStart(); return lines.join('\n'); }),
  fc.tuple(fc.nat(), SCALARS).map(([a, v]) => (t: string) => {
    // Replace the value of one `key: value` line.
    const lines = t.split('\n');
    const i = a % lines.length;
    const m = /^(\s*(?:- )?[\w-]+:)\s*[^#{[]+$/.exec(lines[i]!);
    if (m) lines[i] = `${m[1]} ${JSON.stringify(v) ?? 'null'}`;
    return lines.join('\n');
  }),
  fc.nat().map((a) => (t: string) => t.slice(0, a % (t.length + 1))),
);
const mutated = fc.tuple(fc.constantFrom(...SEEDS), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([seed, ms]) => ms.reduce((t, m) => m(t), seed));

describe('fuzz: the config loader', () => {
  const dir = mkdtempSync(join(tmpdir(), 'onward-fuzz-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  fuzzIt('config:documents', () => fc.property(configLike, (text) => checkParse(text)), 15_000);
  fuzzIt('config:mutations', () => fc.property(mutated, (text) => checkParse(text)), 25_000);
  fuzzIt('config:text', () => fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), doc.map((d) => stringify(d))), (text) => checkParse(text)), 15_000);
  fuzzIt(
    'config:files',
    () =>
      fc.property(fc.oneof(mutated.map((t) => Buffer.from(t, 'utf8')), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a))), fc.constantFrom('file', 'missing', 'directory'), (bytes, kind) => {
        const path = join(dir, kind === 'directory' ? '.' : 'c.yaml');
        if (kind === 'file') writeFileSync(path, bytes);
        else rmSync(join(dir, 'c.yaml'), { force: true });
        checkParse('', () => loadConfig(path, ENV), problemLine(path));
      }),
    2_000,
  );
});
