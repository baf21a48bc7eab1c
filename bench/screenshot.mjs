#!/usr/bin/env node
// npm run screenshot — the README's picture of the dashboard, with a real queue: a relay
// (`onward serve` from dist/) on a temp spool, mail sent over SMTP for a minute or so: some
// delivered (file target), some deferred to a webhook that answers 503 (an HTTP server on
// 127.0.0.1), one held by the operator. Then Debian's chromium opens the dashboard and writes
// docs/dashboard.png. Loopback only; bounded (≈ 300 messages, 90 s at most).
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { launchChromium } from './lib/browser.mjs';
import { freePort, sleep } from './lib/net.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'docs', 'dashboard.png');
const SECONDS = Number(process.argv.includes('--seconds') ? process.argv[process.argv.indexOf('--seconds') + 1] : 60);
const dir = mkdtempSync(join(tmpdir(), 'onward-screenshot-'));
const [smtpPort, adminPort] = [await freePort(), await freePort()];

// The failing webhook: answers 503 with a Retry-After, as a downstream under maintenance would.
const hook = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(503, { 'retry-after': '600', 'content-type': 'text/plain' }).end('maintenance window'));
});
await new Promise((r) => hook.listen(0, '127.0.0.1', r));

const config = join(dir, 'onward.yaml');
writeFileSync(
  config,
  `hostname: relay.example.net
listen: [{ host: 127.0.0.1, port: ${smtpPort} }]
spool: { path: ${join(dir, 'spool')} }
retry: { schedule: [10m, 30m, 1h], jitter: 0 }
targets:
  outbox: { type: file, path: ${join(dir, 'outbox')} }
  crm-webhook: { type: http, url: "http://127.0.0.1:${hook.address().port}/hooks/mail", format: json }
routes:
  - { match: "*@crm.example.com", target: crm-webhook }
  - { match: "*", target: outbox }
admin: { host: 127.0.0.1, port: ${adminPort} }
log: { level: warn }
`,
);
const relay = spawn(process.execPath, [join(ROOT, 'bin/onward'), 'serve', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'] });
const stop = () => relay.exitCode === null && relay.kill('SIGTERM');
process.on('exit', stop);

try {
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 300) throw new Error('the relay did not become ready');
    await sleep(100);
  }
  const mail = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 4 });
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'];
  const deadline = Date.now() + SECONDS * 1000;
  let sent = 0;
  let heldId = null;
  process.stderr.write(`screenshot: sending for ${SECONDS} s …\n`);
  while (Date.now() < deadline && sent < 300) {
    // A ramp with bursts: the plot should show something happening.
    const burst = 1 + ((sent / 7) % 5 | 0);
    for (let i = 0; i < burst; i++, sent++) {
      const who = names[sent % names.length];
      const to = sent % 3 === 0 ? `${who}@crm.example.com` : `${who}@customers.example.org`;
      const info = await mail.sendMail({ from: 'billing@shop.example.net', to, subject: `Invoice ${1000 + sent}`, text: `Your invoice ${1000 + sent} is attached.` });
      const id = /queued as ([0-9A-Z]{15})/.exec(info.response)?.[1] ?? null;
      if (heldId === null && to.endsWith('crm.example.com') && sent > 40 && id) heldId = id;
    }
    await sleep(900);
  }
  mail.close();
  if (heldId) await fetch(`http://127.0.0.1:${adminPort}/api/spool/messages/${heldId}/hold`, { method: 'POST' });
  process.stderr.write(`screenshot: ${sent} sent, ${heldId ?? 'none'} held; opening the dashboard\n`);

  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1050 }, deviceScaleFactor: 1 });
    await page.goto(`http://127.0.0.1:${adminPort}/`);
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    await page.locator('[data-testid=message-row]').first().waitFor();
    await page.locator('[data-testid=target-row]').first().waitFor();
    await page.waitForFunction(() => (window.onwardDashboard.plots?.depth.data[0]?.length ?? 0) > 10);
    await page.screenshot({ path: OUT, fullPage: false });
    process.stderr.write(`screenshot: wrote ${OUT}\n`);
  } finally {
    await browser.close();
  }
} finally {
  stop();
  hook.close();
  await new Promise((r) => (relay.exitCode === null ? relay.once('exit', r) : r()));
  rmSync(dir, { recursive: true, force: true });
}
