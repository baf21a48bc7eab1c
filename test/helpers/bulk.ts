/**
 * The bulk-action scenarios (SPEC 12), run by the level suite and the postgres suite alike
 * against a real `onward serve` child whose one target refuses connections (every message
 * ends deferred for an hour): the admin API, the CLI online, and SIGKILL mid-bulk.
 */
import { expect } from '@jest/globals';
import { runCli } from './cli.js';
import { waitForValue } from './common.js';
import { sendMany } from './delivery-relay.js';

export interface BulkRelay {
  readonly configPath: string;
  readonly adminPort: number;
  readonly smtpPort: number;
}

interface Counts {
  queued: number;
  deferred: number;
  held: number;
  delivered: number;
  bounced: number;
  deleted: number;
}

export async function stateCounts(relay: BulkRelay): Promise<Counts> {
  const res = await fetch(`http://127.0.0.1:${String(relay.adminPort)}/api/spool/stats`);
  return ((await res.json()) as { states: Counts }).states;
}

export async function postActions(relay: BulkRelay, body: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${String(relay.adminPort)}/api/spool/actions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** Sends `to.length` messages (one recipient each, optional Message-IDs) and waits until all are deferred. */
export async function sendDeferred(relay: BulkRelay, to: readonly string[], messageIds: readonly (string | null)[] = []): Promise<string[]> {
  const before = (await stateCounts(relay)).deferred;
  const ids = await sendMany(
    relay.smtpPort,
    to.map((rcpt, i) => ({
      from: 'app@client.test',
      to: [rcpt],
      raw: `From: app@client.test\r\nTo: ${rcpt}\r\nSubject: bulk ${String(i)}\r\n${messageIds[i] ? `Message-ID: <${messageIds[i]}>\r\n` : ''}\r\nbody ${String(i)}\r\n`,
    })),
  );
  await waitForValue(() => stateCounts(relay), (c) => c.deferred === before + to.length, 60_000, `${String(to.length)} more messages deferred`);
  return ids;
}

/** A bulk run over thousands of messages on a loaded machine (one transaction each on postgres) takes a while. */
const cli = async (relay: BulkRelay, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => runCli(relay, args, { timeoutMs: 90_000 });

/** Each action by filter through the API and the CLI: exact matched/changed, dry runs, refusals. */
export async function bulkByFilter(relay: BulkRelay): Promise<void> {
  const alpha = Array.from({ length: 12 }, (_, i) => `a${String(i)}@alpha.test`);
  const beta = Array.from({ length: 8 }, (_, i) => `b${String(i)}@beta.test`);
  await sendDeferred(relay, [...alpha, ...beta]);
  const [orderId, otherId] = await sendDeferred(relay, ['g1@gamma.test', 'g2@gamma.test'], ['order-1@shop.test', 'other-1@shop.test']);

  const refused = await cli(relay, ['spool', 'hold']);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/filters .* or --all/);

  const dry = await cli(relay, ['spool', 'hold', '--recipient', '*@alpha.test', '--dry-run', '--json']);
  expect(JSON.parse(dry.stdout)).toEqual({ matched: 12, changed: 0, dryRun: true });
  expect((await stateCounts(relay)).held).toBe(0);

  const hold = await cli(relay, ['spool', 'hold', '--recipient', '*@ALPHA.test', '--json']);
  expect(JSON.parse(hold.stdout)).toEqual({ matched: 12, changed: 12 });
  expect(JSON.parse((await cli(relay, ['spool', 'hold', '--recipient', '*@alpha.test', '--json'])).stdout)).toEqual({ matched: 12, changed: 0 });

  expect(await postActions(relay, { action: 'hold', filter: { all: true } })).toEqual({ status: 200, json: { matched: 22, changed: 10 } });
  expect(await postActions(relay, { action: 'release', filter: { state: 'held', recipient: '*@beta.test' } })).toEqual({ status: 200, json: { matched: 8, changed: 8 } });
  expect((await stateCounts(relay)).held).toBe(14);

  const bounce = await cli(relay, ['spool', 'bounce', '--message-id', 'order-*', '--json']);
  expect(JSON.parse(bounce.stdout)).toEqual({ matched: 1, changed: 1 });
  const shown = await fetch(`http://127.0.0.1:${String(relay.adminPort)}/api/spool/messages/${orderId!}`);
  expect(((await shown.json()) as { state: string }).state).toBe('bounced');

  const del = await cli(relay, ['spool', 'delete', '--recipient', '*@beta.test']);
  expect(del.stdout).toBe('delete: 8 matched, 8 changed\n');

  for (const [body, pattern] of [
    ['not json', /not JSON/],
    [{}, /action/],
    [{ action: 'explode', filter: { all: true } }, /action: expected one of retry, hold, release, delete, bounce/],
    [{ action: 'hold', filter: {} }, /at least one of/],
    [{ action: 'hold', filter: { colour: 'red' } }, /unknown key "colour"/],
    [{ action: 'hold', filter: { state: 'sleeping' } }, /unknown state "sleeping"/],
    [{ action: 'hold', filter: { all: true }, dryRun: 'yes' }, /dryRun/],
  ] as const) {
    const r = await postActions(relay, body);
    expect(r.status).toBe(400);
    const error = (r.json as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('ONWARD_ERR_BAD_ARGS');
    expect(error.message).toMatch(pattern);
  }

  // Paging by cursor: every message of the queue once, in order, five at a time.
  const all = (await cli(relay, ['spool', 'list', '--json'])).stdout;
  const expected = (JSON.parse(all) as { id: string }[]).map((e) => e.id);
  expect(expected).toHaveLength(14); // 12 alpha held, other-1 held, the DSN of order-1 to app@client.test
  expect(expected).toContain(otherId);
  const paged: string[] = [];
  for (let after = ''; ; ) {
    const res = await fetch(`http://127.0.0.1:${String(relay.adminPort)}/api/spool/messages?limit=5${after ? `&after=${after}` : ''}`);
    const page = (await res.text()).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
    paged.push(...page);
    if (page.length < 5) break;
    after = page[page.length - 1]!;
  }
  expect(paged).toEqual(expected);
  const badCursor = await fetch(`http://127.0.0.1:${String(relay.adminPort)}/api/spool/messages?after=nope`);
  expect(badCursor.status).toBe(400);
}

/**
 * SIGKILL while a bulk hold runs, then the rerun: every message valid and accounted for after
 * the restart, and the rerun changes exactly those the first run had not reached.
 */
export async function killMidBulk(relay: BulkRelay, kill: () => Promise<void>, restart: () => Promise<BulkRelay>, n: number): Promise<void> {
  await sendDeferred(relay, Array.from({ length: n }, (_, i) => `k${String(i)}@kill.test`));
  const running = postActions(relay, { action: 'hold', filter: { recipient: '*@kill.test' } }).catch(() => null);
  await waitForValue(() => stateCounts(relay), (c) => c.held > 0, 30_000, 'the bulk hold to have started');
  await kill();
  expect(await running).toBeNull(); // the answer never came: it died mid-bulk

  const again = await restart();
  const after = await stateCounts(again);
  expect(after.held).toBeGreaterThan(0);
  expect(after.held).toBeLessThan(n);
  expect(after.held + after.deferred + after.queued).toBe(n);
  const check = await cli(again, ['spool', 'check', '--json']);
  expect(check.code).toBe(0);
  expect((JSON.parse(check.stdout) as { problems: unknown[] }).problems).toEqual([]);

  const rerun = await cli(again, ['spool', 'hold', '--recipient', '*@kill.test', '--json']);
  expect(JSON.parse(rerun.stdout)).toEqual({ matched: n, changed: n - after.held });
  expect((await stateCounts(again)).held).toBe(n);
}
