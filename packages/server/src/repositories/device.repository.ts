/** Devices signed in to an account (browsers, sync clients, app passwords). */
import type { Selectable, Updateable } from 'kysely';
import type { DevicesTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type DeviceRow = Selectable<DevicesTable>;

export const deviceRepository = {
  async insert(db: Executor, row: DeviceRow): Promise<void> {
    await db.insertInto('devices').values(row).execute();
  },
  async findById(db: Executor, userId: string, id: string): Promise<DeviceRow | undefined> {
    return db.selectFrom('devices').selectAll().where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
  },
  async findByKey(db: Executor, userId: string, keyHash: string): Promise<DeviceRow | undefined> {
    return db.selectFrom('devices').selectAll().where('user_id', '=', userId).where('device_key_hash', '=', keyHash).executeTakeFirst();
  },
  async listByUser(db: Executor, userId: string): Promise<DeviceRow[]> {
    return db.selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('last_seen_at', 'desc').orderBy('id').execute();
  },
  async update(db: Executor, userId: string, id: string, set: Updateable<DevicesTable>): Promise<boolean> {
    const r = await db.updateTable('devices').set(set).where('user_id', '=', userId).where('id', '=', id).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  /** Marks a wipe requested unless one is already pending or done. */
  async requestWipe(db: Executor, userId: string, id: string, now: number): Promise<boolean> {
    const r = await db.updateTable('devices').set({ wipe_requested_at: now })
      .where('user_id', '=', userId).where('id', '=', id).where('wipe_requested_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async delete(db: Executor, userId: string, id: string): Promise<void> {
    await db.deleteFrom('devices').where('user_id', '=', userId).where('id', '=', id).execute();
  },
};
