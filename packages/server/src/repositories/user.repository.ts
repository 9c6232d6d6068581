/** Accounts. `used_bytes` moves only through `addUsedBytes`, inside the transaction that changes the items. */
import type { Selectable } from 'kysely';
import type { UsersTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedQuery, type Params } from '../db/prepared-query.ts';

export type UserRow = Selectable<UsersTable>;

const userById = preparedQuery((db, p: Params<{ id: string }>) => db.selectFrom('users').selectAll().where('id', '=', p('id')));

export const userRepository = {
  async insert(db: Executor, row: UserRow): Promise<void> {
    await db.insertInto('users').values(row).execute();
  },
  async findById(db: Executor, id: string): Promise<UserRow | undefined> {
    return userById.first(db, { id });
  },
  async findByUsername(db: Executor, username: string): Promise<UserRow | undefined> {
    return db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  },
  async findByEmail(db: Executor, email: string): Promise<UserRow | undefined> {
    return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
  },
  async list(db: Executor): Promise<UserRow[]> {
    return db.selectFrom('users').selectAll().orderBy('username').execute();
  },
  async setPasswordHash(db: Executor, id: string, hash: string, now: number): Promise<boolean> {
    const r = await db.updateTable('users').set({ password_hash: hash, password_changed_at: now }).where('id', '=', id).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async update(db: Executor, id: string, set: Partial<Omit<UserRow, 'id'>>): Promise<void> {
    await db.updateTable('users').set(set).where('id', '=', id).execute();
  },
  async setQuota(db: Executor, id: string, quotaBytes: number): Promise<void> {
    await db.updateTable('users').set({ quota_bytes: quotaBytes }).where('id', '=', id).execute();
  },
  /**
   * Adds `delta` to the user's usage. A growth that would pass the quota
   * changes nothing and returns false; shrinking always succeeds.
   */
  async addUsedBytes(db: Executor, id: string, delta: number): Promise<boolean> {
    if (delta === 0) return true;
    let q = db.updateTable('users').set((eb) => ({ used_bytes: eb('used_bytes', '+', delta) })).where('id', '=', id);
    if (delta > 0) {
      q = q.where((eb) => eb.or([eb('quota_bytes', '=', 0), eb(eb('used_bytes', '+', delta), '<=', eb.ref('quota_bytes'))]));
    }
    const r = await q.executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async setUsedBytes(db: Executor, id: string, bytes: number): Promise<void> {
    await db.updateTable('users').set({ used_bytes: bytes }).where('id', '=', id).execute();
  },
};
