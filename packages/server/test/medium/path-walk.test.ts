/**
 * Requests by path, at every depth: a path is read WALK_DEPTH names per
 * statement (item.repository.ts findLiveByPath), so a deeper one in several.
 * Each must find exactly the live item the names lead to, through live
 * folders only, on SQLite and PostgreSQL, over real HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WALK_DEPTH } from '../../src/repositories/item.repository.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';

const pgSkip = await postgresUnavailable();
const DEPTH = WALK_DEPTH + 3;

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`path walk on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let srv: TestServer;
    let alice: TestUser;
    let bob: TestUser;
    const get = async (u: TestUser, path: string) => {
      const res = await u.fetch(`/api/v1/content/${path.split('/').map(encodeURIComponent).join('/')}`);
      return { status: res.status, body: await res.text() };
    };
    const put = async (u: TestUser, path: string, body: string) => {
      const res = await u.fetch(`/api/v1/content/${path.split('/').map(encodeURIComponent).join('/')}`, { method: 'PUT', body });
      assert.equal(res.status, 201, `${path}: ${await res.text()}`);
    };

    before(async () => {
      srv = await startTestServer({ dialect });
      alice = await srv.user('alice');
      bob = await srv.user('bob');
      // d1/d2/…/d<DEPTH>, a file at every level, and the same names again under another top folder.
      let path = '';
      for (let i = 1; i <= DEPTH; i++) {
        path += `${path ? '/' : ''}d${i}`;
        assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { path } })).status, 201);
        await put(alice, `${path}/f.txt`, `alice at depth ${i}`);
      }
      assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'other' } })).status, 201);
      for (const p of ['other/d1', 'other/d1/d2']) assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { path: p } })).status, 201);
      await put(alice, 'other/d1/d2/f.txt', 'the other one');
      assert.equal((await bob.json('/api/v1/folders', { method: 'POST', body: { path: 'd1' } })).status, 201);
      await put(bob, 'd1/f.txt', 'bob at depth 1');
    });
    after(() => srv?.close());

    it('finds the file at every depth, in one statement and past it', async () => {
      let path = '';
      for (let i = 1; i <= DEPTH; i++) {
        path += `${path ? '/' : ''}d${i}`;
        const r = await get(alice, `${path}/f.txt`);
        assert.deepEqual(r, { status: 200, body: `alice at depth ${i}` }, `${path}/f.txt (${i + 1} names)`);
      }
      assert.deepEqual(await get(alice, 'other/d1/d2/f.txt'), { status: 200, body: 'the other one' });
      assert.deepEqual(await get(bob, 'd1/f.txt'), { status: 200, body: 'bob at depth 1' }, 'each drive from its own root');
      assert.equal((await get(bob, 'd1/d2/f.txt')).status, 404, 'never into another drive');
    });

    it('a name missing at any level, or a name below a file, is NOT_FOUND', async () => {
      for (const depth of [1, 2, WALK_DEPTH - 1, WALK_DEPTH, WALK_DEPTH + 1, DEPTH]) {
        const names = Array.from({ length: depth }, (_, i) => `d${i + 1}`);
        assert.equal((await get(alice, [...names, 'nope.txt'].join('/'))).status, 404, `${depth + 1} names`);
        const throughFile = [...names.slice(0, -1), 'f.txt', 'x'].join('/');
        const r = await alice.fetch(`/api/v1/content/${throughFile}`);
        assert.equal(r.status, 404, throughFile);
        assert.equal((await r.json() as { error: { code: string } }).error.code, 'NOT_FOUND');
      }
    });

    it('only folders are walked through: a row below a file (which the API cannot make) is not reached', async () => {
      const file = await alice.json<{ id: string }>(`/api/v1/items/by-path?path=${encodeURIComponent('d1/d2/f.txt')}`);
      assert.equal(file.status, 200);
      const now = Date.now();
      await srv.server.coffer.metadata.db.insertInto('items').values({
        id: `under-a-file-${dialect}`, owner_id: alice.userId!, parent_id: file.body.id, name: 'inside', kind: 'folder', size: 0,
        content_hash: null, version_id: null, rev: 1, created_at: now, modified_at: now, trashed_at: null, trash_batch: null,
      }).execute();
      for (const path of ['d1/d2/f.txt/inside', 'd1/d2/f.txt/inside/more']) {
        const r = await alice.json<{ error: { code: string } }>(`/api/v1/items/by-path?path=${encodeURIComponent(path)}`);
        assert.equal(r.status, 404, path);
        assert.equal(r.body.error.code, 'NOT_FOUND');
      }
      await srv.server.coffer.metadata.db.deleteFrom('items').where('id', '=', `under-a-file-${dialect}`).execute();
    });

    it('a trashed folder or file is not walked to, within one statement either; a live namesake is', async () => {
      for (const path of ['s', 's/a', 's/a/b', 's/a/b/c', 's/a/b/c/d', 's/a/b/c/d/e']) {
        assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { path } })).status, 201);
      }
      await put(alice, 's/a/b/c/d/e/deep.txt', 'deep');
      await put(alice, 's/a/name.txt', 'first');
      const stat = (path: string) => alice.json<{ id: string }>(`/api/v1/items/by-path?path=${encodeURIComponent(path)}`);
      // A folder three names down: every path through it, 4 to 7 names, one statement each.
      assert.equal((await alice.json(`/api/v1/items/${(await stat('s/a/b')).body.id}`, { method: 'DELETE' })).status, 200);
      for (const path of ['s/a/b/c', 's/a/b/c/d', 's/a/b/c/d/e', 's/a/b/c/d/e/deep.txt']) assert.equal((await get(alice, path)).status, 404, path);
      // A file in the bin, and a live one of the same name made after it: the live one.
      assert.equal((await alice.json(`/api/v1/items/${(await stat('s/a/name.txt')).body.id}`, { method: 'DELETE' })).status, 200);
      assert.equal((await get(alice, 's/a/name.txt')).status, 404);
      await put(alice, 's/a/name.txt', 'second');
      assert.deepEqual(await get(alice, 's/a/name.txt'), { status: 200, body: 'second' });
    });

    it('a folder in the recycle bin hides what is below it, at every depth', async () => {
      // Trash d1/…/d<WALK_DEPTH>: paths through it of WALK_DEPTH names and longer.
      const trashed = Array.from({ length: WALK_DEPTH }, (_, i) => `d${i + 1}`).join('/');
      const stat = await alice.json<{ id: string }>(`/api/v1/items/by-path?path=${encodeURIComponent(trashed)}`);
      assert.equal(stat.status, 200);
      const id = stat.body.id;
      assert.equal(id, await idByWalk(alice, trashed), 'the walk in one statement finds what listing folder by folder finds');
      assert.equal((await alice.json(`/api/v1/items/${id}`, { method: 'DELETE' })).status, 200);
      for (const extra of [['f.txt'], [`d${WALK_DEPTH + 1}`, 'f.txt'], [`d${WALK_DEPTH + 1}`, `d${WALK_DEPTH + 2}`, 'f.txt']]) {
        assert.equal((await get(alice, [trashed, ...extra].join('/'))).status, 404, [trashed, ...extra].join('/'));
      }
      assert.deepEqual(await get(alice, `${trashed.split('/').slice(0, -1).join('/')}/f.txt`), { status: 200, body: `alice at depth ${WALK_DEPTH - 1}` });
    });
  });
}

/** The id of the item at `path`, found by listing folder after folder from the root. */
async function idByWalk(u: TestUser, path: string): Promise<string> {
  let id = u.rootId;
  for (const name of path.split('/')) {
    const page = await u.json<{ items: { id: string; name: string }[] }>(`/api/v1/items/${id}/children?limit=1000`);
    const hit = page.body.items.find((i) => i.name === name);
    assert.ok(hit, `${name} under ${id}`);
    id = hit.id;
  }
  return id;
}
