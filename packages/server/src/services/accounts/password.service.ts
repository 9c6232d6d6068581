/**
 * Changing a password (knowing the current one) and resetting a forgotten
 * one by e-mail. A reset signs out every session; a change signs out every
 * other session unless the user asks to keep them. Both are audited and
 * mailed to the user.
 *
 * "Forgot password" answers the same, at the same speed, whether or not the
 * login exists: the lookup and the mail happen after the answer.
 */
import { CofferError } from '@coffer/protocol';
import { passwordResetRepository } from '../../repositories/password-reset.repository.ts';
import { userRepository } from '../../repositories/user.repository.ts';
import type { ServiceDeps } from '../context.ts';
import { normalizeUsername, type UserService } from '../user.service.ts';
import type { AccountNotices } from './account-notices.ts';
import type { AuditService, Origin } from './audit.service.ts';
import { checkPassword, hashPassword, verifyPassword } from './password-policy.ts';
import { hashSecret, newSecret } from './secrets.ts';
import type { SessionService } from './session.service.ts';
import { signInKeys } from './sign-in.service.ts';
import { POLICIES, type ThrottleService } from './throttle.service.ts';

export const RESET_TTL_MS = 30 * 60_000;

export interface PasswordCollaborators {
  users: UserService;
  sessions: SessionService;
  throttle: ThrottleService;
  audit: AuditService;
  notices: AccountNotices;
}

export class PasswordService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly c: PasswordCollaborators;
  private readonly onError: (err: unknown) => void;
  /** Reset requests being processed after their answer (tests and shutdown wait for them). */
  private readonly background = new Set<Promise<void>>();
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, collaborators: PasswordCollaborators, onError: (err: unknown) => void = () => {}) {
    this.deps = deps;
    this.c = collaborators;
    this.onError = onError;
  }

  /** Returns how many other sessions were signed out. */
  async change(userId: string, currentSessionId: string | undefined, current: string, next: string, keepOtherSessions: boolean, origin: Origin): Promise<number> {
    const user = await this.c.users.findById(userId);
    if (!user) throw new CofferError('UNAUTHENTICATED');
    const keys = [{ key: `password:user:${userId}`, policy: POLICIES.account }];
    await this.c.throttle.attempt(keys);
    if (!(await verifyPassword(user.password_hash, current))) {
      await this.c.audit.record({ userId, type: 'signin.failure', origin, sessionId: currentSessionId, detail: { reason: 'password change: wrong current password' } });
      throw new CofferError('WRONG_CREDENTIALS', 'The current password is wrong.');
    }
    await this.c.throttle.succeeded(keys);
    checkPassword(next, user.username);
    await userRepository.setPasswordHash(this.deps.db, userId, await hashPassword(next), this.deps.clock.now());
    const signedOut = keepOtherSessions ? [] : await this.c.sessions.revokeAll(userId, 'password changed', currentSessionId);
    await this.c.audit.record({ userId, type: 'password.changed', origin, sessionId: currentSessionId, detail: { otherSessionsSignedOut: signedOut.length } });
    this.c.notices.passwordChanged(user, 'changed', signedOut.length ? `${signedOut.length} other session(s) were signed out.` : 'Your other sessions stay signed in.');
    return signedOut.length;
  }

  /** Starts a reset. Throttled per login and per IP; otherwise answers the same for every login. */
  async forgot(login: string, origin: Origin): Promise<void> {
    await this.c.throttle.attempt([
      { key: `reset:login:${normalizeUsername(login).trim()}`, policy: POLICIES.account },
      { key: `reset:ip:${origin.ip ?? '-'}`, policy: POLICIES.ip },
    ]);
    const work = this.sendResetLink(login, origin).catch((err) => this.onError(err)).finally(() => this.background.delete(work));
    this.background.add(work);
  }

  /** Sets a new password with a reset link's token; signs out every session. */
  async reset(token: string, password: string, origin: Origin): Promise<void> {
    await this.c.throttle.attempt([{ key: `reset-token:ip:${origin.ip ?? '-'}`, policy: POLICIES.ip }]);
    const hash = hashSecret(token);
    const row = await passwordResetRepository.find(this.deps.db, hash);
    const now = this.deps.clock.now();
    if (!row || row.used_at !== null || row.expires_at <= now) throw new CofferError('INVALID_RESET_TOKEN');
    const user = await this.c.users.findById(row.user_id);
    if (!user) throw new CofferError('INVALID_RESET_TOKEN');
    checkPassword(password, user.username); // before spending the link, so a weak choice can be corrected
    if (!(await passwordResetRepository.use(this.deps.db, hash, now))) throw new CofferError('INVALID_RESET_TOKEN');
    await userRepository.setPasswordHash(this.deps.db, user.id, await hashPassword(password), now);
    const signedOut = await this.c.sessions.revokeAll(user.id, 'password reset');
    // The owner proved control of the mailbox: guessing on the account stops mattering.
    for (const k of signInKeys(user.id, origin)) if (k.policy === POLICIES.account) await this.c.throttle.clear(k.key);
    await this.c.audit.record({ userId: user.id, type: 'password.reset', origin, detail: { sessionsSignedOut: signedOut.length } });
    this.c.notices.passwordChanged(user, 'reset', 'Every session was signed out.');
  }

  /** Waits for reset requests still being processed. */
  async settled(): Promise<void> {
    await Promise.all([...this.background]);
  }

  private async sendResetLink(login: string, origin: Origin): Promise<void> {
    const user = await this.c.users.findByLogin(login);
    if (!user) return;
    await this.c.audit.record({ userId: user.id, type: 'password.reset_requested', origin, detail: { mailed: user.email !== null } });
    if (!user.email) return;
    const token = newSecret('cfw');
    const now = this.deps.clock.now();
    await this.deps.db.transaction().execute(async (trx) => {
      await passwordResetRepository.voidUnused(trx, user.id, now);
      await passwordResetRepository.insert(trx, { token_hash: hashSecret(token), user_id: user.id, created_at: now, expires_at: now + RESET_TTL_MS, used_at: null });
    });
    this.c.notices.resetLink(user, token, RESET_TTL_MS / 60_000);
  }
}
