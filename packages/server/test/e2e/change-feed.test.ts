/**
 * The change feed over real HTTP on SQLite and PostgreSQL: completeness and
 * order under concurrent writers, tombstones, and 410 RESYNC_REQUIRED
 * whenever a cursor cannot be continued exactly.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';

const pgSkip = await postgresUnavailable();
const DAY = 86_400_000;

async function put(u: TestUser, path: string, body: string) {
  const res = await u.fetch(`/api/v1/content/${path}`, { method: 'PUT', body });
  return { status: res.status, body: (await res.json()) as any };
}

async function readAll(u: TestUser, cursor: string, limit = 50) {
  const changes: any[] = [];
  for (let pages = 0; pages < 1000; pages++) {
    const r = await u.json(`/api/v1/changes?cursor=${cursor}&limit=${limit}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    changes.push(...r.body.changes);
    cursor = r.body.cursor;
    if (!r.body.hasMore) break;
  }
  return { changes, cursor };
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`change feed on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let now = Date.now();
    let srv: TestServer;
    let alice: TestUser;
    before(async () => {
      srv = await startTestServer({ dialect, clock: { now: () => now }, config: { changeRetentionDays: 10, accessTokenSeconds: 365 * 86400 } }); // the clock jumps days ahead: keep the token valid
      alice = await srv.user('alice');
    });
    after(() => srv?.close());

    it('names the server and the drive, and starts from now with "latest"', async () => {
      const d = await alice.json('/api/v1/drive');
      assert.equal(d.status, 200);
      assert.match(d.body.instanceId, /^[0-9a-f-]{36}$/);
      assert.equal(d.body.rootId, alice.rootId);
      const latest = await alice.json('/api/v1/changes?cursor=latest');
      assert.deepEqual(latest.body.changes, []);
      assert.equal(latest.body.cursor, d.body.cursor);
    });

    it('records every kind of change in commit order, deletions as tombstones', async () => {
      const start = (await alice.json('/api/v1/drive')).body.cursor;
      const folder = await alice.json('/api/v1/folders', { method: 'POST', body: { path: 'docs' } });
      const f = await put(alice, 'docs/a.txt', 'one');
      await put(alice, 'docs/a.txt', 'two');
      await alice.json(`/api/v1/items/${f.body.id}`, { method: 'PATCH', body: { name: 'b.txt' } });
      await alice.json(`/api/v1/items/${folder.body.id}`, { method: 'DELETE' });
      await alice.json(`/api/v1/trash/${folder.body.id}/restore`, { method: 'POST' });
      const { changes } = await readAll(alice, start, 2);
      assert.deepEqual(changes.map((c) => [c.op, c.item.name]), [
        ['create', 'docs'], ['create', 'a.txt'], ['update', 'a.txt'], ['move', 'b.txt'],
        ['delete', 'docs'], ['delete', 'b.txt'], ['restore', 'docs'], ['restore', 'b.txt'],
      ]);
      const positions = changes.map((c) => c.position);
      assert.deepEqual(positions, positions.map((_, i) => positions[0] + i), 'positions are dense and increasing');
      assert.ok(changes.every((c) => c.item.id === (c.item.name === 'docs' ? folder.body.id : f.body.id)), 'items keep their ids');
    });

    it('lists every committed change exactly once under concurrent writers', async () => {
      const start = (await alice.json('/api/v1/drive')).body.cursor;
      // Four clients of the same drive write at once (same token is fine: the drive is what is shared).
      const results = await Promise.all(Array.from({ length: 4 }, (_, w) => (async () => {
        const mine: string[] = [];
        for (let i = 0; i < 15; i++) {
          const r = await put(alice, `c-${w}-${i}.txt`, `w${w} i${i}`);
          assert.equal(r.status, 201);
          mine.push(r.body.id);
          if (i % 5 === 4) assert.equal((await alice.json(`/api/v1/items/${r.body.id}`, { method: 'PATCH', body: { name: `c-${w}-${i}-renamed.txt` } })).status, 200);
        }
        return mine;
      })()));
      const { changes } = await readAll(alice, start, 7);
      const created = changes.filter((c) => c.op === 'create').map((c) => c.item.id).sort();
      assert.deepEqual(created, results.flat().sort(), 'every upload appears once');
      assert.equal(changes.filter((c) => c.op === 'move').length, 12);
      assert.equal(new Set(changes.map((c) => c.position)).size, changes.length);
      for (let i = 1; i < changes.length; i++) assert.equal(changes[i].position, changes[i - 1].position + 1);
      const moves = new Map(changes.filter((c) => c.op === 'move').map((c) => [c.item.id, c.position]));
      for (const c of changes.filter((c) => c.op === 'create' && moves.has(c.item.id))) assert.ok(c.position < moves.get(c.item.id)!);
    });

    it('answers 410 RESYNC_REQUIRED when history is gone, and for cursors of another server or from the future', async () => {
      const old = (await alice.json('/api/v1/drive')).body.cursor;
      await put(alice, 'aging.txt', 'x');
      now += 11 * DAY;
      await put(alice, 'fresh.txt', 'y');
      const r = await srv.server.coffer.services.maintenance.runAll();
      assert.ok(r.changesPruned > 0);
      const gone = await alice.json(`/api/v1/changes?cursor=${old}`);
      assert.equal(gone.status, 410);
      assert.equal(gone.body.error.code, 'RESYNC_REQUIRED');
      assert.equal(gone.body.error.details.reason, 'history-expired');
      const fresh = (await alice.json('/api/v1/changes?cursor=latest')).body.cursor;
      const [v, inst, drive, seq] = Buffer.from(fresh, 'base64url').toString().split('|');
      const forge = (parts: string[]) => Buffer.from(parts.join('|')).toString('base64url');
      const other = await alice.json(`/api/v1/changes?cursor=${forge([v, '00000000-0000-0000-0000-000000000000', drive, seq])}`);
      assert.equal(other.body.error.details.reason, 'other-server');
      const ahead = await alice.json(`/api/v1/changes?cursor=${forge([v, inst, drive, String(Number(seq) + 5)])}`);
      assert.equal(ahead.status, 410);
      assert.equal(ahead.body.error.details.reason, 'cursor-ahead-of-server');
      const junk = await alice.json('/api/v1/changes?cursor=bm9wZQ');
      assert.equal(junk.status, 400);
    });
  });
}
