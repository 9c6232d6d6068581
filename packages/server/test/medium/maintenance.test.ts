/**
 * Retention and garbage collection with a controlled clock, on a real server
 * (real SQLite file or PostgreSQL database, real local blob folder).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';

const DAY = 86_400_000;
const pgSkip = await postgresUnavailable();

async function put(u: TestUser, path: string, body: Uint8Array | string) {
  const res = await u.fetch(`/api/v1/content/${path}`, { method: 'PUT', body: typeof body === 'string' ? body : new Uint8Array(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function countFiles(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`maintenance on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let now = Date.now();
    const clock = { now: () => now };
    let srv: TestServer;
    let alice: TestUser;
    before(async () => {
      srv = await startTestServer({ dialect, clock, config: { trashRetentionDays: 30, versionRetentionDays: 7, maxVersionsPerFile: 3, gcGraceSeconds: 3600, accessTokenSeconds: 365 * 86400 } }); // the clock jumps weeks: keep the token valid
      alice = await srv.user('alice');
    });
    after(() => srv?.close());
    const maintenance = () => srv.server.coffer.services.maintenance;

    it('purges the recycle bin after the retention period and frees the chunks', async () => {
      const data = randomBytes(400_000);
      const f = await put(alice, 'old.bin', data);
      await alice.json(`/api/v1/items/${f.body.id}`, { method: 'DELETE' });
      now += 29 * DAY;
      assert.equal((await maintenance().runAll()).trashPurged, 0);
      assert.equal((await alice.json('/api/v1/trash')).body.items.length, 1);
      now += 2 * DAY;
      const r = await maintenance().runAll();
      assert.equal(r.trashPurged, 1);
      assert.ok(r.chunksCollected >= 1, 'the purged file\'s chunks are collected');
      assert.equal((await alice.json('/api/v1/trash')).body.items.length, 0);
      assert.equal((await alice.json('/api/v1/me')).body.usedBytes, 0);
      assert.equal(await countFiles(join(srv.dataDir, 'blobs')), 0);
    });

    it('prunes versions past the window and beyond the per-file count, never the current one', async () => {
      const v = await put(alice, 'v.txt', 'v1');
      for (let i = 2; i <= 6; i++) { now += 1000; await put(alice, 'v.txt', `v${i}`); }
      let r = await maintenance().pruneVersions();
      assert.equal(r, 2, 'six versions: current + 3 earlier kept');
      assert.equal((await alice.json(`/api/v1/items/${v.body.id}/versions`)).body.versions.length, 4);
      now += 8 * DAY;
      r = await maintenance().pruneVersions();
      assert.equal(r, 3);
      const left = (await alice.json(`/api/v1/items/${v.body.id}/versions`)).body.versions;
      assert.equal(left.length, 1);
      assert.equal(left[0].current, true);
      const body = await (await alice.fetch('/api/v1/content/v.txt')).text();
      assert.equal(body, 'v6');
    });

    it('never collects a chunk younger than the grace period, and removes old orphan blobs', async () => {
      const blobs = srv.server.coffer.blobs;
      // A blob written by a writer that died before recording it, an hour and a half ago…
      const oldKey = `c/${'x'.repeat(8)}/ab/${'ab'.repeat(32)}.${(now - 5_400_000).toString(36)}-0123456789ab`;
      // …and one written a minute ago, whose upload may still be about to record it.
      const youngKey = `c/${'x'.repeat(8)}/cd/${'cd'.repeat(32)}.${(now - 60_000).toString(36)}-0123456789ab`;
      await blobs.put(oldKey, randomBytes(10));
      await blobs.put(youngKey, randomBytes(10));
      const r = await maintenance().runAll();
      assert.equal(r.orphanBlobsRemoved, 1);
      assert.equal(await blobs.stat(oldKey), null);
      assert.ok(await blobs.stat(youngKey));
      await blobs.delete(youngKey);
    });

    it('collection racing with uploads and deletes never loses a committed file', async () => {
      const shared = randomBytes(1_500_000);
      const committed = new Map<string, Buffer>();
      let stop = false;
      const collector = (async () => {
        let runs = 0;
        while (!stop && runs < 400) { await maintenance().collectChunks(0); runs++; }
        return runs;
      })();
      for (let round = 0; round < 12; round++) {
        // Upload the same content under a new name while the previous holder is deleted and purged.
        const name = `race-${round}.bin`;
        const data = Buffer.concat([shared, randomBytes(round * 1000)]);
        const [up] = await Promise.all([
          put(alice, name, data),
          (async () => {
            const prev = `race-${round - 1}.bin`;
            if (!committed.has(prev)) return;
            const item = await alice.json(`/api/v1/items/by-path?path=${prev}`);
            await alice.json(`/api/v1/items/${item.body.id}`, { method: 'DELETE' });
            await alice.json(`/api/v1/trash/${item.body.id}`, { method: 'DELETE' });
            committed.delete(prev);
          })(),
        ]);
        // A retryable refusal is allowed (the chunk it found was collected); a silent loss is not.
        if (up.status === 503) assert.equal(up.body.error.code, 'STORAGE_UNAVAILABLE');
        else { assert.equal(up.status, 201); committed.set(name, data); }
      }
      stop = true;
      assert.ok((await collector) > 0);
      for (const [name, data] of committed) {
        const res = await alice.fetch(`/api/v1/content/${name}`);
        assert.equal(res.status, 200, name);
        assert.deepEqual(Buffer.from(await res.arrayBuffer()), data);
      }
      const check = await srv.server.coffer.services.check.check({ deep: true });
      assert.deepEqual(check.problems.filter((p) => p.severity === 'error'), []);
    });
  });
}
