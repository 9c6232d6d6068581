/**
 * The files API over real HTTP, on every storage combination: SQLite and
 * PostgreSQL metadata, local-disk and S3 (real s3rver) contents.
 * PostgreSQL cases are skipped, with the reason, when it is not reachable.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';

const pgSkip = await postgresUnavailable();
const COMBOS = [
  { dialect: 'sqlite', blobs: 'local' },
  { dialect: 'postgres', blobs: 'local' },
  { dialect: 'sqlite', blobs: 's3' },
  { dialect: 'postgres', blobs: 's3' },
] as const;

async function put(u: TestUser, path: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
  const res = await u.fetch(`/api/v1/content/${path}`, { method: 'PUT', body: typeof body === 'string' ? body : new Uint8Array(body), headers });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function get(u: TestUser, path: string, headers: Record<string, string> = {}) {
  const res = await u.fetch(path, { headers });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

for (const combo of COMBOS) {
  const skip = combo.dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false;
  describe(`files API on ${combo.dialect} + ${combo.blobs}`, { skip }, () => {
    let srv: TestServer;
    let alice: TestUser;
    before(async () => {
      srv = await startTestServer({ ...combo });
      alice = await srv.user('alice');
    });
    after(() => srv?.close());

    it('creates folders, lists them paged and sorted, folders first', async () => {
      const a = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'list' } });
      assert.equal(a.status, 201);
      for (const n of ['b', 'c', 'a']) assert.equal((await put(alice, `list/${n}.txt`, n.repeat(n.charCodeAt(0) - 96))).status, 201);
      assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: a.body.id, name: 'zdir' } })).status, 201);
      const page1 = await alice.json(`/api/v1/items/${a.body.id}/children?limit=2`);
      assert.equal(page1.status, 200);
      assert.equal(page1.body.total, 4);
      assert.deepEqual(page1.body.items.map((i: any) => i.name), ['zdir', 'a.txt']);
      const page2 = await alice.json(`/api/v1/items/${a.body.id}/children?limit=2&cursor=${page1.body.nextCursor}`);
      assert.deepEqual(page2.body.items.map((i: any) => i.name), ['b.txt', 'c.txt']);
      assert.equal(page2.body.nextCursor, null);
      const bySize = await alice.json(`/api/v1/items/${a.body.id}/children?sort=size&order=desc`);
      assert.deepEqual(bySize.body.items.map((i: any) => i.name), ['zdir', 'c.txt', 'b.txt', 'a.txt']);
      const dup = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'list/zdir' } });
      assert.equal(dup.status, 409);
      assert.equal(dup.body.error.code, 'NAME_CONFLICT');
    });

    it('uploads and downloads byte-exact, with ETag, If-None-Match and ranges', async () => {
      const data = randomBytes(3 * 1024 * 1024 + 12345);
      const up = await put(alice, 'big.bin', data);
      assert.equal(up.status, 201);
      assert.equal(up.body.size, data.length);
      const down = await get(alice, '/api/v1/content/big.bin');
      assert.equal(down.status, 200);
      assert.equal(sha(down.bytes), sha(data));
      const etag = down.headers.get('etag')!;
      assert.equal(etag, up.body.etag);
      assert.equal(down.headers.get('accept-ranges'), 'bytes');
      assert.equal((await get(alice, '/api/v1/content/big.bin', { 'if-none-match': etag })).status, 304);
      const byId = await get(alice, `/api/v1/items/${up.body.id}/content`, { range: 'bytes=1048570-1048585' });
      assert.equal(byId.status, 206);
      assert.equal(byId.headers.get('content-range'), `bytes 1048570-1048585/${data.length}`);
      assert.deepEqual(byId.bytes, data.subarray(1048570, 1048586));
      const suffix = await get(alice, '/api/v1/content/big.bin', { range: 'bytes=-10' });
      assert.deepEqual(suffix.bytes, data.subarray(data.length - 10));
      const bad = await get(alice, '/api/v1/content/big.bin', { range: `bytes=${data.length}-` });
      assert.equal(bad.status, 416);
      assert.equal(bad.headers.get('content-range'), `bytes */${data.length}`);
      const empty = await put(alice, 'empty.txt', '');
      assert.equal(empty.status, 201);
      const e = await get(alice, '/api/v1/content/empty.txt');
      assert.equal(e.status, 200);
      assert.equal(e.bytes.length, 0);
    });

    it('keeps a stable id through rename and move; refuses moving a folder into itself', async () => {
      const f = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'mv' } });
      const sub = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'mv/sub' } });
      const file = await put(alice, 'mv/doc.txt', 'hello');
      const renamed = await alice.json(`/api/v1/items/${file.body.id}`, { method: 'PATCH', body: { name: 'renamed.txt' } });
      assert.equal(renamed.status, 200);
      assert.equal(renamed.body.id, file.body.id);
      const moved = await alice.json(`/api/v1/items/${file.body.id}`, { method: 'PATCH', body: { parentId: sub.body.id, ifRev: renamed.body.rev } });
      assert.equal(moved.status, 200);
      assert.equal((await get(alice, '/api/v1/content/mv/sub/renamed.txt')).bytes.toString(), 'hello');
      const stale = await alice.json(`/api/v1/items/${file.body.id}`, { method: 'PATCH', body: { name: 'x.txt', ifRev: renamed.body.rev } });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.error.code, 'VERSION_CONFLICT');
      const loop = await alice.json(`/api/v1/items/${f.body.id}`, { method: 'PATCH', body: { parentId: sub.body.id } });
      assert.equal(loop.status, 409);
      assert.equal(loop.body.error.code, 'MOVE_INTO_ITSELF');
      const root = await alice.json(`/api/v1/items/${alice.rootId}`, { method: 'PATCH', body: { name: 'x' } });
      assert.equal(root.body.error.code, 'ROOT_IMMUTABLE');
    });

    it('copies files and folders without storing content twice, counting quota', async () => {
      await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'cp' } });
      await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'cp/inner' } });
      const data = randomBytes(300_000);
      await put(alice, 'cp/inner/data.bin', data);
      const before = (await alice.json('/api/v1/me')).body.usedBytes;
      const src = await alice.json('/api/v1/items/by-path?path=cp/inner');
      const cp = await alice.json('/api/v1/items/' + src.body.id + '/copy', { method: 'POST', body: { parentId: alice.rootId, name: 'inner-copy' } });
      assert.equal(cp.status, 201);
      assert.notEqual(cp.body.id, src.body.id);
      assert.deepEqual((await get(alice, '/api/v1/content/inner-copy/data.bin')).bytes, data);
      assert.equal((await alice.json('/api/v1/me')).body.usedBytes, before + data.length);
      const into = await alice.json('/api/v1/items/' + src.body.id + '/copy', { method: 'POST', body: { parentId: src.body.id } });
      assert.equal(into.body.error.code, 'MOVE_INTO_ITSELF');
    });

    it('conditional uploads: If-None-Match * creates only, a stale If-Match gets 412 and changes nothing', async () => {
      const v1 = await put(alice, 'cond.txt', 'one', { 'if-none-match': '*' });
      assert.equal(v1.status, 201);
      const again = await put(alice, 'cond.txt', 'two', { 'if-none-match': '*' });
      assert.equal(again.status, 412);
      const v2 = await put(alice, 'cond.txt', 'two', { 'if-match': v1.body.etag });
      assert.equal(v2.status, 200);
      assert.equal(v2.body.id, v1.body.id);
      const stale = await put(alice, 'cond.txt', 'three', { 'if-match': v1.body.etag });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.error.details.currentEtag, v2.body.etag);
      assert.equal((await get(alice, '/api/v1/content/cond.txt')).bytes.toString(), 'two');
    });

    it('keeps versions: list, download and restore an earlier one', async () => {
      const v1 = await put(alice, 'ver.txt', 'first');
      await put(alice, 'ver.txt', 'second!');
      const list = await alice.json(`/api/v1/items/${v1.body.id}/versions`);
      assert.equal(list.status, 200);
      assert.equal(list.body.versions.length, 2);
      const [newest, oldest] = list.body.versions;
      assert.equal(newest.current, true);
      assert.equal(oldest.size, 5);
      assert.equal((await get(alice, `/api/v1/items/${v1.body.id}/versions/${oldest.id}/content`)).bytes.toString(), 'first');
      const restored = await alice.json(`/api/v1/items/${v1.body.id}/versions/${oldest.id}/restore`, { method: 'POST' });
      assert.equal(restored.status, 200);
      assert.equal((await get(alice, '/api/v1/content/ver.txt')).bytes.toString(), 'first');
      assert.equal((await alice.json(`/api/v1/items/${v1.body.id}/versions`)).body.versions.length, 3);
    });

    it('deletes to the recycle bin; restores to the old place; purges for good', async () => {
      await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'bin' } });
      const f = await put(alice, 'bin/keep.txt', 'keep me');
      const usedBefore = (await alice.json('/api/v1/me')).body.usedBytes;
      const folder = await alice.json('/api/v1/items/by-path?path=bin');
      assert.equal((await alice.json(`/api/v1/items/${folder.body.id}`, { method: 'DELETE' })).status, 200);
      assert.equal((await get(alice, '/api/v1/content/bin/keep.txt')).status, 404);
      assert.equal((await alice.json(`/api/v1/items/${f.body.id}`)).status, 404);
      const trash = await alice.json('/api/v1/trash');
      assert.deepEqual(trash.body.items.map((i: any) => i.id), [folder.body.id]);
      // The name is free again while the old folder sits in the bin.
      assert.equal((await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'bin' } })).status, 201);
      const restored = await alice.json(`/api/v1/trash/${folder.body.id}/restore`, { method: 'POST' });
      assert.equal(restored.status, 200);
      assert.equal(restored.body.name, 'bin (restored)');
      assert.equal((await get(alice, '/api/v1/content/bin (restored)/keep.txt')).bytes.toString(), 'keep me');
      await alice.json(`/api/v1/items/${f.body.id}`, { method: 'DELETE' });
      assert.equal((await alice.json(`/api/v1/trash/${f.body.id}`, { method: 'DELETE' })).status, 204);
      assert.equal((await alice.json('/api/v1/me')).body.usedBytes, usedBefore - 7);
      assert.equal((await alice.json(`/api/v1/trash/${f.body.id}/restore`, { method: 'POST' })).status, 404);
    });

    it('enforces the quota with a clear error and stores nothing', async () => {
      const small = await srv.user(`q${combo.dialect}${combo.blobs}`.replace(/[^a-z0-9]/g, ''), { quotaBytes: 10_000 });
      assert.equal((await put(small, 'a.bin', randomBytes(6000))).status, 201);
      const over = await put(small, 'b.bin', randomBytes(6000));
      assert.equal(over.status, 507);
      assert.equal(over.body.error.code, 'QUOTA_EXCEEDED');
      assert.equal((await get(small, '/api/v1/content/b.bin')).status, 404);
      assert.equal((await small.json('/api/v1/me')).body.usedBytes, 6000);
    });

    it('deduplicates within a drive, never across users, and the collector keeps referenced chunks', async () => {
      const bob = await srv.user(`bob${combo.dialect}${combo.blobs}`.replace(/[^a-z0-9]/g, ''));
      const data = randomBytes(2 * 1024 * 1024);
      await put(alice, 'dedup-1.bin', data);
      const db = srv.server.coffer.metadata.db;
      const count = async () => Number((await db.selectFrom('chunks').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n);
      const before = await count();
      await put(alice, 'dedup-2.bin', data);
      assert.equal(await count(), before, 'same content in the same drive stores no new chunk');
      await put(bob, 'same.bin', data);
      assert.ok((await count()) > before, "another user's identical file gets chunks of its own");
      const report = await srv.server.coffer.services.maintenance.runAll({ graceMs: 0 });
      assert.equal(report.orphanBlobsRemoved, 0);
      assert.deepEqual((await get(alice, '/api/v1/content/dedup-1.bin')).bytes, data);
      assert.deepEqual((await get(bob, '/api/v1/content/same.bin')).bytes, data);
      const check = await srv.server.coffer.services.check.check({ deep: true });
      assert.deepEqual(check.problems.filter((p) => p.severity === 'error'), []);
    });
  });
}
