/**
 * Device login in the manner of RFC 8628 (device authorization grant): a
 * sync client that should not see the password (`coffer login` on a
 * headless machine, or simply to keep the password and second factor in the
 * browser) asks for a sign-in request, shows its user code, and polls with
 * its device code while the user approves the request on /device in a
 * signed-in browser. Approval binds the approving user; the exchange then
 * issues a sync-client session exactly like a password sign-in would, once.
 *
 * Secrets: the device code is 256 bits and stored as its SHA-256. The user
 * code is 8 letters from a 20-letter alphabet (about 34.6 bits, RFC 8628
 * §6.1), valid for a few minutes, stored as the SHA-256 of its normalized
 * form; entering it takes a signed-in session, and wrong codes are
 * throttled per account and per IP, so guessing someone else's live code is
 * hopeless. Second factor: the approving session had to pass it (a session
 * restricted to 2FA enrollment is refused by the auth hook), so the new
 * session needs none.
 */
import { randomInt } from 'node:crypto';
import { CofferError } from '@coffer/protocol';
import { deviceLoginRepository, type DeviceLoginRow } from '../../repositories/device-login.repository.ts';
import type { UserRow } from '../../repositories/user.repository.ts';
import type { Principal, ServiceDeps } from '../context.ts';
import type { UserService } from '../user.service.ts';
import type { AccountNotices } from './account-notices.ts';
import type { AuditService, Origin } from './audit.service.ts';
import { hashSecret, newSecret } from './secrets.ts';
import type { IssuedSession, SessionService } from './session.service.ts';
import type { ThrottleKey, ThrottlePolicy, ThrottleReceipt, ThrottleService } from './throttle.service.ts';

/** RFC 8628 §6.1: consonants only (no words), no digits (no 0/O or 1/I confusion). */
export const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ';
const USER_CODE_LENGTH = 8;
/** Seconds a client waits between polls, unless told to slow down. */
export const POLL_INTERVAL_SECONDS = 5;
/** Each SLOW_DOWN adds this to the request's interval (RFC 8628 §3.5). */
export const SLOW_DOWN_STEP_SECONDS = 5;
const MAX_INTERVAL_SECONDS = 60;
/** A poll this much early still counts as on time (timers and networks jitter). */
export const POLL_LEEWAY_MS = 500;

/** Wrong user codes: 10 free, then 5 s doubling up to 15 min, per account and per IP. */
export const USER_CODE_POLICY: ThrottlePolicy = { free: 10, baseDelayMs: 5_000, maxDelayMs: 15 * 60_000, forgetAfterMs: 3600_000 };
/** New requests per IP: an unauthenticated insert, so bounded too. */
export const DEVICE_REQUEST_POLICY: ThrottlePolicy = { free: 30, baseDelayMs: 2_000, maxDelayMs: 60_000, forgetAfterMs: 10 * 60_000 };

export interface DeviceAuthorization {
  deviceCode: string;
  /** As shown to the user: XXXX-XXXX. */
  userCode: string;
  verificationUri: string;
  verificationUriComplete: string;
  expiresIn: number;
  interval: number;
}

export interface PendingDeviceLogin {
  userCode: string;
  deviceName: string;
  platform: string | null;
  ip: string | null;
  userAgent: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface DeviceLoginCollaborators {
  users: UserService;
  sessions: SessionService;
  throttle: ThrottleService;
  audit: AuditService;
  notices: AccountNotices;
}

export interface DeviceLoginOptions {
  /** How long a request waits for approval and exchange. */
  ttlMs: number;
  require2fa: boolean;
  /** The address users reach the server at (the page is at /device). */
  publicUrl: () => string;
}

export function newUserCode(): string {
  let s = '';
  for (let i = 0; i < USER_CODE_LENGTH; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return formatUserCode(s);
}

/** The code as typed (any case, with or without the dash or spaces) in canonical form, or null if it cannot be one. */
export function normalizeUserCode(input: string): string | null {
  const s = input.toUpperCase().replace(/[\s-]/g, '');
  if (s.length !== USER_CODE_LENGTH) return null;
  for (const ch of s) if (!USER_CODE_ALPHABET.includes(ch)) return null;
  return s;
}

export function formatUserCode(normalized: string): string {
  return `${normalized.slice(0, 4)}-${normalized.slice(4)}`;
}

const userCodeHash = (normalized: string) => hashSecret(`user-code|${normalized}`);

export class DeviceLoginService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly c: DeviceLoginCollaborators;
  private readonly opts: DeviceLoginOptions;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, collaborators: DeviceLoginCollaborators, opts: DeviceLoginOptions) {
    this.deps = deps;
    this.c = collaborators;
    this.opts = opts;
  }

