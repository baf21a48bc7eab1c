// Debian's chromium driven by playwright-core, for the dashboard's browser suites, the
// screenshot script and the page-load bench: one set of launch options. Never downloads a
// browser (`playwright install` is not used; the binary is the Debian package's).
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_MISSING_LINE = "browser suites skipped: Debian's chromium is not installed (apt-get install chromium)";

/** Why the browser cannot start here, or null when it can. */
export function browserUnavailableReason() {
  return existsSync(CHROMIUM) ? null : CHROMIUM_MISSING_LINE;
}

/** Headless chromium, sandbox off (it runs as root here), background networking and updates off. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-default-apps',
      '--no-first-run',
      '--disable-features=Translate,MediaRouter,OptimizationHints',
    ],
  });
}
