/**
 * Pack compaction on a real server (local disk; SQLite and PostgreSQL): a
 * pack whose chunks were mostly collected (an edited file's old version,
 * pruned) has its live chunks copied to a new pack and their rows moved, the
 * file reads back whole and by range, the old pack stays until the
 * retirement grace has passed (a download planned before the move still
 * reads it) and then goes, giving the collected chunks' bytes back. Packs
 * more than half live, and young ones, are left alone; a damaged chunk is
 * not copied; a second compactor of the same pack moves nothing and leaves
 * nothing behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cutAll } from '@coffer/protocol';
import { firstMaintenanceRun, startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { parsePackMember } from '../../src/blobstore/packed.blob-store.ts';
import type { BlobPack, BlobStore } from '../../src/blobstore/blob-store.ts';
import { PackCompactor, RETIRED_PACK_GRACE_MS } from '../../src/services/pack-compactor.ts';
import { ORPHAN_GRACE_MS } from '../../src/services/chunk-writer.ts';

const MiB = 1024 * 1024;
const MINUTE = 60_000;

async function put(user: TestUser, name: string, body: Uint8Array): Promise<string> {
  const r = await user.fetch(`/api/v1/content/${name}`, { method: 'PUT', body });
  const text = await r.text();
  assert.ok(r.status === 201 || r.status === 200, text);
  return (JSON.parse(text) as { id: string }).id;
}

async function bytesOf(res: Response): Promise<Buffer> {
  assert.ok(res.status === 200 || res.status === 206, `status ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/** `old`'s first `keep` bytes, then `fresh` new ones: an edit that keeps the start of a file. */
