/** Device sign-in requests (their codes' SHA-256), short-lived; each state change is a compare-and-set. */
import type { Selectable } from 'kysely';
import type { DeviceLoginsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type DeviceLoginRow = Selectable<DeviceLoginsTable>;

export const deviceLoginRepository = {
  /** Inserts a request; false if its user code is taken (by a live or a not yet pruned request): draw another. */
  async insert(db: Executor, row: DeviceLoginRow): Promise<boolean> {
    const r = await db.insertInto('device_logins').values(row).onConflict((oc) => oc.column('user_code_hash').doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  },
  async findByDeviceCode(db: Executor, hash: string): Promise<DeviceLoginRow | undefined> {
    return db.selectFrom('device_logins').selectAll().where('device_code_hash', '=', hash).executeTakeFirst();
  },
  async findByUserCode(db: Executor, hash: string): Promise<DeviceLoginRow | undefined> {
    return db.selectFrom('device_logins').selectAll().where('user_code_hash', '=', hash).executeTakeFirst();
  },
  /**
   * Records a poll, unless another poll was recorded since `seen` was read
   * (two polls at once: the second is too fast). `intervalSeconds` is the
   * interval from now on.
   */
  async recordPoll(db: Executor, seen: DeviceLoginRow, now: number, intervalSeconds: number): Promise<boolean> {
    let q = db.updateTable('device_logins').set({ last_polled_at: now, interval_seconds: intervalSeconds })
      .where('device_code_hash', '=', seen.device_code_hash);
    q = seen.last_polled_at === null ? q.where('last_polled_at', 'is', null) : q.where('last_polled_at', '=', seen.last_polled_at);
    const r = await q.executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  /** Approves or denies a pending, unexpired request; false if it was decided meanwhile or expired. */
  async decide(db: Executor, userCodeHash: string, now: number, d: { status: 'approved' | 'denied'; userId: string; sessionId: string | null; name: string | null }): Promise<boolean> {
    const r = await db.updateTable('device_logins')
      .set({ status: d.status, user_id: d.userId, approver_session_id: d.sessionId, approved_name: d.name, decided_at: now })
      .where('user_code_hash', '=', userCodeHash).where('status', '=', 'pending').where('expires_at', '>', now)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  /** Spends an approved request; false if another exchange spent it first. */
  async spend(db: Executor, deviceCodeHash: string, now: number): Promise<boolean> {
    const r = await db.updateTable('device_logins').set({ status: 'used', used_at: now })
      .where('device_code_hash', '=', deviceCodeHash).where('status', '=', 'approved').executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async prune(db: Executor, before: number): Promise<number> {
    const r = await db.deleteFrom('device_logins').where('expires_at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
