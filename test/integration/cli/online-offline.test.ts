/**
 * SPEC 1: every spool command works through the running relay (admin API) and on the
 * stopped spool (LevelDB opened directly), with the same answers. A real `onward serve`
 * child, real `onward spool ...` children, an HTTP sink answering 503 (so messages stay
 * deferred on a 1h schedule) and an SMTP sink carrying the DSNs (`bounces.via`).
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { sleep, waitUntil } from '../../helpers/common.js';
import { startHttpSink, type HttpSink } from '../../helpers/http-sink.js';
import { startSmtpSink, type SmtpSink } from '../../helpers/smtp-sink.js';
import {
  apiShow,
  apiStats,
  cliJson,
  makeCliEnv,
  mapLimit,
  openSpoolAt,
  rawMessage,
  runCli,
  seedSpool,
  startServe,
  submit,
  useCliTeardown,
  type CliEnv,
  type CliResult,
  type ListEntryJson,
  type ServeProcess,
  type ShowJson,
  type StatsJson,
  LIST_HEADER,
  withoutLockWait,
} from '../../helpers/cli.js';

const HOUR = 3_600_000;
const ROW = /^([0-9A-Z]{15})\s+(queued|deferred|held|delivered|bounced|deleted)\s+\S+\s+[\d.]+ [KMG]?B\s+(now|-|in \S+)\s+(\S+)$/;

/** The read-only commands compared between the two modes, by name. */
const READS: readonly (readonly [string, readonly string[]])[] = [
  ['list (the queue)', ['spool', 'list', '--json']],
  ['list --state held', ['spool', 'list', '--state', 'held', '--json']],
  ['list --state all', ['spool', 'list', '--state', 'all', '--json']],
  ['list --target hookB', ['spool', 'list', '--target', 'hookB', '--json']],
  ['list --sender *@other.test', ['spool', 'list', '--sender', '*@other.test', '--json']],
  ['list --recipient dave@*', ['spool', 'list', '--recipient', 'dave@*', '--json']],
  ['list --older-than 1h', ['spool', 'list', '--older-than', '1h', '--json']],
  ['list --limit 2', ['spool', 'list', '--limit', '2', '--json']],
];

/** Every command that takes an id, with a malformed and a well-formed unknown one between them. */
const BAD_ID_ONLINE: readonly (readonly [string, string])[] = [
  ['show', 'NOTANID'],
  ['show', '000000000000000'],
  ['body', '000000000000000'],
  ['retry', 'NOTANID'],
  ['hold', '000000000000000'],
  ['release', 'NOTANID'],
  ['delete', '000000000000000'],
  ['bounce', 'NOTANID'],
];
const BAD_ID_OFFLINE: readonly (readonly [string, string])[] = [
  ['body', 'NOTANID'],
  ['bounce', '000000000000000'],
];

