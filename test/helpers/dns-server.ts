/**
 * A DNS server on 127.0.0.1 (UDP, port 0) serving a zone given in the test: MX, A, AAAA, TXT,
 * NXDOMAIN for unknown names, SERVFAIL for names marked so (switchable at run time), TTLs.
 * The implementation is plain .mjs in bench/lib (the bench uses it too).
 *
 * ```ts
 * const dns = await startDnsServer({ 'example.test': { MX: [{ preference: 10, exchange: 'mx1.example.test' }] },
 *                                    'mx1.example.test': { A: ['127.0.0.2'] } });
 * dns.servfail('example.test');          // SERVFAIL now…
 * dns.servfail('example.test', false);   // …answer later
 * // target config: resolver: [dns.address]
 * ```
 */
import { Resolver } from 'node:dns/promises';
import { startDnsServer, type DnsEntry, type DnsServer, type DnsZone } from '../../bench/lib/dns-server.mjs';

export { startDnsServer, type DnsEntry, type DnsServer, type DnsZone };

/** A node Resolver that asks only `server` (for mailauth's DKIM verifier in tests). */
export function resolverFor(server: DnsServer): Resolver {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server.address]);
  return resolver;
}
