/**
 * Many nodes, one queue (SPEC 9), end to end: real `onward serve` processes sharing one real
 * PostgreSQL, clients on real SMTP sockets, one real HTTP sink. A node SIGKILLed mid-load
 * strands nothing; the same Message-ID arriving at two nodes at once is one message.
 */
import { expect, it } from '@jest/globals';
import pg from 'pg';
import { useTeardown, waitForValue } from '../../helpers/common.js';
import { startHttpSink, type HttpSink, type HttpSinkRequest } from '../../helpers/http-sink.js';
import { adminGet, startNodes, type ClusterNode } from '../../helpers/pg-cluster.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { SmtpWire, expectCode, messageText, queueIdOf, sendOne } from '../../helpers/production.js';

const FROM = 'app@client.test';
const TO = 'user@dest.test';

describePg('a cluster of relays on one PostgreSQL', () => {
  const cluster = usePostgres();
  const teardown = useTeardown();
  let databases = 0;

  /** A fresh database for the nodes' shared spool, and a pool to inspect it with. */
  async function sharedSpool(): Promise<{ url: string; db: pg.Pool }> {
    databases += 1;
    const name = `cluster_${String(databases)}`;
    await cluster().createDatabase(name);
    const url = cluster().passwordUrl.replace(/\/[^/]+$/, `/${name}`);
    const db = new pg.Pool({ connectionString: url, max: 2 });
    db.on('error', () => undefined); // idle connections end when the cluster stops after the suite
    teardown.add(() => db.end());
    return { url, db };
  }

  /** The hooks sink; `delayMs` keeps deliveries in flight long enough for a kill to strand some. */
  async function sink(delayMs = 0): Promise<HttpSink> {
    const s = await startHttpSink({ respond: () => ({ status: 200, delayMs }) });
    teardown.add(() => s.close());
    return s;
  }

  /** The Message-ID a raw delivery carries. */
  function messageIdOf(request: HttpSinkRequest): string | null {
    return /^Message-ID: <([^>]+)>/im.exec(request.body.toString('latin1'))?.[1] ?? null;
  }

  async function count(db: pg.Pool, sql: string): Promise<number> {
    const { rows } = await db.query<{ n: string }>(sql);
    return Number(rows[0]?.n);
  }

  it('1,000 messages over 3 nodes, one SIGKILLed mid-load: the survivors deliver every acknowledged message, the dead node\'s within lease + a few seconds, duplicates only under a repeated Idempotency-Key, nothing left leased', async () => {
    const LEASE_MS = 3000;
    const TOTAL = 1000;
    const SENDERS = 12;
    const hooks = await sink(100);
    const { url, db } = await sharedSpool();
    const nodes = await startNodes(teardown, teardown.tempDir('pg-cluster-kill'), { url, sinkUrl: hooks.url, nodes: 3, lease: `${String(LEASE_MS)}ms` });
    const victim = nodes[1] as ClusterNode;
    const dead = new Set<ClusterNode>();
    const acked = new Map<string, string>(); // Message-ID → queue id in the 250
    let stranded: string[] = [];
    let killedAt = 0;
    let next = 0;

    /** A smart client: node k % 3 first; a refused or broken session goes to the next live node, same Message-ID. */
    async function submit(k: number): Promise<void> {
      const messageId = `m${String(k)}@client.test`;
      const text = messageText({ from: FROM, to: TO, subject: `cluster ${String(k)}`, messageId });
      for (let tries = 0; tries < 6; tries++) {
        const node = nodes[(k + tries) % nodes.length] as ClusterNode;
        if (dead.has(node)) continue;
        try {
          const reply = await sendOne(node.smtpPort, FROM, [TO], text);
          if (reply.code === 250) {
            acked.set(messageId, queueIdOf(reply));
            return;
          }
        } catch {
          // connection reset by the kill, or refused: try the next node
        }
      }
    }

    await Promise.all(
      Array.from({ length: SENDERS }, async () => {
        for (let k = next++; k < TOTAL; k = next++) {
          await submit(k);
          if (acked.size >= TOTAL / 3 && killedAt === 0) {
            killedAt = -1; // one sender does the kill
            await victim.serve.kill();
            killedAt = Date.now();
            dead.add(victim);
            // A COMMIT the victim sent just before it died may still be running on the server:
            // read what it held only once all its backends are gone (each sees EOF and exits).
            await waitForValue(
              () => count(db, `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE '${victim.nodeId}%'`),
              (n) => n === 0,
              10_000,
              'the victim\'s database sessions ended',
            );
            const { rows } = await db.query<{ id: string }>(`SELECT id FROM onward.deliveries WHERE lease_owner = $1`, [victim.nodeId]);
            stranded = rows.map((r) => r.id);
          }
        }
      }),
    );
    expect(killedAt).toBeGreaterThan(0);
    expect(stranded.length).toBeGreaterThan(0); // the kill did strand deliveries in flight
    expect(acked.size).toBe(TOTAL); // every message was acknowledged by some node

    const delivered = (): Set<string> => new Set(hooks.requests.map(messageIdOf).filter((id): id is string => id !== null));
    await waitForValue(() => delivered(), (ids) => [...acked.keys()].every((id) => ids.has(id)), 90_000, 'every acknowledged message at the sink');

    // What the dead node held leased was retried by a survivor within the lease and a few seconds.
    const firstDeliveryOf = (deliveryId: string): number =>
      Math.min(...hooks.requests.filter((r) => r.headers['idempotency-key'] === deliveryId && r.headers['x-onward-attempt'] !== '1').map((r) => r.receivedAt.getTime()));
    // The victim's own attempt 1 may have reached the sink before it died, so "every message
    // at the sink" can hold before the survivors' retries: wait for those too, then time them.
    await waitForValue(() => stranded.filter((id) => !Number.isFinite(firstDeliveryOf(id))), (left) => left.length === 0, 60_000, 'a retry of every stranded delivery');
    for (const id of stranded) expect(firstDeliveryOf(id) - killedAt).toBeLessThan(LEASE_MS + 5000);
    // A message delivered twice carries the same Idempotency-Key both times (the receiver can drop the repeat).
    const keysByMessage = new Map<string, Set<string>>();
    for (const r of hooks.requests) {
      const id = messageIdOf(r);
      if (id === null) continue;
      const keys = keysByMessage.get(id) ?? new Set<string>();
      keys.add(String(r.headers['idempotency-key']));
      keysByMessage.set(id, keys);
    }
    expect([...keysByMessage.values()].filter((k) => k.size > 1)).toEqual([]);
    // One message per Message-ID in the spool, none unfinished, nothing leased.
    expect(await count(db, `SELECT count(*) AS n FROM onward.messages`)).toBe(TOTAL);
    await waitForValue(() => count(db, `SELECT count(*) AS n FROM onward.deliveries WHERE lease_owner IS NOT NULL OR state NOT IN ('delivered', 'failed')`), (n) => n === 0, 20_000, 'nothing leased or unfinished');
  }, 180_000);

  it('PostgreSQL stopped mid-load: 451 4.3.0 within 5 s, /readyz 503, no session hangs; started again: the same nodes accept and deliver, nothing acknowledged lost', async () => {
    const REPLY_BOUND_MS = 5000 + 1500; // SPEC's 5 s, plus a loaded machine's scheduling
    const hooks = await sink();
    const { url } = await sharedSpool();
    const nodes = await startNodes(teardown, teardown.tempDir('pg-cluster-outage'), { url, sinkUrl: hooks.url, nodes: 2, lease: '5s' });
    const pids = nodes.map((n) => n.serve.pid);
    const acked = new Set<string>();
    const replies: { phase: string; code: number; text: string; ms: number }[] = [];

    async function send(phase: string, k: number): Promise<void> {
      const messageId = `${phase}-${String(k)}@client.test`;
      const node = nodes[k % nodes.length] as ClusterNode;
      const started = Date.now();
      const reply = await sendOne(node.smtpPort, FROM, [TO], messageText({ from: FROM, to: TO, subject: `${phase} ${String(k)}`, messageId }));
      replies.push({ phase, code: reply.code, text: reply.raw, ms: Date.now() - started });
      if (reply.code === 250) acked.add(messageId);
    }
    /** `count` messages over `senders` concurrent sessions; `onEach` after every reply. */
    async function load(phase: string, count: number, senders: number, onEach: () => void = () => undefined): Promise<void> {
      let next = 0;
      await Promise.all(
        Array.from({ length: senders }, async () => {
          for (let k = next++; k < count; k = next++) {
            await send(phase, k);
            onEach();
          }
        }),
      );
    }
    const readyz = (node: ClusterNode): Promise<number> => adminGet(node.adminPort, '/readyz').then((r) => r.status, () => 0);

    // Before and across the stop: the server goes down while these transactions run.
    const outage: { stopped: Promise<void> | null } = { stopped: null };
    await load('before', 300, 8, () => {
      if (acked.size >= 100) outage.stopped ??= cluster().stopServer();
    });
    expect(outage.stopped).not.toBeNull();
    await outage.stopped;
    // While it is down: every new message refused for now, fast; the nodes not ready.
    await load('down', 20, 4);
    for (const node of nodes) await waitForValue(() => readyz(node), (status) => status === 503, 5000, `${node.nodeId} /readyz 503`);
    // Back: the same processes accept and deliver again, by themselves.
    await cluster().startServer();
    for (const node of nodes) await waitForValue(() => readyz(node), (status) => status === 200, 15_000, `${node.nodeId} /readyz 200 again`);
    await load('after', 60, 4);

    expect(replies.filter((r) => r.ms > REPLY_BOUND_MS)).toEqual([]); // no session waited past the bound
    expect(replies.filter((r) => r.code !== 250 && !(r.code === 451 && /4\.3\.0/.test(r.text)))).toEqual([]);
    expect(replies.filter((r) => r.phase === 'down').map((r) => r.code)).toEqual(Array.from({ length: 20 }, () => 451));
    expect(replies.filter((r) => r.phase === 'after').map((r) => r.code)).toEqual(Array.from({ length: 60 }, () => 250));
    const delivered = (): Set<string> => new Set(hooks.requests.map(messageIdOf).filter((id): id is string => id !== null));
    await waitForValue(() => delivered(), (ids) => [...acked].every((id) => ids.has(id)), 60_000, 'every acknowledged message at the sink');
    expect(nodes.map((n) => n.serve.pid)).toEqual(pids);
    for (const node of nodes) expect(node.serve.child.exitCode).toBeNull();
  }, 180_000);

  it('the same Message-ID at two nodes at the same moment is one message, both replies naming its id', async () => {
    const hooks = await sink();
    const { url, db } = await sharedSpool();
    const [a, b] = (await startNodes(teardown, teardown.tempDir('pg-cluster-dedup'), { url, sinkUrl: hooks.url, nodes: 2, lease: '5s' })) as [ClusterNode, ClusterNode];
    const ROUNDS = 10;
    for (let round = 0; round < ROUNDS; round++) {
      const messageId = `twice-${String(round)}@client.test`;
      const text = messageText({ from: FROM, to: TO, subject: `twice ${String(round)}`, messageId });
      // Both sessions stop just before the final dot, then both dots go out together.
      const wires = await Promise.all([a, b].map((n) => SmtpWire.connect(n.smtpPort)));
      for (const wire of wires) teardown.add(() => wire.close());
      for (const wire of wires) {
        await expectCode(wire.read(), 220);
        await expectCode(wire.command('EHLO client.test'), 250);
        await expectCode(wire.command(`MAIL FROM:<${FROM}>`), 250);
        await expectCode(wire.command(`RCPT TO:<${TO}>`), 250);
        await expectCode(wire.command('DATA'), 354);
        wire.write(text);
      }
      for (const wire of wires) wire.write('.\r\n');
      const replies = await Promise.all(wires.map((w) => w.read(10_000)));
      expect(replies.map((r) => r.code)).toEqual([250, 250]);
      const ids = replies.map(queueIdOf);
      expect(ids[0]).toBe(ids[1]);
      expect(replies.filter((r) => /already queued as/.test(r.raw))).toHaveLength(1);
      const { rows } = await db.query<{ id: string }>(`SELECT id FROM onward.messages WHERE message_id = $1`, [messageId]);
      expect(rows.map((r) => r.id)).toEqual([ids[0]]);
    }
  }, 120_000);
});
