/**
 * Chunks stored in packs have keys `<pack>/<offset>-<size>`; the orphan sweep
 * asks, for each pack, whether any row names one of its members: a range of
 * keys from `<pack>/` to `<pack>0`. That range must compare byte by byte.
 * SQLite's unique index on blob_key does (BINARY); on PostgreSQL the column
 * has the database's collation, which may sort '/' anywhere, so the range is
 * compared and indexed as `collate "C"`.
 */
import { PostgresAdapter, sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
  await sql`create index chunks_blob_key_bytes on chunks (blob_key collate "C")`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
  await sql`drop index chunks_blob_key_bytes`.execute(db);
}
