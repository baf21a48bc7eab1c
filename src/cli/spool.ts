import type { CommandModule } from 'yargs';
import { checkId } from '../admin/check-id.js';
import { parseListArgs, type ListArgs } from '../admin/list-args.js';
import { parseBulkRequest, type BulkFilter } from '../admin/bulk.js';
import type { SpoolAction, SpoolAdmin } from '../admin/spool-admin.js';
import type { Config } from '../config/index.js';
import { RelayError } from '../errors.js';
import { EXIT, exitCodeFor, loadConfigOrExit, type GlobalArgs } from './common.js';
import { LIST_HEADER, checkText, listRow, nodesText, showText, statsText } from './format.js';
import { migrateCommand } from './spool-migrate.js';
import { openSpoolAdmin } from './spool-access.js';
import { transferCommand } from './transfer.js';

interface SpoolArgs extends GlobalArgs {
  readonly json?: boolean;
  readonly ids?: string[];
  readonly id?: string;
  readonly all?: boolean;
  readonly state?: string;
  readonly target?: string;
  readonly sender?: string;
  readonly recipient?: string;
  readonly 'older-than'?: string;
  readonly 'message-id'?: string;
  readonly 'dry-run'?: boolean;
  readonly limit?: number;
  readonly after?: string;
  readonly events?: boolean;
}

