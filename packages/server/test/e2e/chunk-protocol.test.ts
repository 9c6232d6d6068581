/**
 * The chunk protocol over real HTTP on SQLite and PostgreSQL: a client cuts
 * files with the shared FastCDC chunker, asks which chunks are missing,
 * uploads only those (many per request), resumes after a cut-off body, and
 * commits manifests conditionally and atomically, one file or many at once.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { CHUNK_MAX, cutAll } from '@coffer/protocol';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';

const pgSkip = await postgresUnavailable();
const MiB = 1024 * 1024;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Deterministic pseudo-random bytes (AES-256-CTR keystream of a seed), so chunk counts are stable. */
function seeded(n: number, seed: string): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/** What a client does before talking to the server: cut with the shared chunker, hash each chunk. */
function cut(data: Uint8Array): { bytes: Uint8Array; hash: string }[] {
  let at = 0;
  return cutAll(data).map((len) => {
    const bytes = data.subarray(at, at + len);
    at += len;
    return { bytes, hash: sha(bytes) };
  });
}

/** The content hash a client expects back: SHA-256 over the binary chunk digests. */
function manifestHash(hashes: string[]): string {
  const h = createHash('sha256');
  for (const x of hashes) h.update(Buffer.from(x, 'hex'));
  return h.digest('hex');
}

/** [u32 big-endian length][bytes] per chunk. */
function frames(chunks: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  for (const c of chunks) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(c.length);
    parts.push(len, Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  }
  return Buffer.concat(parts);
}

