import { createTransport, type Transporter } from 'nodemailer';
import type { MailMessage, Mailer } from './mailer.ts';

/** Sends through an SMTP server given as smtp://user:pass@host:port (smtps:// for implicit TLS). */
export class SmtpMailer implements Mailer {
  private readonly transport: Transporter;
  private readonly from: string;
  constructor(smtpUrl: string, from: string) {
    this.transport = createTransport(smtpUrl);
    this.from = from;
  }
  async send(m: MailMessage): Promise<void> {
    await this.transport.sendMail({ from: this.from, to: m.to, subject: m.subject, text: m.text });
  }
  async close(): Promise<void> {
    this.transport.close();
  }
}
