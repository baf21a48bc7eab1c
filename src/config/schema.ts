/**
 * The zod schema of the YAML file: key names and units as an operator writes them,
 * defaults, and the transform into the `Config` shape the code uses.
 * Cross-field checks (route targets exist, admin token off loopback, ...) live in load.ts.
 */
import net from 'node:net';
import os from 'node:os';
import { domainToASCII } from 'node:url';
import { z } from 'zod';
import { standardKey } from '../delivery/signing.js';
import { readDkimKey } from './dkim-key.js';
import { BOOL_FORM, DURATION_FORM, SIZE_FORM, inputForms, intForm } from './input-forms.js';
import type { Config, DkimKeyConfig, TargetConfig } from './types.js';
import { parseDuration, parseSize } from './units.js';

const DEFAULT_CONCURRENCY = { http: 16, file: 4, mx: 100, mxPerDomain: 4 } as const;

/** `10.0.0.0/8`, `::1/128`; a bare address means a single host. Returns null when invalid. */
export function normalizeCidr(text: string): string | null {
  const [address = '', prefix, ...rest] = text.trim().split('/');
  const family = net.isIP(address);
  if (family === 0 || rest.length > 0) return null;
  const maxPrefix = family === 4 ? 32 : 128;
  if (prefix === undefined) return `${address}/${maxPrefix}`;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > maxPrefix) return null;
  return `${address}/${Number(prefix)}`;
}

function unitField(parse: (input: string | number) => number, expected: string) {
  return z.unknown().transform((input, ctx): number => {
    if (typeof input === 'string' || typeof input === 'number') {
      try {
        return parse(input);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message, input });
        return z.NEVER;
      }
    }
    const message = input === undefined ? `required, ${expected}` : expected;
    ctx.addIssue({ code: 'custom', message, input });
    return z.NEVER;
  });
}

const duration = unitField(parseDuration, 'expected a duration like 30s, 5m, 4h').register(inputForms, DURATION_FORM);
const positiveDuration = duration.refine((ms) => ms > 0, 'expected a duration greater than 0').register(inputForms, DURATION_FORM);
const size = unitField(parseSize, 'expected a size like 512KB, 25MB or a number of bytes').register(inputForms, SIZE_FORM);

// Every string scalar goes through `${VAR}` substitution, so numbers and booleans written
// as `"${PORT}"` arrive as strings; accept their plain spellings.
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .preprocess(
      (v) => (typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : v),
      z.number().int().min(min).max(max),
    )
    .register(inputForms, intForm(min, max));
const bool = z
  .preprocess(
    (v) => (v === 'true' ? true : v === 'false' ? false : v),
    z.boolean(),
  )
  .register(inputForms, BOOL_FORM);
const port = int(0, 65535);
const text = z.string().trim().min(1);
const email = z
  .string()
  .trim()
  .regex(/^[^\s@<>]+@[^\s@<>]+$/, 'expected an address like MAILER-DAEMON@relay.example.com');
const targetName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'expected a name of letters, digits, ".", "_" or "-"');
const cidr = z.string().transform((value, ctx): string => {
  const normalized = normalizeCidr(value);
  if (normalized !== null) return normalized;
  ctx.addIssue({
    code: 'custom',
    message: `expected a network like 10.0.0.0/8 or fd00::/8, got ${JSON.stringify(value)}`,
    input: value,
  });
  return z.NEVER;
});

const circuit = z
  .strictObject({ failures: int(1).default(5), probe: positiveDuration.prefault('30s') })
  .prefault({});

const targetCommon = { concurrency: int(1).optional(), circuit };

const httpTarget = z
  .strictObject({
    type: z.literal('http'),
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }),
    format: z.enum(['json', 'raw']).default('json'),
    headers: z.record(z.string(), z.string()).default({}),
    signing: z.enum(['onward', 'standard', 'both']).default('onward'),
    // A list is for key rotation: newest first, every secret signs every request.
    signingSecret: z
      .union([text, z.array(text).min(1)], { error: 'expected a secret or a list of secrets (newest first)' })
      .nullish(),
    timeout: positiveDuration.prefault('30s'),
    ...targetCommon,
  })
  .superRefine((t, ctx) => {
    if (t.signing === 'onward') return;
    const secret = t.signingSecret;
    if (secret === null || secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['signingSecret'], message: `required with signing: ${t.signing}` });
      return;
    }
    const secrets = typeof secret === 'string' ? [{ value: secret, path: ['signingSecret'] }] : secret.map((value, i) => ({ value, path: ['signingSecret', i] }));
    for (const { value, path } of secrets) {
      // Never echo the value: it is a secret.
      if (standardKey(value) === null) ctx.addIssue({ code: 'custom', path, message: 'a whsec_ secret must be whsec_ followed by non-empty padded base64' });
    }
  });

