/**
 * A prepared query gives the rows the same query built afresh would, for
 * every parameter value, on the database and inside a transaction, on a real
 * SQLite file and on PostgreSQL (skipped, with the reason, when it is absent).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openDatabase, type MetadataDb } from './open-database.ts';
import { preparedInsert, preparedQuery, type Params } from './prepared-query.ts';
import { createTestDatabase, postgresUnavailable } from '../../test/support/postgres.ts';

let builds = 0;
const childrenNamed = preparedQuery((db, p: Params<{ parent: string; name: string }>) => {
  builds++;
  return db.selectFrom('items').select(['id', 'name'])
    .where('parent_id', '=', p('parent')).where('name', '=', p('name')).where('trashed_at', 'is', null).orderBy('id');
});
/** A parameter used twice, next to a constant the builder bound itself. */
const insertItem = preparedInsert('items');
const insertChunkIfAbsent = preparedInsert('chunks', (q) => q.onConflict((oc) => oc.columns(['owner_id', 'hash']).doNothing()).returning('id'));
const insertSession = preparedInsert('sessions');
const sameNameTwice = preparedQuery((db, p: Params<{ name: string }>) => db.selectFrom('items').select(['id', 'name'])
  .where((eb) => eb.or([eb('name', '=', p('name')), eb('id', '=', p('name'))])).where('kind', '=', 'file').orderBy('id'));

