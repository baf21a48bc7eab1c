import type { AddressInfo } from 'node:net';
import { AcceptPipeline } from '../accept/index.js';
import { AdminServer, LocalSpoolAdmin, RelayMetrics } from '../admin/index.js';
import { BounceReporter } from '../bounce/index.js';
import { checkTlsMaterial } from '../config/index.js';
import type { Config } from '../config/types.js';
import { Dashboard, DashboardAssets, DashboardEvents, QueueHistory } from '../dashboard/index.js';
import { DeliveryScheduler, TransportHost } from '../delivery/index.js';
import { EventBuilder } from '../events/index.js';
import type { Logger } from '../log.js';
import { createRouter } from '../routing/index.js';
import { SmtpIngress, assertSmtpServerPatchable } from '../smtp/index.js';
import type { Spool } from '../spool/index.js';
import { SubmissionServer } from '../submission/index.js';
import { openSpool, spoolCapacity } from './spool.js';

export interface Relay {
  readonly config: Config;
  readonly spool: Spool;
  readonly ingress: SmtpIngress;
  /** The HTTP submission front door; null when `submission` is not configured. */
  readonly submission: SubmissionServer | null;
  readonly scheduler: DeliveryScheduler;
  readonly metrics: RelayMetrics;
  /** The dashboard's ring of queue samples (this node's last hour). */
  readonly history: QueueHistory;
  /** Bound SMTP listener addresses, in config order (port 0 resolves here). */
  readonly smtpAddresses: readonly AddressInfo[];
  readonly adminAddress: AddressInfo;
  /** The bound HTTP submission address, or null. */
  readonly submissionAddress: AddressInfo | null;
  /**
   * Applies a new config (SIGHUP) for what starts from now on: every key except those in
   * RESTART_KEYS (and turning tls on or off), which are returned when they changed.
   */
  reload(next: Config): string[];
  /** Graceful stop: ingress, then deliveries (up to shutdownGrace), then the spool. Idempotent. */
  close(): Promise<void>;
}

/**
 * Top-level config keys a reload cannot apply (listeners, the open spool and its dedup
 * index, the admin listener, the name in greetings and EHLO of open transports); every
 * other key takes effect on SIGHUP.
 */
const RESTART_KEYS = ['listen', 'hostname', 'spool', 'dedup', 'admin'] as const;

/** The submission keys a reload cannot apply: its listener (keys, limits and routes apply). */
function submissionListenChanged(a: Config, b: Config): boolean {
  return JSON.stringify(a.submission?.listen ?? null) !== JSON.stringify(b.submission?.listen ?? null);
}

/** How long `serve` waits for an offline CLI (a paged `spool list`, say) to let go of the spool. */
const SPOOL_LOCK_WAIT_MS = 5 * 60_000;

