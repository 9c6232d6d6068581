/**
 * Outgoing mail. With SMTP configured it goes through nodemailer; without,
 * each message is written to `data/outbox/` as an .eml file and logged, so a
 * single-machine install can still reset a password.
 */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}

export interface Mailer {
  send(message: MailMessage): Promise<void>;
  close(): Promise<void>;
}
