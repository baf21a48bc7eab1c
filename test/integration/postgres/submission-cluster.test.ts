/**
 * HTTP submission on a cluster (SPEC 9 + 10): two real `onward serve` nodes on one real
 * PostgreSQL spool. An Idempotency-Key used at one node is known at the other, also when
 * both requests arrive at once; the message is delivered once.
 */
import { expect, it } from '@jest/globals';
import { useTeardown, waitUntil } from '../../helpers/common.js';
import { startHttpSink } from '../../helpers/http-sink.js';
import { startNodes, type ClusterNode } from '../../helpers/pg-cluster.js';
import { describePg, usePostgres } from '../../helpers/postgres.js';
import { call, postJson } from '../../helpers/submission.js';

const KEY = 'k-cluster-0123456789abcdef';

/** The submission port a node bound (port 0 in its config), from its `onward ready` line. */
function submissionPort(node: ClusterNode): number {
  const ready = node.serve.logs.find((l) => l.msg === 'onward ready');
  const address = typeof ready?.['submission'] === 'string' ? ready['submission'] : '';
  return Number(address.split(':').pop());
}

describePg('HTTP submission on a PostgreSQL cluster', () => {
  const cluster = usePostgres();
  const teardown = useTeardown();

  it('an Idempotency-Key holds across nodes: the repeat at the other node is 200 duplicate with the original id, a different request 422, simultaneous repeats one message; each delivered once', async () => {
    await cluster().createDatabase('submission');
    const url = cluster().passwordUrl.replace(/\/[^/]+$/, '/submission');
    const hooks = await startHttpSink();
    teardown.add(() => hooks.close());
    const nodes = await startNodes(teardown, teardown.tempDir('pg-submission'), {
      url,
      sinkUrl: hooks.url,
      nodes: 2,
      lease: '3s',
      extra: { submission: { listen: { host: '127.0.0.1', port: 0 }, keys: [{ name: 'app1', key: KEY }] } },
    });
    const [a, b] = nodes.map(submissionPort) as [number, number];
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);

    const doc = { from: 'app@client.test', to: ['user@dest.test'], subject: 'cluster-once', text: 'one delivery' };
    const headers = { 'idempotency-key': 'cluster-1' };
    const first = await postJson(a, doc, { key: KEY, headers });
    expect(first.status).toBe(202);
    const repeat = await postJson(b, doc, { key: KEY, headers });
    expect(repeat).toMatchObject({ status: 200, body: { id: first.body.id, status: 'duplicate', messageId: first.body.messageId } });
    const other = await postJson(b, { ...doc, text: 'another request' }, { key: KEY, headers });
    expect([other.status, other.body.error?.code]).toEqual([422, 'ONWARD_ERR_IDEMPOTENCY_MISMATCH']);

    // Both nodes at the same moment under a fresh key: one message, both answers name it.
    const raceDoc = { ...doc, subject: 'cluster-race' };
    const raceHeaders = { 'idempotency-key': 'cluster-race' };
    const answers = await Promise.all([postJson(a, raceDoc, { key: KEY, headers: raceHeaders }), postJson(b, raceDoc, { key: KEY, headers: raceHeaders })]);
    expect(answers.map((x) => x.status).sort()).toEqual([200, 202]);
    expect(answers[0]?.body.id).toBe(answers[1]?.body.id);

    for (const id of [first.body.id, answers[0]?.body.id]) {
      await waitUntil(`${id ?? ''} delivered`, async () => (await call(b, `/v1/messages/${id ?? ''}`, null, { key: KEY })).body['state'] === 'delivered', 20_000);
    }
    const subjects = hooks.requests.map((r) => /^Subject: (.*)$/m.exec(r.body.toString('latin1'))?.[1]?.trim());
    expect(subjects.filter((s) => s === 'cluster-once')).toHaveLength(1);
    expect(subjects.filter((s) => s === 'cluster-race')).toHaveLength(1);
  }, 90_000);
});
