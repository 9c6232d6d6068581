/**
 * Packs on a real server (local disk; SQLite and PostgreSQL): a large upload
 * is stored as a few 16 MiB packs instead of a file per chunk, reads back
 * whole and by any range (across chunks and packs), `admin check` sees each
 * chunk inside its pack, a pack is collected only once none of its chunks is
 * referenced and it is past the orphan grace, and a cut-short pack is
 * reported chunk by chunk.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cutAll } from '@coffer/protocol';
import { firstMaintenanceRun, startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { startUpload, waitFor } from '../support/processes.ts';
import { sql } from 'kysely';
import { parsePackMember } from '../../src/blobstore/packed.blob-store.ts';
import { chunkRepository } from '../../src/repositories/chunk.repository.ts';
import { PACK_BYTES } from '../../src/services/chunk-packer.ts';

const MiB = 1024 * 1024;

/** Files of the blob folder by kind: packs (p/), per-chunk files (c/), temp files. */
async function blobFiles(ts: TestServer): Promise<{ packs: string[]; chunkFiles: string[]; temp: string[] }> {
  const root = join(ts.dataDir, 'blobs');
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  const files = entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1));
  return {
    packs: files.filter((f) => f.startsWith('p/')).sort(),
    chunkFiles: files.filter((f) => f.startsWith('c/')),
    temp: files.filter((f) => f.startsWith('.tmp/')),
  };
}

async function put(user: TestUser, name: string, body: Uint8Array): Promise<string> {
  const r = await user.fetch(`/api/v1/content/${name}`, { method: 'PUT', body });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, text); // created, or a new version of an existing file
  return (JSON.parse(text) as { id: string }).id;
}