  /** A new sign-in request for the device that asks. */
  async start(input: { deviceName: string; platform?: string }, origin: Origin): Promise<DeviceAuthorization> {
    await this.throttled([{ key: `device-request:ip:${origin.ip ?? '-'}`, policy: DEVICE_REQUEST_POLICY }],
      'Too many sign-in requests from this address; wait before starting another (details.retryAfterSeconds).');
    const now = this.deps.clock.now();
    const deviceCode = newSecret('cfd');
    for (let tries = 0; tries < 10; tries++) {
      const userCode = newUserCode();
      const inserted = await deviceLoginRepository.insert(this.deps.db, {
        device_code_hash: hashSecret(deviceCode), user_code_hash: userCodeHash(normalizeUserCode(userCode)!),
        device_name: input.deviceName.trim() || 'Sync client', platform: input.platform?.trim() || null,
        ip: origin.ip, user_agent: origin.userAgent, created_at: now, expires_at: now + this.opts.ttlMs,
        interval_seconds: POLL_INTERVAL_SECONDS, last_polled_at: null, status: 'pending',
        user_id: null, approved_name: null, approver_session_id: null, decided_at: null, used_at: null,
      });
      if (!inserted) continue; // that user code is taken: draw another
      const base = `${this.opts.publicUrl().replace(/\/+$/, '')}/device`;
      return {
        deviceCode, userCode, verificationUri: base, verificationUriComplete: `${base}?code=${userCode}`,
        expiresIn: Math.floor(this.opts.ttlMs / 1000), interval: POLL_INTERVAL_SECONDS,
      };
    }
    throw new CofferError('INTERNAL', 'No free user code was found; try again.');
  }

  /**
   * The client's poll. Pending: AUTHORIZATION_PENDING; too early:
   * SLOW_DOWN (and the interval grows by 5 s); denied: ACCESS_DENIED;
   * expired: DEVICE_CODE_EXPIRED; unknown or spent: INVALID_DEVICE_CODE.
   * Approved: a sync-client session, once.
   */
  async exchange(deviceCode: string, deviceKey: string | undefined, origin: Origin): Promise<{ session: IssuedSession; user: UserRow }> {
    const hash = hashSecret(deviceCode);
    const row = await deviceLoginRepository.findByDeviceCode(this.deps.db, hash);
    if (!row || row.status === 'used') throw new CofferError('INVALID_DEVICE_CODE');
    if (row.status === 'denied') throw new CofferError('ACCESS_DENIED');
    const now = this.deps.clock.now();
    if (row.expires_at <= now) throw new CofferError('DEVICE_CODE_EXPIRED');

    const tooSoon = row.last_polled_at !== null && now - row.last_polled_at < row.interval_seconds * 1000 - POLL_LEEWAY_MS;
    const interval = tooSoon ? Math.min(MAX_INTERVAL_SECONDS, row.interval_seconds + SLOW_DOWN_STEP_SECONDS) : row.interval_seconds;
    const recorded = await deviceLoginRepository.recordPoll(this.deps.db, row, now, interval);
    if (tooSoon || !recorded) {
      // (Not recorded: another poll of the same code got in between, so this one is too early as well.)
      const current = recorded ? interval : (await deviceLoginRepository.findByDeviceCode(this.deps.db, hash))?.interval_seconds ?? interval;
      throw new CofferError('SLOW_DOWN', undefined, { interval: current });
    }
    if (row.status === 'pending') {
      throw new CofferError('AUTHORIZATION_PENDING', undefined, { interval, expiresIn: Math.max(0, Math.floor((row.expires_at - now) / 1000)) });
    }

    // Approved: spend it first, so two exchanges at once cannot both get a session.
    if (!(await deviceLoginRepository.spend(this.deps.db, hash, now))) throw new CofferError('INVALID_DEVICE_CODE');
    const user = row.user_id ? await this.c.users.findById(row.user_id) : undefined;
    if (!user) throw new CofferError('INVALID_DEVICE_CODE');
    // The approval stands only while the session that gave it does (a password change or "sign out everywhere" in between voids it).
    if (!row.approver_session_id || !(await this.c.sessions.isValid(row.approver_session_id))) {
      throw new CofferError('ACCESS_DENIED', 'The browser session that approved this sign-in has ended since; start a new sign-in request.');
    }
    const name = row.approved_name ?? row.device_name;
    const session = await this.c.sessions.issue(user.id, { kind: 'sync', name, platform: row.platform ?? undefined, deviceKey },
      { origin, mfaEnrollmentRequired: this.opts.require2fa && !user.totp_secret });
    await this.c.audit.record({
      userId: user.id, type: 'signin.success', origin, deviceId: session.deviceId, sessionId: session.sessionId,
      detail: { client: 'sync', via: 'device-login', approvedBy: row.approver_session_id },
    });
    if (session.newDevice) {
      await this.c.audit.record({ userId: user.id, type: 'signin.new_device', origin, deviceId: session.deviceId, sessionId: session.sessionId, detail: { name: session.deviceName } });
      this.c.notices.newDevice(user, { name: session.deviceName, ip: origin.ip });
    }
    return { session, user };
  }

