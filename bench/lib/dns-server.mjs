/**
 * A tiny authoritative DNS server on 127.0.0.1 (UDP, port 0) for tests and the bench: it
 * answers from a zone held in memory (MX, A, AAAA, TXT), NXDOMAIN for names it does not
 * know, NODATA (an empty NOERROR answer) for a known name without the type asked, and
 * SERVFAIL for names marked so — switchable at run time ("SERVFAIL now, answer later").
 * Plain .mjs (the bench imports only dist/ and bench/lib); test/helpers/dns-server.ts
 * re-exports it with types (dns-server.d.mts).
 *
 *   const dns = await startDnsServer({ 'example.test': { MX: [{ preference: 10, exchange: 'mx.example.test' }] },
 *                                      'mx.example.test': { A: ['127.0.0.2'] } });
 *   // resolver: [dns.address]   (127.0.0.1:<port>)
 */
import { createSocket } from 'node:dgram';
import dnsPacket from 'dns-packet';

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 };
const TYPES = ['MX', 'A', 'AAAA', 'TXT'];

/** A TXT value as DNS strings of at most 255 bytes each. */
function txtChunks(value) {
  const out = [];
  for (let i = 0; i < value.length; i += 255) out.push(value.slice(i, i + 255));
  return out.length > 0 ? out : [''];
}

export async function startDnsServer(zone = {}, options = {}) {
  const records = new Map();
  const failing = new Set();
  const defaultTtl = options.ttl ?? 300;
  const counts = { queries: 0 };
  const norm = (name) => String(name).toLowerCase().replace(/\.$/, '');
  const set = (name, entry) => records.set(norm(name), entry);
  for (const [name, entry] of Object.entries(zone)) set(name, entry);

  const socket = createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    let query;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    counts.queries += 1;
    const question = query.questions?.[0];
    const answers = [];
    let rcode = RCODE.NOERROR;
    if (question) {
      const name = norm(question.name);
      const entry = records.get(name);
      if (failing.has(name)) rcode = RCODE.SERVFAIL;
      else if (!entry) rcode = RCODE.NXDOMAIN;
      else if (TYPES.includes(question.type)) {
        const ttl = entry.ttl ?? defaultTtl;
        for (const value of entry[question.type] ?? []) {
          const data = question.type === 'TXT' ? txtChunks(value) : value;
          answers.push({ type: question.type, name: question.name, ttl, class: 'IN', data });
        }
      }
    }
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flags & dnsPacket.RECURSION_DESIRED) | dnsPacket.RECURSION_AVAILABLE | rcode,
      questions: query.questions,
      answers,
    });
    socket.send(response, rinfo.port, rinfo.address);
  });
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const { address: host, port } = socket.address();
  let closed = false;
  return {
    host,
    port,
    address: `${host}:${port}`,
    get queries() {
      return counts.queries;
    },
    set,
    remove: (name) => records.delete(norm(name)),
    servfail: (name, on = true) => (on ? failing.add(norm(name)) : failing.delete(norm(name))),
    close: () =>
      new Promise((resolve) => {
        if (closed) return resolve();
        closed = true;
        socket.close(() => resolve());
      }),
  };
}
