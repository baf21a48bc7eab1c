import type { CommandModule } from 'yargs';
import type { Config } from '../config/index.js';
import { dkimRecord, type DkimRecord } from '../delivery/dkim.js';
import { loadConfigOrExit, type GlobalArgs } from './common.js';

interface DkimRecordArgs extends GlobalArgs {
  readonly json: boolean;
}

/** A record to publish and the targets that sign with its key. */
export interface PublishedRecord extends DkimRecord {
  readonly type: 'TXT';
  readonly targets: readonly string[];
}

export const dkimRecordCommand: CommandModule<GlobalArgs, DkimRecordArgs> = {
  command: 'dkim-record',
  describe: 'print the DNS TXT record to publish for each configured DKIM key',
  builder: (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  handler: (args) => {
    const records = dkimRecords(loadConfigOrExit(args));
    if (args.json) {
      process.stdout.write(JSON.stringify(records, null, 2) + '\n');
      return;
    }
    if (records.length === 0) {
      process.stdout.write('no DKIM keys configured\n');
      return;
    }
    const width = Math.max(4, ...records.map((r) => r.name.length));
    const lines = [`${'NAME'.padEnd(width)}  TYPE  VALUE`, ...records.map((r) => `${r.name.padEnd(width)}  TXT   ${r.value}`)];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};

/** One record per key, in config order; a key several targets share is listed once. */
export function dkimRecords(config: Config): PublishedRecord[] {
  const byRecord = new Map<string, PublishedRecord>();
  for (const target of Object.values(config.targets)) {
    if (target.type !== 'smtp' && target.type !== 'mx') continue;
    for (const key of target.dkim) {
      const record = dkimRecord(key);
      const id = `${record.name} ${record.value}`;
      const seen = byRecord.get(id);
      byRecord.set(id, { ...record, type: 'TXT', targets: [...(seen?.targets ?? []), target.name] });
    }
  }
  return [...byRecord.values()];
}
