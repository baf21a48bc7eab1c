// A minimal SMTP client (raw socket): exact knowledge of what was answered, and when the
// connection broke, no hidden re-queueing. A break after the final dot is an unknown outcome
// (`ConnError.afterDot`): the message may or may not have been queued.
import net from 'node:net';

export class ConnError extends Error {
  constructor(message, afterDot = false) {
    super(message);
    this.afterDot = afterDot;
  }
}

export class SmtpClient {
  static connect(port, timeoutMs = 5000) {
    return new Promise((res, rej) => {
      const socket = net.connect({ host: '127.0.0.1', port });
      const client = new SmtpClient(socket);
      const timer = setTimeout(() => {
        socket.destroy();
        rej(new ConnError('connect timeout'));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        client
          .read(timeoutMs)
          .then(async (greeting) => {
            if (greeting.code !== 220) throw new ConnError(`greeting ${greeting.code} ${greeting.text}`);
            const ehlo = await client.command('EHLO chaos.client.test', timeoutMs);
            if (ehlo.code !== 250) throw new ConnError(`EHLO ${ehlo.code} ${ehlo.text}`);
            return client;
          })
          .then(res, (err) => {
            client.destroy();
            rej(err instanceof ConnError ? err : new ConnError(String(err?.message ?? err)));
          });
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        rej(new ConnError(err.code ?? err.message));
      });
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = '';
    this.lines = [];
    this.waiter = null;
    this.dead = false;
    socket.setNoDelay(true);
    socket.setEncoding('latin1');
    socket.on('data', (d) => this.onData(d));
    socket.on('error', () => this.fail('socket error'));
    socket.on('close', () => this.fail('connection closed'));
  }

  onData(d) {
    this.buffer += d;
    let i;
    while ((i = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, i);
      this.buffer = this.buffer.slice(i + 2);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const all = this.lines;
        this.lines = [];
        const w = this.waiter;
        this.waiter = null;
        if (w) w.resolve({ code: Number(line.slice(0, 3)), text: all.map((l) => l.slice(4)).join(' | '), line });
      }
    }
  }

  fail(why) {
    if (this.dead) return;
    this.dead = true;
    const w = this.waiter;
    this.waiter = null;
    if (w) w.reject(new ConnError(why));
    this.socket.destroy();
  }

  read(timeoutMs = 30_000) {
    if (this.dead) return Promise.reject(new ConnError('connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(`no reply within ${timeoutMs} ms`);
      }, timeoutMs);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  command(line, timeoutMs = 30_000) {
    if (this.dead) return Promise.reject(new ConnError('connection closed'));
    const p = this.read(timeoutMs);
    this.socket.write(`${line}\r\n`);
    return p;
  }

  /** Sends the (dot-stuffed) message and the final dot; a broken connection now is an unknown outcome. */
  async data(raw, timeoutMs = 30_000) {
    if (this.dead) throw new ConnError('connection closed');
    let text = raw.toString('latin1');
    if (!text.endsWith('\r\n')) text += '\r\n';
    text = text.replace(/^\./, '..').replace(/\r\n\./g, '\r\n..');
    const p = this.read(timeoutMs);
    this.socket.write(text);
    this.socket.write('.\r\n');
    try {
      return await p;
    } catch (err) {
      throw new ConnError(err.message, true);
    }
  }

  destroy() {
    this.dead = true;
    this.socket.destroy();
  }
}

/** One mail transaction. Returns the reply, or throws ConnError. */
export async function transact(client, plan, raw) {
  const mail = await client.command(`MAIL FROM:<${plan.sender}>`);
  if (mail.code !== 250) return { phase: 'mail', ...mail };
  for (const rcpt of plan.rcpts) {
    const r = await client.command(`RCPT TO:<${rcpt}>`);
    if (r.code !== 250) {
      await client.command('RSET').catch(() => undefined);
      return { phase: 'rcpt', ...r };
    }
  }
  const data = await client.command('DATA');
  if (data.code !== 354) {
    await client.command('RSET').catch(() => undefined);
    return { phase: 'data', ...data };
  }
  return { phase: 'dot', ...(await client.data(raw)) };
}