  /** What is asking to sign in with this code, for the approval page. */
  async pending(p: Principal, userCode: string, origin: Origin): Promise<PendingDeviceLogin> {
    const row = await this.lookUp(p, userCode, origin);
    return {
      userCode: formatUserCode(normalizeUserCode(userCode)!), deviceName: row.device_name, platform: row.platform,
      ip: row.ip, userAgent: row.user_agent, createdAt: row.created_at, expiresAt: row.expires_at,
    };
  }

  /** Approves (binding the caller's account, under `deviceName` if given) or denies the request with this code. */
  async decide(p: Principal, userCode: string, approve: boolean, deviceName: string | undefined, origin: Origin): Promise<{ status: 'approved' | 'denied'; deviceName: string; platform: string | null }> {
    const row = await this.lookUp(p, userCode, origin);
    const now = this.deps.clock.now();
    const chosen = approve ? deviceName?.trim() || null : null;
    const done = await deviceLoginRepository.decide(this.deps.db, row.user_code_hash, now,
      { status: approve ? 'approved' : 'denied', userId: p.userId, sessionId: p.sessionId ?? null, name: chosen });
    if (!done) {
      const again = await deviceLoginRepository.findByUserCode(this.deps.db, row.user_code_hash);
      throw new CofferError(again && again.status === 'pending' ? 'USER_CODE_EXPIRED' : 'USER_CODE_USED');
    }
    const name = chosen ?? row.device_name;
    await this.c.audit.record({
      userId: p.userId, type: approve ? 'device_login.approved' : 'device_login.denied', origin, deviceId: p.deviceId, sessionId: p.sessionId,
      detail: { name, requestedName: row.device_name, platform: row.platform, ip: row.ip },
    });
    return { status: approve ? 'approved' : 'denied', deviceName: name, platform: row.platform };
  }

  async prune(before: number): Promise<number> {
    return deviceLoginRepository.prune(this.deps.db, before);
  }

  /**
   * The pending request with this code. Every lookup is counted before the
   * code is checked (so parallel guesses cannot slip past) and refunded
   * when the code exists: only wrong codes add up.
   */
  private async lookUp(p: Principal, userCode: string, origin: Origin): Promise<DeviceLoginRow> {
    // An app password is for tools that speak only basic auth; it must not mint sessions for other devices.
    if (p.via === 'basic') throw new CofferError('FORBIDDEN', 'An app password cannot approve device sign-ins; approve it in a signed-in browser.');
    const keys: ThrottleKey[] = [
      { key: `user-code:user:${p.userId}`, policy: USER_CODE_POLICY },
      { key: `user-code:ip:${origin.ip ?? '-'}`, policy: USER_CODE_POLICY },
    ];
    const receipts = await this.throttled(keys, 'Too many wrong codes; wait before trying again (details.retryAfterSeconds).');
    const normalized = normalizeUserCode(userCode);
    const row = normalized ? await deviceLoginRepository.findByUserCode(this.deps.db, userCodeHash(normalized)) : undefined;
    if (!row) throw new CofferError('UNKNOWN_USER_CODE');
    await this.c.throttle.refund(receipts);
    if (row.status !== 'pending') throw new CofferError('USER_CODE_USED');
    if (row.expires_at <= this.deps.clock.now()) throw new CofferError('USER_CODE_EXPIRED');
    return row;
  }

  private async throttled(keys: ThrottleKey[], message: string): Promise<ThrottleReceipt[]> {
    try {
      return await this.c.throttle.attemptRefundable(keys);
    } catch (e) {
      if (e instanceof CofferError && e.code === 'TOO_MANY_ATTEMPTS') throw new CofferError('TOO_MANY_ATTEMPTS', message, e.details);
      throw e;
    }
  }
}
