/**
 * SPEC 9 "database unavailable": while the spool says its store does not answer, new
 * messages get `451 4.3.0` at once (at MAIL FROM, before the client sends any data), and
 * acceptance resumes by itself when the store answers again. The real ingress on a real
 * socket over a real LevelDB spool; only the spool's availability is a switch, since the
 * level store cannot go away (the postgres suites stop a real database).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { SmtpIngress } from '../../src/smtp/index.js';
import { SpoolCapacity, type LevelSpool } from '../../src/spool/index.js';
import { makeTempDir, openSpool, outboxRoute, removeDir, spoolContents, testConfig } from '../helpers/common.js';
import { sampleMessage, smtpConversation, transaction } from '../helpers/relay.js';

describe('the ingress while the spool is unavailable', () => {
  let dir: string;
  let spool: LevelSpool;
  let ingress: SmtpIngress;
  let port: number;
  let available = false;

  beforeAll(async () => {
    dir = await makeTempDir('onward-unavailable-');
    const config = parseConfig(stringify(testConfig(dir, outboxRoute(dir))), {});
    spool = await openSpool(config.spool.path, { create: true });
    const capacity = new SpoolCapacity({
      diskPath: null,
      minFreeDiskBytes: 0,
      maxQueued: config.spool.maxQueued,
      unfinished: () => spool.unfinishedCount(),
      available: () => available && spool.available(),
    });
    ingress = new SmtpIngress({ config, spool, capacity, logger: pino({ level: 'silent' }) });
    port = (await ingress.start())[0]?.port ?? 0;
  });

  afterAll(async () => {
    await ingress.close(0);
    await spool.close();
    await removeDir(dir);
  });

  it('answers MAIL FROM with 451 4.3.0 at once and stores nothing', async () => {
    available = false;
    const started = Date.now();
    const talk = await smtpConversation(port, ['EHLO client.test', 'MAIL FROM:<app@client.test>', 'QUIT'], { expectReplies: 3 });
    const elapsedMs = Date.now() - started;
    expect(talk.replies[1]).toMatchObject({ code: 451 });
    expect(talk.replies[1]?.text).toMatch(/^4\.3\.0 /);
    expect(elapsedMs).toBeLessThan(5000);
    expect(await spoolContents(spool)).toEqual([]);
  });

  it('accepts again as soon as the store answers, without a restart', async () => {
    available = true;
    const talk = await smtpConversation(port, ['EHLO client.test', ...transaction('app@client.test', ['rcpt@example.org'], sampleMessage()), 'QUIT'], { expectReplies: 6 });
    expect(talk.replies.map((r) => r.code)).toEqual([250, 250, 250, 354, 250, 221]);
    expect(await spoolContents(spool)).toHaveLength(1);
  });
});
