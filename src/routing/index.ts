import picomatch from 'picomatch';
import type { RouteConfig } from '../config/types.js';

export interface RouteGroup {
  /** Failover list of target names. */
  readonly targets: readonly string[];
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
 */
export function createRouter(routes: readonly RouteConfig[]): Router {
  const matchers = routes.map((route) => ({ route, test: picomatch(route.match, { nocase: true, dot: true }) }));
  const routeOf = (address: string): RouteConfig | null => matchers.find((m) => m.test(address))?.route ?? null;
  const router = (recipients: readonly string[]): RouteGroup[] => {
    const groups = new Map<string, { targets: readonly string[]; recipients: string[] }>();
    for (const address of recipients) {
      const route = routeOf(address);
      if (!route) continue;
      const key = route.targets.join('\0');
      const group = groups.get(key) ?? { targets: route.targets, recipients: [] };
      group.recipients.push(address);
      groups.set(key, group);
    }
    return [...groups.values()];
  };
  return Object.assign(router, { routeOf });
}
