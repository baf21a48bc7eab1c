import type { CommandModule } from 'yargs';
import { configJsonSchema } from '../config/index.js';

export const configSchemaCommand: CommandModule = {
  command: 'config-schema',
  describe: 'print the JSON Schema of the config file (for editors)',
  handler: () => {
    process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
  },
};
