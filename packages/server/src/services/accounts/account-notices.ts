/**
 * The mails the accounts services send: password reset links, and notices
 * of security events a user should know about even if they did not cause
 * them. Sending never blocks or fails the action; failures are logged.
 */
import type { Mailer } from '../../mail/mailer.ts';

export interface NoticeTarget {
  username: string;
  email: string | null;
}

export class AccountNotices {
  private readonly mailer: Mailer;
  private readonly publicUrl: () => string;
  private readonly onError: (err: unknown) => void;
  /** Sends in flight, so shutdown and tests can wait for them. */
  private readonly pending = new Set<Promise<void>>();
  constructor(mailer: Mailer, publicUrl: () => string, onError: (err: unknown) => void = () => {}) {
    this.mailer = mailer;
    this.publicUrl = () => publicUrl().replace(/\/+$/, '');
    this.onError = onError;
  }

  resetLink(user: NoticeTarget, token: string, validMinutes: number): void {
    this.send(user, 'Reset your Coffer password', [
      `Someone (hopefully you) asked to reset the password of the Coffer account "${user.username}".`,
      '', `To choose a new password, open this link within ${validMinutes} minutes:`,
      `${this.publicUrl()}/reset-password#token=${token}`,
      '', 'The link works once. If you did not ask for it, ignore this mail: your password stays as it is.',
    ]);
  }

  passwordChanged(user: NoticeTarget, how: 'changed' | 'reset', signedOut: string): void {
    this.send(user, `Your Coffer password was ${how}`, [
      `The password of your Coffer account "${user.username}" was just ${how}. ${signedOut}`,
      '', 'If this was not you, reset your password now and review your devices and the security log.',
    ]);
  }

  newDevice(user: NoticeTarget, device: { name: string; ip: string | null }): void {
    this.send(user, 'New sign-in to your Coffer account', [
      `Your Coffer account "${user.username}" was just signed in to from a new device: ${device.name}${device.ip ? ` (IP ${device.ip})` : ''}.`,
      '', 'If this was not you, sign that device out from your devices list and change your password.',
    ]);
  }

  twoFactorChanged(user: NoticeTarget, on: boolean): void {
    this.send(user, `Two-factor authentication turned ${on ? 'on' : 'off'}`, [
      `Two-factor authentication was just turned ${on ? 'on' : 'off'} for your Coffer account "${user.username}".`,
      '', 'If this was not you, reset your password now.',
    ]);
  }

  /** Resolves when every mail started so far was handed over (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.pending]);
  }

  private send(user: NoticeTarget, subject: string, lines: string[]): void {
    if (!user.email) return;
    const p = this.mailer.send({ to: user.email, subject, text: lines.join('\n') + '\n' })
      .catch((err) => this.onError(err))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }
}
