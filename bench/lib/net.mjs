// Small helpers shared by the bench scripts (loopback only).
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