/** `signingSecret` as written → the resolved list (empty: unsigned). */
function signingSecrets(secret: string | readonly string[] | null | undefined): readonly string[] {
  if (secret === null || secret === undefined) return [];
  return typeof secret === 'string' ? [secret] : secret;
}

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** A signing domain as DKIM compares it: lower case, IDNs as punycode, no trailing dot. */
const dkimDomain = z.string().transform((value, ctx): string => {
  const trimmed = value.trim().replace(/\.$/, '').toLowerCase();
  const ascii = domainToASCII(trimmed) || trimmed;
  if (DNS_NAME.test(ascii) && ascii.length <= 253) return ascii;
  ctx.addIssue({ code: 'custom', message: `expected a domain name like example.com, got ${JSON.stringify(value)}`, input: value });
  return z.NEVER;
}).register(inputForms, { type: 'string', minLength: 1, description: 'the signing domain (d=); it signs mail from this domain and its subdomains' });

/** One `dkim` entry: the key file is read and checked here, so a bad key fails the load (and a SIGHUP reload). */
const dkimKey = z
  .strictObject({
    domain: dkimDomain,
    selector: z.string().trim().regex(DNS_NAME, 'expected a selector of letters, digits, "-" (labels separated by ".")'),
    privateKey: text,
  })
  .transform((k, ctx): DkimKeyConfig => {
    const key = readDkimKey(k.privateKey);
    if (!key.ok) {
      ctx.addIssue({ code: 'custom', path: ['privateKey'], message: key.problem, input: k.privateKey });
      return z.NEVER;
    }
    return { domain: k.domain, selector: k.selector, keyPath: k.privateKey, privateKeyPem: key.pem, algorithm: key.algorithm };
  });

/** At most one key per signing domain: the key for a From: domain must be unambiguous. */
const dkimKeys = z.array(dkimKey).superRefine((keys, ctx) => {
  const seen = new Map<string, number>();
  keys.forEach((k, i) => {
    const first = seen.get(k.domain);
    if (first === undefined) seen.set(k.domain, i);
    else ctx.addIssue({ code: 'custom', path: [i, 'domain'], message: `domain ${k.domain} already has a key (dkim[${first}]); rotate by replacing that entry's selector and key` });
  });
});

const smtpTarget = z.strictObject({
  type: z.literal('smtp'),
  host: text,
  port: port.default(25),
  secure: z.enum(['none', 'starttls', 'tls']).default('none'),
  rejectUnauthorized: bool.default(true),
  auth: z.strictObject({ user: text, pass: z.string() }).nullish(),
  // Postfix's default_destination_concurrency_limit is 20 and it reuses a connection as long
  // as mail is waiting; 8 / 100 starved delivery below the accept rate (issue 17).
  pool: z
    .strictObject({
      maxConnections: int(1).default(20),
      maxMessagesPerConnection: int(1).default(1000),
    })
    .prefault({}),
  timeout: positiveDuration.prefault('60s'),
  dkim: dkimKeys.default([]),
  ...targetCommon,
});

const fileTarget = z.strictObject({ type: z.literal('file'), path: text, ...targetCommon });

/** `host` or `host:port` of a DNS server (IPv6 as `[::1]:53`), as node's Resolver.setServers takes it. */
const resolverAddress = z
  .string()
  .trim()
  .regex(/^(?:\[[0-9A-Fa-f:.]+\](?::\d{1,5})?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]+|[0-9.]+(?::\d{1,5})?)$/, 'expected a DNS server address like 127.0.0.1, 127.0.0.1:5353 or [::1]:53');

const mxTarget = z.strictObject({
  type: z.literal('mx'),
  port: port.default(25),
  tls: z.enum(['opportunistic', 'required', 'none']).default('opportunistic'),
  resolver: z.array(resolverAddress).default([]),
  concurrencyPerDomain: int(1).default(DEFAULT_CONCURRENCY.mxPerDomain),
  timeout: positiveDuration.prefault('60s'),
  dkim: dkimKeys.default([]),
  ...targetCommon,
});

const target = z.discriminatedUnion('type', [httpTarget, smtpTarget, fileTarget, mxTarget]);

