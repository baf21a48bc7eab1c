/**
 * DNS for direct delivery (SPEC 13): a domain's mail exchangers in the order to try them, and
 * each exchanger's addresses, with answers cached for their TTL.
 *
 * - MX records by preference, equal preferences shuffled (RFC 5321 §5.1).
 * - No MX record (NODATA) → the domain itself is the exchanger (implicit MX, its A/AAAA).
 * - Null MX (`0 .`, RFC 7505) → FAIL 5.1.10; the domain does not exist (NXDOMAIN) → FAIL 5.1.2.
 * - SERVFAIL, timeouts, refused queries, anything else → ERROR (retried).
 *
 * Node's `resolveMx` gives no TTL, so MX answers are cached for MX_TTL_MS (5 min); A/AAAA
 * answers for their own TTL (`ttl: true`), at most MAX_TTL_MS. Negative answers (NXDOMAIN,
 * NODATA) are cached for NEGATIVE_TTL_MS; DNS errors are never cached. The cache is an LRU of
 * CACHE_ENTRIES names, so it stays bounded whatever the number of domains.
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

/** One mail exchanger: its name (for TLS SNI, logs and Remote-MTA). */
export interface MxHost {
  readonly name: string;
  readonly preference: number;
  /** True for the implicit MX (the domain's own address records). */
  readonly implicit: boolean;
}

export type MxAnswer =
  | { readonly kind: 'hosts'; readonly hosts: readonly MxHost[] }
  /** Permanent: the enhanced status (5.1.10 null MX, 5.1.2 no such domain) and why. */
  | { readonly kind: 'fail'; readonly status: string; readonly text: string }
  /** Temporary: try again later. */
  | { readonly kind: 'error'; readonly text: string };

export type AddressAnswer =
  | { readonly kind: 'addresses'; readonly addresses: readonly string[] }
  /** The name has no A/AAAA record, or does not exist. */
  | { readonly kind: 'none'; readonly text: string }
  | { readonly kind: 'error'; readonly text: string };

export interface MxResolverOptions {
  /** DNS servers as `host` or `host:port`; empty: the system's. */
  readonly servers: readonly string[];
  /** Per-query timeout (node retries up to `tries` times). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

export const MX_TTL_MS = 5 * 60_000;
const NEGATIVE_TTL_MS = 60_000;
const MAX_TTL_MS = 3600_000;
const CACHE_ENTRIES = 4096;
const DEFAULT_QUERY_TIMEOUT_MS = 5000;

/** Error codes of node's resolver that mean "this name has no such record" or "no such name". */
const NODATA = new Set(['ENODATA']);
const NXDOMAIN = new Set(['ENOTFOUND']);

interface Cached<T> {
  readonly value: T;
  readonly until: number;
}

/** A small LRU map with expiry: `get` drops stale entries, `set` evicts the least recently used. */
export class TtlCache<T> {
  private readonly entries = new Map<string, Cached<T>>();
  constructor(private readonly max: number) {}

  get(key: string, now: number): T | undefined {
    const hit = this.entries.get(key);
    if (hit === undefined) return undefined;
    this.entries.delete(key);
    if (hit.until <= now) return undefined;
    this.entries.set(key, hit); // most recently used goes to the end
    return hit.value;
  }

  set(key: string, value: T, until: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, until });
    while (this.entries.size > this.max) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}

export class MxResolver {
  private readonly resolver: Resolver;
  private readonly now: () => number;
  private readonly mx = new TtlCache<MxAnswer>(CACHE_ENTRIES);
  private readonly addresses = new TtlCache<AddressAnswer>(CACHE_ENTRIES);

  constructor(options: MxResolverOptions) {
    this.resolver = new Resolver({ timeout: options.timeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS, tries: 2 });
    if (options.servers.length > 0) this.resolver.setServers([...options.servers]);
    this.now = options.now ?? Date.now;
  }

  /** The exchangers of `domain` in the order to try them (ties shuffled anew on every call). */
  async mailExchangers(domain: string): Promise<MxAnswer> {
    const now = this.now();
    let answer = this.mx.get(domain, now);
    if (answer === undefined) {
      answer = await this.lookupMx(domain);
      if (answer.kind === 'hosts') this.mx.set(domain, answer, now + MX_TTL_MS);
      else if (answer.kind === 'fail') this.mx.set(domain, answer, now + NEGATIVE_TTL_MS);
    }
    return answer.kind === 'hosts' ? { kind: 'hosts', hosts: shuffleTies(answer.hosts) } : answer;
  }

