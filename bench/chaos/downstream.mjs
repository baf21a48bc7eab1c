// What arrived downstream, as the sinks saw it: per marker (X-Chaos-Id) and recipient, the
// copies processed and acknowledged at the HTTP / SMTP sinks, and the DSNs at the bounce sink.
// The ledger compares this with what the relay acknowledged.

/** Per marker and recipient: copies processed, copies acknowledged, the delivery keys seen. */
export class Downstream {
  constructor() {
    this.byMarker = new Map();
    this.processed = 0;
    this.acked = 0;
    this.requests = 0;
    this.faults = { error: 0, timeout: 0, drop: 0, reject: 0 };
    this.unmarked = 0;
  }

  entry(marker, address) {
    let m = this.byMarker.get(marker);
    if (!m) this.byMarker.set(marker, (m = new Map()));
    let e = m.get(address);
    if (!e) m.set(address, (e = { processed: 0, acked: 0, keys: new Set(), queueIds: new Set() }));
    return e;
  }

  process(marker, addresses, key, queueId) {
    if (!marker) {
      this.unmarked += 1;
      return [];
    }
    return addresses.map((address) => {
      const e = this.entry(marker, address);
      e.processed += 1;
      this.processed += 1;
      if (key) e.keys.add(key);
      if (queueId) e.queueIds.add(queueId);
      return e;
    });
  }

  ack(entries) {
    for (const e of entries) {
      e.acked += 1;
      this.acked += 1;
    }
  }

  distinctAcked() {
    let n = 0;
    for (const m of this.byMarker.values()) for (const e of m.values()) if (e.acked > 0) n += 1;
    return n;
  }
}

export function headerOf(text, name) {
  const re = new RegExp(`^${name}:[ \\t]*([^\\r\\n]*)`, 'im');
  return re.exec(text)?.[1]?.trim() ?? null;
}

/** The DSNs the bounce sink accepted: which recipients of which marker each reported as failed. */
export class DsnLog {
  constructor() {
    this.count = 0;
    this.byMarker = new Map(); // marker → Map(address → { ids: Set(dsn Message-ID), copies, queueIds })
    this.problems = [];
    this.unmarked = 0;
  }

  record(text, mailFrom) {
    this.count += 1;
    if (mailFrom !== '' && this.problems.length < 20) this.problems.push(`DSN with envelope sender <${mailFrom}> instead of <>`);
    const id = headerOf(text, 'Message-ID') ?? `dsn-${this.count}`;
    const marker = headerOf(text, 'X-Chaos-Id');
    const originalQueueId = headerOf(text, 'X-Onward-Queue-Id');
    const recipients = [...text.matchAll(/^Final-Recipient:\s*rfc822;\s*(\S+)\s*\r?\nAction:\s*(\S+)/gim)];
    if (!marker) {
      this.unmarked += 1;
      return;
    }
    let m = this.byMarker.get(marker);
    if (!m) this.byMarker.set(marker, (m = new Map()));
    for (const [, address, action] of recipients) {
      if (action.toLowerCase() !== 'failed') continue;
      let e = m.get(address);
      if (!e) m.set(address, (e = { ids: new Set(), copies: 0, queueIds: new Set() }));
      e.ids.add(id);
      e.copies += 1;
      if (originalQueueId) e.queueIds.add(originalQueueId);
    }
  }
}
