#!/usr/bin/env node
// Bench sinks, run as a child process so they never share the driver's event loop.
//   node bench/lib/sink.mjs smtp PORT   |   node bench/lib/sink.mjs http PORT
// Loopback only. Prints "ready" once listening; GET-like counting via a line on stdout every
// 20 ms when the count changed: "count N". Exits on SIGTERM or after --max-seconds (default 900).
import http from 'node:http';
import { SMTPServer } from 'smtp-server';

const [kind, portArg, ...rest] = process.argv.slice(2);
const port = Number(portArg);
const maxSeconds = Number(rest[rest.indexOf('--max-seconds') + 1] || 900);
let count = 0;
let reported = -1;
setInterval(() => {
  if (count !== reported) {
    reported = count;
    process.stdout.write(`count ${count}\n`);
  }
}, 20).unref();
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
process.on('SIGTERM', () => process.exit(0));

if (kind === 'http') {
  const server = http.createServer((req, res) => {
    req.on('data', () => undefined);
    req.on('end', () => {
      count += 1;
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
  setInterval(() => undefined, 1 << 30);
} else {
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    hideSTARTTLS: true,
    size: 64 * 1024 * 1024,
    onData(stream, _session, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        count += 1;
        cb();
      });
    },
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}
