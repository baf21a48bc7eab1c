// HTTP submission load (SPEC 10): `POST /v1/messages` with raw 4 KiB messages over an undici
// Pool of `clients` keep-alive connections, `clients` requests in flight at a time. Each
// message has its own Message-ID (the SMTP dedup rule would drop repeats). Bounded by
// message count and a deadline; latency is request start → 202.
import { Pool } from 'undici';

function template(size) {
  const head = `From: <sender@bench.test>\r\nTo: <rcpt@relay.test>\r\nSubject: bench\r\nMessage-ID: <@@ID@@@bench.test>\r\n\r\n`;
  const line = 'x'.repeat(78) + '\r\n';
  let text = '';
  while (text.length < size) text += line;
  return head + text.slice(0, size) + '\r\n';
}

export async function runHttpLoad({ port, ports = [port], messages, size, clients = 20, deadlineMs }) {
  const pools = ports.map((p) => new Pool(`http://127.0.0.1:${p}`, { connections: clients, pipelining: 1, keepAliveTimeout: 30_000 }));
  const text = template(size);
  const started = Date.now();
  const latencies = [];
  let next = 0;
  let failed = 0;
  const worker = async (w) => {
    const pool = pools[w % pools.length];
    while (next < messages && Date.now() - started < deadlineMs) {
      const n = next++;
      const t0 = performance.now();
      try {
        const res = await pool.request({
          path: '/v1/messages',
          method: 'POST',
          headers: { 'content-type': 'message/rfc822' },
          body: text.replace('@@ID@@', `h${n}.${started}`),
        });
        await res.body.dump();
        if (res.statusCode === 202) latencies.push(performance.now() - t0);
        else failed += 1;
      } catch {
        failed += 1;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  } finally {
    await Promise.all(pools.map((p) => p.close()));
  }
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? null;
  return { sent: latencies.length, failed, seconds: (Date.now() - started) / 1000, p50: pct(50), p95: pct(95), p99: pct(99) };
}
