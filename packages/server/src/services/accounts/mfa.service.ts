/**
 * Two-factor authentication: TOTP (RFC 6238, the 6-digit codes of any
 * authenticator app) and ten single-use recovery codes.
 *
 * A TOTP code is accepted once: the time step it belongs to is recorded
 * with a compare-and-set, so a replay (or the same code raced on two server
 * processes) fails. Codes one step either side of now are accepted for
 * clock drift.
 */
import { Secret, TOTP } from 'otpauth';
import { CofferError } from '@coffer/protocol';
import { newId } from '../../db/ids.ts';
import { mfaRepository } from '../../repositories/mfa.repository.ts';
import { sessionRepository } from '../../repositories/session.repository.ts';
import { userRepository, type UserRow } from '../../repositories/user.repository.ts';
import type { ServiceDeps } from '../context.ts';
import type { AuditService, Origin } from './audit.service.ts';
import { hashSecret, newRecoveryCode, normalizeRecoveryCode } from './secrets.ts';
import { POLICIES, type ThrottleKey, type ThrottleService } from './throttle.service.ts';

export const RECOVERY_CODE_COUNT = 10;
const PERIOD_S = 30;
const ISSUER = 'Coffer';

export interface SecondFactor {
  code?: string;
  recoveryCode?: string;
}

/** Guessing second factors is throttled per user and per IP, wherever a code is checked. */
export function mfaThrottleKeys(userId: string, origin: Origin): ThrottleKey[] {
  return [{ key: `mfa:user:${userId}`, policy: POLICIES.account }, { key: `mfa:ip:${origin.ip ?? '-'}`, policy: POLICIES.ip }];
}

function totpFor(secret: string, username: string): TOTP {
  return new TOTP({ issuer: ISSUER, label: username, algorithm: 'SHA1', digits: 6, period: PERIOD_S, secret: Secret.fromBase32(secret) });
}

