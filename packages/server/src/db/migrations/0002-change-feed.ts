/**
 * The change feed. Each drive numbers its changes 1, 2, 3… with no gaps and
 * in commit order: a writer takes the next numbers by incrementing
 * `users.change_seq` inside its transaction, and that row lock serializes
 * the drive's writers until commit (a global sequence would not: on
 * PostgreSQL, number 11 can commit before number 10, and a reader that saw
 * 11 would skip 10 for ever). `changes_pruned_through` is the highest
 * number already deleted by retention: a cursor behind it must resync.
 */
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('change_seq', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('users').addColumn('changes_pruned_through', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.createTable('changes')
    .addColumn('owner_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('seq', 'bigint', (c) => c.notNull())
    .addColumn('item_id', 'text', (c) => c.notNull())
    .addColumn('op', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('parent_id', 'text')
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('content_hash', 'text')
    .addColumn('version_id', 'text')
    .addColumn('rev', 'bigint', (c) => c.notNull())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('changes_pk', ['owner_id', 'seq'])
    .execute();
  await db.schema.createIndex('changes_at').on('changes').columns(['at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('changes').execute();
  await db.schema.alterTable('users').dropColumn('changes_pruned_through').execute();
  await db.schema.alterTable('users').dropColumn('change_seq').execute();
}
