/**
 * Small chunks kept in the metadata database instead of a file (or S3 object)
 * each: see blobstore/database.blob-store.ts. `bytea` is PostgreSQL's binary
 * type; SQLite stores the bytes as given whatever the declared type.
 * Keys compare byte by byte (SQLite's default; `C` on PostgreSQL, whose
 * default collation may not), so a prefix listing is one contiguous range.
 * No size column: sizes are read from the bytes (octet_length), so a
 * damaged row shows up in `admin check` like a truncated file.
 */
import { PostgresAdapter, sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('inline_blobs')
    .addColumn('key', db.getExecutor().adapter instanceof PostgresAdapter ? sql`text collate "C"` : 'text', (c) => c.primaryKey())
    .addColumn('data', 'bytea', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('inline_blobs').execute();
}
