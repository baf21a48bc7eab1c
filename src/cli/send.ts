import { readFileSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import { EXIT, fail, loadConfigOrExit, type GlobalArgs } from './common.js';

interface SendArgs extends GlobalArgs {
  readonly from?: string;
  readonly to: string[];
  readonly subject: string;
  readonly body: string;
  readonly file?: string;
}

/** Submits a test message to the first configured listener and prints the reply. */
export const sendCommand: CommandModule<GlobalArgs, SendArgs> = {
  command: 'send',
  describe: 'submit a test message to the running relay and print its reply',
  builder: (y) =>
    y.options({
      from: { type: 'string', describe: 'envelope and header sender (default onward-test@<hostname>)' },
      to: { type: 'string', array: true, demandOption: true, describe: 'recipient (repeatable)' },
      subject: { type: 'string', default: 'onward test message' },
      body: { type: 'string', default: 'Hello from onward send.\n' },
      file: { type: 'string', describe: 'send this RFC 5322 file as is instead of composing one' },
    }),
  handler: async (args) => {
    const config = loadConfigOrExit(args);
    const listener = config.listen[0];
    if (!listener) fail('no listener configured', EXIT.user);
    const host = listener.host === '0.0.0.0' ? '127.0.0.1' : listener.host === '::' ? '::1' : listener.host;
    const from = args.from ?? `onward-test@${config.hostname}`;
    const { default: nodemailer } = await import('nodemailer');
    const transport = nodemailer.createTransport({
      host,
      port: listener.port,
      secure: listener.implicitTls,
      tls: { rejectUnauthorized: false },
      connectionTimeout: 5000,
    });
    try {
      const info: { response: string; messageId: string } = await transport.sendMail(
        args.file
          ? { envelope: { from, to: args.to }, raw: readFileSync(args.file) }
          : { from, to: args.to, subject: args.subject, text: args.body },
      );
      process.stdout.write(`${info.response}\n`);
    } catch (err) {
      const e = err as { response?: string; code?: string; message?: string };
      process.stderr.write(`onward: ${e.response ?? e.message ?? String(err)}\n`);
      process.exitCode = e.response ? EXIT.user : EXIT.unavailable;
    } finally {
      transport.close();
    }
  },
};
