/**
 * Sessions and the credentials that authenticate them. `findByCredential`
 * is the one query every authenticated request makes: an indexed lookup
 * with its session, user and device, and no write.
 */
import type { Selectable } from 'kysely';
import type { CredentialKind, CredentialsTable, SessionsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedQuery, type Params } from '../db/prepared-query.ts';
import { ACTIVITY_WRITE } from '../db/credential-epoch.ts';

export type SessionRow = Selectable<SessionsTable>;
export type CredentialRow = Selectable<CredentialsTable>;

export interface AuthenticatedCredential {
  credential_kind: CredentialKind;
  credential_expires_at: number | null;
  credential_used_at: number | null;
  session: SessionRow;
  username: string;
  root_id: string;
  is_admin: number;
  wipe_requested_at: number | null;
  wipe_confirmed_at: number | null;
}

const credentialByHash = preparedQuery((db, p: Params<{ hash: string }>) => db.selectFrom('credentials')
  .innerJoin('sessions', 'sessions.id', 'credentials.session_id')
  .innerJoin('users', 'users.id', 'sessions.user_id')
  .innerJoin('devices', 'devices.id', 'sessions.device_id')
  .selectAll('sessions')
  .select([
    'credentials.kind as credential_kind', 'credentials.expires_at as credential_expires_at', 'credentials.used_at as credential_used_at',
    'users.username', 'users.root_id', 'users.is_admin', 'devices.wipe_requested_at', 'devices.wipe_confirmed_at',
  ])
  .where('credentials.hash', '=', p('hash')));

export const sessionRepository = {
  async insert(db: Executor, row: SessionRow): Promise<void> {
    await db.insertInto('sessions').values(row).execute();
  },
  async insertCredential(db: Executor, row: CredentialRow): Promise<void> {
    await db.insertInto('credentials').values(row).execute();
  },
  async findById(db: Executor, id: string): Promise<SessionRow | undefined> {
    return db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
  },
  async findWithDevice(db: Executor, id: string): Promise<(SessionRow & { wipe_requested_at: number | null }) | undefined> {
    return db.selectFrom('sessions').innerJoin('devices', 'devices.id', 'sessions.device_id')
      .selectAll('sessions').select('devices.wipe_requested_at').where('sessions.id', '=', id).executeTakeFirst();
  },
  async findByCredential(db: Executor, hash: string): Promise<AuthenticatedCredential | undefined> {
    const row = await credentialByHash.first(db, { hash });
    if (!row) return undefined;
    const { credential_kind, credential_expires_at, credential_used_at, username, root_id, is_admin, wipe_requested_at, wipe_confirmed_at, ...session } = row;
    return { credential_kind, credential_expires_at, credential_used_at, session, username, root_id, is_admin, wipe_requested_at, wipe_confirmed_at };
  },
  /** Marks a refresh token used; false when it already was (a replay, or a race with another refresh). */
  async useCredential(db: Executor, hash: string, now: number): Promise<boolean> {
    const r = await db.updateTable('credentials').set({ used_at: now }).where('hash', '=', hash).where('used_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async listByUser(db: Executor, userId: string): Promise<SessionRow[]> {
    return db.selectFrom('sessions').selectAll().where('user_id', '=', userId).where('revoked_at', 'is', null).orderBy('last_seen_at', 'desc').execute();
  },
  async liveIdsOfDevice(db: Executor, userId: string, deviceId: string): Promise<string[]> {
    const rows = await db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('device_id', '=', deviceId).where('revoked_at', 'is', null).execute();
    return rows.map((r) => r.id);
  },
  async liveIdsOfUser(db: Executor, userId: string): Promise<string[]> {
    const rows = await db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
    return rows.map((r) => r.id);
  },
  /** Revokes the given live sessions of a user; returns the ids it revoked. */
  async revoke(db: Executor, userId: string, ids: string[], now: number, reason: string): Promise<string[]> {
    if (ids.length === 0) return [];
    const rows = await db.updateTable('sessions').set({ revoked_at: now, revoked_reason: reason })
      .where('user_id', '=', userId).where('id', 'in', ids).where('revoked_at', 'is', null).returning('id').execute();
    return rows.map((r) => r.id);
  },
  /** Records activity; written at most once a minute per session (see SessionService.touch). */
  async touch(db: Executor, id: string, deviceId: string, now: number, ip: string | null): Promise<void> {
    // Marked: these two writes alone do not empty the credential cache (the caller updates it; see credential-epoch.ts).
    await db.updateTable('sessions').set({ last_seen_at: now, ...(ip ? { ip } : {}) }).where('id', '=', id).modifyEnd(ACTIVITY_WRITE).execute();
    await db.updateTable('devices').set({ last_seen_at: now, ...(ip ? { ip } : {}) }).where('id', '=', deviceId).modifyEnd(ACTIVITY_WRITE).execute();
  },
  async setEnrollmentDone(db: Executor, userId: string): Promise<void> {
    await db.updateTable('sessions').set({ mfa_enrollment_required: 0 }).where('user_id', '=', userId).execute();
  },
  /** 2FA was turned off where it is required: every live session of the user may only enroll again. */
  async setEnrollmentRequired(db: Executor, userId: string): Promise<void> {
    await db.updateTable('sessions').set({ mfa_enrollment_required: 1 }).where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
  },
  /** Forgets credentials that can no longer authenticate: expired access tokens, used refresh tokens, those of long-revoked sessions. */
  async pruneCredentials(db: Executor, now: number, revokedBefore: number): Promise<number> {
    const a = await db.deleteFrom('credentials').where((eb) => eb.or([
      eb.and([eb('expires_at', 'is not', null), eb('expires_at', '<', now)]),
      eb.and([eb('used_at', 'is not', null), eb('used_at', '<', revokedBefore)]),
    ])).executeTakeFirst();
    return Number(a.numDeletedRows);
  },
};
