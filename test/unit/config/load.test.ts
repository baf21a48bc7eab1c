import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import {
  describeConfig,
  loadConfig,
  parseConfig,
  resolveConfigPath,
  type Config,
} from '../../../src/config/index.js';
import { RelayError, isRelayError } from '../../../src/errors.js';

const SPEC_EXAMPLE = `
listen:
  - { host: 127.0.0.1, port: 2525 }                 # plain SMTP (STARTTLS offered if tls is set)
  - { host: 0.0.0.0, port: 465, implicitTls: true }
tls: { key: /etc/onward/key.pem, cert: /etc/onward/cert.pem }
hostname: relay.example.com
limits: { maxMessageSize: 25MB, maxRecipients: 100, maxConnections: 200, maxConnectionsPerIp: 20 }
relay:
  allowNetworks: [127.0.0.0/8, ::1/128]             # clients allowed to relay without AUTH
  users: [{ username: app1, password: "\${APP1_PASSWORD}" }]   # AUTH PLAIN/LOGIN, only over TLS unless allowInsecureAuth
spool: { path: ./data/spool, maxQueued: 1000000, minFreeDisk: 512MB, retainFinished: 7d }
dedup: { window: 7d }
retry:
  schedule: [1m, 5m, 15m, 30m, 1h, 2h, 4h, 8h]      # then keep the last interval
  jitter: 0.1
  maxAge: 5d                                        # then bounce (Postfix maximal_queue_lifetime)
  delayWarningAfter: 4h                             # optional delay DSN, off when absent
targets:
  hooks:
    type: http
    url: https://hooks.example.com/mail
    format: json            # json (parsed) | raw (message/rfc822 body, envelope in headers)
    headers: { Authorization: "Bearer \${HOOK_TOKEN}" }
    signingSecret: "\${HOOK_SECRET}"   # HMAC-SHA256 of timestamp + body, sent in a header
    timeout: 30s
    concurrency: 16                   # upper bound; the live value adapts (section 4)
    circuit: { failures: 5, probe: 30s }   # per target; these are the defaults
  upstream:
    type: smtp
    host: smtp.example.net
    port: 587
    secure: starttls        # none | starttls | tls
    auth: { user: relay, pass: "\${UPSTREAM_PASS}" }
    pool: { maxConnections: 8, maxMessagesPerConnection: 100 }
  outbox:
    type: file              # writes each delivery as an .eml file (atomic rename) — the embedded default
    path: ./data/outbox
routes:                     # first match wins, per recipient
  - { match: "*@hooks.example.com", target: hooks }
  - { match: "*", target: upstream }
bounces:
  from: MAILER-DAEMON@relay.example.com
  via: upstream             # target used to deliver DSNs
admin: { host: 127.0.0.1, port: 9025, token: "\${ONWARD_ADMIN_TOKEN}" }   # host defaults to 127.0.0.1; token required off loopback
shutdownGrace: 30s
log: { level: info }
`;

const SPEC_ENV = {
  APP1_PASSWORD: 'app1-secret',
  HOOK_TOKEN: 'hook-token',
  HOOK_SECRET: 'hook-hmac',
  UPSTREAM_PASS: 'upstream-pass',
  ONWARD_ADMIN_TOKEN: 'admin-token',
};

const MINIMAL = `
targets:
  outbox: { type: file, path: ./out }
routes:
  - { match: "*", target: outbox }
`;

/** The ONWARD_ERR_CONFIG_INVALID message of parsing `yaml`, one entry per problem. */
function problemsOf(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, env);
  } catch (err) {
    expect(isRelayError(err, 'ONWARD_ERR_CONFIG_INVALID')).toBe(true);
    return (err as RelayError).message.split('\n');
  }
  throw new Error('expected the config to be rejected');
}