function keepingStart(old: Buffer, keep: number, fresh: number): Buffer {
  return Buffer.concat([old.subarray(0, keep), randomBytes(fresh)]);
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`pack compaction (${dialect})`, () => {
    let ts: TestServer | undefined;
    let skip: string | null = null;
    let now = Date.now();
    const clock = { now: () => now };

    before(async () => {
      if (dialect === 'postgres') skip = await postgresUnavailable();
      if (skip) return;
      // Earlier versions are pruned at once (maxVersionsPerFile 0), and the clock moves only when a test moves it.
      ts = await startTestServer({ dialect, clock, config: { accessTokenSeconds: 365 * 86400, versionRetentionDays: 30, maxVersionsPerFile: 0, jobIntervalSeconds: 86400 } });
      await firstMaintenanceRun(ts);
    });
    after(async () => { await ts?.close(); });

    const services = () => ts!.server.coffer.services;
    const db = () => ts!.server.coffer.metadata.db;
    const packPath = (pack: string) => join(ts!.dataDir, 'blobs', pack);

    /** Every pack file on disk, with its size. */
    async function packFiles(): Promise<Map<string, number>> {
      const root = join(ts!.dataDir, 'blobs');
      const entries = await readdir(join(root, 'p'), { recursive: true, withFileTypes: true }).catch(() => []);
      const files = new Map<string, number>();
      for (const e of entries) {
        if (!e.isFile()) continue;
        const key = join(e.parentPath, e.name).slice(root.length + 1).split('\\').join('/');
        files.set(key, (await stat(join(root, key))).size);
      }
      return files;
    }

    /** Rows of chunks in packs, with their place. */
    async function packedRows(ownerId?: string) {
      let q = db().selectFrom('chunks').select(['id', 'owner_id', 'blob_key', 'size', 'hash']);
      if (ownerId) q = q.where('owner_id', '=', ownerId);
      return (await q.execute()).flatMap((r) => {
        const m = parsePackMember(r.blob_key);
        return m ? [{ ...r, m }] : [];
      });
    }

    /** Packs on disk with their size and live bytes; `below`: those compaction should take (less than half live, some). */
    async function packState(): Promise<{ packs: Map<string, { size: number; live: number }>; below: string[] }> {
      const packs = new Map<string, { size: number; live: number }>();
      for (const [key, size] of await packFiles()) packs.set(key, { size, live: 0 });
      for (const r of await packedRows()) packs.get(r.m.pack)!.live += r.size;
      const below = [...packs].filter(([, p]) => p.live > 0 && p.live * 2 < p.size).map(([k]) => k);
      return { packs, below };
    }

    /** Prunes and collects, as runAll does first, so what compaction will find can be computed beforehand. */
    async function collect(): Promise<void> {
      await services().maintenance.pruneVersions();
      await services().maintenance.collectChunks(0);
    }

    /** The check's problems other than retired packs waiting for their grace. */
    async function problemsBesidesRetired(deep: boolean) {
      const report = await services().check.check({ deep });
      return { other: report.problems.filter((p) => p.kind !== 'retired-pack'), retired: report.problems.filter((p) => p.kind === 'retired-pack') };
    }

    it('a pack mostly collected is compacted: the file reads back, the old pack goes once retired long enough, and its dead bytes with it', async (t) => {
      if (skip) return t.skip(skip);
      const user = await ts!.user('alice');
      const big = randomBytes(40 * MiB);
      const id = await put(user, 'big.bin', big);
      // The new content shares only its first 3 MiB with the old: most of the old first pack dies with the old version.
      const edited = keepingStart(big, 3 * MiB, 5 * MiB);
      await put(user, 'big.bin', edited);
      now += ORPHAN_GRACE_MS + MINUTE;
      await collect();
      const { packs, below } = await packState();
      assert.ok(below.length >= 1, `a pack less than half live: ${JSON.stringify([...packs])}`);
      // Packs no row names any more go whole, by the orphan sweep: the others are what compaction works on.
      const bytesBefore = [...packs.values()].filter((p) => p.live > 0).reduce((n, p) => n + p.size, 0);
      const filesBefore = await packFiles();
      const moving = (await packedRows(user.userId)).filter((r) => below.includes(r.m.pack));
      const liveMoving = moving.reduce((n, r) => n + r.size, 0);

      const r = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(r.packsCompacted, below.length);
      const oldBytes = below.reduce((n, k) => n + packs.get(k)!.size, 0);
      assert.equal(r.bytesReclaimed, oldBytes - liveMoving);
      // The live chunks are in one new pack, exactly; the old packs are still there, for downloads planned before.
      const files = await packFiles();
      const added = [...files.keys()].filter((k) => !filesBefore.has(k));
      assert.equal(added.length, 1, `one new pack: ${added.join(', ')}`);
      assert.equal(files.get(added[0]!), liveMoving, 'the new pack holds the live chunks and nothing else');
      for (const k of below) assert.ok(files.has(k), `${k} is kept for now`);
      const rowsAfter = new Map((await packedRows(user.userId)).map((row) => [row.id, row]));
      for (const m of moving) assert.equal(rowsAfter.get(m.id)!.m.pack, added[0], `chunk ${m.id} moved`);

      const whole = await bytesOf(await user.fetch(`/api/v1/items/${id}/content`));
      assert.ok(whole.equals(edited), 'whole, after compaction');
      const bounds = cutAll(edited).reduce<number[]>((acc, n) => [...acc, (acc.at(-1) ?? 0) + n], []);
      const lastShared = bounds.filter((b) => b <= 3 * MiB).at(-1)!;
      for (const [start, end] of [[bounds[0]! - 10, bounds[0]! + 10], [5, bounds[3]! + 7], [lastShared - 100, lastShared + 100], [edited.length - 9, edited.length - 1]]) {
        const res = await user.fetch(`/api/v1/items/${id}/content`, { headers: { range: `bytes=${start}-${end}` } });
        assert.equal(res.status, 206);
        assert.ok((await bytesOf(res)).equals(edited.subarray(start!, end! + 1)), `bytes ${start}-${end}`);
      }
      const early = await problemsBesidesRetired(true);
      assert.deepEqual(early.other, []);
      assert.deepEqual(early.retired.map((p) => p.severity), below.map(() => 'notice'), 'a retired pack is a notice, not an error');

      // Another run before the grace has passed keeps the old packs.
      now += 30 * MINUTE;
      const again = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(again.packsCompacted, 0);
      assert.equal(again.retiredPacksRemoved, 0);
      for (const k of below) assert.ok((await packFiles()).has(k), `${k} is kept until the grace has passed`);

      now += RETIRED_PACK_GRACE_MS - 30 * MINUTE + MINUTE;
      const late = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(late.retiredPacksRemoved, below.length);
      const left = await packFiles();
      for (const k of below) assert.ok(!left.has(k), `${k} is gone`);
      const bytesAfter = [...left.values()].reduce((n, s) => n + s, 0);
      assert.equal(bytesAfter, bytesBefore - r.bytesReclaimed, 'the dead bytes were given back');
      const live = (await packedRows()).reduce((n, row) => n + row.size, 0);
      assert.equal(bytesAfter, live, 'the packs hold the live chunks, nothing more');
      assert.deepEqual((await services().check.check({ deep: true })).problems, []);
      assert.deepEqual(await db().selectFrom('retired_blobs').selectAll().execute(), []);
      assert.ok((await bytesOf(await user.fetch(`/api/v1/items/${id}/content`))).equals(edited), 'whole, after the old pack went');
    });

    it('packs more than half live are left alone, and a part-dead pack waits until it is past the orphan grace', async (t) => {
      if (skip) return t.skip(skip);
      const user = await ts!.user('bob');
      const mostly = randomBytes(20 * MiB);
      const little = randomBytes(20 * MiB);
      await put(user, 'mostly.bin', mostly);
      await put(user, 'little.bin', little);
      await put(user, 'mostly.bin', keepingStart(mostly, 13 * MiB, MiB)); // ~13 of its first pack's 16 MiB stay live
      const littleNow = keepingStart(little, 2 * MiB, MiB); // ~2 of 16 stay live
      await put(user, 'little.bin', littleNow);
      now += 1000; // the rows must be older than a collection grace of 0
      await collect();
      const { packs, below } = await packState();
      const mostlyLive = [...packs].filter(([, p]) => p.live * 2 >= p.size && p.live >= 10 * MiB);
      assert.ok(mostlyLive.length >= 1, 'a pack more than half live');
      assert.ok(below.length >= 1, 'a pack less than half live');
      const keysBefore = new Map((await packedRows(user.userId)).map((r) => [r.id, r.blob_key]));

      const young = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(young.packsCompacted, 0, 'packs younger than the orphan grace: an upload may still be recording their chunks');
      now += ORPHAN_GRACE_MS + MINUTE;
      const old = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(old.packsCompacted, below.length);
      for (const r of await packedRows(user.userId)) {
        if (mostlyLive.some(([k]) => k === r.m.pack)) assert.equal(r.blob_key, keysBefore.get(r.id), 'a chunk of a mostly live pack stays');
        assert.ok(!below.includes(r.m.pack), 'no chunk is left in a pack less than half live');
      }
      const res = await user.fetch('/api/v1/content/little.bin');
      assert.ok((await bytesOf(res)).equals(littleNow));
      now += RETIRED_PACK_GRACE_MS + MINUTE;
      assert.equal((await services().maintenance.runAll({ graceMs: 0 })).retiredPacksRemoved, below.length);
      assert.deepEqual((await services().check.check()).problems, []);
    });

    it('a download planned before compaction completes: the old pack stays readable through the next runs', async (t) => {
      if (skip) return t.skip(skip);
      const user = await ts!.user('carol');
      const old = randomBytes(24 * MiB);
      await put(user, 'f.bin', old);
      // New content first (read first), then the old file's first 4 MiB: its chunks stay in the old first pack.
      const newer = Buffer.concat([randomBytes(32 * MiB), old.subarray(0, 4 * MiB)]);
      await put(user, 'f.bin', newer);
      now += ORPHAN_GRACE_MS + MINUTE;
      await collect();
      const { packs, below } = await packState();
      assert.equal(below.length, 1, `the old first pack is less than half live: ${JSON.stringify([...packs])}`);

      const res = await user.fetch('/api/v1/content/f.bin');
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const parts: Buffer[] = [];
      let got = 0;
      while (got < MiB) {
        const { value, done } = await reader.read();
        if (done) break;
        parts.push(Buffer.from(value));
        got += value.byteLength;
      }
      const r = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(r.packsCompacted, 1);
      now += 10 * MINUTE;
      const next = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(next.retiredPacksRemoved + next.orphanBlobsRemoved, 0, 'nothing removed before the retirement grace');
      assert.ok((await packFiles()).has(below[0]!), 'the old pack is still there');
      assert.ok(got < newer.length - 4 * MiB, 'the download has not read the moved chunks yet');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parts.push(Buffer.from(value));
      }
      assert.ok(Buffer.concat(parts).equals(newer), 'the download planned before the move is whole');
      assert.ok((await bytesOf(await user.fetch('/api/v1/content/f.bin'))).equals(newer), 'and one planned after it');
      now += RETIRED_PACK_GRACE_MS;
      assert.equal((await services().maintenance.runAll({ graceMs: 0 })).retiredPacksRemoved, 1);
      assert.ok(!(await packFiles()).has(below[0]!));
      assert.deepEqual((await services().check.check({ deep: true })).problems, []);
    });

    it('two compactors of one pack at once (two processes): the second moves nothing and leaves no pack behind', async (t) => {
      if (skip) return t.skip(skip);
      const user = await ts!.user('dave');
      const old = randomBytes(20 * MiB);
      await put(user, 'd.bin', old);
      const current = keepingStart(old, 3 * MiB, MiB);
      await put(user, 'd.bin', current);
      now += ORPHAN_GRACE_MS + MINUTE;
      await collect();
      const { below } = await packState();
      assert.equal(below.length, 1);
      // The second compactor (another process's) copies the chunks and is held before sealing its pack until the first has moved them.
      const { blobs, metadata } = ts!.server.coffer;
      let sealing!: (key: string) => void;
      const reachedSeal = new Promise<string>((resolve) => { sealing = resolve; });
      let release!: () => void;
      const released = new Promise<void>((resolve) => { release = resolve; });
      const held = {
        kind: blobs.kind, capabilities: blobs.capabilities,
        get: (k: string, r?: { start: number; end: number }) => blobs.get(k, r), stat: (k: string) => blobs.stat(k), delete: (k: string) => blobs.delete(k),
        openPack(): BlobPack {
          const p = blobs.openPack!();
          return {
            get size() { return p.size; },
            append: (d: Uint8Array) => p.append(d),
            seal: async (key: string) => { sealing(key); await released; return p.seal(key); },
            abort: () => p.abort(),
          };
        },
      } as unknown as BlobStore;
      const second = new PackCompactor({ db: metadata.db, blobs: held, clock }, metadata.durable).compact(ORPHAN_GRACE_MS);
      const secondKey = await reachedSeal;
      const first = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(first.packsCompacted, 1);
      release();
      assert.deepEqual(await second, { packsCompacted: 0, bytesReclaimed: 0 }, 'its rows had moved: nothing matched');
      assert.equal(await blobs.stat(secondKey), null, 'the pack nothing names is deleted at once');
      assert.ok((await bytesOf(await user.fetch('/api/v1/content/d.bin'))).equals(current));
      assert.deepEqual((await problemsBesidesRetired(true)).other, []);
      now += RETIRED_PACK_GRACE_MS + MINUTE;
      await services().maintenance.runAll({ graceMs: 0 });
      assert.deepEqual((await services().check.check({ deep: true })).problems, []);
    });

    it('a damaged chunk is not copied: its row keeps naming the old pack, which stays, and the deep check reports it', async (t) => {
      if (skip) return t.skip(skip);
      const user = await ts!.user('erin');
      const old = randomBytes(20 * MiB);
      await put(user, 'e.bin', old);
      await put(user, 'e.bin', keepingStart(old, 4 * MiB, MiB));
      now += ORPHAN_GRACE_MS + MINUTE;
      await collect();
      const { packs, below } = await packState();
      assert.equal(below.length, 1);
      const pack = below[0]!;
      const members = (await packedRows(user.userId)).filter((r) => r.m.pack === pack).sort((a, b) => a.m.offset - b.m.offset);
      assert.ok(members.length >= 2);
      const damaged = members[1]!;
      // Overwrite bytes in the middle of a live chunk inside the pack file.
      const fh = await open(packPath(pack), 'r+');
      await fh.write(Buffer.alloc(64, 0x5a), 0, 64, damaged.m.offset + Math.floor(damaged.size / 2));
      await fh.close();
      const filesBefore = await packFiles();

      const r = await services().maintenance.runAll({ graceMs: 0 });
      assert.equal(r.packsCompacted, 1, 'the other live chunks moved');
      assert.equal(r.bytesReclaimed, 0, 'the old pack is still needed');
      const rows = new Map((await packedRows(user.userId)).map((row) => [row.id, row]));
      assert.equal(rows.get(damaged.id)!.blob_key, damaged.blob_key, 'the damaged chunk was not copied');
      for (const m of members) if (m.id !== damaged.id) assert.notEqual(rows.get(m.id)!.m.pack, pack, `chunk ${m.id} moved`);
      const filesAfter = await packFiles();
      const added = [...filesAfter.keys()].filter((k) => !filesBefore.has(k));
      assert.equal(added.length, 1);
      assert.equal(filesAfter.get(added[0]!), packs.get(pack)!.live - damaged.size, 'the new pack holds the good chunks only');
      const report = await services().check.check({ deep: true });
      assert.deepEqual(report.problems.map((p) => `${p.severity} ${p.kind}`), ['error blob-hash']);
      assert.match(report.problems[0]!.detail, new RegExp(damaged.id));

      // Past the grace the old pack stays (a row names it), and later runs copy nothing more.
      now += RETIRED_PACK_GRACE_MS + MINUTE;
      const late = await services().maintenance.runAll({ graceMs: 0 });
      assert.deepEqual([late.retiredPacksRemoved, late.orphanBlobsRemoved, late.packsCompacted], [0, 0, 0]);
      assert.deepEqual(await packFiles(), filesAfter, 'the old pack stays, and no other pack was made');
      assert.deepEqual(await db().selectFrom('retired_blobs').selectAll().execute(), [], 'a pack still named is a pack like any other again');
    });
  });
}