export class MfaService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly audit: AuditService;
  private readonly opts: { require2fa: boolean };
  private readonly throttle: ThrottleService | undefined;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, audit: AuditService, opts: { require2fa?: boolean; throttle?: ThrottleService } = {}) {
    this.deps = deps;
    this.audit = audit;
    this.opts = { require2fa: opts.require2fa === true };
    this.throttle = opts.throttle;
  }

  async status(userId: string): Promise<{ enabled: boolean; recoveryCodesLeft: number }> {
    const user = await this.user(userId);
    return { enabled: user.totp_secret !== null, recoveryCodesLeft: user.totp_secret ? await mfaRepository.unusedRecoveryCodes(this.deps.db, userId) : 0 };
  }

  /** Starts setup: a fresh secret for the authenticator app, active only once `enable` sees a code from it. */
  async setup(userId: string): Promise<{ secret: string; otpauthUri: string; issuer: string; account: string; digits: number; period: number; algorithm: string }> {
    const user = await this.user(userId);
    if (user.totp_secret) throw new CofferError('MFA_ALREADY_ENABLED');
    const secret = new Secret({ size: 20 }).base32;
    await userRepository.update(this.deps.db, userId, { totp_pending_secret: secret });
    return { secret, otpauthUri: totpFor(secret, user.username).toString(), issuer: ISSUER, account: user.username, digits: 6, period: PERIOD_S, algorithm: 'SHA1' };
  }

  /** Turns 2FA on with the first code from the app; returns the recovery codes, shown this once. */
  async enable(userId: string, code: string, origin: Origin, sessionId?: string): Promise<string[]> {
    const user = await this.user(userId);
    if (user.totp_secret) throw new CofferError('MFA_ALREADY_ENABLED');
    if (!user.totp_pending_secret) throw new CofferError('MFA_NOT_ENABLED', 'Start the setup first (POST /api/v1/account/2fa/setup).');
    const step = this.matchingStep(user.totp_pending_secret, user.username, code);
    if (step === null) throw new CofferError('WRONG_MFA_CODE');
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await this.deps.db.transaction().execute(async (trx) => {
      await userRepository.update(trx, userId, { totp_secret: user.totp_pending_secret, totp_pending_secret: null, totp_last_step: step });
      await mfaRepository.replaceRecoveryCodes(trx, userId, codes.map((c) => ({ id: newId(), code_hash: hashSecret(normalizeRecoveryCode(c)) })), this.deps.clock.now());
      await sessionRepository.setEnrollmentDone(trx, userId);
      await this.audit.record({ userId, type: 'mfa.enabled', origin, sessionId }, trx);
    });
    return codes;
  }

  /** Turns 2FA off; needs a current code or a recovery code. Where 2FA is required, the user's sessions are then restricted to enrolling again. */
  async disable(userId: string, factor: SecondFactor, origin: Origin, sessionId?: string): Promise<void> {
    const user = await this.user(userId);
    if (!user.totp_secret) throw new CofferError('MFA_NOT_ENABLED');
    await this.verifyForChange(user, factor, origin, sessionId);
    await this.deps.db.transaction().execute(async (trx) => {
      await userRepository.update(trx, userId, { totp_secret: null, totp_pending_secret: null, totp_last_step: null });
      await mfaRepository.replaceRecoveryCodes(trx, userId, [], this.deps.clock.now());
      if (this.opts.require2fa) await sessionRepository.setEnrollmentRequired(trx, userId);
      await this.audit.record({ userId, type: 'mfa.disabled', origin, sessionId }, trx);
    });
  }

  /** A new set of recovery codes; the old set stops working. Needs a current code (or a recovery code). */
  async regenerateRecoveryCodes(userId: string, factor: SecondFactor, origin: Origin, sessionId?: string): Promise<string[]> {
    const user = await this.user(userId);
    if (!user.totp_secret) throw new CofferError('MFA_NOT_ENABLED');
    await this.verifyForChange(user, factor, origin, sessionId);
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    await this.deps.db.transaction().execute(async (trx) => {
      await mfaRepository.replaceRecoveryCodes(trx, userId, codes.map((c) => ({ id: newId(), code_hash: hashSecret(normalizeRecoveryCode(c)) })), this.deps.clock.now());
      await this.audit.record({ userId, type: 'mfa.recovery_codes_regenerated', origin, sessionId }, trx);
    });
    return codes;
  }

  /** Checks a second factor and spends it (a TOTP step or a recovery code works once). */
  async verify(user: UserRow, factor: SecondFactor, origin: Origin): Promise<boolean> {
    if (!user.totp_secret) return false;
    if (factor.code !== undefined) {
      const step = this.matchingStep(user.totp_secret, user.username, factor.code);
      return step !== null && (await mfaRepository.useTotpStep(this.deps.db, user.id, step));
    }
    if (factor.recoveryCode !== undefined) {
      const ok = await mfaRepository.useRecoveryCode(this.deps.db, user.id, hashSecret(normalizeRecoveryCode(factor.recoveryCode)), this.deps.clock.now());
      if (ok) await this.audit.record({ userId: user.id, type: 'mfa.recovery_code_used', origin, detail: { left: await mfaRepository.unusedRecoveryCodes(this.deps.db, user.id) } });
      return ok;
    }
    return false;
  }

  /** A second factor a signed-in user gives to change 2FA: throttled and audited like the sign-in step, so a stolen session cannot guess codes. */
  private async verifyForChange(user: UserRow, factor: SecondFactor, origin: Origin, sessionId?: string): Promise<void> {
    const keys = mfaThrottleKeys(user.id, origin);
    await this.throttle?.attempt(keys);
    if (!(await this.verify(user, factor, origin))) {
      await this.audit.record({ userId: user.id, type: 'mfa.failure', origin, sessionId });
      throw new CofferError('WRONG_MFA_CODE');
    }
    await this.throttle?.succeeded(keys);
  }

  /** The time step a code belongs to (now, or one step either side), or null. */
  private matchingStep(secret: string, username: string, code: string): number | null {
    if (!/^\d{6}$/.test(code.trim())) return null;
    const now = this.deps.clock.now();
    const delta = totpFor(secret, username).validate({ token: code.trim(), timestamp: now, window: 1 });
    return delta === null ? null : Math.floor(now / 1000 / PERIOD_S) + delta;
  }

  private async user(userId: string): Promise<UserRow> {
    const user = await userRepository.findById(this.deps.db, userId);
    if (!user) throw new CofferError('UNAUTHENTICATED');
    return user;
  }
}
