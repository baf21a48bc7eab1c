// The messages the load submits: deterministic per-index plans (recipients over both domains,
// `reject-*` recipients, poison, resubmissions), their raw bytes, and what the relay should do
// with each recipient. A plan also carries the client-side ledger fields of its message.
import { rngStream } from './random.mjs';

export const HOOKS = 'hooks.test';
export const MX = 'mx.test';
const REJECT_SHARE = 0.03; // of recipients
const RESUBMIT_SHARE = 0.04; // of messages
const POISON_SHARE = 0.004; // of messages: the relay must refuse these (5xx)
export const MAX_MESSAGE_SIZE = 64 * 1024;

/** Deterministic per-index message plans (the raw bytes are built on demand). */
export class MessagePlans {
  constructor(seed, size) {
    this.seed = seed;
    this.size = size;
    this.rng = rngStream(seed, 'messages');
    this.list = [];
  }

  get(i) {
    while (this.list.length <= i) this.list.push(this.plan(this.list.length));
    return this.list[i];
  }

  plan(i) {
    const r = this.rng;
    const n = 1 + Math.floor(r() * 3);
    const rcpts = [];
    for (let j = 0; j < n; j++) {
      const domain = r() < 0.5 ? HOOKS : MX;
      const reject = r() < REJECT_SHARE;
      rcpts.push(`${reject ? 'reject-' : ''}r${j}.${i}@${domain}`);
    }
    const poisonRoll = r();
    const poison = poisonRoll < POISON_SHARE ? (poisonRoll < POISON_SHARE / 2 ? 'oversize' : 'bare-lf') : null;
    const resubmit = poison === null && r() < RESUBMIT_SHARE;
    return {
      i,
      marker: `chaos-${this.seed}-${i}`,
      messageId: `chaos.${this.seed}.${i}@client.test`,
      sender: `app${i % 7}@client.test`,
      rcpts,
      poison,
      resubmit,
      // ledger
      tries: 0,
      sent: false,
      state: 'pending', // pending | acked | refused | gaveup
      queueId: null,
      uncertain: 0, // tries whose outcome is unknown (connection lost after the final dot)
      definite: 0, // tries answered 4xx/5xx
      lastReply: null,
      resubmitted: false,
    };
  }

  raw(m) {
    const head = [
      'From: Chaos <chaos@client.test>',
      `To: ${m.rcpts.join(', ')}`,
      `Subject: chaos ${m.i}`,
      `Message-ID: <${m.messageId}>`,
      `X-Chaos-Id: ${m.marker}`,
      'Date: Fri, 27 Nov 2026 11:15:01 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
      '',
      '',
    ].join('\r\n');
    const line = `chaos ${m.marker}: the quick brown fox jumps over the lazy dog 0123456789\r\n`;
    const target = m.poison === 'oversize' ? MAX_MESSAGE_SIZE + 16 * 1024 : this.size;
    const parts = [head];
    let length = head.length;
    if (m.poison === 'bare-lf') {
      const bad = 'this line ends in a bare LF\nand this one too\r\n';
      parts.push(bad);
      length += bad.length;
    }
    while (length + line.length <= target) {
      parts.push(line);
      length += line.length;
    }
    return Buffer.from(parts.join(''), 'latin1');
  }
}

/** What the relay should do with each recipient of an accepted message: `delivered` at a sink, or `bounced`. */
export function expectedOutcomes(m) {
  const hooksReject = m.rcpts.some((a) => a.endsWith(`@${HOOKS}`) && a.startsWith('reject-'));
  return m.rcpts.map((address) => {
    const hooks = address.endsWith(`@${HOOKS}`);
    // HTTP answers for the whole delivery: one reject- recipient makes the hooks delivery FAIL.
    const bounced = hooks ? hooksReject : address.startsWith('reject-');
    return { address, sink: hooks ? 'http' : 'smtp', outcome: bounced ? 'bounced' : 'delivered' };
  });
}
