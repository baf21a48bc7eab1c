import { BlockList, isIP } from 'node:net';

/** Client addresses remembered per list; a relay sees few distinct ones. */
const MEMO_ENTRIES = 1024;

/** CIDR matching for `relay.allowNetworks`; IPv4-mapped IPv6 clients match IPv4 rules. */
export class NetworkList {
  private readonly list = new BlockList();
  private readonly entries: { cidr: string; single: BlockList }[] = [];
  /** BlockList.check builds a SocketAddress per call; RCPT asks once per recipient. */
  private readonly memo = new Map<string, string | null>();

  constructor(cidrs: readonly string[]) {
    for (const cidr of cidrs) {
      const [address = '', bits] = cidr.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      const prefix = bits === undefined ? (family === 'ipv6' ? 128 : 32) : Number(bits);
      const single = new BlockList();
      single.addSubnet(address, prefix, family);
      this.list.addSubnet(address, prefix, family);
      this.entries.push({ cidr, single });
    }
  }

  /** The CIDR entry that contains `ip`, or null. */
  match(ip: string): string | null {
    const known = this.memo.get(ip);
    if (known !== undefined) return known;
    const found = this.lookup(ip);
    if (this.memo.size >= MEMO_ENTRIES) this.memo.clear();
    this.memo.set(ip, found);
    return found;
  }

  private lookup(ip: string): string | null {
    const [addr, family] = normalise(ip);
    if (!addr || !this.list.check(addr, family)) return null;
    return this.entries.find((e) => e.single.check(addr, family))?.cidr ?? null;
  }
}

function normalise(ip: string): [string, 'ipv4' | 'ipv6'] {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return [mapped[1], 'ipv4'];
  return [ip, isIP(ip) === 6 ? 'ipv6' : 'ipv4'];
}
