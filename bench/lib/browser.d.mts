// Types of bench/lib/browser.mjs, for the TypeScript suites (test/helpers/browser.ts).
import type { Browser } from 'playwright-core';

export declare const CHROMIUM: string;
export declare const CHROMIUM_MISSING_LINE: string;
/** Why the browser cannot start here, or null when it can. */
export declare function browserUnavailableReason(): string | null;
/** Headless Debian chromium with the project's launch options. */
export declare function launchChromium(): Promise<Browser>;
