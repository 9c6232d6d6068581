/**
 * Sessions: created at sign-in on a device record, checked on every
 * request, renewed (bearer clients rotate their refresh token), revoked.
 *
 * Checking is one indexed read and no write; activity (`last_seen_at`) is
 * written at most once a minute, which is also the precision of idle
 * expiry. Revocation is a committed row update, so the very next request on
 * any process sharing the database is refused; the revocation publisher
 * then closes push channels everywhere.
 */
import { CofferError } from '@coffer/protocol';
import { newId } from '../../db/ids.ts';
import type { DeviceKind, SessionKind } from '../../db/schema.ts';
import { deviceRepository, type DeviceRow } from '../../repositories/device.repository.ts';
import { sessionRepository, type SessionRow, type AuthenticatedCredential } from '../../repositories/session.repository.ts';
import type { Executor } from '../../repositories/executor.ts';
import type { Principal, ServiceDeps } from '../context.ts';
import type { AuditService, Origin } from './audit.service.ts';
import { csrfTokenFor, hashSecret, newSecret } from './secrets.ts';
import { CredentialCache } from './credential-cache.ts';

export const TOUCH_INTERVAL_MS = 60_000;
/** Used refresh tokens are remembered this long, so a replay is recognized (and revokes the session). */
const USED_CREDENTIAL_MEMORY_MS = 180 * 24 * 3600_000;

export interface SessionPolicy {
  /** Browser session without "keep me signed in". */
  publicIdleMs: number;
  /** Browser session with "keep me signed in". */
  rememberIdleMs: number;
  /** Sync client: its refresh token lapses after this long without contact. */
  clientIdleMs: number;
  accessTokenMs: number;
}

export interface DeviceInput {
  kind: DeviceKind;
  name?: string;
  platform?: string;
  /** The key a returning device presents; an unknown or absent key makes a new device. */
  deviceKey?: string;
}

export interface IssuedSession {
  sessionId: string;
  deviceId: string;
  deviceName: string;
  /** The device key to present at the next sign-in (a browser keeps it in a cookie). */
  deviceKey: string;
  newDevice: boolean;
  kind: SessionKind;
  persistent: boolean;
  idleTimeoutMs: number;
  /** Browser: the session cookie and the CSRF token that must accompany every state-changing request. */
  cookie?: { secret: string; csrfToken: string };
  /** Sync client: a short-lived access token and the single-use refresh token that renews it. */
  tokens?: { accessToken: string; refreshToken: string; accessExpiresAt: number };
  /** App password: shown once. */
  appPassword?: string;
  mfaEnrollmentRequired: boolean;
}

export type Transport = 'cookie' | 'bearer' | 'basic';
const CREDENTIAL_FOR: Record<Transport, string> = { cookie: 'cookie', bearer: 'access', basic: 'app_password' };

