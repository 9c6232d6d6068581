/** Password reset links (their SHA-256), single-use and short-lived. */
import type { Selectable } from 'kysely';
import type { PasswordResetsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type PasswordResetRow = Selectable<PasswordResetsTable>;

export const passwordResetRepository = {
  async insert(db: Executor, row: PasswordResetRow): Promise<void> {
    await db.insertInto('password_resets').values(row).execute();
  },
  async find(db: Executor, tokenHash: string): Promise<PasswordResetRow | undefined> {
    return db.selectFrom('password_resets').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
  },
  /** Spends a link; false if it was already used. */
  async use(db: Executor, tokenHash: string, now: number): Promise<boolean> {
    const r = await db.updateTable('password_resets').set({ used_at: now }).where('token_hash', '=', tokenHash).where('used_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  /** A new link voids the user's earlier unused ones. */
  async voidUnused(db: Executor, userId: string, now: number): Promise<void> {
    await db.updateTable('password_resets').set({ used_at: now }).where('user_id', '=', userId).where('used_at', 'is', null).execute();
  },
  async prune(db: Executor, before: number): Promise<void> {
    await db.deleteFrom('password_resets').where('expires_at', '<', before).execute();
  },
};
