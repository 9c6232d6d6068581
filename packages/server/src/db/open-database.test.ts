/** openDatabase's SQLite settings, read back from a real database file. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { CompiledQuery, sql } from 'kysely';
import { openDatabase } from './open-database.ts';
import { loadConfig } from '../config/load-config.ts';

async function pragma(sqliteCacheMib: number | undefined, name: string): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-open-'));
  const m = await openDatabase({ databaseUrl: null, dataDir: dir, sqliteCacheMib });
  try {
    const { rows } = await sql<Record<string, unknown>>`select * from ${sql.raw(`pragma_${name}`)}`.execute(m.db);
    return Object.values(rows[0]!)[0];
  } finally {
    await m.close();
    await rm(dir, { recursive: true, force: true });
  }
}

it('SQLite keeps the page cache it is given (64 MiB unless told), in WAL mode', async () => {
  assert.equal(await pragma(undefined, 'cache_size'), -64 * 1024);
  assert.equal(await pragma(8, 'cache_size'), -8 * 1024);
  assert.equal(await pragma(undefined, 'journal_mode'), 'wal');
  assert.equal(loadConfig({ env: {} }).sqliteCacheMib, 64);
  assert.equal(loadConfig({ env: { COFFER_SQLITE_CACHE_MIB: '256' } }).sqliteCacheMib, 256);
  assert.throws(() => loadConfig({ env: { COFFER_SQLITE_CACHE_MIB: 'lots' } }), /COFFER_SQLITE_CACHE_MIB/);
});

it('the recycle bin\'s indexes hold only trashed items, and the purge sweep reads the bin, not every item', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-open-'));
  const m = await openDatabase({ databaseUrl: null, dataDir: dir });
  try {
    const { rows: indexes } = await sql<{ name: string; sql: string }>`select name, sql from sqlite_master where type = 'index' and name in ('items_trash', 'items_trash_batch') order by name`.execute(m.db);
    assert.deepEqual(indexes.map((i) => [i.name, /where "?(trashed_at|trash_batch)"? is not null/i.test(i.sql)]), [['items_trash', true], ['items_trash_batch', true]]);
    // The maintenance sweep's query (itemRepository.trashRootsOlderThan): a full scan would read every item of every drive.
    const purge = m.db.selectFrom('items').selectAll().where('trashed_at', '<', 1).whereRef('trash_batch', '=', 'id').limit(100).compile();
    const { rows: plan } = await m.db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${purge.sql}`, [...purge.parameters]));
    assert.ok(plan.some((r) => / USING (COVERING )?INDEX items_trash/.test(r.detail)), JSON.stringify(plan));
  } finally {
    await m.close();
    await rm(dir, { recursive: true, force: true });
  }
});
