// Small helpers shared by the bench scripts (loopback only).
import { request as httpRequest } from 'node:http';
import net from 'node:net';

export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** GET a JSON document from a loopback HTTP server; rejects on a non-200 answer or a timeout. */
export function httpGetJson(port, path, timeoutMs = 5000) {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'GET', timeout: timeoutMs }, (resp) => {
      let body = '';
      resp.setEncoding('utf8');
      resp.on('data', (c) => (body += c));
      resp.on('end', () => {
        if (resp.statusCode !== 200) return rej(new Error(`GET ${path}: HTTP ${resp.statusCode}`));
        try {
          res(JSON.parse(body));
        } catch (err) {
          rej(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', rej);
    req.end();
  });
}
