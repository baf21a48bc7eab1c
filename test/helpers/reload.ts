/**
 * For the per-key reload tests (test/integration/production/reload-*.test.ts): the real relay
 * in this process, started from a base config layer, with `reload(over)` doing what serve
 * does on SIGHUP (`relay.reload` with the re-parsed file), and an HTTP sink whose answers
 * the test releases one by one.
 *
 * ```ts
 * const t = await startReloadable(cleanup, 'label', { limits: { maxErrors: 3 } });
 * expect(t.reload({ limits: { maxErrors: 2 } })).toEqual([]);   // the keys that need a restart
 * ```
 */
import { parseConfig } from '../../src/config/index.js';
import { outboxRoute, type LogLine, type Teardown, type Yamlish } from './common.js';
import { startHttpSink, type HttpSink, type HttpSinkResponse } from './http-sink.js';
import { configYaml, startInProcess, type InProcessRelay } from './production.js';

export interface ReloadableRelay {
  readonly r: InProcessRelay;
  /** The first SMTP port. */
  readonly port: number;
  /** The temp folder (spool, outboxes). */
  readonly dir: string;
  /** Reloads `base` with `over`'s top-level keys replacing its own; returns the keys that need a restart. */
  reload(over: Yamlish): string[];
}

/**
 * A relay started with an `outbox` file route, log level silent (info into `logs` when
 * given), and `base` over that (top-level keys replace). Closed by `cleanup`.
 */
export async function startReloadable(cleanup: Teardown, label: string, base: Yamlish, logs?: LogLine[]): Promise<ReloadableRelay> {
  const dir = cleanup.tempDir(`reload-${label}`);
  const layer = { ...outboxRoute(dir), log: { level: logs ? 'info' : 'silent' }, ...base };
  const r = await startInProcess(dir, layer, {}, logs);
  cleanup.add(() => r.close());
  return {
    r,
    port: r.ports[0] ?? 0,
    dir,
    reload: (over) => r.relay.reload(parseConfig(configYaml(dir, { ...layer, ...over }), {})),
  };
}

export interface GatedHttpSink extends HttpSink {
  /** Requests received and not answered yet. */
  readonly held: number;
  /** Held requests seen by each request when it arrived (itself not included). */
  readonly heldAtArrival: number[];
  /** Answers every held request with 200. */
  releaseAll(): void;
  /** Answers the oldest held request with 200. */
  releaseOne(): void;
}

/** An HTTP sink that holds every request until the test releases it; answers 200. */
export async function startGatedHttpSink(cleanup: Teardown): Promise<GatedHttpSink> {
  const waiting: ((answer: HttpSinkResponse) => void)[] = [];
  const heldAtArrival: number[] = [];
  const sink = await startHttpSink({
    respond: () =>
      new Promise<HttpSinkResponse>((resolve) => {
        heldAtArrival.push(waiting.length);
        waiting.push(resolve);
      }),
  });
  cleanup.add(() => sink.close());
  return {
    ...sink,
    get held() {
      return waiting.length;
    },
    heldAtArrival,
    releaseAll: () => {
      for (const answer of waiting.splice(0)) answer({ status: 200 });
    },
    releaseOne: () => waiting.shift()?.({ status: 200 }),
  };
}
