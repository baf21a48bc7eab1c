/**
 * The dashboard's auth in a real browser: open on loopback without a token; with
 * `admin.token` the page asks for it once, refuses a wrong one with a clear message, and
 * sends the right one as a bearer — never in a URL, never as a cookie.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeBrowser, useBrowser } from '../../helpers/browser.js';
import { startTestRelay, type TestRelay } from '../../helpers/relay.js';

const TOKEN = 'dashboard-test-token-7f3a91';

describeBrowser('the dashboard auth', () => {
  const browser = useBrowser();
  let open: TestRelay;
  let guarded: TestRelay;

  beforeAll(async () => {
    open = await startTestRelay();
    guarded = await startTestRelay(`admin: { token: ${TOKEN} }`);
  });
  afterAll(async () => {
    await open?.close();
    await guarded?.close();
  });

  it('opens without a token when the relay has none', async () => {
    const page = await browser().newPage();
    await page.goto(`http://127.0.0.1:${String(open.relay.adminAddress.port)}/`);
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    expect(await page.getByTestId('token-form').isVisible()).toBe(false);
    await page.close();
  });

  it('asks for the token, refuses a wrong one clearly, then works with the right one', async () => {
    const context = await browser().newContext();
    const page = await context.newPage();
    const urls: string[] = [];
    const authorised: string[] = [];
    page.on('request', (r) => {
      urls.push(r.url());
      if (r.headers().authorization === `Bearer ${TOKEN}`) authorised.push(new URL(r.url()).pathname);
    });
    await page.goto(`http://127.0.0.1:${String(guarded.relay.adminAddress.port)}/`);
    await page.getByTestId('token-form').waitFor();
    expect(await page.locator('#app').isVisible()).toBe(false);

    await page.getByTestId('token-input').fill('not-the-token');
    await page.getByTestId('token-submit').click();
    await page.getByTestId('error').filter({ hasText: 'token was refused (ONWARD_ERR_UNAUTHORIZED)' }).waitFor();
    await page.getByTestId('token-form').waitFor();

    await page.getByTestId('token-input').fill(TOKEN);
    await page.getByTestId('token-submit').click();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    expect(await page.getByTestId('token-form').isVisible()).toBe(false);
    expect(authorised).toEqual(expect.arrayContaining(['/api/spool/stats', '/api/dashboard/events', '/api/spool/messages']));
    expect(urls.some((u) => u.includes(TOKEN))).toBe(false);
    expect(await context.cookies()).toEqual([]);

    // Asked once: a reload in the same tab keeps it (sessionStorage), no prompt.
    await page.reload();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    expect(await page.getByTestId('token-form').isVisible()).toBe(false);
    await context.close();
  });
});
