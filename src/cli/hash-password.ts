import { randomBytes } from 'node:crypto';
import type { CommandModule } from 'yargs';

/** Reads a password on stdin (one line) and prints a scrypt hash for `relay.users[].password`. */
export const hashPasswordCommand: CommandModule = {
  command: 'hash-password',
  describe: 'read a password on stdin and print a scrypt hash for relay.users',
  handler: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
    if (password === '') {
      process.stderr.write('onward: no password on stdin\n');
      process.exitCode = 1;
      return;
    }
    const { hashPassword } = await import('../smtp/auth.js');
    process.stdout.write(`${await hashPassword(password, randomBytes(16))}\n`);
  },
};