async function bytesOf(res: Response): Promise<Buffer> {
  return Buffer.from(await res.arrayBuffer());
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`chunks in packs (${dialect})`, () => {
    let ts: TestServer | undefined;
    let user: TestUser;
    let skip: string | null = null;
    let now = Date.now();
    const clock = { now: () => now };
    const big = randomBytes(40 * MiB);
    let bigId: string;

    before(async () => {
      if (dialect === 'postgres') skip = await postgresUnavailable();
      if (skip) return;
      ts = await startTestServer({ dialect, clock, config: { accessTokenSeconds: 365 * 86400, versionRetentionDays: 1, maxVersionsPerFile: 0, jobIntervalSeconds: 86400 } });
      const quiet = firstMaintenanceRun(ts); // it would collect and compact against the moved clock
      user = await ts.user('packer');
      await quiet;
    });
    after(async () => { await ts?.close(); });

    const chunkRows = () => ts!.server.coffer.metadata.db.selectFrom('chunks').select(['id', 'blob_key', 'size'])
      .where('owner_id', '=', user.userId!).execute();

    it('a 40 MiB upload is stored as a few packs of its chunks, and reads back whole and by any range', async (t) => {
      if (skip) return t.skip(skip);
      bigId = await put(user, 'big.bin', big);
      const files = await blobFiles(ts!);
      assert.deepEqual(files.chunkFiles, [], 'no file per chunk');
      assert.deepEqual(files.temp, [], 'no temp file left');
      // 16 MiB packs; one sealed early when the disk falls behind (the writer waits for its chunks) makes one more.
      const fewest = Math.ceil(big.length / PACK_BYTES);
      assert.ok(files.packs.length >= fewest && files.packs.length <= fewest + 2, files.packs.join(', '));
      const rows = await chunkRows();
      assert.equal(rows.length, cutAll(big).length);
      // The last chunk may be small enough to be kept in the database (i/…); every other one is in a pack.
      const packed = rows.filter((r) => !r.blob_key.startsWith('i/'));
      assert.ok(packed.length >= rows.length - 1);
      for (const r of packed) assert.ok(parsePackMember(r.blob_key), `${r.blob_key} names a place in a pack`);
      const sizes = await Promise.all(files.packs.map(async (p) => (await stat(join(ts!.dataDir, 'blobs', p))).size));
      assert.equal(sizes.reduce((a, b) => a + b, 0), packed.reduce((n, r) => n + r.size, 0), 'the packs hold the chunks, nothing more');

      assert.ok((await bytesOf(await user.fetch(`/api/v1/items/${bigId}/content`))).equals(big), 'whole');
      // Ranges inside one chunk, across chunk boundaries, across the first pack's end, and the tail.
      for (const [start, end] of [[0, 0], [5, 300_000], [PACK_BYTES - 1000, PACK_BYTES + 1000], [PACK_BYTES - 5, 2 * PACK_BYTES + 5], [big.length - 7, big.length - 1]]) {
        const res = await user.fetch(`/api/v1/items/${bigId}/content`, { headers: { range: `bytes=${start}-${end}` } });
        assert.equal(res.status, 206);
        assert.ok((await bytesOf(res)).equals(big.subarray(start, end + 1)), `bytes ${start}-${end}`);
      }
      const head = await user.fetch(`/api/v1/items/${bigId}/content`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get('content-length'), String(big.length));
      assert.deepEqual((await ts!.server.coffer.services.check.check({ deep: true })).problems, []);
    });

    // SQLite compares text byte by byte (BINARY) unless told otherwise: only PostgreSQL needs this.
    if (dialect === 'postgres') it('a pack is in use whatever the collation of blob_key: the key range is compared byte by byte', async (t) => {
      if (skip) return t.skip(skip);
      const { db } = ts!.server.coffer.metadata;
      const packs = [...new Set((await chunkRows()).map((r) => parsePackMember(r.blob_key)?.pack).filter((k) => k !== undefined))];
      assert.ok(packs.length >= 3);
      // This machine's databases sort as C.UTF-8; a user's may not. Under an ICU collation that ignores punctuation,
      // '<pack>/<offset>-<size>' sorts after '<pack>0', and a plain comparison would find no row for a live pack.
      await sql`create collation if not exists coffer_test_shifted (provider = icu, locale = 'und-u-ka-shifted')`.execute(db);
      await sql`alter table chunks alter column blob_key type text collate coffer_test_shifted`.execute(db);
      try {
        for (const pack of packs) assert.equal(await chunkRepository.blobInUse(db, pack), true, pack);
        assert.equal(await chunkRepository.blobInUse(db, `${packs[0]}x`), false, 'a key that names no pack');
        const r = await ts!.server.coffer.services.maintenance.removeOrphanBlobs(0);
        assert.equal(r, 0, 'the sweep keeps every live pack');
        assert.ok((await bytesOf(await user.fetch(`/api/v1/items/${bigId}/content`))).equals(big));
      } finally {
        await sql`alter table chunks alter column blob_key type text collate "default"`.execute(db);
      }
    });

    it('an edit in the middle adds a pack of the new chunks; pruning the old version keeps the packs it shared', async (t) => {
      if (skip) return t.skip(skip);
      const packsBefore = (await blobFiles(ts!)).packs;
      const edited = Buffer.from(big);
      randomBytes(1000).copy(edited, 20 * MiB);
      await put(user, 'big.bin', edited);
      const packsAfter = (await blobFiles(ts!)).packs;
      assert.equal(packsAfter.length, packsBefore.length + 1, 'the new chunks of the edit are one more pack');
      now += 2 * 86_400_000; // past the version window: the old version goes, and with it the chunks only it used
      const r = await ts!.server.coffer.services.maintenance.runAll({ graceMs: 0, orphanGraceMs: 0 });
      assert.equal(r.versionsPruned, 1);
      assert.ok(r.chunksCollected >= 1 && r.chunksCollected <= 3, `collected ${r.chunksCollected}`);
      assert.deepEqual((await blobFiles(ts!)).packs, packsAfter, 'every pack still holds a chunk in use');
      assert.ok((await bytesOf(await user.fetch(`/api/v1/items/${bigId}/content`))).equals(edited));
      assert.deepEqual((await ts!.server.coffer.services.check.check({ deep: true })).problems, []);
    });

    it('a cut-short pack is reported chunk by chunk; a download of the lost part fails', async (t) => {
      if (skip) return t.skip(skip);
      const rows = (await chunkRows()).map((r) => ({ ...r, m: parsePackMember(r.blob_key) })).filter((r) => r.m !== null);
      const first = rows[0]!.m!.pack;
      const members = rows.map((r) => ({ ...r, m: r.m! })).filter((r) => r.m.pack === first);
      const path = join(ts!.dataDir, 'blobs', first);
      const full = (await stat(path)).size;
      const cut = Math.floor(full / 2);
      await truncate(path, cut);
      try {
        const report = await ts!.server.coffer.services.check.check();
        const expected = members.filter((r) => r.m.offset + r.m.size > cut).length;
        assert.ok(expected >= 1);
        assert.equal(report.problems.length, expected, JSON.stringify(report.problems));
        assert.ok(report.problems.every((p) => p.severity === 'error' && p.kind === 'blob-size'));
        // The file reads through the lost half: its download fails (before the status line, or cut off), never whole.
        const res = await user.fetch(`/api/v1/items/${bigId}/content`);
        const body = res.status === 200 ? await res.arrayBuffer().then((b) => b.byteLength, () => -1) : -1;
        assert.ok(res.status === 503 || body < big.length, `status ${res.status}, ${body} bytes`);
      } finally {
        // Put the bytes back, as they were, for the tests that follow.
        await truncate(path, full);
      }
    });

    it('deleted and purged, the packs are collected once past the orphan grace, not before', async (t) => {
      if (skip) return t.skip(skip);
      // big.bin's packs were sealed two (test-clock) days ago; young.bin's are sealed now.
      const old = (await blobFiles(ts!)).packs;
      const youngId = await put(user, 'young.bin', randomBytes(20 * MiB));
      const young = (await blobFiles(ts!)).packs.filter((p) => !old.includes(p));
      assert.equal(young.length, 2);
      for (const id of [bigId, youngId]) {
        assert.equal((await user.fetch(`/api/v1/items/${id}`, { method: 'DELETE' })).status, 200);
        assert.equal((await user.fetch(`/api/v1/trash/${id}`, { method: 'DELETE' })).status, 204);
      }
      const { maintenance, check } = ts!.server.coffer.services;
      // Default orphan grace (15 min): every row goes, and the old packs with them; the young packs stay for now.
      now += 1000; // the test clock stands still: rows become older than a grace of 0 only once it moves
      const early = await maintenance.runAll({ graceMs: 0 });
      assert.ok(early.chunksCollected > 0);
      assert.deepEqual(await chunkRows(), []);
      assert.equal(early.orphanBlobsRemoved, old.length);
      assert.deepEqual((await blobFiles(ts!)).packs, young);
      assert.deepEqual((await check.check()).problems.map((p) => p.kind), young.map(() => 'orphan-blob'));
      now += 16 * 60_000;
      const late = await maintenance.runAll({ graceMs: 0 });
      assert.equal(late.orphanBlobsRemoved, young.length);
      assert.deepEqual(await blobFiles(ts!), { packs: [], chunkFiles: [], temp: [] });
      assert.deepEqual((await check.check()).problems, []);
    });

    it('an upload cut off midway leaves no pack and no temp file once the server has dropped it', async (t) => {
      if (skip) return t.skip(skip);
      // 7 MiB of an announced 24 MiB, then the connection is cut: the chunks so far sit in an open pack.
      const up = startUpload(ts!.url, user.token, 'cut.bin', 24 * MiB);
      for (let i = 0; i < 7; i++) await up.write(randomBytes(MiB));
      await waitFor('the open pack on disk', async () => (await blobFiles(ts!)).temp.length > 0, 10_000, 10);
      up.cut();
      const { upload } = ts!.server.coffer.services;
      await waitFor('the server to drop the upload', () => upload.active === 0, 10_000, 10);
      await waitFor('the temp file to go', async () => (await blobFiles(ts!)).temp.length === 0, 10_000, 10);
      assert.deepEqual(await blobFiles(ts!), { packs: [], chunkFiles: [], temp: [] }, 'the open pack was dropped');
    });

    it('a dedup race lost for some chunks of a pack keeps the pack; lost for all of them removes it', async (t) => {
      if (skip) return t.skip(skip);
      const content = randomBytes(6 * MiB);
      const cuts = cutAll(content);
      const firstTwo = cuts[0]! + cuts[1]!;
      // B is received up to its last byte: its chunks are looked up (none is in the drive yet) and written to its open pack.
      const b = startUpload(ts!.url, user.token, 'race-b.bin', content.length);
      await b.write(content.subarray(0, content.length - 1));
      await waitFor('B\'s open pack', async () => (await blobFiles(ts!)).temp.length > 0, 10_000, 10);
      // Meanwhile A commits the same first two chunks (content-defined cuts: a prefix ending at a cut cuts alike).
      await put(user, 'race-a.bin', content.subarray(0, firstTwo));
      const packsWithA = (await blobFiles(ts!)).packs;
      await b.write(content.subarray(content.length - 1));
      b.end();
      assert.equal((await b.response).status, 201);
      const packsAfterB = (await blobFiles(ts!)).packs;
      assert.equal(packsAfterB.length, packsWithA.length + 1, 'B lost two chunks to A and kept the rest: its pack stays');
      // C: new content, raced by W, the same content sent whole: every chunk in C's pack is W's by C's commit.
      const other = randomBytes(3 * MiB);
      const c = startUpload(ts!.url, user.token, 'race-c.bin', other.length);
      await c.write(other.subarray(0, other.length - 1));
      await waitFor('C\'s open pack', async () => (await blobFiles(ts!)).temp.length > 0, 10_000, 10);
      await put(user, 'race-w.bin', other);
      await c.write(other.subarray(other.length - 1));
      c.end();
      assert.equal((await c.response).status, 201);
      assert.equal((await blobFiles(ts!)).packs.length, packsAfterB.length + 1, 'W\'s pack only: C\'s, all lost, was removed');
      assert.deepEqual((await blobFiles(ts!)).temp, []);
      for (const [name, expected] of [['race-a.bin', content.subarray(0, firstTwo)], ['race-b.bin', content], ['race-c.bin', other], ['race-w.bin', other]] as const) {
        assert.ok((await bytesOf(await user.fetch(`/api/v1/content/${name}`))).equals(expected), name);
      }
      assert.deepEqual((await ts!.server.coffer.services.check.check({ deep: true })).problems, []);
    });
  });
}
