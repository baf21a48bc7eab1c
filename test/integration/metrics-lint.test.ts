/**
 * The relay's /metrics, scraped over a real socket after one message went through, passes
 * `promtool check metrics` (the Prometheus naming rules) and carries the default process and
 * Node.js metrics under the unprefixed names the standard dashboards query.
 */
import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, it } from '@jest/globals';
import { waitUntil } from '../helpers/common.js';
import { sampleMessage, smtpConversation, transaction, useTestRelays } from '../helpers/relay.js';

const PROMTOOL = 'promtool';
const promtoolMissing = spawnSync(PROMTOOL, ['--version'], { stdio: 'ignore' }).error !== undefined;
const INSTALL_HINT = 'promtool not found: apt-get install prometheus';
// Under CI a missing promtool fails the test below; elsewhere it is one line and a skip.
const skip = promtoolMissing && process.env.CI !== 'true';
if (skip) process.stderr.write(`metrics-lint: skipped (${INSTALL_HINT})\n`);

/** Runs `promtool check metrics` on `text`: its exit code and everything it printed. */
function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

describe('/metrics', () => {
  const start = useTestRelays();

  (skip ? it.skip : it)('passes promtool check metrics and uses the standard default metric names', async () => {
    if (promtoolMissing) throw new Error(`${INSTALL_HINT} (CI=true: a missing promtool is a failure)`);
    const t = await start();
    const url = `http://127.0.0.1:${t.relay.adminAddress.port}/metrics`;
    const scrape = async (): Promise<string> => (await fetch(url)).text();
    const conv = await smtpConversation(t.port, ['EHLO client.test', ...transaction('a@example.com', ['b@example.org'], sampleMessage()), 'QUIT']);
    expect(conv.replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
    // Every labelled family has a series once the delivery attempt is counted.
    const text = await waitUntil('the delivery attempt in /metrics', async () => {
      const m = await scrape();
      return /^onward_deliveries_total\{/m.test(m) && m;
    });

    const names = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]);
    expect(names).toEqual(
      expect.arrayContaining(['onward_messages_received_total', 'onward_delivery_duration_seconds', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']),
    );
    expect(names.filter((n) => n?.startsWith('onward_process_'))).toEqual([]);
    expect(await promtoolCheck(text)).toEqual({ code: 0, output: '' });
  });
});
