import type { CommandModule } from 'yargs';
import { describeConfig, resolveConfigPath } from '../config/index.js';
import { loadConfigOrExit, type GlobalArgs } from './common.js';

export const checkConfigCommand: CommandModule<GlobalArgs, GlobalArgs> = {
  command: 'check-config',
  describe: 'validate the config and print the resolved listeners, targets and routes',
  handler: (args) => {
    const config = loadConfigOrExit(args);
    process.stdout.write(`config ${resolveConfigPath(args.config)} is valid\n${describeConfig(config)}\n`);
  },
};
