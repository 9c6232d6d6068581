/**
 * First schema. Written with Kysely's schema builder so one migration serves
 * SQLite and PostgreSQL; foreign keys use the default NO ACTION so that the
 * garbage collector's DELETE of a chunk fails, rather than succeeds, if an
 * upload or version took a reference to it concurrently.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable('server_info')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();

  await db.schema.createTable('users')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('email', 'text')
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('quota_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('used_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('root_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema.createTable('api_tokens')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema.createTable('items')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('parent_id', 'text', (c) => c.references('items.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('content_hash', 'text')
    .addColumn('version_id', 'text')
    .addColumn('rev', 'bigint', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('modified_at', 'bigint', (c) => c.notNull())
    .addColumn('trashed_at', 'bigint')
    .addColumn('trash_batch', 'text')
    .execute();
  // Names are unique among live siblings only; trashed items keep their names.
  await db.schema.createIndex('items_live_name').on('items').columns(['parent_id', 'name']).unique()
    .where(sql.ref('trashed_at'), 'is', null).execute();
  await db.schema.createIndex('items_parent').on('items').columns(['parent_id', 'trashed_at']).execute();
  await db.schema.createIndex('items_trash').on('items').columns(['owner_id', 'trashed_at']).execute();
  await db.schema.createIndex('items_trash_batch').on('items').column('trash_batch').execute();

  await db.schema.createTable('chunks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('blob_key', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('chunks_owner_hash', ['owner_id', 'hash'])
    .execute();

  await db.schema.createTable('versions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('item_id', 'text', (c) => c.notNull().references('items.id').onDelete('cascade'))
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('content_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('versions_item').on('versions').columns(['item_id', 'created_at']).execute();

  await db.schema.createTable('version_chunks')
    .addColumn('version_id', 'text', (c) => c.notNull().references('versions.id').onDelete('cascade'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('chunk_id', 'text', (c) => c.notNull().references('chunks.id'))
    .addColumn('offset', 'bigint', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('version_chunks_pk', ['version_id', 'seq'])
    .execute();
  await db.schema.createIndex('version_chunks_chunk').on('version_chunks').column('chunk_id').execute();

  await db.schema.createTable('uploads')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id'))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema.createTable('upload_chunks')
    .addColumn('upload_id', 'text', (c) => c.notNull().references('uploads.id').onDelete('cascade'))
    .addColumn('chunk_id', 'text', (c) => c.notNull().references('chunks.id'))
    .addPrimaryKeyConstraint('upload_chunks_pk', ['upload_id', 'chunk_id'])
    .execute();
  await db.schema.createIndex('upload_chunks_chunk').on('upload_chunks').column('chunk_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const t of ['upload_chunks', 'uploads', 'version_chunks', 'versions', 'chunks', 'items', 'api_tokens', 'users', 'server_info']) {
    await db.schema.dropTable(t).execute();
  }
}
