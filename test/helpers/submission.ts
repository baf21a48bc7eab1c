/**
 * A client for the HTTP submission front door (SPEC 10) over real sockets: JSON answers,
 * and a raw node:http request for what fetch cannot do (announce a length it never sends,
 * send a body slowly).
 */
import http from 'node:http';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: { id?: string; status?: string; messageId?: string | null; error?: { code: string; message: string; field?: string }; [key: string]: unknown };
}

export interface SubmitOptions {
  readonly key?: string | null;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: string;
}

/** One request to `http://127.0.0.1:<port><path>`; the answer's JSON parsed. */
export async function call(port: number, path: string, body: string | Buffer | null, options: SubmitOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.key) headers['authorization'] = `Bearer ${options.key}`;
  if (options.contentType) headers['content-type'] = options.contentType;
  const res = await fetch(`http://127.0.0.1:${String(port)}${path}`, {
    method: options.method ?? (body === null ? 'GET' : 'POST'),
    headers,
    ...(body !== null ? { body: typeof body === 'string' ? body : new Uint8Array(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let parsed: Answer['body'];
  try {
    parsed = JSON.parse(text) as Answer['body'];
  } catch {
    parsed = { text };
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

export function postRaw(port: number, raw: string | Buffer, options: SubmitOptions = {}): Promise<Answer> {
  return call(port, '/v1/messages', raw, { contentType: 'message/rfc822', ...options });
}

export function postJson(port: number, doc: unknown, options: SubmitOptions = {}): Promise<Answer> {
  return call(port, '/v1/messages', JSON.stringify(doc), { contentType: 'application/json', ...options });
}

/**
 * A POST whose body is written by `write` (chunks, pauses); resolves with the answer as soon
 * as it arrives, and with whether the upload had finished by then.
 */
export function postStreaming(
  port: number,
  headers: Readonly<Record<string, string>>,
  write: (req: http.ClientRequest, answered: () => boolean) => Promise<void>,
): Promise<{ status: number; body: Answer['body']; uploadDone: boolean }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    let uploadDone = false;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/messages', headers, agent: false });
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      const doneAtAnswer = uploadDone;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let body: Answer['body'];
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['body'];
        } catch {
          body = {};
        }
        resolve({ status: res.statusCode ?? 0, body, uploadDone: doneAtAnswer });
        req.destroy();
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    write(req, () => answered).then(
      () => {
        uploadDone = !answered;
        if (!answered) req.end();
      },
      (err: unknown) => {
        if (!answered) reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** What MailComposer makes of `doc` with the relay's Message-ID, Date and boundary base. */
export async function composed(doc: Record<string, unknown>, fixed: { messageId: string; date: Date; boundary: string }): Promise<Buffer> {
  const attachments = Array.isArray(doc['attachments'])
    ? (doc['attachments'] as { filename?: string; contentType?: string; content: string }[]).map((a) => ({ ...a, content: Buffer.from(a.content, 'base64') }))
    : undefined;
  const mail = { ...doc, ...(attachments ? { attachments } : {}), messageId: `<${fixed.messageId}>`, date: fixed.date, baseBoundary: fixed.boundary };
  return new MailComposer(mail).compile().build();
}

/** The message without the relay's leading Received header (its folded lines included). */
export function withoutReceived(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1');
  const m = /^Received: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*/.exec(text);
  return m ? bytes.subarray(m[0].length) : bytes;
}
