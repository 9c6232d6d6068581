/** openDatabase's SQLite settings, read back from a real database file. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { sql } from 'kysely';
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
