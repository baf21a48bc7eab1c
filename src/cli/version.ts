import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export const versionCommand: CommandModule = {
  command: 'version',
  describe: 'print the version',
  handler: () => {
    process.stdout.write(`onward ${packageVersion()} (node ${process.version})\n`);
  },
};
