/** Failed-attempt counters, one row per key, shared by every server process through the database. */
import type { Selectable } from 'kysely';
import type { ThrottleTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type ThrottleRow = Selectable<ThrottleTable>;

export const throttleRepository = {
  async find(db: Executor, key: string): Promise<ThrottleRow | undefined> {
    return db.selectFrom('throttle').selectAll().where('key', '=', key).executeTakeFirst();
  },
  /** Inserts the first failure of a key; false if another process inserted it first. */
  async insertFirst(db: Executor, row: ThrottleRow): Promise<boolean> {
    const r = await db.insertInto('throttle').values(row).onConflict((oc) => oc.column('key').doNothing()).executeTakeFirst();
    return Number(r.numInsertedOrUpdatedRows ?? 0n) > 0;
  },
  /** Compare-and-set: counts one more failure only if nobody else did since `seen` was read. */
  async replace(db: Executor, seen: ThrottleRow, next: ThrottleRow): Promise<boolean> {
    const r = await db.updateTable('throttle')
      .set({ failures: next.failures, last_failure_at: next.last_failure_at, blocked_until: next.blocked_until })
      .where('key', '=', seen.key).where('failures', '=', seen.failures).where('last_failure_at', '=', seen.last_failure_at)
      .executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async delete(db: Executor, key: string): Promise<void> {
    await db.deleteFrom('throttle').where('key', '=', key).execute();
  },
  async pruneIdleSince(db: Executor, before: number): Promise<number> {
    const r = await db.deleteFrom('throttle').where('last_failure_at', '<', before).where('blocked_until', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
