/**
 * Sign-in: password (throttled), then the second factor when the account
 * has one, then a session on a device. A session exists only after the
 * second step; between the two the client holds a single-use challenge
 * that authenticates nothing else.
 *
 * The answer never tells whether an account exists: an unknown login is
 * checked against a dummy argon2 hash (comparable time) and refused with
 * the same code and message as a wrong password.
 */
import { randomBytes } from 'node:crypto';
import { CofferError } from '@coffer/protocol';
import { mfaRepository } from '../../repositories/mfa.repository.ts';
import type { UserRow } from '../../repositories/user.repository.ts';
import type { ServiceDeps } from '../context.ts';
import { normalizeUsername, type UserService } from '../user.service.ts';
import type { AccountNotices } from './account-notices.ts';
import type { AuditService, Origin } from './audit.service.ts';
import { mfaThrottleKeys, type MfaService, type SecondFactor } from './mfa.service.ts';
import { hashPassword, verifyPassword } from './password-policy.ts';
import { hashSecret, newSecret } from './secrets.ts';
import type { IssuedSession, SessionService } from './session.service.ts';
import { POLICIES, type ThrottleKey, type ThrottleService } from './throttle.service.ts';

const CHALLENGE_TTL_MS = 5 * 60_000;

export interface SignInRequest {
  login: string;
  password: string;
  client: 'browser' | 'sync';
  /** "Keep me signed in" (browsers). Without it the session ends with the browser and after a short idle time. */
  remember?: boolean;
  deviceName?: string;
  platform?: string;
  deviceKey?: string;
}

export type SignInOutcome =
  | { kind: 'session'; session: IssuedSession; user: UserRow }
  | { kind: 'mfa'; challenge: string; expiresAt: number };

export interface SignInCollaborators {
  users: UserService;
  sessions: SessionService;
  mfa: MfaService;
  throttle: ThrottleService;
  audit: AuditService;
  notices: AccountNotices;
}

let dummyHash: Promise<string> | undefined;

export class SignInService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly c: SignInCollaborators;
  private readonly opts: { require2fa: boolean; allowSignup: boolean };
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, collaborators: SignInCollaborators, opts: { require2fa: boolean; allowSignup: boolean }) {
    this.deps = deps;
    this.c = collaborators;
    this.opts = opts;
  }

  async signIn(req: SignInRequest, origin: Origin): Promise<SignInOutcome> {
    const user = await this.c.users.findByLogin(req.login);
    const keys = signInKeys(user?.id ?? `login:${normalizeUsername(req.login)}`, origin);
    try {
      await this.c.throttle.attempt(keys);
    } catch (e) {
      if (user) await this.c.audit.record({ userId: user.id, type: 'signin.throttled', origin });
      throw e;
    }
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const ok = await verifyPassword(user?.password_hash ?? (await dummyHash), req.password);
    if (!user || !ok) {
      await this.c.audit.record({ userId: user?.id ?? null, type: 'signin.failure', origin, detail: { login: req.login.slice(0, 254), reason: 'password' } });
      throw new CofferError('WRONG_CREDENTIALS');
    }
    await this.c.throttle.succeeded(keys);
    if (user.totp_secret) {
      const challenge = newSecret('cfc');
      const now = this.deps.clock.now();
      await mfaRepository.insertChallenge(this.deps.db, {
        hash: hashSecret(challenge), user_id: user.id, request: JSON.stringify({ ...req, password: undefined }), created_at: now, expires_at: now + CHALLENGE_TTL_MS,
      });
      return { kind: 'mfa', challenge, expiresAt: now + CHALLENGE_TTL_MS };
    }
    return this.finish(user, req, origin);
  }

  /** The second step: a TOTP code or a recovery code for the challenge the first step gave out. */
  async completeMfa(challenge: string, factor: SecondFactor, origin: Origin): Promise<SignInOutcome> {
    const hash = hashSecret(challenge);
    const row = await mfaRepository.findChallenge(this.deps.db, hash);
    if (!row || row.expires_at <= this.deps.clock.now()) throw new CofferError('UNAUTHENTICATED', 'This sign-in has expired; enter your password again.');
    const user = await this.c.users.findById(row.user_id);
    if (!user) throw new CofferError('UNAUTHENTICATED', 'This sign-in has expired; enter your password again.');
    const keys = mfaThrottleKeys(user.id, origin);
    await this.c.throttle.attempt(keys);
    if (!(await this.c.mfa.verify(user, factor, origin))) {
      await this.c.audit.record({ userId: user.id, type: 'mfa.failure', origin });
      throw new CofferError('WRONG_MFA_CODE');
    }
    await this.c.throttle.succeeded(keys);
    if (!(await mfaRepository.takeChallenge(this.deps.db, hash))) throw new CofferError('UNAUTHENTICATED', 'This sign-in was already completed.');
    return this.finish(user, JSON.parse(row.request) as SignInRequest, origin);
  }

  /** Open sign-up, when the server allows it. The new user then signs in. */
  async signUp(input: { username: string; password: string; email?: string }, origin: Origin): Promise<UserRow> {
    if (!this.opts.allowSignup) throw new CofferError('SIGNUP_DISABLED');
    await this.c.throttle.attempt([{ key: `signup:ip:${origin.ip ?? '-'}`, policy: POLICIES.account }]);
    const user = await this.c.users.create(input);
    await this.c.audit.record({ userId: user.id, type: 'signup', origin });
    return user;
  }

  private async finish(user: UserRow, req: SignInRequest, origin: Origin): Promise<SignInOutcome> {
    const session = await this.c.sessions.issue(user.id,
      { kind: req.client, name: req.deviceName, platform: req.platform, deviceKey: req.deviceKey },
      { remember: req.remember, origin, mfaEnrollmentRequired: this.opts.require2fa && !user.totp_secret });
    await this.c.audit.record({ userId: user.id, type: 'signin.success', origin, deviceId: session.deviceId, sessionId: session.sessionId, detail: { client: req.client } });
    if (session.newDevice) {
      await this.c.audit.record({ userId: user.id, type: 'signin.new_device', origin, deviceId: session.deviceId, sessionId: session.sessionId, detail: { name: session.deviceName } });
      this.c.notices.newDevice(user, { name: session.deviceName, ip: origin.ip });
    }
    return { kind: 'session', session, user };
  }
}

export function signInKeys(account: string, origin: Origin): ThrottleKey[] {
  return [{ key: `signin:user:${account}`, policy: POLICIES.account }, { key: `signin:ip:${origin.ip ?? '-'}`, policy: POLICIES.ip }];
}
