/**
 * On SQLite every parameter is compiled as `+?` (sqlite-dialect.ts says why).
 * These tests hold it to that, on a real SQLite file: every way a value
 * reaches the SQL is written with the plus, a comparison gives the same rows
 * as with a bare `?` for every type and column affinity, LIMIT / IN / IS
 * still work, and the hot lookups still search an index. A transaction
 * holds the write lock from its BEGIN (IMMEDIATE), not from its first write.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { CompiledQuery, sql } from 'kysely';
import { openDatabase, type MetadataDb } from './open-database.ts';
import { SQLITE_PARAMETER } from './sqlite-dialect.ts';

describe('SQLite parameters are compiled as +?', () => {
  let dir: string;
  let m: MetadataDb;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-dialect-'));
    m = await openDatabase({ databaseUrl: null, dataDir: dir });
    await sql`create table t (i integer, r real, s text, b blob, n numeric)`.execute(m.db);
    // Indexed, so that the comparisons below also go through index lookups, not only a scan.
    for (const c of ['i', 'r', 's', 'b', 'n']) await sql`create index ${sql.id(`t_${c}`)} on t (${sql.ref(c)})`.execute(m.db);
    await sql`insert into t values (5, 1.5, '5', x'0102', '10'), (7, 2.0, 'abc', x'ff', 'x'), (null, null, null, null, null)`.execute(m.db);
  });
  after(async () => {
    await m?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every bound value with the plus: where, insert values, limit/offset, in-lists, raw sql', () => {
    const db = m.db as unknown as import('kysely').Kysely<any>;
    const texts = [
      db.selectFrom('items').selectAll().where('id', '=', 'x').where('size', '>', 3).limit(2).offset(1).compile().sql,
      db.selectFrom('items').selectAll().where('id', 'in', ['a', 'b', 'c']).compile().sql,
      db.insertInto('items').values({ id: 'a', name: 'b' }).compile().sql,
      db.updateTable('items').set({ name: 'n' }).where('id', '=', 'i').compile().sql,
      sql`select ${1} as one, ${'two'} as two`.compile(db).sql,
    ];
    for (const text of texts) {
      const placeholders = text.match(/\+?\?/g) ?? [];
      assert.ok(placeholders.length > 0, text);
      assert.ok(placeholders.every((p) => p === SQLITE_PARAMETER), `a bare parameter in: ${text}`);
    }
  });

  it('gives the rows a bare ? gives, whatever the value type and column affinity', async () => {
    // The same file read with plain better-sqlite3 and bare parameters: the reference.
    const plain = new SQLite(join(dir, 'coffer.db'), { readonly: true });
    try {
      const values: unknown[] = [5, '5', 5.0, '5.0', 1.5, '1.5', 'abc', Buffer.from([1, 2]), Buffer.from([0xff]), 10, '10', 'x', null, 2, '2.0', 7n];
      for (const column of ['i', 'r', 's', 'b', 'n']) {
        for (const op of ['=', '<', '>=', 'is', 'is not']) {
          for (const v of values) {
            const reference = plain.prepare(`select rowid from t where ${column} ${op} ? order by rowid`).pluck().all(v);
            const ours = await m.db.executeQuery<{ rowid: number }>(
              sql`select rowid from t where ${sql.ref(column)} ${sql.raw(op)} ${v} order by rowid`.compile(m.db));
            assert.deepEqual(ours.rows.map((r) => r.rowid), reference, `${column} ${op} ${typeof v} ${String(v)}`);
          }
        }
        // IN lists of mixed types.
        for (let k = 0; k + 3 <= values.length; k++) {
          const list = values.slice(k, k + 3).filter((v) => v !== null);
          const reference = plain.prepare(`select rowid from t where ${column} in (${list.map(() => '?').join(', ')}) order by rowid`).pluck().all(...list);
          const ours = await m.db.executeQuery<{ rowid: number }>(
            sql`select rowid from t where ${sql.ref(column)} in (${sql.join(list)}) order by rowid`.compile(m.db));
          assert.deepEqual(ours.rows.map((r) => r.rowid), reference, `${column} in ${list.map(String).join(', ')}`);
        }
      }
    } finally {
      plain.close();
    }
  });

  it('LIMIT, OFFSET, IN and values in the select list still work', async () => {
    const db = m.db as unknown as import('kysely').Kysely<any>;
    const limited = await db.selectFrom('t').select('i').where('i', 'is not', null).orderBy('i').limit(1).offset(1).execute();
    assert.deepEqual(limited, [{ i: 7 }]);
    const listed = await db.selectFrom('t').select('s').where('s', 'in', ['abc', '5', 'none']).orderBy('s').execute();
    assert.deepEqual(listed, [{ s: '5' }, { s: 'abc' }]);
    const selected = await sql<{ a: number; b: string; c: null; d: Buffer }>`select ${3} as a, ${'x'} as b, ${null} as c, ${Buffer.from([9])} as d`.execute(db);
    assert.deepEqual(selected.rows, [{ a: 3, b: 'x', c: null, d: Buffer.from([9]) }]);
  });

  it('every partial index of the schema has an IS [NOT] NULL condition, which +? does not hide from the planner', async () => {
    const indexes = await sql<{ name: string; sql: string }>`select name, sql from sqlite_master where type = 'index' and sql like '% where %'`.execute(m.db);
    assert.ok(indexes.rows.length > 0, 'the schema has partial indexes');
    for (const { name, sql: text } of indexes.rows) {
      assert.match(text.slice(text.toLowerCase().lastIndexOf(' where ')), /^ where ("\w+" is (not )?null)( and "\w+" is (not )?null)*$/i, `${name}: ${text}`);
    }
  });

  it('the hot lookups still search their index (path step, manifest join)', async () => {
    const db = m.db;
    const plan = async (q: { compile(): CompiledQuery }) => {
      const c = q.compile();
      const rows = await db.executeQuery<{ detail: string }>(CompiledQuery.raw(`explain query plan ${c.sql}`, [...c.parameters]));
      return rows.rows.map((r) => r.detail);
    };
    const step = await plan(db.selectFrom('items').selectAll().where('parent_id', '=', 'p').where('name', '=', 'n').where('trashed_at', 'is', null));
    assert.deepEqual(step, ['SEARCH items USING INDEX items_live_name (parent_id=? AND name=?)']);
    const manifest = await plan(db.selectFrom('version_chunks').innerJoin('chunks', 'chunks.id', 'version_chunks.chunk_id')
      .leftJoin('inline_blobs', 'inline_blobs.key', 'chunks.blob_key')
      .select(['version_chunks.seq', 'chunks.blob_key', 'inline_blobs.data']).where('version_chunks.version_id', '=', 'v').orderBy('version_chunks.seq'));
    assert.equal(manifest.length, 3, manifest.join('\n'));
    assert.ok(manifest.every((d) => d.startsWith('SEARCH ')), manifest.join('\n'));
  });

  it('a transaction holds the write lock from its start: another process cannot write while it only reads', async () => {
    const other = new SQLite(join(dir, 'coffer.db'), { timeout: 0 });
    try {
      const during = await m.db.transaction().execute(async (trx) => {
        await sql`select count(*) from t`.execute(trx); // reads only, so far
        try {
          other.prepare('insert into t (i) values (99)').run();
          return 'written';
        } catch (e) {
          return (e as { code?: string }).code;
        }
      });
      assert.equal(during, 'SQLITE_BUSY');
      other.prepare('insert into t (i) values (99)').run(); // once it has ended
      assert.equal((await sql<{ n: number }>`select count(*) as n from t where i = 99`.execute(m.db)).rows[0]!.n, 1);
      other.prepare('delete from t where i = 99').run();
    } finally {
      other.close();
    }
  });
});
