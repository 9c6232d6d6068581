/**
 * A client that announces a Content-Length, sends half of it and then drops
 * the connection: nothing becomes visible, usage does not move, and an
 * aborted replacement leaves the previous content whole and downloadable.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { startUpload, waitFor } from '../support/processes.ts';

const MiB = 1024 * 1024;

/** Sends `sent` of `announced` bytes, waits until the server is reading them, then cuts the connection. */
async function abortUpload(ts: TestServer, user: TestUser, path: string, announced: number, sent: number): Promise<void> {
  const upload = ts.server.coffer.services.upload;
  const up = startUpload(ts.url, user.token, path, announced);
  for (let off = 0; off < sent; off += 256 * 1024) await up.write(randomBytes(Math.min(256 * 1024, sent - off)));
  await waitFor('the upload to be in progress', () => upload.active > 0, 10_000, 10);
  await new Promise((r) => setTimeout(r, 200)); // let the server consume (and store chunks of) what was sent
  up.cut();
  await assert.rejects(up.response, 'the cut-off upload gets no answer');
  await waitFor('the server to give up on the upload', () => upload.active === 0, 10_000, 10);
}

async function usedBytes(user: TestUser): Promise<number> {
  const me = await user.json<{ usedBytes: number }>('/api/v1/me');
  assert.equal(me.status, 200);
  return me.body.usedBytes;
}

async function rootNames(user: TestUser): Promise<string[]> {
  const r = await user.json<{ items: { name: string }[] }>(`/api/v1/items/${user.rootId}/children?limit=1000`);
  assert.equal(r.status, 200);
  return r.body.items.map((i) => i.name).sort();
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`aborted uploads (${dialect})`, () => {
    let ts: TestServer | undefined;
    let user: TestUser;
    let skip: string | null = null;

    before(async () => {
      if (dialect === 'postgres') skip = await postgresUnavailable();
      if (skip) return;
      ts = await startTestServer({ dialect });
      user = await ts.user('aborter');
    });
    after(async () => { await ts?.close(); });

    it('half of the announced body, then a dropped connection: nothing visible, usage unchanged', async (t) => {
      if (skip) return t.skip(skip);
      const keep = randomBytes(100_000);
      assert.equal((await user.fetch('/api/v1/content/keep.bin', { method: 'PUT', body: keep })).status, 201);
      const used = await usedBytes(user);
      assert.equal(used, keep.length);

      await abortUpload(ts!, user, 'half.bin', 8 * MiB, 4 * MiB);
      await abortUpload(ts!, user, 'small.bin', 1000, 500); // less than one chunk: nothing stored at all

      assert.deepEqual(await rootNames(user), ['keep.bin']);
      assert.equal((await user.fetch('/api/v1/content/half.bin')).status, 404);
      assert.equal(await usedBytes(user), used);
      const trash = await user.json<{ items: unknown[] }>('/api/v1/trash');
      assert.deepEqual(trash.body.items, []);
      const report = await ts!.server.coffer.services.check.check();
      assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), []);
    });

    it('an aborted replacement leaves the old content intact and downloadable', async (t) => {
      if (skip) return t.skip(skip);
      const old = randomBytes(3 * MiB + 17);
      const created = await user.fetch('/api/v1/content/doc.bin', { method: 'PUT', body: old });
      assert.equal(created.status, 201);
      const etag = created.headers.get('etag');
      await created.arrayBuffer();
      const used = await usedBytes(user);

      await abortUpload(ts!, user, 'doc.bin', 6 * MiB, 3 * MiB);

      const res = await user.fetch('/api/v1/content/doc.bin');
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('etag'), etag, 'the ETag still names the old content');
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(old), 'the old content is intact');
      const item = await user.json<{ id: string; size: number; rev: number }>('/api/v1/items/by-path?path=doc.bin');
      assert.equal(item.body.size, old.length);
      assert.equal(item.body.rev, 1);
      const versions = await user.json<{ versions: unknown[] }>(`/api/v1/items/${item.body.id}/versions`);
      assert.equal(versions.body.versions.length, 1, 'no version was added');
      assert.equal(await usedBytes(user), used);

      // The file still takes a real replacement afterwards.
      const next = randomBytes(MiB);
      assert.equal((await user.fetch('/api/v1/content/doc.bin', { method: 'PUT', body: next })).status, 200);
      const again = await user.fetch('/api/v1/content/doc.bin');
      assert.ok(Buffer.from(await again.arrayBuffer()).equals(next));
      assert.equal(await usedBytes(user), used - old.length + next.length);
      const report = await ts!.server.coffer.services.check.check();
      assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), []);
    });

    it('a chunk that cannot be made durable (fsync fails after its bytes were handed over) fails the upload: nothing visible, usage unchanged', async (t) => {
      if (skip) return t.skip(skip);
      const used = await usedBytes(user);
      const probe = await open(tmpdir(), 'r');
      const proto = Object.getPrototypeOf(probe) as FileHandle;
      await probe.close();
      const sync = proto.sync;
      const upload = ts!.server.coffer.services.upload;
      let syncs = 0;
      // Chunks are written and handed back before their fsync. The first fsync of this upload (its first 16 MiB pack)
      // succeeds; every one after it fails (that pack's folder, the next pack).
      t.mock.method(proto, 'sync', function (this: FileHandle) {
        if (upload.active > 0 && ++syncs > 1) return Promise.reject(Object.assign(new Error('injected EIO on fsync'), { code: 'EIO' }));
        return (sync as () => Promise<void>).apply(this);
      });
      // The server gives up as soon as a chunk fails and answers 500 while the body may still be on its way:
      // the client then sees either that answer or the connection reset under the rest of its body.
      const res = await user.fetch('/api/v1/content/undurable.bin', { method: 'PUT', body: randomBytes(24 * MiB) })
        .catch((e: unknown) => e as Error);
      t.mock.restoreAll();
      assert.ok(syncs > 1, 'the injected failure was reached');
      if (res instanceof Error) {
        assert.match(String((res.cause as { code?: string } | undefined)?.code), /ECONNRESET|EPIPE/, String(res));
      } else {
        assert.equal(res.status, 500);
        const body = await res.json() as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'INTERNAL');
        assert.doesNotMatch(JSON.stringify(body), /injected|at .*\.ts/, 'no internals leak');
      }
      await waitFor('the server to end the upload', () => upload.active === 0, 10_000, 10);
      // The server closed that connection under the unread body; a pooled request may still have picked it: once more then.
      const retried = async <T>(f: () => Promise<T>): Promise<T> => f().catch((e: Error) => {
        if ((e.cause as { code?: string } | undefined)?.code !== 'ECONNRESET') throw e;
        return f();
      });
      assert.ok(!(await retried(() => rootNames(user))).includes('undurable.bin'), 'nothing became visible');
      assert.equal(await retried(() => usedBytes(user)), used);
      const report = await ts!.server.coffer.services.check.check();
      assert.deepEqual(report.problems.filter((p) => p.severity === 'error'), []);
    });
  });
}
