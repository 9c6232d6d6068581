import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { MailMessage, Mailer } from './mailer.ts';

/** Writes each message as an RFC 5322 .eml file (temp name, then rename) for an admin to read or forward. */
export class OutboxMailer implements Mailer {
  private readonly dir: string;
  private readonly from: string;
  private readonly log: (msg: string, fields: Record<string, unknown>) => void;
  constructor(dir: string, from: string, log: (msg: string, fields: Record<string, unknown>) => void = () => {}) {
    this.dir = dir;
    this.from = from;
    this.log = log;
  }
  async send(m: MailMessage): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`;
    const eml = [
      `From: ${this.from}`, `To: ${m.to}`, `Subject: ${encodeHeader(m.subject)}`, `Date: ${new Date().toUTCString()}`,
      'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', m.text,
    ].join('\r\n');
    const tmp = join(this.dir, `.${name}.tmp`);
    await writeFile(tmp, eml, { mode: 0o600 });
    await rename(tmp, join(this.dir, name));
    this.log('mail written to the outbox (no SMTP configured)', { to: m.to, subject: m.subject, file: join(this.dir, name) });
  }
  async close(): Promise<void> {}
}

/** RFC 2047 for non-ASCII subjects. */
function encodeHeader(s: string): string {
  return /^[\x20-\x7e]*$/.test(s) ? s : `=?utf-8?B?${Buffer.from(s).toString('base64')}?=`;
}
