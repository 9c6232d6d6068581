/** The security audit trail: append-only, listed newest first. */
import type { Selectable } from 'kysely';
import type { AuditEventsTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type AuditRow = Selectable<AuditEventsTable>;

export const auditRepository = {
  async insert(db: Executor, row: AuditRow): Promise<void> {
    await db.insertInto('audit_events').values(row).execute();
  },
  /** A page of a user's events, newest first; `before` is the (at, id) of the last row of the previous page. */
  async listByUser(db: Executor, userId: string, limit: number, before?: { at: number; id: string }): Promise<AuditRow[]> {
    let q = db.selectFrom('audit_events').selectAll().where('user_id', '=', userId);
    if (before) q = q.where((eb) => eb.or([eb('at', '<', before.at), eb.and([eb('at', '=', before.at), eb('id', '<', before.id)])]));
    return q.orderBy('at', 'desc').orderBy('id', 'desc').limit(limit).execute();
  },
  async pruneBefore(db: Executor, before: number): Promise<number> {
    const r = await db.deleteFrom('audit_events').where('at', '<', before).executeTakeFirst();
    return Number(r.numDeletedRows);
  },
};