describe('parseConfig', () => {
  it('loads the SPEC example and converts names and units', () => {
    const config = parseConfig(SPEC_EXAMPLE, SPEC_ENV);
    expect(config.listen).toEqual([
      { host: '127.0.0.1', port: 2525, implicitTls: false },
      { host: '0.0.0.0', port: 465, implicitTls: true },
    ]);
    expect(config.tls).toEqual({ keyPath: '/etc/onward/key.pem', certPath: '/etc/onward/cert.pem' });
    expect(config.limits.maxMessageSizeBytes).toBe(25 * 1024 * 1024);
    expect(config.relay.users).toEqual([{ username: 'app1', password: 'app1-secret' }]);
    expect(config.spool).toEqual({
      backend: 'level',
      path: './data/spool',
      url: null,
      schema: 'onward',
      leaseMs: 30_000,
      pool: 10,
      maxQueued: 1_000_000,
      minFreeDiskBytes: 512 * 1024 * 1024,
      retainFinishedMs: 7 * 86_400_000,
      groupCommit: true,
    });
    expect(config.retry.scheduleMs[0]).toBe(60_000);
    expect(config.retry.scheduleMs.at(-1)).toBe(8 * 3_600_000);
    expect(config.retry.delayWarningAfterMs).toBe(4 * 3_600_000);
    expect(config.targets['hooks']).toEqual({
      name: 'hooks',
      type: 'http',
      url: 'https://hooks.example.com/mail',
      format: 'json',
      headers: { Authorization: 'Bearer hook-token' },
      signing: 'onward',
      signingSecrets: ['hook-hmac'],
      timeoutMs: 30_000,
      concurrency: 16,
      circuit: { failures: 5, probeMs: 30_000 },
    });
    expect(config.targets['upstream']).toMatchObject({
      name: 'upstream',
      type: 'smtp',
      port: 587,
      secure: 'starttls',
      auth: { user: 'relay', pass: 'upstream-pass' },
      tlsRejectUnauthorized: true,
      timeoutMs: 60_000,
      concurrency: 8,
    });
    expect(config.targets['outbox']).toMatchObject({ name: 'outbox', type: 'file', concurrency: 4 });
    expect(config.routes).toEqual([
      { match: '*@hooks.example.com', targets: ['hooks'] },
      { match: '*', targets: ['upstream'] },
    ]);
    expect(config.bounces).toEqual({ from: 'MAILER-DAEMON@relay.example.com', via: 'upstream' });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9025, token: 'admin-token' });
    expect(config.shutdownGraceMs).toBe(30_000);
  });

  it('fills every omitted key with its default', () => {
    const config = parseConfig(MINIMAL, {});
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 2525, implicitTls: false }]);
    expect(config.hostname).toBe(os.hostname());
    expect(config.tls).toBeNull();
    expect(config.limits).toEqual({
      maxMessageSizeBytes: 26_214_400,
      maxRecipients: 100,
      maxConnections: 200,
      maxConnectionsPerIp: 20,
      idleTimeoutMs: 300_000,
      sessionTimeoutMs: 1_800_000,
      maxCommands: 10_000,
      maxErrors: 10,
      maxDataMemoryBytes: 512 * 1024 * 1024,
      maxAuthFailures: 5,
    });
    expect(config.relay).toEqual({ allowNetworks: ['127.0.0.0/8', '::1/128'], users: [], allowInsecureAuth: false });
    expect(config.smtp).toEqual({ bareLineEndings: 'reject', greetingDelayMs: 0 });
    expect(config.spool).toEqual({
      backend: 'level',
      path: './data/spool',
      url: null,
      schema: 'onward',
      leaseMs: 30_000,
      pool: 10,
      maxQueued: 1_000_000,
      minFreeDiskBytes: 536_870_912,
      retainFinishedMs: 604_800_000,
      groupCommit: true,
    });
    expect(config.dedup).toEqual({ windowMs: 604_800_000 });
    expect(config.retry).toEqual({
      scheduleMs: [60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000],
      jitter: 0.1,
      maxAgeMs: 432_000_000,
      delayWarningAfterMs: null,
    });
    expect(config.bounces).toEqual({ from: `MAILER-DAEMON@${os.hostname()}`, via: null });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9025, token: null });
    expect(config.shutdownGraceMs).toBe(30_000);
    expect(config.log).toEqual({ level: 'info' });
  });

  it('gives each target type its own defaults', () => {
    const config = parseConfig(
      `
targets:
  h: { type: http, url: "http://127.0.0.1:0/x" }
  s: { type: smtp, host: 127.0.0.1, pool: { maxConnections: 3 } }
routes: [{ match: "*", target: h }]
`,
      {},
    );
    expect(config.targets['h']).toMatchObject({ format: 'json', headers: {}, signing: 'onward', signingSecrets: [], timeoutMs: 30_000, concurrency: 16 });
    expect(config.targets['s']).toMatchObject({
      port: 25,
      secure: 'none',
      auth: null,
      tlsRejectUnauthorized: true,
      timeoutMs: 60_000,
      pool: { maxConnections: 3, maxMessagesPerConnection: 1000 },
      concurrency: 3,
      circuit: { failures: 5, probeMs: 30_000 },
    });
  });

  it('returns a deeply frozen object', () => {
    const config: Config = parseConfig(MINIMAL, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.routes[0]?.targets)).toBe(true);
    expect(Object.isFrozen(config.targets['outbox']?.circuit)).toBe(true);
  });

  it('accepts a list of targets for a route and port 0', () => {
    const config = parseConfig(
      `
listen: [{ host: 127.0.0.1, port: 0 }]
targets:
  primary: { type: smtp, host: mx1.example.net }
  backup: { type: file, path: ./backup }
routes: [{ match: "*@example.org", target: [primary, backup] }]
admin: { port: 0 }
`,
      {},
    );
    expect(config.routes).toEqual([{ match: '*@example.org', targets: ['primary', 'backup'] }]);
    expect(config.listen[0]?.port).toBe(0);
    expect(config.admin.port).toBe(0);
  });

  it('reports an unknown key with its full path', () => {
    expect(problemsOf(`${MINIMAL}limits: { maxMessageSise: 10MB }\n`)).toEqual(['limits.maxMessageSise: unknown key']);
    expect(problemsOf(MINIMAL.replace('path: ./out', 'path: ./out, concurency: 2'))).toEqual([
      'targets.outbox.concurency: unknown key',
    ]);
  });

  it('reports an unknown route target in the documented style', () => {
    const yaml = `
targets:
  hooks: { type: http, url: "https://hooks.example.com/mail" }
routes:
  - { match: "*@a.example", target: hooks }
  - { match: "*", target: hoks }
`;
    expect(problemsOf(yaml)).toEqual(['routes[1].target: unknown target "hoks"']);
    expect(problemsOf(yaml.replace('target: hoks', 'target: [hooks, nope]'))).toEqual([
      'routes[1].target[1]: unknown target "nope"',
    ]);
    expect(problemsOf(`${MINIMAL}bounces: { via: nowhere }\n`)).toEqual(['bounces.via: unknown target "nowhere"']);
  });

  it('names the path of a bad duration or size', () => {
    const problems = problemsOf(`${MINIMAL}limits: { maxMessageSize: 25XB }\nretry: { maxAge: 5 }\n`);
    expect(problems).toHaveLength(2);
    expect(problems).toContainEqual(expect.stringMatching(/^limits\.maxMessageSize: expected a size like .*, got "25XB"$/));
    expect(problems).toContainEqual(expect.stringMatching(/^retry\.maxAge: expected a duration like /));
  });

  it('requires spool.url with backend postgres and refuses the level keys there (and url without it)', () => {
    expect(problemsOf(`${MINIMAL}spool: { backend: postgres }\n`)).toEqual([expect.stringMatching(/^spool\.url: required with backend: postgres/)]);
    const both = problemsOf(`${MINIMAL}spool: { backend: postgres, url: "postgres://h/db", path: ./x, minFreeDisk: 1GB }\n`);
    expect(both).toEqual([
      expect.stringMatching(/^spool\.path: belongs to the level backend/),
      expect.stringMatching(/^spool\.minFreeDisk: belongs to the level backend/),
    ]);
    expect(problemsOf(`${MINIMAL}spool: { url: "postgres://h/db" }\n`)).toEqual([expect.stringMatching(/^spool\.url: belongs to the postgres backend/)]);
    expect(problemsOf(`${MINIMAL}nodeId: "a b"\n`)).toEqual([expect.stringMatching(/^nodeId: expected letters, digits/)]);
    const pg = parseConfig(`${MINIMAL}spool: { backend: postgres, url: "postgres://h/db", lease: 10s, pool: 4, schema: relay }\nnodeId: relay-a\n`, {});
    expect(pg.spool).toMatchObject({ backend: 'postgres', url: 'postgres://h/db', leaseMs: 10_000, pool: 4, schema: 'relay' });
    expect(pg.nodeId).toBe('relay-a');
  });

  it('reports every problem at once, one line each', () => {
    const problems = problemsOf(`
listen: [{ host: 127.0.0.1, port: 70000 }]
targets:
  hooks: { type: http }
  odd: { type: ftp }
routes: [{ match: "*", target: nope }]
log: { level: loud }
`);
    expect(problems).toEqual(
      expect.arrayContaining([
        'listen[0].port: expected a number <= 65535',
        'targets.hooks.url: required, expected a string',
        'targets.odd.type: expected one of http, smtp, file, mx',
        'log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
        'routes[0].target: unknown target "nope"',
      ]),
    );
    expect(problems).toHaveLength(5);
  });

  it('requires at least one target and one route', () => {
    expect(problemsOf('targets: {}\nroutes: []\n')).toEqual([
      'targets: expected at least one target',
      'routes: expected at least 1 entry',
    ]);
    expect(problemsOf('')).toEqual(['targets: required, expected a mapping', 'routes: required, expected a list']);
  });

  it('substitutes environment variables in every string', () => {
    const yaml = `
targets:
  hooks:
    type: http
    url: "https://\${HOOK_HOST}/mail"
    headers: { Authorization: "Bearer \${TOKEN}", X-Literal: "$\${NOT_A_VAR}" }
routes: [{ match: "*", target: hooks }]
admin: { port: "\${ADMIN_PORT}" }
`;
    const config = parseConfig(yaml, { HOOK_HOST: 'hooks.example.com', TOKEN: 't0k', ADMIN_PORT: '9100' });
    expect(config.targets['hooks']).toMatchObject({
      url: 'https://hooks.example.com/mail',
      headers: { Authorization: 'Bearer t0k', 'X-Literal': '${NOT_A_VAR}' },
    });
    expect(config.admin.port).toBe(9100);
  });

  it('names the key and the variable when an environment variable is not set', () => {
    const env = { ...SPEC_ENV, HOOK_SECRET: undefined };
    expect(problemsOf(SPEC_EXAMPLE, env)).toEqual([
      'targets.hooks.signingSecret: environment variable HOOK_SECRET is not set',
    ]);
  });

  it('reports a duplicate key with its path and line', () => {
    const problems = problemsOf(`${MINIMAL}admin:\n  port: 1\n  port: 2\n`);
    expect(problems).toEqual(['admin.port: duplicate key (line 8, column 3)']);
  });

  it('reports a YAML syntax error with the source name, line and column', () => {
    expect(() => parseConfig('listen: [\n', {}, 'my.yaml')).toThrow(/^my\.yaml:\d+:\d+: /);
  });

  it('reads the submission section: off when absent, 127.0.0.1:8025 by default, keys required off loopback, keys masked in the description', () => {
    expect(parseConfig(MINIMAL, {}).submission).toBeNull();
    const on = parseConfig(`${MINIMAL}submission: { keys: [{ name: app1, key: k-0123456789abcdef }] }\n`, {});
    expect(on.submission).toEqual({ listen: { host: '127.0.0.1', port: 8025 }, keys: [{ name: 'app1', key: 'k-0123456789abcdef' }] });
    expect(describeConfig(on)).toContain('submission: http://127.0.0.1:8025/v1/messages (keys app1:***)');
    expect(describeConfig(on)).not.toContain('k-0123456789abcdef');
    expect(parseConfig(`${MINIMAL}submission: {}\n`, {}).submission?.keys).toEqual([]);
    expect(problemsOf(`${MINIMAL}submission: { listen: { host: 0.0.0.0, port: 8025 } }\n`)).toEqual([
      'submission.keys: required when submission.listen.host is not a loopback address',
    ]);
    expect(problemsOf(`${MINIMAL}submission: { keys: [{ name: app1, key: short }] }\n`).join('\n')).toMatch(/submission\.keys\[0\]\.key/);
  });

  it('requires an admin token when the admin API is not on loopback', () => {
    expect(problemsOf(`${MINIMAL}admin: { host: 0.0.0.0 }\n`)).toEqual([
      'admin.token: required when admin.host is not a loopback address',
    ]);
    expect(parseConfig(`${MINIMAL}admin: { host: 0.0.0.0, token: s3cret }\n`, {}).admin.token).toBe('s3cret');
    for (const host of ['127.0.0.2', '::1', 'localhost']) {
      expect(parseConfig(`${MINIMAL}admin: { host: "${host}" }\n`, {}).admin.host).toBe(host);
    }
  });

  it('requires tls for an implicit-TLS listener', () => {
    expect(problemsOf(`${MINIMAL}listen: [{ host: 0.0.0.0, port: 465, implicitTls: true }]\n`)).toEqual([
      'listen[0].implicitTls: requires a tls section with key and cert',
    ]);
  });

  it('checks and normalises the networks allowed to relay', () => {
    const config = parseConfig(`${MINIMAL}relay: { allowNetworks: [10.0.0.0/8, fd00::/8, 192.0.2.7] }\n`, {});
    expect(config.relay.allowNetworks).toEqual(['10.0.0.0/8', 'fd00::/8', '192.0.2.7/32']);
    expect(problemsOf(`${MINIMAL}relay: { allowNetworks: [10.0.0.0/33, nope] }\n`)).toEqual([
      'relay.allowNetworks[0]: expected a network like 10.0.0.0/8 or fd00::/8, got "10.0.0.0/33"',
      'relay.allowNetworks[1]: expected a network like 10.0.0.0/8 or fd00::/8, got "nope"',
    ]);
  });
});

