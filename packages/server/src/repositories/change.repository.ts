/** The change feed of each drive (see ChangesTable). */
import { SqliteAdapter, type Selectable } from 'kysely';
import type { ChangesTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import { preparedInsert } from '../db/prepared-query.ts';
import type { ItemRow } from './item.repository.ts';

export type ChangeRow = Selectable<ChangesTable>;
export type ChangeOp = ChangeRow['op'];

/** Most commits record one change. */
const insertChange = preparedInsert('changes');

export const changeRepository = {
  /**
   * Takes the drive's write lock for the rest of the transaction, so checks
   * made afterwards (ancestors, parent still live, still in the bin) cannot
   * be invalidated by a concurrent writer before commit. On PostgreSQL every
   * writer of a drive first updates its user row (a no-op): the row lock.
   * On SQLite every transaction begins IMMEDIATE (db/sqlite-dialect.ts) and
   * so holds the database's write lock already: the statement would be one
   * more per upload for nothing.
   */
  async lockDrive(trx: Executor, ownerId: string): Promise<void> {
    if (trx.getExecutor().adapter instanceof SqliteAdapter) return;
    await trx.updateTable('users').set((eb) => ({ change_seq: eb.ref('change_seq') })).where('id', '=', ownerId).execute();
  },

  /**
   * Appends entries for items of one drive, numbering them after the drive's
   * last change. Must run inside the transaction that made the changes: the
   * UPDATE of the user row holds the drive's feed lock until commit.
   */
  async append(trx: Executor, ownerId: string, entries: { op: ChangeOp; item: ItemRow }[], now: number): Promise<number> {
    if (!entries.length) return 0;
    const row = await trx.updateTable('users').set((eb) => ({ change_seq: eb('change_seq', '+', entries.length) }))
      .where('id', '=', ownerId).returning('change_seq').executeTakeFirstOrThrow();
    const last = Number(row.change_seq);
    const rows = entries.map((e, i): ChangeRow => ({
      owner_id: ownerId, seq: last - entries.length + 1 + i, item_id: e.item.id, op: e.op, kind: e.item.kind,
      parent_id: e.item.parent_id, name: e.item.name, size: e.item.size, content_hash: e.item.content_hash,
      version_id: e.item.version_id, rev: e.item.rev, at: now,
    }));
    if (rows.length === 1) await insertChange.run(trx, rows[0]!);
    else for (let i = 0; i < rows.length; i += 100) await trx.insertInto('changes').values(rows.slice(i, i + 100)).execute();
    return last;
  },

  async after(db: Executor, ownerId: string, seq: number, limit: number): Promise<ChangeRow[]> {
    return db.selectFrom('changes').selectAll().where('owner_id', '=', ownerId).where('seq', '>', seq)
      .orderBy('seq').limit(limit).execute();
  },

  async position(db: Executor, ownerId: string): Promise<{ last: number; prunedThrough: number }> {
    const r = await db.selectFrom('users').select(['change_seq', 'changes_pruned_through']).where('id', '=', ownerId).executeTakeFirstOrThrow();
    return { last: Number(r.change_seq), prunedThrough: Number(r.changes_pruned_through) };
  },

  /** Deletes entries older than `cutoff`, drive by drive, remembering how far each drive was pruned. */
  async pruneOlderThan(db: Executor, cutoff: number): Promise<number> {
    const drives = await db.selectFrom('changes').select(['owner_id', (eb) => eb.fn.max<number>('seq').as('upto')])
      .where('at', '<', cutoff).groupBy('owner_id').execute();
    let n = 0;
    for (const d of drives) {
      const upto = Number(d.upto);
      // Mark first, delete second: a reader never finds a gap that is not announced.
      await db.updateTable('users').set({ changes_pruned_through: upto }).where('id', '=', d.owner_id)
        .where('changes_pruned_through', '<', upto).execute();
      const r = await db.deleteFrom('changes').where('owner_id', '=', d.owner_id).where('seq', '<=', upto).executeTakeFirst();
      n += Number(r.numDeletedRows);
    }
    return n;
  },
};
