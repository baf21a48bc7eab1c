// A small SMTP load generator with smtp-source's semantics (no PIPELINING; -d = reuse
// connections) that also records each message's acceptance latency: from the end of DATA
// (the final "." sent) to the 250. Bounded by message count and a deadline.
import net from 'node:net';

/** A message template; `@@ID@@` becomes a unique Message-ID per send (else dedup would drop repeats). */
function body(size) {
  const head = `From: <sender@bench.test>\r\nTo: <rcpt@relay.test>\r\nSubject: bench\r\nMessage-ID: <@@ID@@@bench.test>\r\n\r\n`;
  const line = 'x'.repeat(78) + '\r\n';
  let text = '';
  while (text.length < size) text += line;
  return head + text.slice(0, size) + '\r\n.\r\n';
}

/** One session: returns a function that runs one SMTP command and resolves with the reply code. */
function session(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buf = '';
    let waiter = null;
    socket.setNoDelay(true);
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let nl;
      while ((nl = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (line[3] === '-') continue; // continuation of a multi-line reply
        const w = waiter;
        waiter = null;
        w?.(Number(line.slice(0, 3)));
      }
    });
    socket.on('error', (e) => (waiter ? waiter(-1) : reject(e)));
    const cmd = (line) =>
      new Promise((res) => {
        waiter = res;
        if (line !== null) socket.write(line);
      });
    cmd(null).then((code) => (code === 220 ? resolve({ cmd, close: () => socket.destroy() }) : reject(new Error(`greeting ${code}`))));
  });
}

/**
 * `ports`: several relays (a cluster); session k submits to ports[k % n]. Default: `[port]`.
 * `rcptDomains`: message i goes to rcpt@d<i mod n>.bench.test (mx rows); default rcpt@relay.test.
 */
export async function runLoad({ port, ports = [port], messages, size, sessions, reuse, deadlineMs, rcptDomains = 0 }) {
  const latencies = [];
  let next = 0;
  let failed = 0;
  const started = Date.now();
  const template = body(size);
  const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  async function worker(_, k) {
    const port = ports[k % ports.length];
    let s = null;
    while (next < messages && Date.now() - started < deadlineMs) {
      const i = next++;
      try {
        if (!s) {
          s = await session(port);
          if ((await s.cmd('EHLO bench-client\r\n')) !== 250) throw new Error('ehlo');
        }
        if ((await s.cmd('MAIL FROM:<sender@bench.test>\r\n')) !== 250) throw new Error('mail');
        const rcpt = rcptDomains > 0 ? `rcpt@d${i % rcptDomains}.bench.test` : 'rcpt@relay.test';
        if ((await s.cmd(`RCPT TO:<${rcpt}>\r\n`)) !== 250) throw new Error('rcpt');
        if ((await s.cmd('DATA\r\n')) !== 354) throw new Error('data');
        const t0 = process.hrtime.bigint();
        const code = await s.cmd(template.replace('@@ID@@', `${run}-${i}`));
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        if (code !== 250) throw new Error(`dot ${code}`);
        if (!reuse) {
          await s.cmd('QUIT\r\n');
          s.close();
          s = null;
        }
      } catch {
        failed += 1;
        s?.close();
        s = null;
      }
    }
    if (s) {
      await s.cmd('QUIT\r\n');
      s.close();
    }
  }
  await Promise.all(Array.from({ length: sessions }, worker));
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? null;
  return { sent: latencies.length, failed, seconds: (Date.now() - started) / 1000, p50: pct(50), p95: pct(95), p99: pct(99) };
}