function toTarget(name: string, t: z.output<typeof target>): TargetConfig {
  const circuitConfig = { failures: t.circuit.failures, probeMs: t.circuit.probe };
  switch (t.type) {
    case 'http':
      return {
        name,
        type: 'http',
        url: t.url,
        format: t.format,
        headers: t.headers,
        signing: t.signing,
        signingSecrets: signingSecrets(t.signingSecret),
        timeoutMs: t.timeout,
        concurrency: t.concurrency ?? DEFAULT_CONCURRENCY.http,
        circuit: circuitConfig,
      };
    case 'smtp':
      return {
        name,
        type: 'smtp',
        host: t.host,
        port: t.port,
        secure: t.secure,
        tlsRejectUnauthorized: t.rejectUnauthorized,
        auth: t.auth ?? null,
        pool: t.pool,
        timeoutMs: t.timeout,
        dkim: t.dkim,
        concurrency: t.concurrency ?? t.pool.maxConnections,
        circuit: circuitConfig,
      };
    case 'file':
      return {
        name,
        type: 'file',
        path: t.path,
        concurrency: t.concurrency ?? DEFAULT_CONCURRENCY.file,
        circuit: circuitConfig,
      };
    case 'mx':
      return {
        name,
        type: 'mx',
        port: t.port,
        tls: t.tls,
        resolver: t.resolver,
        concurrencyPerDomain: t.concurrencyPerDomain,
        timeoutMs: t.timeout,
        dkim: t.dkim,
        concurrency: t.concurrency ?? DEFAULT_CONCURRENCY.mx,
        circuit: circuitConfig,
      };
  }
}

const listener = z.strictObject({ host: text, port, implicitTls: bool.default(false) });

const route = z.strictObject({
  match: text,
  target: z.union([targetName, z.array(targetName).min(1)], {
    error: 'expected a target name or a list of target names',
  }),
});

