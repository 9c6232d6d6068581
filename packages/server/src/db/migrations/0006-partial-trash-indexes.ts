/**
 * The recycle bin's two indexes hold only what is in the bin. Before, every
 * live item had an entry in both (its trashed_at and trash_batch are null),
 * so every new file wrote two more index pages that no query reads: the
 * queries that use them all ask for trashed items (`trashed_at is not null`,
 * `trashed_at < cutoff`, `trash_batch = ?`), which SQLite and PostgreSQL
 * both match to an index whose condition is `… is not null`.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('items_trash').execute();
  await db.schema.dropIndex('items_trash_batch').execute();
  await db.schema.createIndex('items_trash').on('items').columns(['owner_id', 'trashed_at']).where(sql.ref('trashed_at'), 'is not', null).execute();
  await db.schema.createIndex('items_trash_batch').on('items').column('trash_batch').where(sql.ref('trash_batch'), 'is not', null).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('items_trash').execute();
  await db.schema.dropIndex('items_trash_batch').execute();
  await db.schema.createIndex('items_trash').on('items').columns(['owner_id', 'trashed_at']).execute();
  await db.schema.createIndex('items_trash_batch').on('items').column('trash_batch').execute();
}
