export interface DnsEntry {
  MX?: { preference: number; exchange: string }[];
  A?: string[];
  AAAA?: string[];
  TXT?: string[];
  /** Seconds; default the server's `ttl` (300). */
  ttl?: number;
}
export type DnsZone = Record<string, DnsEntry>;
export interface DnsServer {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:<port>`, as a target's `resolver` entry. */
  readonly address: string;
  /** Queries answered so far. */
  readonly queries: number;
  /** Adds or replaces a name's records. */
  set(name: string, entry: DnsEntry): void;
  /** Forgets a name: NXDOMAIN from now on. */
  remove(name: string): void;
  /** SERVFAIL for `name` from now on (`on: false`: answer again). */
  servfail(name: string, on?: boolean): void;
  close(): Promise<void>;
}
export function startDnsServer(zone?: DnsZone, options?: { ttl?: number; host?: string; port?: number }): Promise<DnsServer>;