export class SessionService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock' | 'revocations'>;
  private readonly policy: SessionPolicy;
  private readonly audit: AuditService;
  /** Credentials already checked (SQLite); null: every check reads the database. */
  private readonly checked: CredentialCache | null;

  constructor(deps: Pick<ServiceDeps, 'db' | 'clock' | 'revocations' | 'credentialEpoch'>, policy: SessionPolicy, audit: AuditService) {
    this.deps = deps;
    this.checked = deps.credentialEpoch ? new CredentialCache(deps.credentialEpoch) : null;
    this.policy = policy;
    this.audit = audit;
  }

  /**
   * Creates a session on the device that presented `deviceKey` (or on a new
   * device), replacing that device's earlier sessions: one device, one
   * entry in the devices list, however often it signs in.
   */
  async issue(userId: string, device: DeviceInput, opts: { remember?: boolean; origin: Origin; mfaEnrollmentRequired?: boolean }): Promise<IssuedSession> {
    const now = this.deps.clock.now();
    const kind: SessionKind = device.kind === 'browser' ? 'cookie' : device.kind === 'sync' ? 'bearer' : 'app_password';
    const persistent = kind !== 'cookie' || opts.remember === true;
    const idleTimeoutMs = kind === 'app_password' ? 0 : kind === 'bearer' ? this.policy.clientIdleMs : persistent ? this.policy.rememberIdleMs : this.policy.publicIdleMs;
    const sessionId = newId();
    let replaced: string[] = [];
    const result = await this.deps.db.transaction().execute(async (trx) => {
      let row = device.deviceKey && device.kind !== 'app_password' ? await deviceRepository.findByKey(trx, userId, hashSecret(device.deviceKey)) : undefined;
      // A wiped device that signs in again starts over as a new device (its old entry keeps the wipe record); on the old one every session is dead.
      if (row && (row.kind !== device.kind || row.wipe_confirmed_at !== null)) row = undefined;
      const deviceKey = row ? device.deviceKey! : newSecret('cfk');
      const newDevice = !row;
      if (row) {
        await deviceRepository.update(trx, userId, row.id, {
          last_seen_at: now, ip: opts.origin.ip, user_agent: opts.origin.userAgent,
          ...(device.name ? { name: device.name } : {}), ...(device.platform ? { platform: device.platform } : {}),
        });
        replaced = await sessionRepository.revoke(trx, userId, await sessionRepository.liveIdsOfDevice(trx, userId, row.id), now, 'replaced by a new sign-in');
      } else {
        row = newDeviceRow(userId, device, opts.origin, now, device.kind === 'app_password' ? null : hashSecret(deviceKey));
        await deviceRepository.insert(trx, row);
      }
      await sessionRepository.insert(trx, {
        id: sessionId, user_id: userId, device_id: row.id, kind, persistent: persistent ? 1 : 0, idle_timeout_ms: idleTimeoutMs,
        mfa_enrollment_required: opts.mfaEnrollmentRequired ? 1 : 0, ip: opts.origin.ip, user_agent: opts.origin.userAgent,
        created_at: now, last_seen_at: now, revoked_at: null, revoked_reason: null,
      });
      const issued: IssuedSession = {
        sessionId, deviceId: row.id, deviceName: device.name?.trim() || row.name, deviceKey, newDevice,
        kind, persistent, idleTimeoutMs, mfaEnrollmentRequired: opts.mfaEnrollmentRequired === true,
      };
      if (kind === 'cookie') {
        const secret = newSecret('cfs');
        await sessionRepository.insertCredential(trx, { hash: hashSecret(secret), session_id: sessionId, kind: 'cookie', created_at: now, expires_at: null, used_at: null });
        issued.cookie = { secret, csrfToken: csrfTokenFor(secret) };
      } else if (kind === 'bearer') {
        issued.tokens = await this.newTokenPair(trx, sessionId, now);
      } else {
        const secret = newSecret('cfp');
        await sessionRepository.insertCredential(trx, { hash: hashSecret(secret), session_id: sessionId, kind: 'app_password', created_at: now, expires_at: null, used_at: null });
        issued.appPassword = secret;
      }
      return issued;
    });
    this.published(replaced);
    return result;
  }

  /** The caller behind a credential, or null if it does not authenticate (unknown, expired, idle too long, revoked). */
  async authenticate(secret: string, transport: Transport, origin: Origin, basicUsername?: string): Promise<Principal | null> {
    const hash = hashSecret(secret);
    const load = () => sessionRepository.findByCredential(this.deps.db, hash);
    const found = await (this.checked ? this.checked.find(hash, load) : load());
    if (!found || found.credential_kind !== CREDENTIAL_FOR[transport]) return null;
    if (transport === 'basic' && found.username !== basicUsername?.normalize('NFC').toLowerCase()) return null;
    const now = this.deps.clock.now();
    if (found.credential_expires_at !== null && found.credential_expires_at <= now) return null;
    const state = this.stateOf(found, now);
    if (state === 'dead') return null;
    const s = found.session;
    if (now - s.last_seen_at >= TOUCH_INTERVAL_MS) await this.touch(s, now, origin);
    return {
      userId: s.user_id, username: found.username, rootId: found.root_id, isAdmin: found.is_admin === 1,
      credentialKey: s.id, sessionId: s.id, deviceId: s.device_id, via: transport,
      restriction: state === 'wipe' ? 'wipe' : s.mfa_enrollment_required === 1 ? 'mfa-enrollment' : undefined,
    };
  }

  /**
   * Renews a sync client's tokens. A refresh token works once: presenting
   * it again means it was copied, so the whole session is revoked (the
   * thief and the client both have to sign in again, and the user sees why
   * in the audit trail).
   */
  async refresh(refreshToken: string, origin: Origin): Promise<{ accessToken: string; refreshToken: string; accessExpiresAt: number }> {
    const hash = hashSecret(refreshToken);
    const found = await sessionRepository.findByCredential(this.deps.db, hash);
    if (!found || found.credential_kind !== 'refresh') throw new CofferError('UNAUTHENTICATED', 'This refresh token is not valid; sign in again.');
    const now = this.deps.clock.now();
    const s = found.session;
    if (this.stateOf(found, now) === 'dead') throw new CofferError('UNAUTHENTICATED', 'This session has ended; sign in again.');
    if (found.credential_used_at !== null || !(await sessionRepository.useCredential(this.deps.db, hash, now))) {
      await this.revoke(s.user_id, [s.id], 'refresh token reused');
      await this.audit.record({ userId: s.user_id, type: 'refresh.reuse', origin, deviceId: s.device_id, sessionId: s.id });
      throw new CofferError('UNAUTHENTICATED', 'This refresh token was already used, so the session was ended to protect the account; sign in again.');
    }
    const pair = await this.deps.db.transaction().execute((trx) => this.newTokenPair(trx, s.id, now));
    await this.touch(s, now, origin);
    return pair;
  }

  /** Records a session's activity (it does not move the credential epoch: the kept rows are updated here instead). */
  private async touch(s: SessionRow, now: number, origin: Origin): Promise<void> {
    try {
      await sessionRepository.touch(this.deps.db, s.id, s.device_id, now, origin.ip);
    } catch (e) {
      this.checked?.forget(s.id); // one of the two writes may have landed: the database knows, the kept rows may not
      throw e;
    }
    this.checked?.touched(s.id, now, origin.ip); // only once written: a kept row is never newer than the database
  }

  /** Revokes sessions of one user and closes their push channels on every process. Returns the ids it revoked. */
  async revoke(userId: string, sessionIds: string[], reason: string): Promise<string[]> {
    const revoked = await sessionRepository.revoke(this.deps.db, userId, sessionIds, this.deps.clock.now(), reason);
    this.published(revoked);
    return revoked;
  }

  async revokeAll(userId: string, reason: string, exceptSessionId?: string): Promise<string[]> {
    const ids = (await sessionRepository.liveIdsOfUser(this.deps.db, userId)).filter((id) => id !== exceptSessionId);
    return this.revoke(userId, ids, reason);
  }

  async revokeDevice(userId: string, deviceId: string, reason: string): Promise<string[]> {
    return this.revoke(userId, await sessionRepository.liveIdsOfDevice(this.deps.db, userId, deviceId), reason);
  }

  /** Closes the push channels of a device's sessions (it was marked for wipe: it must come back and learn so). */
  async notifyRestricted(userId: string, deviceId: string): Promise<void> {
    this.published(await sessionRepository.liveIdsOfDevice(this.deps.db, userId, deviceId));
  }

  /** Whether a session (a push channel's credential key) still has full access; checked after missed revocations. */
  async isValid(sessionId: string): Promise<boolean> {
    const s = await sessionRepository.findWithDevice(this.deps.db, sessionId);
    return s !== undefined && s.revoked_at === null && s.wipe_requested_at === null && !this.idleExpired(s, this.deps.clock.now());
  }

  /** Forgets credentials that can no longer authenticate. */
  async prune(): Promise<number> {
    const now = this.deps.clock.now();
    return sessionRepository.pruneCredentials(this.deps.db, now, now - USED_CREDENTIAL_MEMORY_MS);
  }

  private stateOf(found: AuthenticatedCredential, now: number): 'live' | 'wipe' | 'dead' {
    if (found.wipe_confirmed_at !== null) return 'dead';
    if (this.idleExpired(found.session, now)) return 'dead';
    // A pending wipe outlives sign-out: the device must still be able to learn of it and confirm it.
    if (found.wipe_requested_at !== null) return 'wipe';
    return found.session.revoked_at === null ? 'live' : 'dead';
  }

  private idleExpired(s: { idle_timeout_ms: number; last_seen_at: number }, now: number): boolean {
    return s.idle_timeout_ms > 0 && now - s.last_seen_at >= s.idle_timeout_ms;
  }

  private async newTokenPair(db: Executor, sessionId: string, now: number): Promise<{ accessToken: string; refreshToken: string; accessExpiresAt: number }> {
    const accessToken = newSecret('cfa');
    const refreshToken = newSecret('cfr');
    const accessExpiresAt = now + this.policy.accessTokenMs;
    await sessionRepository.insertCredential(db, { hash: hashSecret(accessToken), session_id: sessionId, kind: 'access', created_at: now, expires_at: accessExpiresAt, used_at: null });
    await sessionRepository.insertCredential(db, { hash: hashSecret(refreshToken), session_id: sessionId, kind: 'refresh', created_at: now, expires_at: null, used_at: null });
    return { accessToken, refreshToken, accessExpiresAt };
  }

  private published(sessionIds: string[]): void {
    for (const id of sessionIds) this.deps.revocations?.revoked({ credentialKey: id });
  }
}

function newDeviceRow(userId: string, d: DeviceInput, origin: Origin, now: number, keyHash: string | null): DeviceRow {
  return {
    id: newId(), user_id: userId, kind: d.kind, name: d.name?.trim() || defaultDeviceName(d, origin.userAgent), platform: d.platform ?? null,
    user_agent: origin.userAgent, ip: origin.ip, device_key_hash: keyHash, created_at: now, last_seen_at: now,
    pending_changes: null, pending_reported_at: null, wipe_requested_at: null, wipe_fetched_at: null, wipe_confirmed_at: null, wipe_report: null,
  };
}

/** "Firefox on Linux" from a user agent, good enough to tell one's own devices apart. */
export function defaultDeviceName(d: DeviceInput, userAgent: string | null): string {
  if (d.kind === 'sync') return d.platform ? `Sync client on ${d.platform}` : 'Sync client';
  if (d.kind === 'app_password') return 'App password';
  const ua = userAgent ?? '';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : d.platform;
  return os ? `${browser} on ${os}` : browser;
}