/** The composition root: builds every component from the config and starts them. */
export async function startRelay(config: Config, logger: Logger): Promise<Relay> {
  // Before anything opens: the ingress patches smtp-server internals of one exact version.
  assertSmtpServerPatchable();
  const spool = await openSpool(config, {
    role: 'relay',
    lockWaitMs: SPOOL_LOCK_WAIT_MS,
    onLockWait: () => logger.warn({ spool: config.spool.path }, 'spool in use by another onward command; waiting for it'),
    logger: logger.child({ component: 'spool' }),
  });
  const capacity = spoolCapacity(config, spool);
  const router = createRouter(config.routes, config.targets);
  // One accept pipeline behind every front door.
  const pipeline = new AcceptPipeline({ config, spool, capacity });
  const ingress = new SmtpIngress({ config, spool, capacity, logger, pipeline });
  const submission = config.submission ? new SubmissionServer({ config, pipeline, spool, logger }) : null;
  const reporter = new BounceReporter({ config, route: router, logger });
  const events = new EventBuilder(config);
  // Transports run on the delivery thread when the compiled worker exists (not under ts-jest).
  const workerScript = TransportHost.compiledWorker();
  const transportHost = workerScript ? new TransportHost(logger.child({ component: 'delivery' }), workerScript) : null;
  const scheduler = new DeliveryScheduler({
    config,
    spool,
    logger,
    reporter,
    events,
    ...(transportHost ? { transports: (target, options) => transportHost.open(target, options) } : {}),
  });
  // A shared spool's heartbeat carries this node's targets: `spool stats` sums them over the cluster.
  spool.setNodeStatus(() => Object.fromEntries(scheduler.targetStatus().map((t) => [t.name, { up: t.up, concurrency: t.concurrency }])));
  const metrics = new RelayMetrics({ spool, ingress, submission, scheduler });
  const history = new QueueHistory({ spool, activity: () => metrics.activity(), logger });
  const dashboard = new Dashboard(
    new DashboardAssets(),
    new DashboardEvents({ history, spool, targetStatus: () => scheduler.targetStatus(), logger }),
  );
  let listening = false;
  let current = config;
  const admin = new AdminServer({
    config: config.admin,
    admin: new LocalSpoolAdmin({
      spool,
      reporter,
      events,
      logger: logger.child({ component: 'spool-admin' }),
      targetNames: () => Object.keys(current.targets),
      targetStatus: () => scheduler.targetStatus(),
      domainStatus: () => scheduler.domainStatus(),
      closeSpool: false,
      onDsn: (action) => metrics.countBounce(action),
    }),
    metrics,
    ready: () => listening && spool.available(),
    logger,
    dashboard,
  });
  let smtpAddresses: AddressInfo[];
  let adminAddress: AddressInfo;
  let submissionAddress: AddressInfo | null = null;
  try {
    adminAddress = await admin.listen();
    await scheduler.start();
    smtpAddresses = await ingress.start();
    if (submission) submissionAddress = await submission.start();
    history.start();
    listening = true;
  } catch (err) {
    history.stop();
    await submission?.close(0);
    await ingress.close(0);
    await scheduler.stop(0);
    await transportHost?.close();
    await admin.close();
    await spool.close();
    throw err;
  }
  let closing: Promise<void> | null = null;
  return {
    get config() {
      return current;
    },
    spool,
    ingress,
    submission,
    scheduler,
    metrics,
    history,
    smtpAddresses,
    adminAddress,
    submissionAddress,
    reload(next: Config): string[] {
      const needsRestart: string[] = RESTART_KEYS.filter((key) => JSON.stringify(next[key]) !== JSON.stringify(current[key]));
      // New certificate files are picked up; turning TLS on or off changes the listeners (STARTTLS offered or not).
      if ((next.tls === null) !== (current.tls === null)) needsRestart.push('tls');
      // Keys apply now; binding, moving or closing the listener waits for a restart.
      if (submissionListenChanged(current, next)) needsRestart.push('submission.listen');
      // What can refuse the new config is asked first, so a refused reload changes nothing.
      checkTlsMaterial(next);
      submission?.checkReload(next);
      logger.level = next.log.level;
      pipeline.reconfigure(next);
      ingress.reconfigure(next);
      submission?.reconfigure(next);
      scheduler.reconfigure(next);
      reporter.reconfigure(next, createRouter(next.routes, next.targets));
      events.reconfigure(next);
      current = next;
      return needsRestart;
    },
    close() {
      closing ??= (async () => {
        listening = false;
        history.stop();
        const grace = current.shutdownGraceMs; // the config in force now, SIGHUP included
        const deadline = Date.now() + grace;
        // Both front doors stop accepting at once; requests in flight finish within the grace.
        await Promise.all([ingress.close(grace), submission?.close(grace)]);
        await scheduler.stop(Math.max(0, deadline - Date.now()));
        spool.setNodeStatus(null);
        await transportHost?.close();
        await admin.close();
        await spool.close();
      })();
      return closing;
    },
  };
}
