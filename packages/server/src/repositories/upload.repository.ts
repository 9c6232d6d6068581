/** Uploads in progress: a lease that protects the chunks they reference from collection. */
import type { Executor } from './executor.ts';

export const uploadRepository = {
  async create(db: Executor, row: { id: string; owner_id: string; created_at: number; expires_at: number }): Promise<void> {
    await db.insertInto('uploads').values(row).execute();
  },
  async extend(db: Executor, id: string, expiresAt: number): Promise<void> {
    await db.updateTable('uploads').set({ expires_at: expiresAt }).where('id', '=', id).execute();
  },
  /** Ends an upload; its chunk references go by cascade. */
  async delete(db: Executor, id: string): Promise<void> {
    await db.deleteFrom('uploads').where('id', '=', id).execute();
  },
  async deleteExpired(db: Executor, now: number): Promise<number> {
    const r = await db.deleteFrom('uploads').where('expires_at', '<', now).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
  async deleteAll(db: Executor): Promise<number> {
    const r = await db.deleteFrom('uploads').executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