/** A minimal sync client that counts its requests. */
class Client {
  requests = 0;
  readonly u: TestUser;
  constructor(u: TestUser) {
    this.u = u;
  }
  async json(path: string, init: { method?: string; body?: unknown } = {}) {
    this.requests++;
    return this.u.json(path, init);
  }
  async session(): Promise<string> {
    const r = await this.json('/api/v1/uploads', { method: 'POST' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.uploadId;
  }
  async missing(id: string, hashes: string[]): Promise<string[]> {
    const r = await this.json(`/api/v1/uploads/${id}/missing`, { method: 'POST', body: { hashes } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.missing;
  }
  async putChunks(id: string, chunks: Uint8Array[]) {
    this.requests++;
    const res = await this.u.fetch(`/api/v1/uploads/${id}/chunks`, {
      method: 'PUT', body: frames(chunks), headers: { 'content-type': 'application/octet-stream' },
    });
    return { status: res.status, body: (await res.json()) as any };
  }
  commit(id: string, body: Record<string, unknown>) {
    return this.json(`/api/v1/uploads/${id}/commit`, { method: 'POST', body });
  }
  /** The whole flow for one file: session, missing, chunks (only the missing ones), commit. */
  async upload(data: Uint8Array, target: Record<string, unknown>) {
    const chunks = cut(data);
    const id = await this.session();
    const missing = new Set(await this.missing(id, chunks.map((c) => c.hash)));
    const toSend = [...new Map(chunks.filter((c) => missing.has(c.hash)).map((c) => [c.hash, c.bytes])).values()];
    if (toSend.length) assert.equal((await this.putChunks(id, toSend)).status, 200);
    const r = await this.commit(id, { ...target, chunks: chunks.map((c) => c.hash), size: data.length });
    return { ...r, sent: toSend.length, chunks, uploadId: id };
  }
}

async function download(u: TestUser, id: string): Promise<Buffer> {
  const res = await u.fetch(`/api/v1/items/${id}/content`);
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`chunk protocol on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let srv: TestServer;
    let alice: Client;
    let bob: Client;
    before(async () => {
      srv = await startTestServer({ dialect });
      alice = new Client(await srv.user('alice'));
      bob = new Client(await srv.user('bob'));
    });
    after(() => srv?.close());

    const chunkRowExists = async (owner: Client, hash: string) => {
      const { db } = srv.server.coffer.metadata;
      const user = await db.selectFrom('users').select('id').where('username', '=', owner.u.name).executeTakeFirstOrThrow();
      return !!(await db.selectFrom('chunks').select('id').where('owner_id', '=', user.id).where('hash', '=', hash).executeTakeFirst());
    };

    it('a client-chunked upload round-trips byte-exact, with the same content hash as a streaming upload', async () => {
      const data = seeded(6 * MiB + 12345, 'six');
      const s = await alice.json('/api/v1/uploads', { method: 'POST' });
      assert.equal(s.status, 201);
      assert.deepEqual(s.body.chunking, { algorithm: 'fastcdc-gear32-splitmix64-v1', min: 128 * 1024, avg: 256 * 1024, max: MiB, normalization: 2, hash: 'sha256' });
      assert.ok(Date.parse(s.body.expiresAt) > Date.now());

      const up = await alice.upload(data, { parentId: alice.u.rootId, name: 'six.bin', mustNotExist: true });
      assert.equal(up.status, 201, JSON.stringify(up.body));
      assert.ok(up.chunks.length >= 3, `${up.chunks.length} chunks`);
      assert.equal(up.sent, up.chunks.length);
      assert.equal(up.body.size, data.length);
      assert.equal(up.body.contentHash, manifestHash(up.chunks.map((c) => c.hash)), 'the client can verify the confirmation');
      assert.equal(up.headers.get('etag'), up.body.etag);
      assert.ok((await download(alice.u, up.body.id)).equals(data));

      const streamed = await alice.u.fetch('/api/v1/content/six-streamed.bin', { method: 'PUT', body: data });
      assert.equal(streamed.status, 201);
      assert.equal(((await streamed.json()) as any).contentHash, up.body.contentHash);

      // The session ended with the commit.
      const again = await alice.json(`/api/v1/uploads/${up.uploadId}/missing`, { method: 'POST', body: { hashes: [] } });
      assert.equal(again.status, 404);
      assert.equal(again.body.error.code, 'NOT_FOUND');
    });

    it('a new version after changing 1 MiB in the middle sends only the few chunks that changed', async () => {
      const v1 = seeded(24 * MiB, 'big');
      const first = await alice.upload(v1, { parentId: alice.u.rootId, name: 'big.bin' });
      assert.equal(first.status, 201);
      const v2 = Buffer.from(v1);
      seeded(MiB, 'edit').copy(v2, 12 * MiB);
      const second = await alice.upload(v2, { itemId: first.body.id, ifMatch: first.body.etag });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      const old = new Set(first.chunks.map((c) => c.hash));
      const changed = new Set(second.chunks.filter((c) => !old.has(c.hash)).map((c) => c.hash));
      assert.equal(second.sent, changed.size, 'exactly the chunks the server lacked were sent');
      // The sync client's target: 1 MiB changed in a big file sends under 5 MiB.
      const sentBytes = second.chunks.filter((c) => changed.has(c.hash)).reduce((n, c) => n + c.bytes.length, 0);
      assert.ok(sentBytes >= MiB && sentBytes < 5 * MiB, `${second.sent} of ${second.chunks.length} chunks sent, ${(sentBytes / MiB).toFixed(2)} MiB`);
      assert.equal(second.body.id, first.body.id);
      assert.equal(second.body.rev, first.body.rev + 1);
      assert.ok((await download(alice.u, first.body.id)).equals(v2));
      const versions = await alice.json(`/api/v1/items/${first.body.id}/versions`);
      assert.equal(versions.body.versions.length, 2);
    });

    it('resumes after a cut-off body without resending confirmed chunks', async () => {
      const data = seeded(10 * MiB, 'resume');
      const chunks = cut(data);
      assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
      const half = Math.floor(chunks.length / 2);
      const id = await alice.session();
      assert.equal((await alice.missing(id, chunks.map((c) => c.hash))).length, chunks.length);

      // Send the first half and part of the next frame, then drop the connection.
      const body = frames(chunks.slice(0, half + 1).map((c) => c.bytes));
      const cutAt = body.length - Math.floor(chunks[half].bytes.length / 2);
      await new Promise<void>((resolve) => {
        const url = new URL(`${srv.url}/api/v1/uploads/${id}/chunks`);
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'PUT', headers: {
          authorization: `Bearer ${alice.u.token}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked',
        } });
        req.on('error', () => resolve());
        req.on('response', () => resolve());
        req.write(body.subarray(0, cutAt), () => setTimeout(() => { req.destroy(); resolve(); }, 300));
      });

      const rest = chunks.slice(half).map((c) => c.hash);
      let missing: string[] = [];
      for (let i = 0; i < 50; i++) {
        missing = await alice.missing(id, chunks.map((c) => c.hash));
        if (missing.length === rest.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(missing, rest, 'the complete frames before the cut were kept; only the rest is asked for');

      // A body that ends cleanly inside a frame: 400, complete frames kept and named.
      const partial = frames([chunks[half].bytes, chunks[half + 1].bytes]);
      const res = await alice.u.fetch(`/api/v1/uploads/${id}/chunks`, {
        method: 'PUT', body: partial.subarray(0, partial.length - 10), headers: { 'content-type': 'application/octet-stream' },
      });
      const bad = (await res.json()) as any;
      assert.equal(res.status, 400);
      assert.equal(bad.error.code, 'BAD_CHUNK_FRAMING');
      assert.deepEqual(bad.error.details.stored, [chunks[half].hash]);
      assert.deepEqual(await alice.missing(id, rest), rest.slice(1));

      const put = await alice.putChunks(id, chunks.slice(half + 1).map((c) => c.bytes));
      assert.equal(put.status, 200);
      assert.deepEqual(put.body.stored, rest.slice(1));
      const done = await alice.commit(id, { parentId: alice.u.rootId, name: 'resumed.bin', chunks: chunks.map((c) => c.hash), size: data.length });
      assert.equal(done.status, 201, JSON.stringify(done.body));
      assert.ok((await download(alice.u, done.body.id)).equals(data));
    });

    it('refuses frames that are empty or larger than the protocol maximum', async () => {
      const id = await alice.session();
      for (const len of [0, CHUNK_MAX + 1]) {
        const header = Buffer.alloc(4);
        header.writeUInt32BE(len);
        const res = await alice.u.fetch(`/api/v1/uploads/${id}/chunks`, { method: 'PUT', body: Buffer.concat([frames([Buffer.from('ok')]), header]), headers: { 'content-type': 'application/octet-stream' } });
        const body = (await res.json()) as any;
        assert.equal(res.status, 400);
        assert.equal(body.error.code, 'CHUNK_TOO_LARGE');
        assert.deepEqual(body.error.details.stored, [sha(Buffer.from('ok'))]);
      }
      const json = await alice.u.fetch(`/api/v1/uploads/${id}/chunks`, { method: 'PUT', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(json.status, 415);
    });

    it('two writers against the same version: exactly one wins, the other gets 412 and loses nothing', async () => {
      const base = await alice.upload(Buffer.from('base version'), { parentId: alice.u.rootId, name: 'contended.txt' });
      assert.equal(base.status, 201);
      const contents = [seeded(600 * 1024, 'writer-a'), seeded(700 * 1024, 'writer-b')];
      const prepared = await Promise.all(contents.map(async (data) => {
        const chunks = cut(data);
        const id = await alice.session();
        await alice.missing(id, chunks.map((c) => c.hash));
        assert.equal((await alice.putChunks(id, chunks.map((c) => c.bytes))).status, 200);
        return { id, chunks, data };
      }));
      const answers = await Promise.all(prepared.map((w) => alice.commit(w.id, {
        itemId: base.body.id, ifMatch: base.body.etag, chunks: w.chunks.map((c) => c.hash), size: w.data.length,
      })));
      const winners = answers.filter((a) => a.status === 200);
      const losers = answers.filter((a) => a.status === 412);
      assert.equal(winners.length, 1, answers.map((a) => a.status).join());
      assert.equal(losers.length, 1);
      assert.equal(losers[0].body.error.code, 'VERSION_CONFLICT');
      assert.equal(losers[0].body.error.details.currentEtag, winners[0].body.etag);
      const w = answers.indexOf(winners[0]);
      const loser = prepared[1 - w];
      assert.ok((await download(alice.u, base.body.id)).equals(prepared[w].data), "the loser's content is not visible");

      // Its chunks stay referenced by its session, even through garbage collection with no grace period.
      await srv.server.coffer.services.maintenance.runAll({ graceMs: 0 });
      for (const c of loser.chunks) assert.ok(await chunkRowExists(alice, c.hash));
      // It can look at the current version and commit again without sending anything.
      assert.deepEqual(await alice.missing(loser.id, loser.chunks.map((c) => c.hash)), []);
      const retry = await alice.commit(loser.id, {
        itemId: base.body.id, ifMatch: losers[0].body.error.details.currentEtag, chunks: loser.chunks.map((c) => c.hash), size: loser.data.length,
      });
      assert.equal(retry.status, 200, JSON.stringify(retry.body));
      assert.ok((await download(alice.u, base.body.id)).equals(loser.data));
    });

    it('mustNotExist and a stale ifMatch conflict with 412 and the current ETag', async () => {
      const first = await alice.upload(Buffer.from('first'), { parentId: alice.u.rootId, name: 'once.txt', mustNotExist: true });
      assert.equal(first.status, 201);
      const dup = await alice.upload(Buffer.from('second'), { parentId: alice.u.rootId, name: 'once.txt', mustNotExist: true });
      assert.equal(dup.status, 412);
      assert.equal(dup.body.error.code, 'VERSION_CONFLICT');
      assert.equal(dup.body.error.details.currentEtag, first.body.etag);
      const stale = await alice.upload(Buffer.from('third'), { parentId: alice.u.rootId, name: 'once.txt', ifMatch: '"not-the-current-version"' });
      assert.equal(stale.status, 412);
      assert.equal(stale.body.error.details.currentEtag, first.body.etag);
      const gone = await alice.upload(Buffer.from('fourth'), { parentId: alice.u.rootId, name: 'never.txt', ifMatch: first.body.etag });
      assert.equal(gone.status, 412);
      assert.equal((await download(alice.u, first.body.id)).toString(), 'first');
      const both = await alice.upload(Buffer.from('x'), { parentId: alice.u.rootId, name: 'x.txt', mustNotExist: true, ifMatch: first.body.etag });
      assert.equal(both.status, 400);
    });

    it('a commit naming chunks the caller does not hold gets 409 CHUNKS_MISSING, even when another user holds them', async () => {
      const bobs = Buffer.from('bob keeps this to himself');
      const b = await bob.upload(bobs, { parentId: bob.u.rootId, name: 'bob.txt' });
      assert.equal(b.status, 201);
      const id = await alice.session();
      const unknown = sha(randomBytes(32));
      assert.deepEqual(await alice.missing(id, [sha(bobs), unknown]), [sha(bobs), unknown], "bob's chunk is missing for alice");
      const r = await alice.commit(id, { parentId: alice.u.rootId, name: 'probe.txt', chunks: [sha(bobs), unknown, unknown], size: bobs.length });
      assert.equal(r.status, 409);
      assert.equal(r.body.error.code, 'CHUNKS_MISSING');
      assert.deepEqual(r.body.error.details.missing, [sha(bobs), unknown]);
      const wrongSize = await bob.upload(bobs, { parentId: bob.u.rootId, name: 'bob2.txt' });
      assert.equal(wrongSize.status, 201, 'bob can reuse his own chunk without sending it');
      assert.equal(wrongSize.sent, 0);
      const id2 = await bob.session();
      const lie = await bob.commit(id2, { parentId: bob.u.rootId, name: 'bob3.txt', chunks: [sha(bobs)], size: bobs.length + 1 });
      assert.equal(lie.status, 400);
      assert.equal(lie.body.error.code, 'VALIDATION_FAILED');
    });

    it('500 small files in a few requests: one missing call, one chunks call, one batch commit', async () => {
      const folder = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.u.rootId, name: 'many' } });
      assert.equal(folder.status, 201);
      const cursor = (await alice.json('/api/v1/drive')).body.cursor;
      const files = Array.from({ length: 500 }, (_, i) => ({ name: `f${String(i).padStart(3, '0')}.txt`, data: randomBytes(1024 + Math.floor(Math.random() * 3072)) }));
      const client = new Client(alice.u);
      const id = await client.session();
      const cutFiles = files.map((f) => ({ ...f, chunks: cut(f.data) }));
      const all = [...new Set(cutFiles.flatMap((f) => f.chunks.map((c) => c.hash)))];
      const missing = new Set(await client.missing(id, all));
      assert.equal(missing.size, 500);
      const byHash = new Map(cutFiles.flatMap((f) => f.chunks).map((c) => [c.hash, c.bytes]));
      const put = await client.putChunks(id, [...missing].map((h) => byHash.get(h)!));
      assert.equal(put.status, 200);
      assert.equal(put.body.stored.length, 500);
      const batch = await client.json(`/api/v1/uploads/${id}/commit-batch`, {
        method: 'POST',
        body: { files: cutFiles.map((f) => ({ parentId: folder.body.id, name: f.name, mustNotExist: true, chunks: f.chunks.map((c) => c.hash), size: f.data.length })) },
      });
      assert.equal(batch.status, 200, JSON.stringify(batch.body).slice(0, 500));
      assert.equal(client.requests, 4, 'session + missing + chunks + batch commit');
      assert.equal(batch.body.results.length, 500);
      for (const [i, r] of batch.body.results.entries()) {
        assert.equal(r.status, 201);
        assert.equal(r.item.name, files[i].name);
        assert.equal(r.item.contentHash, manifestHash(cutFiles[i].chunks.map((c) => c.hash)));
      }
      for (const [i, r] of batch.body.results.entries()) assert.ok((await download(alice.u, r.item.id)).equals(files[i].data), files[i].name);

      // One create per file in the change feed.
      const changes: any[] = [];
      let c = cursor;
      for (;;) {
        const page = await alice.json(`/api/v1/changes?cursor=${c}&limit=1000`);
        assert.equal(page.status, 200);
        changes.push(...page.body.changes);
        c = page.body.cursor;
        if (!page.body.hasMore) break;
      }
      assert.equal(changes.length, 500);
      assert.ok(changes.every((ch) => ch.op === 'create' && ch.item.parentId === folder.body.id));
      assert.deepEqual(new Set(changes.map((ch) => ch.item.id)), new Set(batch.body.results.map((r: any) => r.item.id)));

      // A batch where some files conflict: the others commit, the session stays for a retry.
      const id2 = await client.session();
      const extra = randomBytes(100);
      await client.putChunks(id2, [extra]);
      const mixed = await client.json(`/api/v1/uploads/${id2}/commit-batch`, {
        method: 'POST',
        body: { files: [
          { parentId: folder.body.id, name: files[0].name, mustNotExist: true, chunks: [sha(extra)], size: extra.length },
          { parentId: folder.body.id, name: 'extra.bin', mustNotExist: true, chunks: [sha(extra)], size: extra.length },
          { parentId: folder.body.id, name: 'bad/name', chunks: [sha(extra)], size: extra.length },
        ] },
      });
      assert.equal(mixed.status, 200);
      assert.deepEqual(mixed.body.results.map((r: any) => r.status), [412, 201, 400]);
      assert.equal(mixed.body.results[0].error.code, 'VERSION_CONFLICT');
      assert.equal(mixed.body.results[2].error.code, 'INVALID_NAME');
      assert.equal((await download(alice.u, batch.body.results[0].item.id)).toString('hex'), files[0].data.toString('hex'));
      assert.deepEqual(await client.missing(id2, [sha(extra)]), [], 'the session is still open');
    });

    it('two batch commits racing to create the same names: each name has exactly one winner', async () => {
      const folder = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.u.rootId, name: 'race' } });
      const writers = await Promise.all([0, 1].map(async (w) => {
        const id = await alice.session();
        const files = Array.from({ length: 20 }, (_, i) => Buffer.from(`writer ${w} file ${i}`));
        assert.equal((await alice.putChunks(id, files)).status, 200);
        return { id, files };
      }));
      const answers = await Promise.all(writers.map((w) => alice.json(`/api/v1/uploads/${w.id}/commit-batch`, {
        method: 'POST',
        body: { files: w.files.map((f, i) => ({ parentId: folder.body.id, name: `n${i}.txt`, mustNotExist: true, chunks: [sha(f)], size: f.length })) },
      })));
      for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body).slice(0, 300));
      for (let i = 0; i < 20; i++) {
        const statuses = answers.map((a) => a.body.results[i].status).sort();
        assert.equal(statuses[0], 201, `n${i}.txt: ${statuses}`);
        assert.ok(statuses[1] === 409 || statuses[1] === 412, `n${i}.txt: ${statuses}`);
        const w = answers.findIndex((a) => a.body.results[i].status === 201);
        const item = answers[w].body.results[i].item;
        assert.equal((await download(alice.u, item.id)).toString(), `writer ${w} file ${i}`);
      }
      const list = await alice.json(`/api/v1/items/${folder.body.id}/children?limit=100`);
      assert.equal(list.body.total, 20);
    });

    it('a batch keeps the quota file by file: what fits commits, the rest gets 507', async () => {
      const carol = new Client(await srv.user(`carol-${dialect}`, { quotaBytes: 10_000 }));
      const id = await carol.session();
      const files = [4000, 4000, 4000, 1500].map((n, i) => seeded(n, `quota-${i}`));
      assert.equal((await carol.putChunks(id, files)).status, 200);
      const r = await carol.json(`/api/v1/uploads/${id}/commit-batch`, {
        method: 'POST', body: { files: files.map((f, i) => ({ parentId: carol.u.rootId, name: `q${i}`, chunks: [sha(f)], size: f.length })) },
      });
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.results.map((x: any) => x.status), [201, 201, 507, 201]);
      assert.equal(r.body.results[2].error.code, 'QUOTA_EXCEEDED');
      assert.equal((await carol.json('/api/v1/me')).body.usedBytes, 9500);
    });

    it("another user's session is not found, exactly like one that never existed", async () => {
      const id = await alice.session();
      const ghost = '00000000-0000-4000-8000-000000000000';
      for (const target of [id, ghost]) {
        const calls = [
          await bob.json(`/api/v1/uploads/${target}/missing`, { method: 'POST', body: { hashes: [] } }),
          await bob.json(`/api/v1/uploads/${target}/commit`, { method: 'POST', body: { parentId: bob.u.rootId, name: 'x', chunks: [], size: 0 } }),
          await bob.json(`/api/v1/uploads/${target}/commit-batch`, { method: 'POST', body: { files: [{ parentId: bob.u.rootId, name: 'x', chunks: [], size: 0 }] } }),
          await bob.json(`/api/v1/uploads/${target}`, { method: 'DELETE' }),
          await bob.putChunks(target, [Buffer.from('planted')]),
        ];
        for (const r of calls) {
          assert.equal(r.status, 404);
          assert.equal(r.body.error.code, 'NOT_FOUND');
        }
      }
      assert.equal(await chunkRowExists(bob, sha(Buffer.from('planted'))), false);
      // Alice's session is untouched, and she can abandon it.
      assert.deepEqual(await alice.missing(id, []), []);
      assert.equal((await alice.json(`/api/v1/uploads/${id}`, { method: 'DELETE' })).status, 204);
      assert.equal((await alice.json(`/api/v1/uploads/${id}/missing`, { method: 'POST', body: { hashes: [] } })).status, 404);
    });

    it('an empty file commits with no chunks', async () => {
      const r = await alice.upload(new Uint8Array(0), { parentId: alice.u.rootId, name: 'empty.txt' });
      assert.equal(r.status, 201);
      assert.equal(r.body.size, 0);
      assert.equal(r.body.contentHash, manifestHash([]));
      assert.equal((await download(alice.u, r.body.id)).length, 0);
    });

    it('leaves storage consistent (deep check)', async () => {
      const report = await srv.server.coffer.services.check.check({ deep: true });
      assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), []);
    });
  });
}