/** Opens the spool (online or offline), runs `work`, maps typed errors to SPEC exit codes. */
async function withSpool(args: SpoolArgs, work: (admin: SpoolAdmin, config: Config) => Promise<number | void>): Promise<void> {
  const config = loadConfigOrExit(args);
  let admin: SpoolAdmin | null = null;
  try {
    admin = (await openSpoolAdmin(config)).admin;
    process.exitCode = (await work(admin, config)) ?? EXIT.ok;
  } catch (err) {
    process.stderr.write(`onward: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = exitCodeFor(err);
  } finally {
    await admin?.close();
  }
}

function print(text: string): Promise<void> {
  return new Promise((resolve) => (process.stdout.write(text) ? resolve() : process.stdout.once('drain', () => resolve())));
}

const json = { json: { type: 'boolean', default: false, describe: 'one JSON document for scripts' } } as const;

const filterOptions = {
  state: { type: 'string', describe: 'queued,deferred,held,delivered,bounced,deleted or all (default: the queue)' },
  target: { type: 'string', describe: 'only messages with a delivery to this target' },
  sender: { type: 'string', describe: 'glob on the envelope sender' },
  recipient: { type: 'string', describe: 'glob on any recipient' },
  'older-than': { type: 'string', describe: 'only messages older than this (e.g. 10m)' },
  'message-id': { type: 'string', describe: 'glob on the Message-ID' },
} as const;

const stats: CommandModule<GlobalArgs, SpoolArgs> = {
  command: 'stats',
  describe: 'counts by state and target, oldest message age, spool size on disk',
  builder: (y) => y.options(json),
  handler: (args) =>
    withSpool(args, async (admin) => {
      const s = await admin.stats();
      await print(args.json ? JSON.stringify(s, null, 2) + '\n' : statsText(s) + '\n');
    }),
};

const list: CommandModule<GlobalArgs, SpoolArgs> = {
  command: 'list',
  describe: 'the queue, like mailq (finished messages with --state)',
  builder: (y) =>
    y.options({
      ...json,
      ...filterOptions,
      after: { type: 'string', describe: 'only messages listed after this queue id (the next page)' },
      limit: { type: 'number', describe: 'at most N messages' },
      events: { type: 'boolean', default: false, describe: 'list delivery events (waiting to be POSTed to events.target) instead of messages' },
    }),
  handler: (args) =>
    withSpool(args, async (admin) => {
      const listArgs: ListArgs = { ...filterOf(args), after: args.after, limit: args.limit, ...(args.events === true ? { events: true } : {}) };
      parseListArgs(listArgs); // bad options fail before anything is printed
      let count = 0;
      // Rows are written as they stream in: a huge spool starts printing at once.
      if (args.json) await print('[');
      else await print(LIST_HEADER + '\n');
      for await (const entry of admin.list(listArgs)) {
        await print(args.json ? (count > 0 ? ',\n' : '\n') + JSON.stringify(entry) : listRow(entry) + '\n');
        count += 1;
      }
      const noun = args.events === true ? 'event' : 'message';
      await print(args.json ? (count > 0 ? '\n]\n' : ']\n') : `-- ${count} ${noun}${count === 1 ? '' : 's'}\n`);
    }),
};

const show: CommandModule<GlobalArgs, SpoolArgs> = {
  command: 'show <id>',
  describe: 'envelope, headers, every delivery with every attempt and its result',
  builder: (y) => y.options(json).positional('id', { type: 'string', demandOption: true }),
  handler: (args) =>
    withSpool(args, async (admin) => {
      const view = await admin.show(String(args.id));
      await print(args.json ? JSON.stringify(view, null, 2) + '\n' : showText(view) + '\n');
    }),
};

const body: CommandModule<GlobalArgs, SpoolArgs> = {
  command: 'body <id>',
  describe: 'the raw message (RFC 5322) on stdout',
  builder: (y) => y.positional('id', { type: 'string', demandOption: true }),
  handler: (args) =>
    withSpool(args, async (admin) => {
      process.stdout.write(await admin.body(String(args.id)));
    }),
};

/** The list filters given on the command line (only those set). */
function filterOf(args: SpoolArgs): BulkFilter {
  const f: Record<string, string> = {};
  const given: [keyof BulkFilter, string | undefined][] = [
    ['state', args.state],
    ['target', args.target],
    ['sender', args.sender],
    ['recipient', args.recipient],
    ['olderThan', args['older-than']],
    ['messageId', args['message-id']],
  ];
  for (const [k, v] of given) if (v !== undefined && v !== '') f[k] = v;
  return f;
}

function actionCommand(action: SpoolAction, describe: string): CommandModule<GlobalArgs, SpoolArgs> {
  return {
    command: `${action} [ids..]`,
    describe: `${describe}; by ids, or every message the filters match`,
    builder: (y) =>
      y
        .options(json)
        .positional('ids', { type: 'string', array: true })
        .options({
          ...filterOptions,
          all: { type: 'boolean', default: false, describe: 'every message in the queue (queued, deferred, held)' },
          'dry-run': { type: 'boolean', default: false, describe: 'print how many messages would be affected; change nothing' },
        }),
    handler: (args) =>
      withSpool(args, async (admin) => {
        const ids = (args.ids ?? []).map(String);
        const filter = filterOf(args);
        const filtered = Object.keys(filter).length > 0 || args.all === true;
        if (ids.length > 0 && filtered) throw new RelayError('ONWARD_ERR_BAD_ARGS', `spool ${action}: name message ids or filters (or --all), not both`);
        if (ids.length === 0) {
          if (!filtered) {
            throw new RelayError('ONWARD_ERR_BAD_ARGS', `spool ${action}: name message ids, filters (--state --target --sender --recipient --older-than --message-id), or --all for the whole queue`);
          }
          const request = parseBulkRequest({ action, filter: args.all ? { ...filter, all: true } : filter, dryRun: args['dry-run'] === true });
          const r = await admin.bulk(request, 'cli');
          await print(
            args.json
              ? JSON.stringify(r) + '\n'
              : request.dryRun
                ? `${action} (dry run): ${r.matched} message${r.matched === 1 ? '' : 's'} would be affected\n`
                : `${action}: ${r.matched} matched, ${r.changed} changed\n`,
          );
          return;
        }
        for (const id of ids) checkId(id); // all ids valid before anything is changed
        const results: { id: string; state?: string; error?: string }[] = [];
        let code: number = EXIT.ok;
        for (const id of ids) {
          try {
            const r = await admin.act(action, id, 'cli');
            results.push(r);
            if (!args.json) await print(`${id}: ${r.state}\n`);
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            results.push({ id, error: message });
            if (!args.json) process.stderr.write(`onward: ${message}\n`);
            code = Math.max(code, exitCodeFor(err));
          }
        }
        if (args.json) await print(JSON.stringify(results, null, 2) + '\n');
        return code;
      }),
  };
}

const check: CommandModule<GlobalArgs, SpoolArgs & { repair?: boolean }> = {
  command: 'check',
  describe: "verify the spool's invariants (orphans, missing index entries, counters)",
  builder: (y) =>
    y.options({ ...json, repair: { type: 'boolean', default: false, describe: 'fix what can be fixed safely (relay stopped)' } }),
  handler: (args) =>
    withSpool(args, async (admin) => {
      if (!args.json) process.stderr.write('checking the spool…\n');
      const report = await admin.check(args.repair ?? false, (n) => process.stderr.write(`  scanned ${n} messages…\n`));
      if (args.json) await print(JSON.stringify(report, null, 2) + '\n');
      else await print(checkText(report) + '\n');
      const lost = report.counts['lost-body'] ?? 0;
      const open = report.problems.filter((p) => !p.repaired).length;
      return lost > 0 || open > 0 ? EXIT.user : EXIT.ok;
    }),
};

const nodes: CommandModule<GlobalArgs, SpoolArgs> = {
  command: 'nodes',
  describe: 'the nodes of a shared (postgres) spool: id, host, pid, version, started, last seen, alive, in flight',
  builder: (y) => y.options(json),
  handler: (args) =>
    withSpool(args, async (admin, config) => {
      const found = await admin.nodes();
      if (args.json) return print(JSON.stringify(found ?? [], null, 2) + '\n');
      if (found === null) return print(`the spool is a ${config.spool.backend} spool (${config.spool.path}), not a shared spool: it has no nodes\n`);
      return print(nodesText(found) + '\n');
    }),
};

export const spoolCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'spool <command>',
  describe: 'inspect and manage the spool (through the running relay, or directly when it is stopped)',
  builder: (y) =>
    y
      .command(stats)
      .command(list)
      .command(show)
      .command(body)
      .command(check)
      .command(nodes)
      .command(migrateCommand)
      .command(transferCommand)
      .command(actionCommand('retry', 'make deferred deliveries due now (like postqueue -i / -f)'))
      .command(actionCommand('bounce', 'give up now and send the DSN to the sender'))
      .command(actionCommand('delete', 'remove without a DSN (like postsuper -d)'))
      .command(actionCommand('hold', 'keep messages from delivery until release'))
      .command(actionCommand('release', 'let held messages go again'))
      .demandCommand(1, 'name a spool command'),
  handler: () => undefined,
};
