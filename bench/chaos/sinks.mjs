// The sinks the relay delivers to, in the harness's own process on 127.0.0.1:
//   - HTTP (`hooks`): a seeded share of requests is answered 500, left hanging past the target's
//     timeout, or has its socket destroyed mid-request; a `reject-*` recipient is answered 422;
//   - SMTP (`mx`): the same share gets 451 at DATA, a hang, or a dropped connection; `reject-*`
//     recipients get 550 at RCPT TO;
//   - bounces: always accepts; where the DSNs arrive.
// Each records what it processed in a Downstream / DsnLog for the ledger.
import { createServer } from 'node:http';
import smtpServer from 'smtp-server';
import { Downstream, DsnLog, headerOf } from './downstream.mjs';

/** The fault for one downstream request: null (answer normally) or error | timeout | drop. */
function faultPicker(rng, fail) {
  return () => {
    const r = rng();
    if (r >= fail) return null;
    const share = r / fail;
    if (share < 0.55) return 'error';
    if (share < 0.7) return 'timeout';
    return 'drop';
  };
}

export async function startHttpSink(rng, fail, hangMs) {
  const ds = new Downstream();
  const pick = faultPicker(rng, fail);
  const timers = new Set();
  const server = createServer((req, res) => {
    ds.requests += 1;
    const fault = pick();
    const early = fault !== null && rng() < 0.5; // half the drops and hangs happen before we process anything
    if (fault === 'drop' && early) {
      ds.faults.drop += 1;
      // Mid-request: as soon as the body starts arriving (or at once when it already has).
      req.once('data', () => req.socket.destroy());
      req.once('end', () => req.socket.destroy());
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const head = body.subarray(0, 8192).toString('latin1');
      const marker = headerOf(head, 'X-Chaos-Id');
      const to = String(req.headers['x-onward-envelope-to'] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const key = String(req.headers['idempotency-key'] ?? '');
      const queueId = String(req.headers['x-onward-queue-id'] ?? '');
      const reject = to.some((a) => a.startsWith('reject-'));
      if (fault === 'error') {
        ds.faults.error += 1;
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('chaos: internal error');
        return;
      }
      if (fault === 'timeout') {
        ds.faults.timeout += 1;
        // A slow server that may have done the work already: the relay gives up at 1s and retries.
        const entries = !early && !reject ? ds.process(marker, to, key, queueId) : [];
        const t = setTimeout(() => {
          timers.delete(t);
          if (res.destroyed || res.socket?.destroyed) return;
          // Still connected after all (it should not be): answer truthfully.
          if (early || reject) return void res.writeHead(503).end();
          res.once('finish', () => ds.ack(entries));
          res.writeHead(200).end();
        }, hangMs);
        timers.add(t);
        return;
      }
      if (fault === 'drop') {
        // Late drop: the work is done, the answer is lost.
        ds.faults.drop += 1;
        if (!reject) ds.process(marker, to, key, queueId);
        req.socket.destroy();
        return;
      }
      if (reject) {
        ds.faults.reject += 1;
        res.writeHead(422, { 'Content-Type': 'text/plain' }).end('chaos: recipient rejected');
        return;
      }
      const entries = ds.process(marker, to, key, queueId);
      res.once('finish', () => ds.ack(entries));
      res.writeHead(200).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    ds,
    port: server.address().port,
    close: () =>
      new Promise((r) => {
        for (const t of timers) clearTimeout(t);
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function connectionOf(server, session) {
  for (const c of server.connections) if (c.session === session || c.id === session.id) return c;
  return null;
}

/** smtp-server options every chaos sink shares. */
const SINK_OPTIONS = { logger: false, disableReverseLookup: true, authOptional: true, hideSTARTTLS: true, closeTimeout: 100, size: 10 * 1024 * 1024 };

export async function startSmtpSink(rng, fail, hangMs) {
  const ds = new Downstream();
  const pick = faultPicker(rng, fail);
  const server = new smtpServer.SMTPServer({
    ...SINK_OPTIONS,
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('reject-')) {
        ds.faults.reject += 1;
        return callback(Object.assign(new Error(`5.1.1 <${address.address}>: Recipient address rejected: chaos`), { responseCode: 550 }));
      }
      callback();
    },
    onData(stream, session, callback) {
      ds.requests += 1;
      const fault = pick();
      const early = fault !== null && rng() < 0.5;
      const chunks = [];
      let dropped = false;
      if (fault === 'drop' && early) {
        ds.faults.drop += 1;
        dropped = true;
        connectionOf(server, session)?._socket?.destroy();
      }
      stream.on('data', (c) => {
        if (!dropped) chunks.push(c);
      });
      stream.on('end', () => {
        if (dropped) return;
        const raw = Buffer.concat(chunks);
        const head = raw.subarray(0, 8192).toString('latin1');
        const marker = headerOf(head, 'X-Chaos-Id');
        const queueId = /\(onward\) with \S+ id ([0-9A-Z]+)/.exec(head)?.[1] ?? null;
        const to = session.envelope.rcptTo.map((r) => r.address);
        const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        const key = queueId === null ? null : `${queueId}:${mailFrom}:${[...to].sort().join(',')}`;
        if (fault === 'error') {
          ds.faults.error += 1;
          return callback(Object.assign(new Error('4.3.0 chaos: try again later'), { responseCode: 451 }));
        }
        if (fault === 'timeout') {
          ds.faults.timeout += 1;
          const entries = early ? [] : ds.process(marker, to, key, queueId);
          setTimeout(() => {
            const c = connectionOf(server, session);
            if (!c || c._socket?.destroyed) return;
            try {
              // Still connected after all (it should not be): answer truthfully.
              if (early) return callback(Object.assign(new Error('4.3.0 chaos: too slow'), { responseCode: 451 }));
              callback();
              ds.ack(entries);
            } catch {
              /* the relay hung up meanwhile */
            }
          }, hangMs);
          return;
        }
        if (fault === 'drop') {
          ds.faults.drop += 1;
          ds.process(marker, to, key, queueId);
          connectionOf(server, session)?._socket?.destroy();
          return;
        }
        const entries = ds.process(marker, to, key, queueId);
        ds.ack(entries);
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { ds, port: server.server.address().port, close: () => new Promise((r) => server.close(() => r())) };
}


/** Accepts every DSN and remembers which recipients of which marker it reported. */
export async function startBounceSink() {
  const dsns = new DsnLog();
  const server = new smtpServer.SMTPServer({
    ...SINK_OPTIONS,
    onData(stream, session, callback) {
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => {
        dsns.record(Buffer.concat(chunks).toString('latin1'), session.envelope.mailFrom ? session.envelope.mailFrom.address : '');
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { dsns, port: server.server.address().port, close: () => new Promise((r) => server.close(() => r())) };
}