describe('loadConfig', () => {
  it('loads the embedded default config/onward.yaml', () => {
    const config = loadConfig('config/onward.yaml', {});
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 2525, implicitTls: false }]);
    expect(config.spool.path).toBe('./data/spool');
    expect(config.targets['outbox']).toMatchObject({ type: 'file', path: './data/outbox' });
    expect(config.routes).toEqual([{ match: '*', targets: ['outbox'] }]);
    expect(config.bounces.via).toBe('outbox');
  });

  it('reads a file and reports an unreadable one with its own code', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'onward-config-'));
    try {
      const file = path.join(dir, 'onward.yaml');
      writeFileSync(file, MINIMAL);
      expect(loadConfig(file, {}).targets['outbox']?.name).toBe('outbox');
      expect(() => loadConfig(path.join(dir, 'missing.yaml'), {})).toThrow(
        expect.objectContaining({ code: 'ONWARD_ERR_CONFIG_UNREADABLE' }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveConfigPath', () => {
  it('prefers the flag, then ONWARD_CONFIG, then ./config/onward.yaml', () => {
    expect(resolveConfigPath('a.yaml', { ONWARD_CONFIG: 'b.yaml' })).toBe('a.yaml');
    expect(resolveConfigPath(undefined, { ONWARD_CONFIG: 'b.yaml' })).toBe('b.yaml');
    expect(resolveConfigPath(undefined, {})).toBe('./config/onward.yaml');
  });
});

describe('describeConfig', () => {
  it('shows listeners, targets, routes, spool and admin without any secret', () => {
    const text = describeConfig(parseConfig(SPEC_EXAMPLE, SPEC_ENV));
    expect(text).toContain('smtp://127.0.0.1:2525 (STARTTLS)');
    expect(text).toContain('smtps://0.0.0.0:465 (implicit TLS)');
    expect(text).toMatch(/hooks\s+http\s+https:\/\/hooks\.example\.com\/mail\s+concurrency 16/);
    expect(text).toMatch(/upstream\s+smtp\s+smtp\.example\.net:587\s+concurrency 8/);
    expect(text).toMatch(/outbox\s+file\s+\.\/data\/outbox\s+concurrency 4/);
    expect(text).toContain('*@hooks.example.com -> hooks');
    expect(text).toContain('spool: ./data/spool');
    expect(text).toContain('admin: http://127.0.0.1:9025');
    for (const secret of Object.values(SPEC_ENV)) expect(text).not.toContain(secret);
    expect(text).toContain('Authorization: ***');
  });

  it('shows a postgres spool with its password masked and sslmode kept', () => {
    const yaml = `${MINIMAL}spool: { backend: postgres, url: "postgres://onward:\${PGPASSWORD}@db.internal:5432/onward?sslmode=verify-full" }\nnodeId: relay-a\n`;
    const text = describeConfig(parseConfig(yaml, { PGPASSWORD: 's3cret-pw' }));
    expect(text).toContain('spool: postgres postgres://onward:***@db.internal:5432/onward?sslmode=verify-full (schema onward, lease 30000 ms, pool 10, node relay-a)');
    expect(text).not.toContain('s3cret-pw');
  });

  it('hides credentials inside a webhook URL', () => {
    const yaml = MINIMAL.replace('outbox: { type: file, path: ./out }', 'outbox: { type: http, url: "https://u:pw@h.example/x?key=k3y" }');
    const text = describeConfig(parseConfig(yaml, {}));
    expect(text).not.toContain('pw');
    expect(text).not.toContain('k3y');
  });
});
