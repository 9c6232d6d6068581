/**
 * The database store passes the one conformance suite on SQLite and on
 * PostgreSQL (skipped, with the reason, when PostgreSQL is absent), and the
 * router sends each key to the store its prefix names.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { sql } from 'kysely';
import { openDatabase, type MetadataDb } from '../db/open-database.ts';
import { createTestDatabase, postgresUnavailable } from '../../test/support/postgres.ts';
import { readAll, runBlobStoreConformance } from './blob-store.conformance.ts';
import { DatabaseBlobStore } from './database.blob-store.ts';
import { LocalBlobStore } from './local.blob-store.ts';
import { RoutedBlobStore } from './routed.blob-store.ts';

runBlobStoreConformance('database (SQLite)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-dbblobs-'));
  const metadata = await openDatabase({ databaseUrl: null, dataDir: dir });
  return {
    store: new DatabaseBlobStore(metadata.db),
    cleanup: async () => { await metadata.close(); await rm(dir, { recursive: true, force: true }); },
  };
});

const pgSkip = await postgresUnavailable();
if (pgSkip) {
  it('BlobStore conformance: database (PostgreSQL)', { skip: pgSkip }, () => {});
} else {
  // One database for the file; each case starts from an empty table.
  let pgDb: { url: string; drop(): Promise<void> };
  let metadata: MetadataDb;
  before(async () => {
    pgDb = await createTestDatabase();
    metadata = await openDatabase({ databaseUrl: pgDb.url, dataDir: tmpdir() });
  });
  after(async () => {
    await metadata.close();
    await pgDb.drop();
  });
  runBlobStoreConformance('database (PostgreSQL)', async () => ({
    store: new DatabaseBlobStore(metadata.db),
    cleanup: async () => { await metadata.db.deleteFrom('inline_blobs').execute(); },
  }));
}

describe('RoutedBlobStore: small chunks in the database, the rest on disk', () => {
  let dir: string;
  let metadata: MetadataDb;
  let store: RoutedBlobStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-routed-'));
    metadata = await openDatabase({ databaseUrl: null, dataDir: dir });
    store = new RoutedBlobStore(new LocalBlobStore(join(dir, 'blobs')), { prefix: 'i/', store: new DatabaseBlobStore(metadata.db) });
    await store.init();
  });
  afterEach(async () => {
    await store.close();
    await metadata.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a key under the prefix becomes a row and no file; any other key a file and no row', async () => {
    await store.put('i/u1/aa.1', Buffer.from('small'));
    await store.put('c/u1/bb/bb.1', Buffer.from('large'));
    const rows = await metadata.db.selectFrom('inline_blobs').select(['key', sql<number>`octet_length(data)`.as('size')]).execute();
    assert.deepEqual(rows.map((r) => [r.key, Number(r.size)]), [['i/u1/aa.1', 5]]);
    assert.deepEqual(await readdir(join(dir, 'blobs', 'c', 'u1', 'bb')), ['bb.1']);
    assert.deepEqual(await readdir(join(dir, 'blobs')).then((n) => n.filter((x) => x !== '.tmp').sort()), ['c']);
    assert.equal((await readAll(await store.get('i/u1/aa.1', { start: 1, end: 3 }))).toString(), 'mal');
    assert.equal((await readAll(await store.get('c/u1/bb/bb.1'))).toString(), 'large');
  });

  it('lists both stores under a prefix that covers both, one under a prefix of one', async () => {
    await store.put('i/u1/aa.1', Buffer.from('1'));
    await store.put('i/u2/cc.1', Buffer.from('22'));
    await store.put('c/u1/bb/bb.1', Buffer.from('333'));
    const list = async (p: string) => {
      const out: string[] = [];
      for await (const b of store.list(p)) out.push(`${b.key}=${b.size}`);
      return out.sort();
    };
    assert.deepEqual(await list(''), ['c/u1/bb/bb.1=3', 'i/u1/aa.1=1', 'i/u2/cc.1=2']);
    assert.deepEqual(await list('i'), ['i/u1/aa.1=1', 'i/u2/cc.1=2']);
    assert.deepEqual(await list('i/u1/'), ['i/u1/aa.1=1']);
    assert.deepEqual(await list('c/'), ['c/u1/bb/bb.1=3']);
  });

  it('gives a local path only for blobs that are files', async () => {
    assert.equal(store.localFile('i/u1/aa.1'), null);
    assert.deepEqual(store.localFile('c/u1/bb/bb.1'), { path: join(dir, 'blobs', 'c', 'u1', 'bb', 'bb.1'), offset: 0 });
    assert.equal(store.capabilities.localFiles, true);
    await store.delete('i/u1/aa.1'); // deleting a missing routed key resolves, as for any store
  });
});
