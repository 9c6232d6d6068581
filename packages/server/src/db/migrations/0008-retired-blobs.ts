/**
 * Packs that compaction emptied (services/pack-compactor.ts): their live
 * chunks were copied to a new pack and their rows repointed, but a download
 * planned before that may still read the old keys, so the old pack stays
 * until it has been retired for a while (and no row names it). Keys compare
 * byte by byte, as in inline_blobs (`C` on PostgreSQL, SQLite's default).
 */
import { PostgresAdapter, sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('retired_blobs')
    .addColumn('key', db.getExecutor().adapter instanceof PostgresAdapter ? sql`text collate "C"` : 'text', (c) => c.primaryKey())
    .addColumn('retired_at', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('retired_blobs').execute();
}