function suite(dialect: string, open: () => Promise<{ m: MetadataDb; cleanup(): Promise<void> }>): void {
  describe(`preparedQuery (${dialect})`, () => {
    let m: MetadataDb;
    let cleanup: () => Promise<void>;
    before(async () => {
      ({ m, cleanup } = await open());
      await m.db.insertInto('users').values({
        id: 'u1', username: 'ann', password_hash: 'x', root_id: 'r1', created_at: 1, is_admin: 0, quota_bytes: 0, used_bytes: 0, change_seq: 0, changes_pruned_through: 0,
      } as never).execute();
      const item = (id: string, parent: string | null, name: string, kind: 'file' | 'folder', trashed: number | null = null) => ({
        id, owner_id: 'u1', parent_id: parent, name, kind, size: 0, content_hash: null, version_id: null, rev: 1,
        created_at: 1, modified_at: 1, trashed_at: trashed, trash_batch: trashed === null ? null : id,
      });
      await m.db.insertInto('items').values([
        item('r1', null, '', 'folder'), item('a', 'r1', 'docs', 'folder'), item('b', 'r1', 'x.txt', 'file'),
        item('c', 'a', 'x.txt', 'file'), item('d', 'a', 'old.txt', 'file', 5), item('x.txt', 'a', 'y.txt', 'file'),
      ]).execute();
    });
    after(async () => cleanup());

    it('binds each run its own values, and matches the query built afresh', async () => {
      for (const [parent, name] of [['r1', 'x.txt'], ['a', 'x.txt'], ['r1', 'docs'], ['a', 'old.txt'], ['a', 'missing'], ['zz', 'x.txt']]) {
        const fresh = await m.db.selectFrom('items').select(['id', 'name'])
          .where('parent_id', '=', parent).where('name', '=', name).where('trashed_at', 'is', null).orderBy('id').execute();
        assert.deepEqual(await childrenNamed.all(m.db, { parent, name }), fresh, `${parent}/${name}`);
      }
      assert.deepEqual(await childrenNamed.first(m.db, { parent: 'a', name: 'x.txt' }), { id: 'c', name: 'x.txt' });
      assert.equal(await childrenNamed.first(m.db, { parent: 'a', name: 'old.txt' }), undefined, 'a trashed item stays out');
    });

    it('puts a parameter used twice in both places and keeps the builder\'s own constants', async () => {
      assert.deepEqual((await sameNameTwice.all(m.db, { name: 'x.txt' })).map((r) => r.id), ['b', 'c', 'x.txt']);
      assert.deepEqual(await sameNameTwice.all(m.db, { name: 'docs' }), [], 'docs is a folder: the constant still applies');
    });

    it('a prepared insert writes each row as given, whichever columns it has, and keeps its ON CONFLICT … RETURNING', async () => {
      const row = { id: 'p1', owner_id: 'u1', parent_id: 'a', name: 'prepared.txt', kind: 'file', size: 7, content_hash: 'h', version_id: null,
        rev: 1, created_at: 10, modified_at: 11, trashed_at: null, trash_batch: null };
      await insertItem.run(m.db, row);
      await insertItem.run(m.db, { ...row, id: 'p2', name: 'second.txt', size: 8 });
      const { trashed_at: _t, trash_batch: _b, ...fewer } = { ...row, id: 'p3', name: 'third.txt' }; // other columns: another statement
      await insertItem.run(m.db, fewer);
      const got = await m.db.selectFrom('items').selectAll().where('id', 'in', ['p1', 'p2', 'p3']).orderBy('id').execute();
      assert.deepEqual(got, [row, { ...row, id: 'p2', name: 'second.txt', size: 8 }, { ...row, id: 'p3', name: 'third.txt' }]);
      const chunk = { id: 'c1', owner_id: 'u1', hash: 'aa', size: 3, blob_key: 'c/u1/aa.1', created_at: 1 };
      assert.deepEqual(await insertChunkIfAbsent.run(m.db, chunk), [{ id: 'c1' }]);
      assert.deepEqual(await insertChunkIfAbsent.run(m.db, { ...chunk, id: 'c2', blob_key: 'c/u1/aa.2' }), [], 'the owner has that hash: nothing inserted');
      await m.db.deleteFrom('items').where('id', 'in', ['p1', 'p2', 'p3']).execute();
      await m.db.deleteFrom('chunks').where('id', '=', 'c1').execute();
    });

    it('refuses to prepare a write the credential epoch must see (sessions, credentials, devices, users)', async () => {
      await assert.rejects(insertSession.run(m.db, { id: 's', user_id: 'u1' }), /must not touch what a credential check reads/);
      assert.equal(await m.db.selectFrom('sessions').select('id').where('id', '=', 's').executeTakeFirst(), undefined);
    });

    it('runs inside a transaction and sees its uncommitted rows', async () => {
      await m.db.transaction().execute(async (trx) => {
        await trx.updateTable('items').set({ name: 'renamed.txt' }).where('id', '=', 'c').execute();
        assert.deepEqual(await childrenNamed.first(trx, { parent: 'a', name: 'renamed.txt' }), { id: 'c', name: 'renamed.txt' });
        assert.equal(await childrenNamed.first(trx, { parent: 'a', name: 'x.txt' }), undefined);
        await trx.updateTable('items').set({ name: 'x.txt' }).where('id', '=', 'c').execute();
      });
      assert.deepEqual(await childrenNamed.first(m.db, { parent: 'a', name: 'x.txt' }), { id: 'c', name: 'x.txt' });
    });
  });
}

suite('SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-prepared-'));
  const m = await openDatabase({ databaseUrl: null, dataDir: dir });
  return { m, cleanup: async () => { await m.close(); await rm(dir, { recursive: true, force: true }); } };
});

const pgSkip = await postgresUnavailable();
if (pgSkip) {
  it('preparedQuery (PostgreSQL)', { skip: pgSkip }, () => {});
} else {
  suite('PostgreSQL', async () => {
    const pgDb = await createTestDatabase();
    const m = await openDatabase({ databaseUrl: pgDb.url, dataDir: tmpdir() });
    return { m, cleanup: async () => { await m.close(); await pgDb.drop(); } };
  });
}

describe('preparedQuery compiles once per dialect', () => {
  it('built once for SQLite and once for PostgreSQL, whatever the number of runs', async () => {
    // Both suites above have run by now (node:test runs describe blocks in order): one build per dialect that ran.
    assert.equal(builds, pgSkip ? 1 : 2);
  });
});
