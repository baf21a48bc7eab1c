/**
 * The scheduler's lanes: one per failover list of targets (and, for mx targets, per
 * recipient domain), made on first use; domain lanes are dropped again when idle, so lanes
 * exist only for domains with queued work.
 */
import { parseLane } from '../spool/index.js';

export interface Lane {
  readonly name: string;
  readonly targets: readonly string[];
  /** The recipients' domain of an mx lane (`internet@example.com`); null otherwise. */
  readonly domain: string | null;
  /** Deliveries of this lane in flight (a domain lane is dropped when idle). */
  active: number;
  /** The last scan found nothing due now or later. */
  drained: boolean;
  pumping: boolean;
  again: boolean;
  /**
   * The due index may hold work for this lane (a wake-up, a timer, a full claim). While
   * false, pumps skip the index reads.
   */
  needsScan: boolean;
  timer: NodeJS.Timeout | null;
  timerAt: number;
}

export class LaneTable {
  private readonly lanes = new Map<string, Lane>();
  /** `target@domain` → the lanes of that domain that use the target. */
  private readonly byDomain = new Map<string, Set<Lane>>();

  /** The lane `name`, made when it does not exist yet. */
  get(name: string): Lane {
    let lane = this.lanes.get(name);
    if (!lane) {
      const { targets, domain } = parseLane(name);
      lane = { name, targets, domain, active: 0, drained: false, pumping: false, again: false, needsScan: true, timer: null, timerAt: Infinity };
      this.lanes.set(name, lane);
      if (domain !== null) for (const t of targets) this.domainSet(t, domain).add(lane);
    }
    return lane;
  }

  all(): IterableIterator<Lane> {
    return this.lanes.values();
  }

  /** The lanes of `domain` that use `target`. */
  ofDomain(target: string, domain: string): ReadonlySet<Lane> {
    return this.byDomain.get(`${target}@${domain}`) ?? new Set();
  }

  /** Lanes with due work waiting that use `target`, in turn order (read while iterating: no copy per freed slot). */
  *waitingFor(target: string): Generator<Lane> {
    for (const lane of this.lanes.values()) if (lane.needsScan && lane.targets.includes(target)) yield lane;
  }

  /** Moves `lane` to the back of the turn order (it was served first). */
  rotate(lane: Lane): void {
    if (this.lanes.get(lane.name) !== lane) return;
    this.lanes.delete(lane.name);
    this.lanes.set(lane.name, lane);
  }

  /**
   * A domain lane with nothing in flight, nothing due and no timer is dropped: lanes (and
   * their state) exist only for domains with queued work. A wake-up makes it again.
   */
  dropIfIdle(lane: Lane): void {
    if (lane.domain === null || !lane.drained || lane.active > 0 || lane.timer !== null || lane.pumping || lane.needsScan) return;
    if (this.lanes.get(lane.name) !== lane) return;
    this.lanes.delete(lane.name);
    for (const t of lane.targets) {
      const key = `${t}@${lane.domain}`;
      const set = this.byDomain.get(key);
      set?.delete(lane);
      if (set?.size === 0) this.byDomain.delete(key);
    }
  }

  private domainSet(target: string, domain: string): Set<Lane> {
    const key = `${target}@${domain}`;
    let set = this.byDomain.get(key);
    if (!set) {
      set = new Set();
      this.byDomain.set(key, set);
    }
    return set;
  }
}
