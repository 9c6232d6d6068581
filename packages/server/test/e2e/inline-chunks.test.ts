/**
 * Small files keep their bytes in the metadata database (`--inline-max-bytes`,
 * 16 KiB by default) instead of a blob file each: they upload, download whole
 * and by range, dedup, and are collected like any chunk, `admin check` sees
 * them, larger chunks still go to the blob store, and 0 turns it off.
 * On SQLite and PostgreSQL (skipped, with the reason, when absent).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { cutAll } from '@coffer/protocol';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { storedBlobKey } from '../../src/blobstore/packed.blob-store.ts';

const KiB = 1024;

/** Files of the data folder's blob store (packs: the local store packs each upload's chunks), temp files left out. */
async function chunkFiles(ts: TestServer): Promise<string[]> {
  const entries = await readdir(join(ts.dataDir, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && !e.parentPath.split(/[\\/]/).includes('.tmp')).map((e) => e.name);
}

async function inlineRows(ts: TestServer): Promise<{ key: string; size: number }[]> {
  const rows = await ts.server.coffer.metadata.db.selectFrom('inline_blobs').select(['key', sql<number>`octet_length(data)`.as('size')]).orderBy('key').execute();
  return rows.map((r) => ({ key: r.key, size: Number(r.size) }));
}

async function put(user: TestUser, name: string, body: Uint8Array): Promise<string> {
  const r = await user.fetch(`/api/v1/content/${name}`, { method: 'PUT', body });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return (JSON.parse(text) as { id: string }).id;
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`small chunks in the metadata database (${dialect})`, () => {
    let ts: TestServer | undefined;
    let user: TestUser;
    let skip: string | null = null;
    const small = randomBytes(4 * KiB);
    const edge = randomBytes(16 * KiB); // exactly the limit: inline
    const large = randomBytes(40 * KiB); // one chunk, over the limit: a file

    before(async () => {
      if (dialect === 'postgres') skip = await postgresUnavailable();
      if (skip) return;
      ts = await startTestServer({ dialect });
      user = await ts.user('ina');
    });
    after(async () => { await ts?.close(); });

    it('a small file becomes a row, a larger one a file, and both read back whole and by range', async (t) => {
      if (skip) return t.skip(skip);
      const smallId = await put(user, 'small.bin', small);
      await put(user, 'edge.bin', edge);
      const largeId = await put(user, 'large.bin', large);
      assert.deepEqual((await inlineRows(ts!)).map((r) => r.size).sort((a, b) => a - b), [4 * KiB, 16 * KiB]);
      assert.ok((await inlineRows(ts!)).every((r) => r.key.startsWith('i/')));
      assert.equal((await chunkFiles(ts!)).length, 1, 'only the 40 KiB chunk is in a file (a pack of one)');

      const whole = await user.fetch(`/api/v1/items/${smallId}/content`);
      assert.equal(whole.status, 200);
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(small));
      const part = await user.fetch(`/api/v1/items/${smallId}/content`, { headers: { range: 'bytes=100-199' } });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(small.subarray(100, 200)));
      const big = await user.fetch(`/api/v1/items/${largeId}/content`);
      assert.ok(Buffer.from(await big.arrayBuffer()).equals(large));
    });

    it("a big file whose last chunk is small: that chunk is a row, the rest files, and it downloads whole and by range", async (t) => {
      if (skip) return t.skip(skip);
      // Content-defined cuts depend on content only: the first chunks of 3 MiB of random bytes, then 10 KiB, end in a 10 KiB tail chunk.
      const head = randomBytes(3 << 20);
      const lengths = cutAll(head);
      const kept = lengths.slice(0, -1).reduce((a, b) => a + b, 0);
      const data = Buffer.concat([head.subarray(0, kept), randomBytes(10 * KiB)]);
      assert.equal(cutAll(data).at(-1), 10 * KiB);
      const rowsBefore = (await inlineRows(ts!)).length;
      const id = await put(user, 'tail.bin', data);
      assert.equal((await inlineRows(ts!)).length, rowsBefore + 1);
      const whole = await user.fetch(`/api/v1/items/${id}/content`);
      assert.ok(Buffer.from(await whole.arrayBuffer()).equals(data));
      const from = kept - 1000;
      const part = await user.fetch(`/api/v1/items/${id}/content`, { headers: { range: `bytes=${from}-${data.length - 1}` } });
      assert.equal(part.status, 206);
      assert.ok(Buffer.from(await part.arrayBuffer()).equals(data.subarray(from)), 'a range across the last file chunk and the row');
      assert.equal((await user.fetch(`/api/v1/items/${id}`, { method: 'DELETE' })).status, 200);
      assert.equal((await user.fetch(`/api/v1/trash/${id}`, { method: 'DELETE' })).status, 204);
    });

    it('a download whose first stored chunk is missing (file or row) fails before the status line with STORAGE_UNAVAILABLE, GET and HEAD', async (t) => {
      if (skip) return t.skip(skip);
      const { metadata, blobs } = ts!.server.coffer;
      for (const [name, body] of [['lost-row.bin', randomBytes(3 * KiB)], ['lost-file.bin', randomBytes(40 * KiB)]] as const) {
        const id = await put(user, name, body);
        const key = (await metadata.db.selectFrom('items').innerJoin('version_chunks', 'version_chunks.version_id', 'items.version_id')
          .innerJoin('chunks', 'chunks.id', 'version_chunks.chunk_id').select('chunks.blob_key').where('items.id', '=', id).executeTakeFirstOrThrow()).blob_key;
        // The file's one chunk is in a pack of its own (`<pack>/0-<size>`): removing the pack loses the chunk.
        const stored = storedBlobKey(key);
        await blobs.delete(stored);
        for (const method of ['GET', 'HEAD']) {
          const res = await user.fetch(`/api/v1/content/${name}`, { method });
          assert.equal(res.status, 503, `${method} ${name}`);
          if (method === 'GET') assert.equal((await res.json() as { error: { code: string } }).error.code, 'STORAGE_UNAVAILABLE');
          else await res.arrayBuffer();
        }
        await blobs.put(stored, body);
        // Gone again, so the checks that follow see the drive as before.
        assert.equal((await user.fetch(`/api/v1/items/${id}`, { method: 'DELETE' })).status, 200);
        assert.equal((await user.fetch(`/api/v1/trash/${id}`, { method: 'DELETE' })).status, 204);
      }
    });

    it('a small chunk is written with its chunk row, in one transaction: an upload refused at commit leaves no row behind', async (t) => {
      if (skip) return t.skip(skip);
      const tight = await ts!.user(`tight-${dialect}`, { quotaBytes: 1000 });
      const before = (await inlineRows(ts!)).length;
      // No Content-Length (a stream), so the quota can only be checked when the upload commits.
      const body = new ReadableStream({ start(c) { c.enqueue(randomBytes(4 * KiB)); c.close(); } });
      const r = await tight.fetch('/api/v1/content/over.bin', { method: 'PUT', body, duplex: 'half' } as RequestInit);
      const err = await r.json() as { error: { code: string } };
      assert.equal(err.error.code, 'QUOTA_EXCEEDED');
      assert.equal((await inlineRows(ts!)).length, before, 'no orphaned row waiting for the sweep');
      const chunks = await ts!.server.coffer.metadata.db.selectFrom('chunks').select('id').where('owner_id', '=', tight.userId!).execute();
      assert.deepEqual(chunks, []);
    });

    it('the same new content uploaded four times at once: one chunk row per hash, the losers use the winner\'s, nothing left over', async (t) => {
      if (skip) return t.skip(skip);
      const racer = await ts!.user(`racer-${dialect}`);
      const { metadata, services } = ts!.server.coffer;
      // Several file chunks and a small tail: both kinds race.
      const head = randomBytes(2 << 20);
      const kept = cutAll(head).slice(0, -1).reduce((a, b) => a + b, 0);
      const data = Buffer.concat([head.subarray(0, kept), randomBytes(5 * KiB)]);
      const filesBefore = (await chunkFiles(ts!)).length;
      const rowsBefore = (await inlineRows(ts!)).length;
      await Promise.all([0, 1, 2, 3].map((i) => put(racer, `race-${i}.bin`, data)));
      for (let i = 0; i < 4; i++) {
        const r = await racer.fetch(`/api/v1/content/race-${i}.bin`);
        assert.ok(Buffer.from(await r.arrayBuffer()).equals(data), `race-${i}.bin`);
      }
      const chunks = await metadata.db.selectFrom('chunks').select(['hash', 'blob_key']).where('owner_id', '=', racer.userId!).execute();
      const n = cutAll(data).length;
      assert.equal(chunks.length, n, 'one row per distinct chunk');
      assert.equal(new Set(chunks.map((c) => c.hash)).size, n);
      // Each upload packed its own copy; a pack none of whose chunks won is removed at its commit.
      const packs = new Set(chunks.filter((c) => !c.blob_key.startsWith('i/')).map((c) => storedBlobKey(c.blob_key)));
      assert.ok(packs.size >= 1 && [...packs].every((k) => k.startsWith('p/')), [...packs].join(', '));
      assert.equal((await chunkFiles(ts!)).length - filesBefore, packs.size, 'the losers\' packs were removed');
      assert.equal((await inlineRows(ts!)).length - rowsBefore, 1, 'one row for the small tail');
      assert.deepEqual((await services.check.check({ deep: true })).problems, []);
      for (let i = 0; i < 4; i++) {
        const item = await racer.json<{ id: string }>(`/api/v1/items/by-path?path=race-${i}.bin`);
        assert.equal((await racer.fetch(`/api/v1/items/${item.body.id}`, { method: 'DELETE' })).status, 200);
        assert.equal((await racer.fetch(`/api/v1/trash/${item.body.id}`, { method: 'DELETE' })).status, 204);
      }
      await services.maintenance.runAll({ graceMs: 0, orphanGraceMs: 0 });
    });

    it('the same bytes again are deduplicated: no second row', async (t) => {
      if (skip) return t.skip(skip);
      const before = (await inlineRows(ts!)).length;
      await put(user, 'small-again.bin', small);
      assert.equal((await inlineRows(ts!)).length, before);
    });

    it('admin check agrees; deleted and purged, the rows are collected', async (t) => {
      if (skip) return t.skip(skip);
      const { services } = ts!.server.coffer;
      assert.deepEqual((await services.check.check({ deep: true })).problems, []);
      for (const name of ['small.bin', 'small-again.bin', 'edge.bin']) {
        const item = await user.json<{ id: string }>(`/api/v1/items/by-path?path=${name}`);
        assert.equal((await user.fetch(`/api/v1/items/${item.body.id}`, { method: 'DELETE' })).status, 200);
        assert.equal((await user.fetch(`/api/v1/trash/${item.body.id}`, { method: 'DELETE' })).status, 204);
      }
      await services.maintenance.runAll({ graceMs: 0, orphanGraceMs: 0 });
      assert.deepEqual(await inlineRows(ts!), []);
      assert.equal((await chunkFiles(ts!)).length, 1, 'the large file is still there');
      assert.deepEqual((await services.check.check({ deep: true })).problems, []);
    });

    it('a damaged row is reported by admin check (size) and its file by the deep check (hash), as a damaged file would be', async (t) => {
      if (skip) return t.skip(skip);
      const { metadata, services } = ts!.server.coffer;
      await put(user, 'damaged.bin', randomBytes(2 * KiB));
      const [row] = await inlineRows(ts!);
      await metadata.db.updateTable('inline_blobs').set({ data: Buffer.alloc(100) }).where('key', '=', row.key).execute();
      assert.deepEqual((await services.check.check()).problems.map((p) => `${p.severity} ${p.kind}`), ['error blob-size']);
      await metadata.db.updateTable('inline_blobs').set({ data: Buffer.alloc(2 * KiB) }).where('key', '=', row.key).execute();
      assert.deepEqual((await services.check.check()).problems, [], 'the right size passes the shallow check');
      assert.deepEqual((await services.check.check({ deep: true })).problems.map((p) => `${p.severity} ${p.kind}`), ['error blob-hash']);
      const item = await user.json<{ id: string }>('/api/v1/items/by-path?path=damaged.bin');
      assert.equal((await user.fetch(`/api/v1/items/${item.body.id}`, { method: 'DELETE' })).status, 200);
      assert.equal((await user.fetch(`/api/v1/trash/${item.body.id}`, { method: 'DELETE' })).status, 204);
      await services.maintenance.runAll({ graceMs: 0, orphanGraceMs: 0 });
      assert.deepEqual(await inlineRows(ts!), []);
    });

    it('an orphaned row (a writer that died before recording it) is swept once old, like an orphaned file', async (t) => {
      if (skip) return t.skip(skip);
      const { blobs, services } = ts!.server.coffer;
      await blobs.put('i/nobody/00.1-00', Buffer.from('left behind')); // born at time 1: long past the grace period
      const report = await services.check.check();
      assert.deepEqual(report.problems.map((p) => p.kind), ['orphan-blob']);
      await services.maintenance.runAll({ orphanGraceMs: 0 });
      assert.deepEqual(await inlineRows(ts!), []);
    });
  });
}

describe('--inline-max-bytes 0: every chunk is a file', () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ config: { inlineMaxBytes: 0 } }); });
  after(async () => { await ts.close(); });

  it('a 4 KiB file is stored as a file, not a row', async () => {
    const user = await ts.user('files');
    const id = await put(user, 'small.bin', randomBytes(4 * KiB));
    assert.deepEqual(await inlineRows(ts), []);
    assert.equal((await chunkFiles(ts)).length, 1);
    assert.equal((await user.fetch(`/api/v1/items/${id}/content`)).status, 200);
  });
});