/** YAML document (after `${VAR}` substitution) → `Config`. */
export const configSchema = z
  .strictObject({
    listen: z.array(listener).min(1).default([{ host: '127.0.0.1', port: 2525, implicitTls: false }]),
    // The default is this machine's name: the schema file must not carry the name of the one that wrote it.
    hostname: text.default(() => os.hostname()).register(inputForms, { type: 'string', minLength: 1, description: "default: this machine's host name" }),
    tls: z.strictObject({ key: text, cert: text }).nullish(),
    limits: z
      .strictObject({
        maxMessageSize: size.prefault('25MB'),
        maxRecipients: int(1).default(100),
        maxConnections: int(1).default(200),
        maxConnectionsPerIp: int(1).default(20),
        idleTimeout: positiveDuration.prefault('5m'),
        sessionTimeout: positiveDuration.prefault('30m'),
        maxCommands: int(1).default(10_000),
        maxErrors: int(1).default(10),
        maxDataMemory: size.prefault('512MB'),
        maxAuthFailures: int(1).default(5),
      })
      .prefault({}),
    relay: z
      .strictObject({
        allowNetworks: z.array(cidr).prefault(['127.0.0.0/8', '::1/128']),
        users: z.array(z.strictObject({ username: text, password: text })).default([]),
        allowInsecureAuth: bool.default(false),
      })
      .prefault({}),
    smtp: z
      .strictObject({
        bareLineEndings: z.enum(['reject', 'normalize']).default('reject'),
        greetingDelay: duration.prefault('0ms'),
      })
      .prefault({}),
    spool: z
      .strictObject({
        backend: z.enum(['level', 'postgres']).default('level'),
        // level only (refused with postgres, see the refinement below): no defaults here
        path: text.optional(),
        minFreeDisk: size.optional(),
        // postgres only
        url: text.optional(),
        schema: text.default('onward'),
        lease: positiveDuration.prefault('30s'),
        pool: int(1, 1000).default(10),
        maxQueued: int(1).default(1_000_000),
        retainFinished: duration.prefault('7d'),
        groupCommit: bool.default(true),
      })
      .superRefine((s, ctx) => {
        if (s.backend === 'postgres') {
          if (s.url === undefined) ctx.addIssue({ code: 'custom', path: ['url'], message: 'required with backend: postgres (postgres://user:${PGPASSWORD}@host:5432/db)' });
          for (const key of ['path', 'minFreeDisk'] as const) {
            if (s[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'belongs to the level backend; not used with backend: postgres' });
          }
        } else if (s.url !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['url'], message: 'belongs to the postgres backend; set backend: postgres to use it' });
        }
      })
      .prefault({}),
    nodeId: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'expected letters, digits, ".", "_" or "-" (at most 63)').optional(),
    dedup: z.strictObject({ window: duration.prefault('7d') }).prefault({}),
    retry: z
      .strictObject({
        schedule: z
          .array(positiveDuration)
          .min(1)
          .prefault(['1m', '5m', '15m', '30m', '1h', '2h', '4h', '8h']),
        jitter: z.number().min(0).max(1).default(0.1),
        maxAge: positiveDuration.prefault('5d'),
        delayWarningAfter: positiveDuration.nullish(),
      })
      .prefault({}),
    targets: z
      .record(targetName, target)
      .refine((targets) => Object.keys(targets).length > 0, 'expected at least one target'),
    routes: z.array(route).min(1),
    bounces: z.strictObject({ from: email.optional(), via: targetName.nullish() }).prefault({}),
    events: z
      .strictObject({
        target: targetName,
        types: z.array(z.enum(['delivered', 'deferred', 'failed'])).min(1).default(['delivered', 'deferred', 'failed']),
      })
      .nullish(),
    admin: z
      .strictObject({
        host: text.default('127.0.0.1'),
        port: port.default(9025),
        token: text.nullish(),
      })
      .prefault({}),
    submission: z
      .strictObject({
        listen: z.strictObject({ host: text.default('127.0.0.1'), port: port.default(8025) }).prefault({}),
        keys: z
          .array(z.strictObject({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/, 'expected a name of letters, digits, ".", "_", "@" or "-"'), key: z.string().min(16, 'expected a key of at least 16 characters') }))
          .default([])
          .refine((keys) => new Set(keys.map((k) => k.name)).size === keys.length, 'expected each key name once')
          .refine((keys) => new Set(keys.map((k) => k.key)).size === keys.length, 'expected each key once'),
      })
      .nullish(),
    shutdownGrace: duration.prefault('30s'),
    log: z
      .strictObject({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .prefault({}),
  })
  .transform(
    (c): Config => ({
      listen: c.listen,
      hostname: c.hostname,
      tls: c.tls ? { keyPath: c.tls.key, certPath: c.tls.cert } : null,
      limits: {
        maxMessageSizeBytes: c.limits.maxMessageSize,
        maxRecipients: c.limits.maxRecipients,
        maxConnections: c.limits.maxConnections,
        maxConnectionsPerIp: c.limits.maxConnectionsPerIp,
        idleTimeoutMs: c.limits.idleTimeout,
        sessionTimeoutMs: c.limits.sessionTimeout,
        maxCommands: c.limits.maxCommands,
        maxErrors: c.limits.maxErrors,
        maxDataMemoryBytes: c.limits.maxDataMemory,
        maxAuthFailures: c.limits.maxAuthFailures,
      },
      relay: c.relay,
      smtp: { bareLineEndings: c.smtp.bareLineEndings, greetingDelayMs: c.smtp.greetingDelay },
      spool: {
        backend: c.spool.backend,
        path: c.spool.path ?? './data/spool',
        minFreeDiskBytes: c.spool.minFreeDisk ?? parseSize('512MB'),
        url: c.spool.url ?? null,
        schema: c.spool.schema,
        leaseMs: c.spool.lease,
        pool: c.spool.pool,
        maxQueued: c.spool.maxQueued,
        retainFinishedMs: c.spool.retainFinished,
        groupCommit: c.spool.groupCommit,
      },
      nodeId: c.nodeId ?? null,
      dedup: { windowMs: c.dedup.window },
      retry: {
        scheduleMs: c.retry.schedule,
        jitter: c.retry.jitter,
        maxAgeMs: c.retry.maxAge,
        delayWarningAfterMs: c.retry.delayWarningAfter ?? null,
      },
      targets: Object.fromEntries(
        Object.entries(c.targets).map(([name, t]) => [name, toTarget(name, t)]),
      ),
      routes: c.routes.map((r) => ({
        match: r.match,
        targets: typeof r.target === 'string' ? [r.target] : r.target,
      })),
      bounces: { from: c.bounces.from ?? `MAILER-DAEMON@${c.hostname}`, via: c.bounces.via ?? null },
      events: c.events ? { target: c.events.target, types: [...new Set(c.events.types)] } : null,
      admin: { host: c.admin.host, port: c.admin.port, token: c.admin.token ?? null },
      submission: c.submission ? { listen: c.submission.listen, keys: c.submission.keys } : null,
      shutdownGraceMs: c.shutdownGrace,
      log: c.log,
    }),
  );
