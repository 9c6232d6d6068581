/**
 * Races on one drive that once broke it (found in review, reproduced, kept
 * here as regression tests): every writer of a drive takes the drive's lock
 * first, so checks cannot be invalidated before commit. PostgreSQL is where
 * these races are real (READ COMMITTED, concurrent transactions); they run
 * on SQLite too.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { itemRepository } from '../../src/repositories/item.repository.ts';
import { purgeBatch } from '../../src/services/tree.service.ts';

const pgSkip = await postgresUnavailable();

for (const dialect of ['postgres', 'sqlite'] as const) {
  describe(`drive lock on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let srv: TestServer;
    let u: TestUser;
    before(async () => {
      srv = await startTestServer({ dialect });
      u = await srv.user('alice');
    });
    after(() => srv?.close());

    it('two crossing folder moves never make a cycle', async () => {
      for (let i = 0; i < 25; i++) {
        const a = (await u.json('/api/v1/folders', { method: 'POST', body: { parentId: u.rootId, name: `A${i}` } })).body;
        const b = (await u.json('/api/v1/folders', { method: 'POST', body: { parentId: u.rootId, name: `B${i}` } })).body;
        const [r1, r2] = await Promise.all([
          u.json(`/api/v1/items/${a.id}`, { method: 'PATCH', body: { parentId: b.id } }),
          u.json(`/api/v1/items/${b.id}`, { method: 'PATCH', body: { parentId: a.id } }),
        ]);
        assert.ok(!(r1.status === 200 && r2.status === 200), `round ${i}: both moves succeeded`);
        assert.ok([r1.body?.error?.code, r2.body?.error?.code].includes('MOVE_INTO_ITSELF'));
      }
    });

    it('an upload racing the deletion of its folder never ends up live inside the bin', async () => {
      for (let i = 0; i < 25; i++) {
        const f = (await u.json('/api/v1/folders', { method: 'POST', body: { parentId: u.rootId, name: `F${i}` } })).body;
        await Promise.all([
          u.fetch(`/api/v1/items/${f.id}/children/a.txt/content`, { method: 'PUT', body: 'precious' }).then((r) => r.arrayBuffer()),
          u.json(`/api/v1/items/${f.id}`, { method: 'DELETE' }),
        ]);
        const strays = await srv.server.coffer.metadata.db.selectFrom('items as c').innerJoin('items as p', 'p.id', 'c.parent_id')
          .select('c.id').where('c.trashed_at', 'is', null).where('p.trashed_at', 'is not', null).execute();
        assert.deepEqual(strays, [], `round ${i}`);
      }
    });

    it('a purge of a bin entry listed before it was restored deletes nothing', async () => {
      const db = srv.server.coffer.metadata.db;
      const f = (await u.json('/api/v1/folders', { method: 'POST', body: { parentId: u.rootId, name: 'kept' } })).body;
      assert.equal((await u.fetch('/api/v1/content/kept/a.txt', { method: 'PUT', body: 'hello world' })).status, 201);
      await u.json(`/api/v1/items/${f.id}`, { method: 'DELETE' });
      const listed = await itemRepository.trashRootsOlderThan(db, Date.now() + 1e12, 100); // what retention would purge…
      assert.equal((await u.json(`/api/v1/trash/${f.id}/restore`, { method: 'POST' })).status, 200); // …restored meanwhile
      for (const r of listed) await db.transaction().execute((trx) => purgeBatch(trx, r.owner_id, r.id));
      const back = await u.fetch('/api/v1/content/kept/a.txt');
      assert.equal(back.status, 200);
      assert.equal(await back.text(), 'hello world');
    });
  });
}
