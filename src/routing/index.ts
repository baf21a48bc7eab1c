import picomatch from 'picomatch';
import type { RouteConfig, TargetConfig } from '../config/types.js';
import { recipientDomain } from '../spool/ids.js';

export interface RouteGroup {
  /** Failover list of target names. */
  readonly targets: readonly string[];
  /** Set when the list has an `mx` target: the recipients' (lower-cased) domain. */
  readonly domain?: string | null;
  readonly recipients: readonly string[];
}

export interface Router {
  (recipients: readonly string[]): RouteGroup[];
  /** The route a recipient takes, or null when none matches. */
  routeOf(address: string): RouteConfig | null;
}

/**
 * Each recipient goes to the first route whose glob matches its address
 * (case-insensitive); recipients sharing a target list form one group, i.e. one delivery.
 * A recipient that no route matches has no group: the ingress refuses it at RCPT time.
 * A list with an `mx` target anywhere in it also splits by recipient domain (SPEC 13): one
 * delivery, with its own lane, per domain (`targets` tells which names are mx targets).
 */
export function createRouter(routes: readonly RouteConfig[], targets: Readonly<Record<string, TargetConfig>> = {}): Router {
  // Routes through an mx target split their recipients by domain: decided once per route.
  const splitsByDomain = new Set(routes.filter((route) => route.targets.some((name) => targets[name]?.type === 'mx')));
  const byDomain = (route: RouteConfig): boolean => splitsByDomain.has(route);
  const matchers = routes.map((route) => ({ route, test: picomatch(route.match, { nocase: true, dot: true }) }));
  const routeOf = (address: string): RouteConfig | null => matchers.find((m) => m.test(address))?.route ?? null;
  const router = (recipients: readonly string[]): RouteGroup[] => {
    const groups = new Map<string, { targets: readonly string[]; domain?: string; recipients: string[] }>();
    for (const address of recipients) {
      const route = routeOf(address);
      if (!route) continue;
      const domain = byDomain(route) ? recipientDomain(address) : undefined;
      const key = domain === undefined ? route.targets.join('\0') : `${route.targets.join('\0')}@${domain}`;
      const group = groups.get(key) ?? (domain === undefined ? { targets: route.targets, recipients: [] } : { targets: route.targets, domain, recipients: [] });
      group.recipients.push(address);
      groups.set(key, group);
    }
    return [...groups.values()];
  };
  return Object.assign(router, { routeOf });
}