describe('spool commands through a running relay and on the stopped spool', () => {
  const cleanup = useCliTeardown();

  let env: CliEnv;
  let sink: HttpSink;
  let dsnSink: SmtpSink;
  let relay: ServeProcess;
  let old: string[] = [];
  /** `stats --json` as the first test saw it while running and when stopped. */
  const seenStats: { online?: StatsJson; offline?: StatsJson } = {};
  const id: Record<string, string> = {};
  /** m1's message as submitted: 8-bit UTF-8, a leading-dot line (dot-stuffed on the wire), trailing spaces. */
  const m1Raw = rawMessage({
    from: 'alice@senders.test',
    to: ['bob@a.test'],
    subject: 'byte exact',
    body: 'Grüße aus Köln — ok\r\n.leading dot survives dot-stuffing\r\n..two dots\r\ntrailing spaces   \r\n\tand a tab',
  });

  beforeAll(async () => {
    sink = await startHttpSink({ respond: () => ({ status: 503 }) });
    cleanup.add(() => sink.close());
    dsnSink = await startSmtpSink();
    cleanup.add(() => dsnSink.close());
    env = await makeCliEnv();
    cleanup.add(() => env.remove());
    env.writeConfig({
      targets: {
        hookA: { type: 'http', url: `${sink.url}?t=a`, format: 'raw', concurrency: 4, circuit: { failures: 1000 } },
        hookB: { type: 'http', url: `${sink.url}?t=b`, format: 'raw', concurrency: 4, circuit: { failures: 1000 } },
        dsn: { type: 'smtp', host: '127.0.0.1', port: dsnSink.port },
      },
      routes: [
        { match: '*@a.test', target: 'hookA' },
        { match: '*@b.test', target: 'hookB' },
      ],
      bounces: { from: 'MAILER-DAEMON@relay.test', via: 'dsn' },
    });
    // Two messages received two hours ago, written straight into the spool before the first start.
    old = await seedSpool(
      env.config,
      [
        { from: 'old@senders.test', to: ['x1@a.test'] },
        { from: 'old@senders.test', to: ['x2@a.test'] },
      ],
      { ageMs: 2 * HOUR },
    );
    relay = await startServe(env);
    cleanup.add(() => relay.kill());

    id.m1 = (await submit(env.smtpPort, { from: 'alice@senders.test', to: ['bob@a.test'], raw: m1Raw })).queueId;
    id.m2 = (await submit(env.smtpPort, { from: 'carol@other.test', to: ['dave@b.test', 'erin@a.test'] })).queueId;
    id.m3 = (await submit(env.smtpPort, { from: 'frank@senders.test', to: ['gina@a.test'] })).queueId;
    for (const mode of ['on', 'off']) {
      for (const action of ['hold', 'retry', 'delete', 'bounce']) {
        const key = `${mode}-${action}`;
        id[key] = (await submit(env.smtpPort, { from: `${key}@senders.test`, to: [`${key}@a.test`] })).queueId;
      }
    }
    // 2 seeded + 3 + 8: every delivery tried once against the 503 sink, then deferred for an hour.
    await waitUntil('all 13 messages deferred', async () => {
      const s = await apiStats(env);
      return s.states.deferred === 13 && s.states.queued === 0;
    });
    const hold = await runCli(env, ['spool', 'hold', id.m3 ?? '']);
    expect(hold).toMatchObject({ code: 0, stdout: `${id.m3}: held\n` });
  }, 30_000);

  it('answers stats, list with every filter, show and body the same while running and when stopped, and names bad ids with exit 1', async () => {
    const m1 = id.m1 ?? '';
    const m2 = id.m2 ?? '';
    const m3 = id.m3 ?? '';
    /** Every read, and the bad-id commands, with at most `parallel` CLI processes at a time. */
    const runAll = async (
      parallel: number,
      badCases: readonly (readonly [string, string])[],
      humanArgs: readonly (readonly string[])[],
    ): Promise<{ stats: StatsJson; lists: ListEntryJson[][]; show: ShowJson; body: CliResult; bad: (readonly [string, string, CliResult])[]; human: CliResult[] }> => {
      const jobs: (readonly string[])[] = [
        ['spool', 'stats', '--json'],
        ['spool', 'show', m2, '--json'],
        ['spool', 'body', m1],
        ...READS.map(([, args]) => args),
        ...badCases.map(([cmd, bad]) => ['spool', cmd, bad]),
        ...humanArgs,
      ];
      const results = await mapLimit(jobs, parallel, (args) => runCli(env, args));
      const json = <T,>(r: CliResult | undefined): T => {
        const stderr = withoutLockWait(r?.stderr ?? '');
        if (r?.code !== 0 || stderr !== '') throw new Error(`exit ${String(r?.code)}: ${r?.stderr ?? ''}`);
        return JSON.parse(r.stdout) as T;
      };
      const lists = results.slice(3, 3 + READS.length);
      const bad = results.slice(3 + READS.length, 3 + READS.length + badCases.length);
      return {
        stats: json<StatsJson>(results[0]),
        show: json<ShowJson>(results[1]),
        body: results[2] as CliResult,
        lists: lists.map((r) => json<ListEntryJson[]>(r)),
        bad: bad.map((r, i) => [badCases[i]?.[0] ?? '', badCases[i]?.[1] ?? '', r] as const),
        human: results.slice(3 + READS.length + badCases.length),
      };
    };

    // --- while the relay runs: everything goes through the admin API
    const online = await runAll(4, BAD_ID_ONLINE, [['spool', 'list']]);
    const [humanList] = online.human as [CliResult];
    expect(online.stats.source).toBe('relay');

    // --- stopped: SIGTERM, wait for the exit, then the CLI opens the LevelDB directory itself.
    // Two at a time: concurrent offline commands take turns on the LevelDB lock (see availability.test.ts).
    expect(await relay.stop()).toBe(0);
    const offline = await runAll(2, BAD_ID_OFFLINE, [['spool', 'stats'], ['spool', 'show', m2]]);
    const [humanStats, humanShow] = offline.human as [CliResult, CliResult];
    expect(offline.stats.source).toBe('spool');
    seenStats.online = online.stats;
    seenStats.offline = offline.stats;
    // read commands say nothing on stderr, and never a lock error
    for (const r of [...online.human, ...offline.human, online.body, offline.body]) expect(withoutLockWait(r.stderr)).toBe('');

    // stats: the same counts; live target state only when running
    const expectedStates = { queued: 0, deferred: 12, held: 1, delivered: 0, bounced: 0, deleted: 0 };
    expect(online.stats.states).toEqual(expectedStates);
    expect(offline.stats.states).toEqual(expectedStates);
    const counts = (s: StatsJson, name: string): { queued: number; deferred: number } => ({
      queued: s.targets[name]?.queued ?? 0,
      deferred: s.targets[name]?.deferred ?? 0,
    });
    for (const name of ['hookA', 'hookB', 'dsn']) expect(counts(offline.stats, name)).toEqual(counts(online.stats, name));
    expect(counts(online.stats, 'hookA')).toEqual({ queued: 0, deferred: 12 }); // m3's delivery is held, not deferred
    expect(counts(online.stats, 'hookB')).toEqual({ queued: 0, deferred: 1 });
    for (const name of ['hookA', 'hookB', 'dsn']) {
      expect(online.stats.targets[name]).toEqual(expect.objectContaining({ up: expect.any(Boolean), concurrency: expect.any(Number) }));
    }
    for (const t of Object.values(offline.stats.targets)) expect(t).toMatchObject({ up: null, concurrency: null });
    // the oldest queued/deferred message is a seeded one, two hours old
    for (const s of [online.stats, offline.stats]) {
      expect(s.oldestQueuedAgeSeconds).toBeGreaterThanOrEqual(2 * 3600);
      expect(s.oldestQueuedAgeSeconds).toBeLessThan(2 * 3600 + 120);
      expect(s.spoolBytes).toBeGreaterThan(0);
    }

    // list: the same documents with every filter
    for (const [i, [name]] of READS.entries()) {
      expect({ [name]: offline.lists[i] }).toEqual({ [name]: online.lists[i] });
    }
    const [queue, held, all, byTarget, bySender, byRecipient, olderThan, limited] = online.lists.map((l) => l.map((e) => e.id));
    const everyId = [...old, m1, m2, m3, ...['hold', 'retry', 'delete', 'bounce'].flatMap((a) => [`on-${a}`, `off-${a}`]).map((k) => id[k] ?? '')];
    expect(new Set(queue)).toEqual(new Set(everyId));
    expect(queue).toHaveLength(13);
    expect(held).toEqual([m3]);
    expect(new Set(all)).toEqual(new Set(everyId));
    expect(byTarget).toEqual([m2]);
    expect(bySender).toEqual([m2]);
    expect(byRecipient).toEqual([m2]);
    expect(olderThan).toEqual(old);
    expect(limited).toEqual(old); // arrival order: the back-dated ones first

    // the SPEC's list shape
    const entry2 = online.lists[0]?.find((e) => e.id === m2);
    expect(entry2).toEqual(
      expect.objectContaining({
        id: m2,
        state: 'deferred',
        sender: 'carol@other.test',
        size: expect.any(Number),
        receivedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/),
        nextAttemptAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      }),
    );
    expect(entry2?.recipients).toEqual([
      { address: 'dave@b.test', state: 'deferred', target: 'hookB', lastError: 'HTTP 503 Service Unavailable' },
      { address: 'erin@a.test', state: 'deferred', target: 'hookA', lastError: 'HTTP 503 Service Unavailable' },
    ]);
    const nextAt = Date.parse(entry2?.nextAttemptAt ?? '');
    expect(nextAt).toBeGreaterThan(Date.now() + HOUR - 5 * 60_000); // schedule [1h]
    const entry3 = online.lists[0]?.find((e) => e.id === m3);
    expect(entry3).toMatchObject({ state: 'held', nextAttemptAt: null, recipients: [{ address: 'gina@a.test', state: 'held', target: 'hookA' }] });

    // show: the same document; each delivery with its attempt
    expect(offline.show).toEqual(online.show);
    const show2 = online.show;
    expect(show2).toMatchObject({ id: m2, state: 'deferred', sender: 'carol@other.test' });
    expect(show2.deliveries).toHaveLength(2);
    for (const d of show2.deliveries) {
      expect(d).toEqual(
        expect.objectContaining({ id: expect.stringMatching(new RegExp(`^${m2}\\.\\d+$`)), target: expect.stringMatching(/^hook[AB]$/), state: 'deferred' }),
      );
      expect(d.attempts).toEqual([
        { at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), target: d.target, outcome: 'error', reply: 'HTTP 503 Service Unavailable', durationMs: expect.any(Number) },
      ]);
    }
    expect(show2.headers).toEqual(expect.arrayContaining([['From', 'carol@other.test']]));

    // body: byte-exact, the same both ways, what the raw webhook received, what the spool holds
    expect(online.body.code).toBe(0);
    expect(offline.body.code).toBe(0);
    expect(offline.body.stdoutBytes.equals(online.body.stdoutBytes)).toBe(true);
    const delivered = sink.requests.find((r) => r.headers['x-onward-queue-id'] === m1);
    expect(delivered?.body.equals(online.body.stdoutBytes)).toBe(true);
    expect(online.body.stdoutBytes.subarray(-Buffer.byteLength(m1Raw)).equals(Buffer.from(m1Raw))).toBe(true);
    expect(online.body.stdoutBytes.toString('latin1')).toMatch(/^Received: /);
    const spool = await openSpoolAt(env.config);
    try {
      expect((await spool.getBody(m1))?.equals(online.body.stdoutBytes)).toBe(true);
    } finally {
      await spool.close();
    }

    // human listing, like mailq: header, one row per message, an indented line per recipient, a count
    expect(humanList.code).toBe(0);
    const lines = humanList.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(LIST_HEADER);
    expect(lines.at(-1)).toBe('-- 13 messages');
    const rows = lines.filter((l) => ROW.test(l));
    expect(rows.map((r) => ROW.exec(r)?.[1])).toEqual(queue);
    const m2Row = lines.findIndex((l) => l.startsWith(m2));
    expect(lines[m2Row]).toMatch(new RegExp(`^${m2}\\s+deferred\\s+.*\\s+in \\d+m\\d+s\\s+carol@other\\.test$`));
    expect(lines.slice(m2Row + 1, m2Row + 3)).toEqual([
      '    -> dave@b.test  deferred via hookB  (HTTP 503 Service Unavailable)',
      '    -> erin@a.test  deferred via hookA  (HTTP 503 Service Unavailable)',
    ]);
    const m3Row = lines.findIndex((l) => l.startsWith(m3));
    expect(lines[m3Row]).toMatch(new RegExp(`^${m3}\\s+held\\s+.*\\s+-\\s+frank@senders\\.test$`));
    expect(lines[m3Row + 1]).toBe('    -> gina@a.test  held via hookA  (HTTP 503 Service Unavailable)');
    expect(lines).toHaveLength(1 + 13 + 14 + 1); // header, rows, 14 recipient lines, count
    expect(humanStats.code).toBe(0);
    expect(humanStats.stdout).toMatch(/source\s+stopped spool/);
    expect(humanStats.stdout).toMatch(/queued 0\s+deferred 12\s+held 1/);
    expect(humanStats.stdout).toMatch(/^TARGET\s+QUEUED\s+DEFERRED\s+UP\s+CONCURRENCY$/m);
    expect(humanShow.code).toBe(0);
    expect(humanShow.stdout).toMatch(new RegExp(`^id\\s+${m2}$`, 'm'));
    expect(humanShow.stdout).toMatch(/^ {2}attempt \S+\s+hookB\s+ERROR\s+\d+ ms\s+HTTP 503 Service Unavailable$/m);

    // bad ids: exit 1 and stderr names the id, for every command that takes one, both ways
    for (const [cmd, bad, r] of [...online.bad, ...offline.bad]) {
      expect({ cmd, bad, code: r.code, namesId: r.stderr.includes(bad), stdout: r.stdout }).toEqual({ cmd, bad, code: 1, namesId: true, stdout: '' });
      expect(r.stderr).not.toMatch(/LEVEL_LOCKED|in use by another process/);
    }
    // nothing was changed by the bad ids
    const check = await openSpoolAt(env.config);
    try {
      expect((await check.stats()).states).toEqual(expectedStates);
    } finally {
      await check.close();
    }
  }, 60_000);

  it('names the same targets in stats --json while running and when stopped (every configured target)', () => {
    const configured = ['dsn', 'hookA', 'hookB'];
    expect(Object.keys(seenStats.online?.targets ?? {}).sort()).toEqual(configured);
    // The stopped spool knows the config too; a target without messages yet ('dsn') is still a target.
    expect(Object.keys(seenStats.offline?.targets ?? {}).sort()).toEqual(configured);
  });

  it('applies hold, release, retry, delete, bounce and retry --all the same way when stopped and while running', async () => {
    const k = (key: string): string => id[key] ?? '';
    // --- stopped (the previous test left the relay stopped)
    const act = async (mode: 'on' | 'off'): Promise<unknown[]> => {
      const out: unknown[] = [];
      const run = async (args: string[]): Promise<void> => {
        const r = await runCli(env, [...args, '--json']);
        expect({ args, code: r.code, stderr: r.code === 0 ? '' : r.stderr }).toEqual({ args, code: 0, stderr: '' });
        out.push(JSON.parse(r.stdout.replaceAll(k(`${mode}-hold`), 'H').replaceAll(k(`${mode}-retry`), 'R').replaceAll(k(`${mode}-delete`), 'D').replaceAll(k(`${mode}-bounce`), 'B')));
      };
      await run(['spool', 'hold', k(`${mode}-hold`)]);
      await run(['spool', 'release', k(`${mode}-hold`)]);
      await run(['spool', 'retry', k(`${mode}-retry`)]);
      await run(['spool', 'delete', k(`${mode}-delete`)]);
      await run(['spool', 'bounce', k(`${mode}-bounce`)]);
      await run(['spool', 'retry', '--all', '--target', 'hookB']);
      return out;
    };
    const expected = [
      [{ id: 'H', state: 'held' }],
      [{ id: 'H', state: 'queued' }],
      [{ id: 'R', state: 'queued' }],
      [{ id: 'D', state: 'deleted' }],
      [{ id: 'B', state: 'bounced' }],
      { matched: 1, changed: 1 },
    ];
    const offline = await act('off');
    expect(offline).toEqual(expected);
    // right after the offline actions: released and retried are due now, the DSN is queued in the spool
    const spool = await openSpoolAt(env.config);
    const offShows = await Promise.all(['off-hold', 'off-retry', 'off-delete', 'off-bounce'].map(async (key) => ({ message: await spool.getMessage(k(key)), deliveries: await spool.getDeliveries(k(key)) })));
    await spool.close();
    for (const view of offShows.slice(0, 2)) {
      expect(view.message?.state).toBe('queued');
      expect(view.deliveries[0]?.dueAt).toBeLessThanOrEqual(Date.now());
    }
    expect(offShows[2]?.message?.state).toBe('deleted');
    expect(offShows[3]?.message?.state).toBe('bounced');
    expect(offShows[3]?.deliveries[0]?.recipients).toMatchObject([{ address: 'off-bounce@a.test', state: 'failed', lastError: 'bounced by the operator' }]);
    const dsnQueued = await cliJson<ListEntryJson[]>(env, ['spool', 'list', '--recipient', 'off-bounce@senders.test', '--json']);
    expect(dsnQueued.map((e) => ({ state: e.state, sender: e.sender, to: e.recipients.map((r) => [r.address, r.target]) }))).toEqual([
      { state: 'queued', sender: '', to: [['off-bounce@senders.test', 'dsn']] },
    ]);

    // --- running again: the relay takes over the offline DSN, the online actions go through the API
    const requestsBefore = sink.requests.length;
    relay = await startServe(env);
    cleanup.add(() => relay.kill());
    const online = await act('on');
    expect(online).toEqual(expected);

    // one DSN per bounce, to the original sender, from the null sender
    const dsns = await dsnSink.waitFor(2, 10_000);
    await sleep(300);
    expect(dsns).toHaveLength(2);
    const bySender = new Map(dsns.map((m) => [m.envelope.to.join(','), m]));
    for (const mode of ['off', 'on']) {
      const dsn = bySender.get(`${mode}-bounce@senders.test`);
      expect(dsn?.envelope.from).toBe('');
      const text = dsn?.raw.toString('utf8') ?? '';
      expect(text).toMatch(/report-type="?delivery-status/i);
      expect(text).toMatch(new RegExp(`Final-Recipient: rfc822; ?${mode}-bounce@a\\.test`, 'i'));
      expect(text).toMatch(/Action: failed/);
    }

    // released, retried (offline and online) and retried --all: each tried once more at once, then deferred again
    await waitUntil('the released and retried messages to be tried again', async () => {
      const views = await Promise.all(['off-hold', 'off-retry', 'on-hold', 'on-retry'].map((key) => apiShow(env, k(key))));
      return views.every((v) => v.state === 'deferred' && v.deliveries[0]?.attempts.length === 2) ? views : undefined;
    }, 15_000, 200);
    expect(sink.requests.length).toBeGreaterThan(requestsBefore);
    // the finished ones look the same whichever way they were finished
    const norm = (v: ShowJson, mode: string): unknown =>
      JSON.parse(
        JSON.stringify({ state: v.state, deliveries: v.deliveries.map((d) => ({ state: d.state, recipients: d.recipients, outcomes: d.attempts.map((a) => [a.outcome, a.reply]) })) }).replaceAll(`${mode}-`, 'X-'),
      ) as unknown;
    for (const action of ['delete', 'bounce']) {
      const [on, off] = await Promise.all(['on', 'off'].map((mode) => apiShow(env, k(`${mode}-${action}`))));
      expect(norm(on as ShowJson, 'on')).toEqual(norm(off as ShowJson, 'off'));
    }
    const stats = await apiStats(env);
    expect(stats.states).toMatchObject({ deleted: 2, bounced: 2, held: 1, delivered: 2 }); // delivered: the two DSNs
    expect(await relay.stop()).toBe(0);
  }, 60_000);
});
