import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { checkConfigCommand } from './check-config.js';
import { configSchemaCommand } from './config-schema.js';
import { dkimRecordCommand } from './dkim-record.js';
import { hashPasswordCommand } from './hash-password.js';
import { sendCommand } from './send.js';
import { serveCommand } from './serve.js';
import { spoolCommand } from './spool.js';
import { versionCommand } from './version.js';

/** bin/onward: parse, dispatch to a command module, exit with its code. */
await yargs(hideBin(process.argv))
  .scriptName('onward')
  .option('config', { type: 'string', describe: 'config file (default $ONWARD_CONFIG, then ./config/onward.yaml)' })
  .command(serveCommand)
  .command(checkConfigCommand)
  .command(configSchemaCommand)
  .command(dkimRecordCommand)
  .command(spoolCommand)
  .command(sendCommand)
  .command(hashPasswordCommand)
  .command(versionCommand)
  .demandCommand(1, 'name a command')
  .strict()
  .fail((msg, err) => {
    process.stderr.write(`onward: ${err?.message ?? msg}\n`);
    process.exit(1);
  })
  .version(false)
  .help()
  .parseAsync();
