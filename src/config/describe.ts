/**
 * The resolved configuration as text for `onward check-config`. Secrets (header values,
 * passwords, signing secrets, tokens, URL credentials) are printed as `***`.
 */
import type { Config, ListenerConfig, TargetConfig } from './types.js';

const MASK = '***';

export function describeConfig(config: Config): string {
  const targets = Object.values(config.targets);
  const nameWidth = Math.max(0, ...targets.map((t) => t.name.length));
  const lines = [
    `hostname: ${config.hostname}`,
    'listen:',
    ...config.listen.map((l) => `  ${describeListener(l, config.tls !== null)}`),
    'targets:',
    ...targets.map((t) => `  ${t.name.padEnd(nameWidth)}  ${describeTarget(t)}`),
    'routes (first match wins, per recipient):',
    ...config.routes.map((r) => `  ${r.match} -> ${r.targets.join(', then ')}`),
    `bounces: from ${config.bounces.from} via ${config.bounces.via ?? 'routes'}`,
    `events: ${config.events === null ? 'off' : `${config.events.types.join(', ')} to ${config.events.target}`}`,
    `relay: without AUTH from ${config.relay.allowNetworks.join(', ') || 'nowhere'}; ` +
      `users: ${config.relay.users.map((u) => `${u.username}:${MASK}`).join(', ') || 'none'}`,
    `spool: ${describeSpool(config)}`,
    `admin: http://${hostPort(config.admin.host, config.admin.port)}` +
      (config.admin.token === null ? ' (no token)' : ` (token ${MASK})`),
    `submission: ${describeSubmission(config)}`,
  ];
  return `${lines.join('\n')}\n`;
}

function describeSubmission(config: Config): string {
  const { submission } = config;
  if (submission === null) return 'off';
  const keys = submission.keys.length === 0 ? 'no keys (loopback only)' : `keys ${submission.keys.map((k) => `${k.name}:${MASK}`).join(', ')}`;
  return `${config.tls === null ? 'http' : 'https'}://${hostPort(submission.listen.host, submission.listen.port)}/v1/messages (${keys})`;
}

function describeListener(listener: ListenerConfig, hasTls: boolean): string {
  const address = hostPort(listener.host, listener.port);
  if (listener.implicitTls) return `smtps://${address} (implicit TLS)`;
  return `smtp://${address}${hasTls ? ' (STARTTLS)' : ''}`;
}

function describeTarget(target: TargetConfig): string {
  const limits = `concurrency ${target.concurrency}`;
  switch (target.type) {
    case 'http': {
      const extras = [`format ${target.format}`];
      const headers = Object.keys(target.headers).map((h) => `${h}: ${MASK}`);
      if (headers.length > 0) extras.push(`headers ${headers.join(', ')}`);
      const secrets = target.signingSecrets.length;
      if (secrets > 0) extras.push(`signed ${target.signing} (${secrets === 1 ? MASK : `${secrets} secrets ${MASK}`})`);
      return `http  ${maskUrl(target.url)}  ${limits}  (${extras.join('; ')})`;
    }
    case 'smtp': {
      const extras: string[] = [target.secure];
      if (target.auth !== null) extras.push(`auth ${target.auth.user}:${MASK}`);
      if (!target.tlsRejectUnauthorized) extras.push('certificates not verified');
      // The selector and domain only: the key itself is a secret.
      if (target.dkim.length > 0) extras.push(`dkim ${target.dkim.map((k) => `${k.selector}._domainkey.${k.domain} (${k.algorithm})`).join(', ')}`);
      return `smtp  ${hostPort(target.host, target.port)}  ${limits}  (${extras.join('; ')})`;
    }
    case 'file':
      return `file  ${target.path}  ${limits}`;
    case 'mx': {
      const extras: string[] = [`tls ${target.tls}`, `resolver ${target.resolver.length > 0 ? target.resolver.join(', ') : 'system'}`];
      if (target.dkim.length > 0) extras.push(`dkim ${target.dkim.map((k) => `${k.selector}._domainkey.${k.domain} (${k.algorithm})`).join(', ')}`);
      return `mx  port ${target.port}  ${limits}, ${target.concurrencyPerDomain} per domain  (${extras.join('; ')})`;
    }
  }
}

function describeSpool(config: Config): string {
  const { spool } = config;
  if (spool.backend === 'level') return spool.path;
  const node = config.nodeId === null ? '' : `, node ${config.nodeId}`;
  return `postgres ${spool.url === null ? '(no url)' : maskDatabaseUrl(spool.url)} (schema ${spool.schema}, lease ${spool.leaseMs} ms, pool ${spool.pool}${node})`;
}

/** The password (in the authority or as `?password=`) masked; sslmode and the rest shown. */
function maskDatabaseUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password !== '') url.password = MASK;
    if (url.searchParams.has('password')) url.searchParams.set('password', MASK);
    return url.toString();
  } catch {
    return MASK; // not a URL: it may be all secret
  }
}

function hostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Hides `user:pass@` and query values, where webhook URLs often carry tokens. */
function maskUrl(raw: string): string {
  const url = new URL(raw);
  if (url.password !== '') url.password = MASK;
  for (const key of [...url.searchParams.keys()]) url.searchParams.set(key, MASK);
  return url.toString();
}