  /** The addresses of an exchanger: A records first, then AAAA. An IP literal is its own address. */
  async addressesOf(host: string): Promise<AddressAnswer> {
    if (isIP(host) !== 0) return { kind: 'addresses', addresses: [host] };
    const now = this.now();
    const cached = this.addresses.get(host, now);
    if (cached !== undefined) return cached;
    const [v4, v6] = await Promise.all([this.lookupAddresses(host, 'A'), this.lookupAddresses(host, 'AAAA')]);
    let answer: AddressAnswer;
    let ttlMs = NEGATIVE_TTL_MS;
    const found = [...(v4.kind === 'ok' ? v4.addresses : []), ...(v6.kind === 'ok' ? v6.addresses : [])];
    if (found.length > 0) {
      answer = { kind: 'addresses', addresses: found.map((a) => a.address) };
      ttlMs = Math.min(MAX_TTL_MS, ...found.map((a) => Math.max(1, a.ttl) * 1000));
    } else if (v4.kind === 'error' || v6.kind === 'error') {
      answer = { kind: 'error', text: (v4.kind === 'error' ? v4.text : null) ?? (v6.kind === 'error' ? v6.text : '') };
    } else {
      answer = { kind: 'none', text: `${host}: ${v4.kind === 'nxdomain' ? 'no such host' : 'no A or AAAA record'}` };
    }
    if (answer.kind !== 'error') this.addresses.set(host, answer, now + ttlMs);
    return answer;
  }

  private async lookupMx(domain: string): Promise<MxAnswer> {
    try {
      const records = await this.resolver.resolveMx(domain);
      if (records.length === 0) return { kind: 'hosts', hosts: [{ name: domain, preference: 0, implicit: true }] };
      // RFC 7505: a single `0 .` record (node gives the exchange as '') says the domain takes no mail.
      if (records.some((r) => r.exchange === '' || r.exchange === '.')) {
        return { kind: 'fail', status: '5.1.10', text: `${domain} does not accept mail (null MX)` };
      }
      const hosts = records
        .map((r) => ({ name: r.exchange.replace(/\.$/, '').toLowerCase(), preference: r.priority, implicit: false }))
        .sort((a, b) => a.preference - b.preference);
      return { kind: 'hosts', hosts };
    } catch (err) {
      const code = errorCode(err);
      if (NODATA.has(code)) return { kind: 'hosts', hosts: [{ name: domain, preference: 0, implicit: true }] };
      if (NXDOMAIN.has(code)) return { kind: 'fail', status: '5.1.2', text: `${domain}: no such domain (NXDOMAIN)` };
      return { kind: 'error', text: `DNS lookup of MX ${domain} failed: ${code || String(err)}` };
    }
  }

  private async lookupAddresses(
    host: string,
    type: 'A' | 'AAAA',
  ): Promise<{ kind: 'ok'; addresses: { address: string; ttl: number }[] } | { kind: 'nodata' | 'nxdomain' } | { kind: 'error'; text: string }> {
    try {
      const addresses = type === 'A' ? await this.resolver.resolve4(host, { ttl: true }) : await this.resolver.resolve6(host, { ttl: true });
      return addresses.length > 0 ? { kind: 'ok', addresses } : { kind: 'nodata' };
    } catch (err) {
      const code = errorCode(err);
      if (NODATA.has(code)) return { kind: 'nodata' };
      if (NXDOMAIN.has(code)) return { kind: 'nxdomain' };
      return { kind: 'error', text: `DNS lookup of ${type} ${host} failed: ${code || String(err)}` };
    }
  }
}

function errorCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : '';
}

/** Hosts of equal preference in random order (load sharing, RFC 5321 §5.1), the preference order kept. */
export function shuffleTies(hosts: readonly MxHost[]): MxHost[] {
  const out = [...hosts];
  let start = 0;
  while (start < out.length) {
    let end = start + 1;
    while (end < out.length && out[end]?.preference === out[start]?.preference) end += 1;
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(Math.random() * (i - start + 1));
      const a = out[i];
      const b = out[j];
      if (a !== undefined && b !== undefined) {
        out[i] = b;
        out[j] = a;
      }
    }
    start = end;
  }
  return out;
}
