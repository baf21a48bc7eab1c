/**
 * The dashboard in a real browser (Debian's chromium) against a real relay: an SMTP client
 * sends, an HTTP sink on loopback refuses (503) and later accepts, the page is driven like a
 * person would and checked against the spool. Plot assertions read the plot's data, not pixels.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { describeBrowser, useBrowser } from '../../helpers/browser.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { sendMany, simpleMessage, startDeliveryRelay, type DeliveryRelay } from '../../helpers/delivery-relay.js';
import { waitForValue } from '../../helpers/common.js';

describeBrowser('the dashboard page', () => {
  const browser = useBrowser();
  let sink: HttpSink;
  let t: DeliveryRelay;
  let page: Page;
  let failing: string[] = [];
  let other: string[] = [];

  beforeAll(async () => {
    sink = await startHttpSink({ respond: () => ({ status: 503, body: 'try later' }) });
    t = await startDeliveryRelay({
      // Deferred mail waits an hour: only an operator's retry sends it again.
      retry: { schedule: ['1h'], jitter: 0 },
      targets: { hooks: { type: 'http', url: sink.url, format: 'raw', circuit: { failures: 1000, probe: '200ms' } } },
      routes: [
        { match: '*@failing.test', target: 'hooks' },
        { match: '*', target: 'outbox' },
      ],
    });
    page = await browser().newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`http://127.0.0.1:${String(t.relay.adminAddress.port)}/`);
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
  }, 60_000);

  afterAll(async () => {
    await page?.close();
    await t?.close();
    await sink?.close();
  });

  // Page-side expressions as strings: the test program has no DOM types (the page's own are in tsconfig.web.json).
  /** The values of series `i` of a plot (`depth`: 1 queued, 2 deferred, 3 held; `rates`: 1 received, 2 delivered, 3 failed). */
  const seriesOf = (plot: 'depth' | 'rates', i: number): Promise<number[]> =>
    page.evaluate<number[]>(`(window.onwardDashboard.plots?.${plot}.data[${String(i)}] ?? []).map(Number)`);
  const lastOf = async (plot: 'depth' | 'rates', i: number): Promise<number> => (await seriesOf(plot, i)).at(-1) ?? 0;
  /** One attribute of every row of the message list, in page order. */
  const rows = (attr: 'data-id' | 'data-state'): Promise<string[]> =>
    page.evaluate<string[]>(`[...document.querySelectorAll('[data-testid=message-row]')].map((r) => r.getAttribute('${attr}'))`);

  it('plots deferred messages as they arrive and delivered ones as they go out', async () => {
    failing = await sendMany(t.port, ['a', 'b', 'c'].map((n) => ({ from: 's@client.test', to: [`${n}@failing.test`], raw: simpleMessage({ to: `${n}@failing.test` }) })));
    await sink.waitFor(3);
    // Series 2 of the depth plot is `deferred`.
    await waitForValue(() => lastOf('depth', 2), (n) => n === 3, 15_000, 'the plot to show 3 deferred');
    other = await sendMany(t.port, ['x', 'y'].map((n) => ({ from: 's@client.test', to: [`${n}@other.test`], raw: simpleMessage({ to: `${n}@other.test` }) })));
    // Rates: series 1 received, 2 delivered, per second over the last interval.
    const peakDelivered = await waitForValue(
      async () => Math.max(0, ...(await seriesOf('rates', 2))),
      (n) => n > 0,
      15_000,
      'the traffic plot to show deliveries out',
    );
    expect(peakDelivered).toBeGreaterThan(0);
    const received = Math.max(0, ...(await seriesOf('rates', 1)));
    expect(received).toBeGreaterThan(0);
  }, 40_000);

  it('shows the failing target with its last error', async () => {
    const row = page.locator('[data-testid=target-row][data-target=hooks]');
    const text = await waitForValue(() => row.textContent(), (s) => s !== null && s.includes('503'), 10_000, 'the hooks row with its 503');
    expect(text).toMatch(/hooks\s*(up|down)/);
  });

  it('lists exactly the messages whose recipient matches the filter', async () => {
    await page.getByTestId('f-state').selectOption('all');
    await page.getByTestId('f-recipient').fill('*@failing.test');
    await page.getByTestId('f-apply').click();
    const ids = await waitForValue(
      () => rows('data-id'),
      (found) => found.length === failing.length && found.every((id) => failing.includes(id)),
      10_000,
      'the filtered list',
    );
    expect(ids.sort()).toEqual([...failing].sort());
    expect(ids.some((id) => other.includes(id))).toBe(false);
  });

  it('shows every attempt of a message with its reply', async () => {
    const id = failing[0]!;
    await page.locator(`[data-testid=message-row][data-id="${id}"]`).click();
    const view = page.getByTestId('message-view');
    await view.getByTestId('view-id').filter({ hasText: id }).waitFor();
    const deliveries = await t.relay.spool.getDeliveries(id);
    const attempts = deliveries.flatMap((d) => d.attempts);
    expect(attempts.length).toBeGreaterThan(0);
    const replies = await view.getByTestId('attempt-reply').allTextContents();
    expect(replies).toEqual(attempts.map((a) => a.reply));
    expect(replies[0]).toContain('503');
    await view.getByTestId('message-close').click();
  });

  it('holds all matching messages after a confirmation naming the count, and the list follows', async () => {
    await page.getByTestId('bulk-hold').click();
    const confirm = page.getByTestId('confirm');
    // The count comes from a dry run first: the dialog opens once it answered.
    await confirm.getByTestId('confirm-text').filter({ hasText: `Hold ${String(failing.length)} messages matching` }).waitFor();
    await confirm.getByTestId('confirm-ok').click();
    await page.getByTestId('bulk-result').filter({ hasText: `${String(failing.length)} matched, ${String(failing.length)} changed` }).waitFor();
    for (const id of failing) expect((await t.relay.spool.getMessage(id))?.state).toBe('held');
    for (const id of other) expect((await t.relay.spool.getMessage(id))?.state).toBe('delivered');
    await waitForValue(
      () => rows('data-state'),
      (states) => states.length === failing.length && states.every((s) => s === 'held'),
      10_000,
      'the list to show them held',
    );
  });

  it('resumes delivery on a bulk retry once the target is back', async () => {
    // Release them (deferred again, due in an hour), bring the target back, retry all matching.
    await page.getByTestId('bulk-release').click();
    await page.getByTestId('confirm').getByTestId('confirm-text').filter({ hasText: `Release ${String(failing.length)} messages` }).waitFor();
    await page.getByTestId('confirm').getByTestId('confirm-ok').click();
    await page.getByTestId('bulk-result').filter({ hasText: 'release:' }).waitFor();
    sink.respond(() => ({ status: 200 }));
    const before = sink.requests.length;
    await page.getByTestId('bulk-retry').click();
    await page.getByTestId('confirm').getByTestId('confirm-text').filter({ hasText: `Retry ${String(failing.length)} messages` }).waitFor();
    await page.getByTestId('confirm').getByTestId('confirm-ok').click();
    await sink.waitFor(before + failing.length, 10_000);
    for (const id of failing) {
      await waitForValue(() => t.relay.spool.getMessage(id), (m) => m?.state === 'delivered', 10_000, `${id} delivered`);
    }
    await waitForValue(
      () => rows('data-state'),
      (states) => states.length === failing.length && states.every((s) => s === 'delivered'),
      10_000,
      'the list to show them delivered',
    );
  }, 40_000);
});
