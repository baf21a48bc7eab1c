/**
 * A real browser for the dashboard suites: Debian's chromium through playwright-core (launch
 * options in bench/lib/browser.mjs, shared with the screenshot script and the bench).
 *
 * ```ts
 * describeBrowser('the dashboard', () => {
 *   const browser = useBrowser();              // one chromium for the describe, closed afterAll
 *   it('...', async () => { const page = await browser().newPage(); await page.goto(url); });
 * });
 * ```
 * Without chromium the suites skip with one line (how to install it); under `CI=true` they fail.
 */
import { afterAll, beforeAll } from '@jest/globals';
import type { Browser } from 'playwright-core';
import { browserUnavailableReason, launchChromium } from '../../bench/lib/browser.mjs';
import { describeRequiring } from './requirements.js';

export function describeBrowser(name: string, body: () => void): void {
  describeRequiring('chromium', browserUnavailableReason(), name, body);
}

/** One chromium for the enclosing describe. */
export function useBrowser(): () => Browser {
  let browser: Browser | null = null;
  beforeAll(async () => {
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (browser === null) throw new Error('the browser is not started (used outside a test?)');
    return browser;
  };
}
