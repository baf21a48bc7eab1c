/**
 * What the LevelDB spool checks before it serves: the spool format version (`v!format`) and
 * the classic-level version and private `_batch` its writer relies on.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { ClassicLevel } from 'classic-level';
import { isRelayError } from '../../../src/errors.js';
import { LevelSpool, newQueueId, type NewMessage } from '../../../src/spool/index.js';
import { classicLevelMismatch, installedClassicLevel } from '../../../src/spool/level/classic-level-guard.js';

const DAY = 86_400_000;

function message(): NewMessage {
  return {
    queueId: newQueueId(),
    sender: 'sender@example.com',
    recipients: ['rcpt@example.org'],
    messageId: null,
    body: Buffer.from('Subject: kept\r\n\r\nbody\r\n'),
    client: { ip: '127.0.0.1', hostname: '[127.0.0.1]', helo: 'client.test', user: null },
    deliveries: [{ targets: ['outbox'], recipients: ['rcpt@example.org'] }],
    dedupKey: null,
    bounceOf: null,
  };
}

/** Runs `work` on the spool directory opened raw (the spool must be closed). */
async function raw<T>(dir: string, work: (db: ClassicLevel<string, Buffer>) => Promise<T>): Promise<T> {
  const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  try {
    return await work(db);
  } finally {
    await db.close();
  }
}

async function openError(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the spool to refuse to open');
}

describe('spool format version', () => {
  let dir: string;
  const options = (): { path: string; dedupWindowMs: number; retainFinishedMs: number } => ({ path: dir, dedupWindowMs: DAY, retainFinishedMs: DAY });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'onward-format-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes version 1 into a new spool', async () => {
    await (await LevelSpool.open(options())).close();
    expect(await raw(dir, async (db) => (await db.get('v!format'))?.toString())).toBe('1');
  });

  it('reads an existing spool without the key as version 1, keeps its messages and writes the key', async () => {
    const spool = await LevelSpool.open(options());
    const msg = message();
    await spool.accept(msg);
    await spool.close();
    await raw(dir, (db) => db.del('v!format')); // as written before the key existed

    const reopened = await LevelSpool.open(options());
    expect(await reopened.getBody(msg.queueId)).toEqual(msg.body);
    expect((await reopened.countsByState()).queued).toBe(1);
    await reopened.close();
    expect(await raw(dir, async (db) => (await db.get('v!format'))?.toString())).toBe('1');
  });

  it('refuses a spool of a newer format version, naming the version found and the one supported', async () => {
    await (await LevelSpool.open(options())).close();
    await raw(dir, (db) => db.put('v!format', Buffer.from('2')));

    const err = await openError(LevelSpool.open(options()));
    expect(isRelayError(err, 'ONWARD_ERR_SPOOL_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/format version "2"; this onward supports version 1/);
    // Refused without holding the lock or rewriting the key.
    expect(await raw(dir, async (db) => (await db.get('v!format'))?.toString())).toBe('2');
  });
});

describe('classic-level private API guard', () => {
  it('passes with the classic-level installed here', () => {
    const found = installedClassicLevel();
    expect(found.installed).toMatch(/^\d+\.\d+\.\d+/);
    const db = new ClassicLevel(join(tmpdir(), 'onward-guard-never-opened'));
    expect(classicLevelMismatch({ ...found, db })).toBeNull();
  });

  it('refuses another version and a database without the expected _batch, saying what to do', () => {
    const err = classicLevelMismatch({ pinned: '^3.0.0', installed: '3.1.0', db: {} });
    expect(err?.code).toBe('ONWARD_ERR_DEPENDENCY_MISMATCH');
    expect(err?.message).toContain('pins classic-level ^3.0.0, but 3.1.0 is installed');
    expect(err?.message).toContain('no _batch method (found undefined)');
    expect(err?.message).toContain('npm ci');
  });

  it("refuses abstract-level's inherited no-op _batch and one of another arity, even at the pinned version", () => {
    const abstractOnly = Object.create(Object.getPrototypeOf(ClassicLevel.prototype) as object) as object;
    expect(classicLevelMismatch({ pinned: '3.0.0', installed: '3.0.0', db: abstractOnly })?.message).toContain("abstract-level's no-op default");
    const oneArgument = { _batch: (operations: unknown): unknown => operations };
    expect(classicLevelMismatch({ pinned: '3.0.0', installed: '3.0.0', db: oneArgument })?.message).toContain('_batch takes 1 arguments, not 2');
    expect(classicLevelMismatch({ pinned: '3.0.0', installed: '3.0.0', db: new ClassicLevel(join(tmpdir(), 'x')) })).toBeNull();
  });
});
