/**
 * A real SMTP server for tests (the `smtp-server` package) on 127.0.0.1 and
 * a random port: no AUTH, no STARTTLS, every message accepted, parsed just
 * enough to read (To, Subject, the plain-text body, with quoted-printable,
 * base64 and RFC 2047 undone) and kept in arrival order. Every wait is
 * bounded.
 */
import { SMTPServer } from 'smtp-server';
import type { AddressInfo } from 'node:net';

export interface SunkMail {
  /** Envelope recipients (RCPT TO), lower-cased. */
  to: string[];
  /** The To: header as sent. */
  toHeader: string;
  from: string;
  subject: string;
  text: string;
  raw: string;
  at: number;
}

export interface SmtpSink {
  port: number;
  /** smtp://127.0.0.1:<port> (plain, no TLS). */
  url: string;
  messages: SunkMail[];
  /** The first message (from index `from`) that matches; throws after timeoutMs. */
  waitFor(match: (m: SunkMail) => boolean, timeoutMs?: number, from?: number): Promise<SunkMail>;
  /** Messages that match, now. */
  find(match: (m: SunkMail) => boolean): SunkMail[];
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: SunkMail[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    hideSTARTTLS: true,
    logger: false,
    size: 10 * 1024 * 1024,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', callback);
      stream.on('end', () => {
        try {
          const raw = Buffer.concat(chunks).toString('utf8');
          messages.push(parseMail(raw, session.envelope.rcptTo.map((r) => r.address.toLowerCase())));
          for (const w of [...waiters]) w();
          callback();
        } catch (e) {
          callback(e as Error);
        }
      });
    },
  });
  server.on('error', () => {}); // a client hanging up mid-session is not the test's business
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = ((server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  return {
    port, url: `smtp://127.0.0.1:${port}`, messages,
    find: (match) => messages.filter(match),
    waitFor(match, timeoutMs = 5_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = messages.slice(from).find(match);
          if (m) { done(); resolve(m); }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching mail within ${timeoutMs} ms; got ${JSON.stringify(messages.map((m) => ({ to: m.to, subject: m.subject })))}`));
        }, timeoutMs);
        const done = () => { clearTimeout(timer); waiters.delete(check); };
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Enough of RFC 5322/2045 for the single-part text mails a server sends. */
export function parseMail(raw: string, envelopeTo: string[] = []): SunkMail {
  const sep = raw.search(/\r?\n\r?\n/);
  const head = sep < 0 ? raw : raw.slice(0, sep);
  const body = sep < 0 ? '' : raw.slice(sep).replace(/^\r?\n\r?\n/, '');
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  const cte = (headers.get('content-transfer-encoding') ?? '7bit').toLowerCase();
  let text: string;
  if (cte === 'quoted-printable') text = decodeQuotedPrintable(body);
  else if (cte === 'base64') text = Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  else text = body;
  return {
    to: envelopeTo, toHeader: decodeWords(headers.get('to') ?? ''), from: decodeWords(headers.get('from') ?? ''),
    subject: decodeWords(headers.get('subject') ?? ''), text: text.replace(/\r\n/g, '\n'), raw, at: Date.now(),
  };
}

function decodeQuotedPrintable(s: string): string {
  const joined = s.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(joined.slice(i + 1, i + 3))) {
      bytes.push(parseInt(joined.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** RFC 2047 encoded words (=?utf-8?B?...?= and =?utf-8?Q?...?=). */
function decodeWords(s: string): string {
  return s.replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=(\s+(?==\?))?/g, (_m, _charset: string, enc: string, data: string) =>
    enc.toUpperCase() === 'B' ? Buffer.from(data, 'base64').toString('utf8') : decodeQuotedPrintable(data.replace(/_/g, ' ')));
}
