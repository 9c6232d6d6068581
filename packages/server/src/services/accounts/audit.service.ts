/**
 * Records security events with time, device and IP. Writing one never fails
 * the action it records (a sign-out must not be refused because the audit
 * insert failed), but a failure is logged.
 */
import { CofferError } from '@coffer/protocol';
import { newId } from '../../db/ids.ts';
import { auditRepository, type AuditRow } from '../../repositories/audit.repository.ts';
import { userRepository } from '../../repositories/user.repository.ts';
import type { Executor } from '../../repositories/executor.ts';
import type { ServiceDeps } from '../context.ts';

export type AuditEventType =
  | 'signin.success' | 'signin.failure' | 'signin.throttled' | 'signin.new_device' | 'signout' | 'session.revoked'
  | 'refresh.reuse' | 'password.changed' | 'password.reset_requested' | 'password.reset' | 'signup'
  | 'mfa.enabled' | 'mfa.disabled' | 'mfa.failure' | 'mfa.recovery_code_used' | 'mfa.recovery_codes_regenerated'
  | 'app_password.created' | 'device.removed' | 'wipe.requested' | 'wipe.fetched' | 'wipe.confirmed'
  | 'device_login.approved' | 'device_login.denied';

/** Where a request came from, for the audit trail and device records. */
export interface Origin {
  ip: string | null;
  userAgent: string | null;
}

export interface AuditEvent {
  userId: string | null;
  type: AuditEventType;
  origin?: Origin;
  deviceId?: string | null;
  sessionId?: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditEntry {
  id: string;
  at: number;
  type: string;
  deviceId: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  detail: Record<string, unknown> | null;
}

export class AuditService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly onError: (err: unknown) => void;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, onError: (err: unknown) => void = () => {}) {
    this.deps = deps;
    this.onError = onError;
  }

  /** Records an event, inside `db` when given (so it commits with the change it describes). */
  async record(e: AuditEvent, db: Executor = this.deps.db): Promise<void> {
    try {
      await auditRepository.insert(db, {
        id: newId(), user_id: e.userId, at: this.deps.clock.now(), type: e.type,
        device_id: e.deviceId ?? null, session_id: e.sessionId ?? null,
        ip: e.origin?.ip ?? null, user_agent: e.origin?.userAgent?.slice(0, 512) ?? null,
        detail: e.detail ? JSON.stringify(e.detail) : null,
      });
    } catch (err) {
      if (db !== this.deps.db) throw err; // inside a transaction the caller's change must fail with it
      this.onError(err);
    }
  }

  async list(userId: string, limit: number, cursor?: string): Promise<{ events: AuditEntry[]; nextCursor: string | null }> {
    const rows = await auditRepository.listByUser(this.deps.db, userId, limit + 1, cursor ? decodeCursor(cursor) : undefined);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return { events: page.map(toEntry), nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
  }

  async listForUsername(username: string, limit: number, cursor?: string): Promise<{ events: AuditEntry[]; nextCursor: string | null }> {
    const user = await userRepository.findByUsername(this.deps.db, username.normalize('NFC').toLowerCase());
    if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
    return this.list(user.id, limit, cursor);
  }
}

function toEntry(r: AuditRow): AuditEntry {
  return {
    id: r.id, at: r.at, type: r.type, deviceId: r.device_id, sessionId: r.session_id, ip: r.ip, userAgent: r.user_agent,
    detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
  };
}

function encodeCursor(r: AuditRow): string {
  return Buffer.from(`${r.at}|${r.id}`).toString('base64url');
}
function decodeCursor(c: string): { at: number; id: string } {
  const [at, id] = Buffer.from(c, 'base64url').toString().split('|');
  // The id is one of ours (a UUID): anything else, NUL included (which PostgreSQL cannot even compare), is not a cursor we gave out.
  if (!/^\d+$/.test(at ?? '') || !/^[0-9a-f-]{1,64}$/.test(id ?? '')) throw new CofferError('VALIDATION_FAILED', 'The cursor is not one this server gave out.');
  return { at: Number(at), id };
}
