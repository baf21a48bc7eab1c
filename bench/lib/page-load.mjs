// The dashboard as a person's browser loads it: Debian's chromium (playwright-core), a cold
// cache, the time from navigation until the plot has data and the message list shows its
// first page, and every byte the page pulled over the wire (headers + encoded bodies; the
// live event stream counts what it delivered until then). Loopback only.
import { launchChromium } from './browser.mjs';

/**
 * Loads `url` once and reports `{ loadMs, transferredBytes, requests }`.
 * `ready` is a function evaluated in the page: true once the page shows what it must.
 */
export async function measurePageLoad(url, ready, { timeoutMs = 60_000 } = {}) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const requests = [];
    page.on('request', (r) => requests.push(r));
    const t0 = performance.now();
    await page.goto(url);
    await page.waitForFunction(ready, null, { timeout: timeoutMs, polling: 50 });
    const loadMs = performance.now() - t0;
    let transferredBytes = 0;
    for (const r of requests) {
      // A still-open response (the event stream) has no final sizes: count what arrived.
      const sizes = await Promise.race([r.sizes(), new Promise((res) => setTimeout(() => res(null), 500))]);
      if (sizes) transferredBytes += sizes.requestHeadersSize + sizes.responseHeadersSize + Math.max(0, sizes.responseBodySize);
    }
    return { loadMs, transferredBytes, requests: requests.length };
  } finally {
    await browser.close();
  }
}
