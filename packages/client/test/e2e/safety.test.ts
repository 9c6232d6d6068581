/**
 * The safety valves, over a real server and real folders: a sync never
 * reads "the server looks different" or "the folder looks empty" as "the
 * user deleted everything".
 *
 * - The index remembers the server's instance id and the drive's root id:
 *   the same folder pointed at another server (a reinstalled one) or at
 *   another account stops with SERVER_IDENTITY_CHANGED; nothing is deleted
 *   here and nothing is written there.
 * - The server's drive suddenly empty (everything trashed by another
 *   client) stops with REMOTE_DRIVE_EMPTY, local files intact; after a
 *   restore from the recycle bin nothing was lost; `allowDeletes` (--yes)
 *   lets a real emptying through.
 * - Deleting more than half the folder stops with TOO_MANY_DELETES and
 *   nothing is deleted on the server (its recycle bin stays empty) until the
 *   user confirms (`allowDeletes`, `coffer sync --yes`).
 * - A folder that is missing, or is there without its root marker (an
 *   unmounted disk's empty mount point), stops with FolderMissingError; the
 *   server is untouched, and once the folder is back nothing needs doing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer, type TestUser } from '../../../server/test/support/test-server.ts';
import { runCli } from '../../../server/test/support/processes.ts';
import { syncApiOf } from '../../src/accounts/open-account.ts';
import { ApiClient } from '../../src/remote/api-client.ts';
import { login } from '../../src/remote/auth.ts';
import { MemoryCredentialStore } from '../../src/remote/credentials.ts';
import { ROOT_MARKER } from '../../src/scanner/ignore.ts';
import { previewSync } from '../../src/sync/preview.ts';
import { syncOnce, type SyncApi } from '../../src/sync/sync-engine.ts';
import { listFolder, startClient, type TestClient } from '../support/sync-client.ts';

/** A signed-in API (as the sync engine sees it) of `username` on the server at `url`: a device of its own. */
async function apiOf(url: string, username: string, deviceName: string): Promise<{ api: ApiClient; sync: SyncApi }> {
  const r = await login(url, { login: username, password: TEST_PASSWORD, deviceName });
  if (r.status !== 'signed-in') throw new Error('test users have no second factor');
  const api = new ApiClient({ baseUrl: url, credentials: new MemoryCredentialStore(r.credentials) });
  return { api, sync: syncApiOf(api) };
}

/** Every path in the drive, sorted ("dir/" for folders). */
async function remotePaths(api: ApiClient): Promise<string[]> {
  const { rootId } = await api.drive();
  const items = await api.listTree(rootId);
  const byId = new Map(items.map((i) => [i.id, i]));
  const path = (id: string): string => {
    const i = byId.get(id)!;
    return i.parentId && byId.has(i.parentId) ? `${path(i.parentId)}/${i.name}` : i.name;
  };
  return items.map((i) => path(i.id) + (i.kind === 'folder' ? '/' : '')).sort();
}

async function trashCount(u: TestUser): Promise<number> {
  const r = await u.json<{ items: unknown[] }>('/api/v1/trash?limit=1000');
  assert.equal(r.status, 200);
  return r.body.items.length;
}

async function fill(c: TestClient, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) await c.write(path, content);
}

const TEN = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [i < 5 ? `docs/d${i}.txt` : `photos/p${i}.txt`, `content ${i}`]));

describe('safety valves over a real server and real folders', () => {
  let s: TestServer;
  const clients: TestClient[] = [];
  const client = async (user: string, name: string) => {
    const c = await startClient(s.url, user, TEST_PASSWORD, name);
    clients.push(c);
    return c;
  };
  before(async () => { s = await startTestServer(); });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await s?.close();
  });

  it('another server (a reinstalled one) → SERVER_IDENTITY_CHANGED: nothing deleted here, nothing written there', async () => {
    await s.server.coffer.services.users.create({ username: 'ident', password: TEST_PASSWORD });
    const laptop = await client('ident', 'laptop');
    await fill(laptop, TEN);
    await laptop.sync();
    const before = await laptop.listing();
    // A second installation with an account of the same name: a new, empty drive at another instance.
    const other = await startTestServer();
    try {
      await other.server.coffer.services.users.create({ username: 'ident', password: TEST_PASSWORD });
      const there = await apiOf(other.url, 'ident', 'laptop');
      const opts = { folder: laptop.folder, deviceName: 'laptop' };
      await assert.rejects(syncOnce(there.sync, laptop.index, opts), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'SERVER_IDENTITY_CHANGED');
        assert.match(e.message, /instance id changed .* Nothing was synced/);
        return true;
      });
      await assert.rejects(syncOnce(there.sync, laptop.index, { ...opts, allowDeletes: true }), { code: 'SERVER_IDENTITY_CHANGED' }, '--yes does not override a changed identity');
      await assert.rejects(previewSync(there.sync, laptop.index, opts), { code: 'SERVER_IDENTITY_CHANGED' }, 'status says so too');
      assert.deepEqual(await laptop.listing(), before, 'no local file was deleted');
      assert.deepEqual(await remotePaths(there.api), [], 'nothing was uploaded to the other server');
    } finally {
      await other.close();
    }
    // The folder still syncs with its own server as before: nothing to do.
    const again = await laptop.sync();
    assert.equal(again.rounds, 0);
    assert.deepEqual(await laptop.listing(), before);
  });

  it('another account on the same server → SERVER_IDENTITY_CHANGED (drive root): nothing deleted, nothing uploaded', async () => {
    await s.server.coffer.services.users.create({ username: 'owner', password: TEST_PASSWORD });
    await s.server.coffer.services.users.create({ username: 'stranger', password: TEST_PASSWORD });
    const laptop = await client('owner', 'laptop');
    await fill(laptop, TEN);
    await laptop.sync();
    const before = await laptop.listing();
    const stranger = await apiOf(s.url, 'stranger', 'laptop');
    await assert.rejects(syncOnce(stranger.sync, laptop.index, { folder: laptop.folder, deviceName: 'laptop' }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'SERVER_IDENTITY_CHANGED');
      assert.match(e.message, /drive root changed/);
      return true;
    });
    assert.deepEqual(await laptop.listing(), before);
    assert.deepEqual(await remotePaths(stranger.api), []);
    assert.equal(await trashCount(await s.signIn('owner')), 0);
  });

  it('the server\'s drive suddenly empty → REMOTE_DRIVE_EMPTY, local files intact; restoring loses nothing; --yes lets a real emptying through', async () => {
    await s.server.coffer.services.users.create({ username: 'emptied', password: TEST_PASSWORD });
    const laptop = await client('emptied', 'laptop');
    await fill(laptop, { ...TEN, 'top.txt': 'at the top' });
    await laptop.sync();
    const before = await laptop.listing();
    const web = await s.signIn('emptied');
    const trashAll = async () => {
      const top = (await web.json<{ items: { id: string }[] }>(`/api/v1/items/${web.rootId}/children`)).body.items;
      for (const i of top) assert.equal((await web.fetch(`/api/v1/items/${i.id}`, { method: 'DELETE' })).status, 200);
      return top;
    };
    const trashed = await trashAll();
    await assert.rejects(laptop.sync(), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'REMOTE_DRIVE_EMPTY');
      assert.match(e.message, /drive is empty, but 13 items were in sync with it: this sync would delete 13 items in the folder\. Nothing was deleted/);
      assert.match(e.message, /--yes/);
      return true;
    });
    assert.deepEqual(await laptop.listing(), before, 'every local file is still there');
    await assert.rejects(laptop.sync(), { code: 'REMOTE_DRIVE_EMPTY' }, 'it keeps asking, run after run');
    const status = await previewSync(syncApiOf(laptop.api), laptop.index, { folder: laptop.folder, deviceName: 'laptop' });
    assert.equal(status.warnings.length, 1);
    assert.match(status.warnings[0], /drive is empty.*A sync will stop and ask/);
    // It was a mistake: restored from the recycle bin, nothing is lost and nothing moves.
    for (const i of trashed) assert.equal((await web.fetch(`/api/v1/trash/${i.id}/restore`, { method: 'POST' })).status, 200);
    const restored = await laptop.sync();
    assert.equal(restored.deleted + restored.uploaded + restored.downloaded, 0);
    assert.deepEqual(await laptop.listing(), before);
    assert.deepEqual(await remotePaths(laptop.api), before.map((l) => l.replace(/=.*$/, '')).sort());
    // This time it is meant: the user confirms, the folder follows the server.
    await trashAll();
    const confirmed = await laptop.sync({ allowDeletes: true });
    assert.equal(confirmed.deleted, 13);
    assert.deepEqual(await laptop.listing(), []);
    assert.equal(await trashCount(web), 3, 'the content is in the server\'s recycle bin');
  });

  it('a small drive emptied is an ordinary deletion (below the valve\'s threshold)', async () => {
    await s.server.coffer.services.users.create({ username: 'small', password: TEST_PASSWORD });
    const laptop = await client('small', 'laptop');
    await fill(laptop, { 'a.txt': 'a', 'b.txt': 'b' });
    await laptop.sync();
    const web = await s.signIn('small');
    for (const i of (await web.json<{ items: { id: string }[] }>(`/api/v1/items/${web.rootId}/children`)).body.items) await web.fetch(`/api/v1/items/${i.id}`, { method: 'DELETE' });
    const r = await laptop.sync();
    assert.equal(r.deleted, 2);
    assert.deepEqual(await laptop.listing(), []);
  });

  it('deleting more than half of the folder → TOO_MANY_DELETES, the server\'s recycle bin stays empty; allowDeletes lets it through', async () => {
    await s.server.coffer.services.users.create({ username: 'deleter', password: TEST_PASSWORD });
    const laptop = await client('deleter', 'laptop');
    await fill(laptop, TEN);
    await laptop.sync();
    const web = await s.signIn('deleter');
    const serverBefore = await remotePaths(laptop.api);
    // 7 of 12 synced items (10 files, 2 folders): just over half.
    for (let i = 0; i < 5; i++) await unlink(join(laptop.folder, `docs/d${i}.txt`));
    await rm(join(laptop.folder, 'photos/p5.txt'));
    await rm(join(laptop.folder, 'photos/p6.txt'));
    await assert.rejects(laptop.sync(), (e: Error & { code?: string; deletes?: number; total?: number }) => {
      assert.equal(e.code, 'TOO_MANY_DELETES');
      assert.equal(e.deletes, 7);
      assert.equal(e.total, 12);
      assert.match(e.message, /would delete 7 of 12 synced items \(more than 50 %\)\. Nothing was deleted/);
      return true;
    });
    assert.deepEqual(await remotePaths(laptop.api), serverBefore, 'every file is still on the server');
    assert.equal(await trashCount(web), 0, 'nothing went to the recycle bin');
    // A stricter share pauses smaller runs; a larger one lets this one through.
    await assert.rejects(laptop.sync({ maxDeleteShare: 0.1 }), { code: 'TOO_MANY_DELETES' });
    const looser = await laptop.sync({ maxDeleteShare: 0.6 });
    assert.equal(looser.deleted, 7);
    assert.equal(await trashCount(web), 7);
    assert.deepEqual(await remotePaths(laptop.api), ['docs/', 'photos/', 'photos/p7.txt', 'photos/p8.txt', 'photos/p9.txt']);
    // And the confirmation (`--yes`).
    await rm(join(laptop.folder, 'photos'), { recursive: true });
    await rm(join(laptop.folder, 'docs'), { recursive: true });
    await assert.rejects(laptop.sync(), { code: 'TOO_MANY_DELETES' });
    const yes = await laptop.sync({ allowDeletes: true });
    assert.equal(yes.deleted, 5);
    assert.deepEqual(await remotePaths(laptop.api), []);
  });

  it('through `coffer sync`: the valve pauses with a message saying what to do; --yes goes ahead', async () => {
    await s.server.coffer.services.users.create({ username: 'clivalve', password: TEST_PASSWORD });
    const work = await mkdtemp(join(tmpdir(), 'coffer-safety-cli-'));
    const env = { COFFER_CLIENT_HOME: join(work, 'home'), COFFER_PASSWORD: TEST_PASSWORD };
    const coffer = (args: string[]) => runCli(args, { env, timeoutMs: 60_000 });
    try {
      const folder = join(work, 'Coffer');
      const linked = await coffer(['login', s.url, '--folder', folder, '--username', 'clivalve']);
      assert.equal(linked.code, 0, linked.stderr);
      for (let i = 0; i < 8; i++) await mkdir(join(folder, `f${i}`));
      assert.equal((await coffer(['sync'])).code, 0);
      for (let i = 0; i < 6; i++) await rmdir(join(folder, `f${i}`));
      const paused = await coffer(['sync']);
      assert.equal(paused.code, 1);
      assert.match(paused.stderr, /error: This sync would delete 6 of 8 synced items .* run again with --yes/);
      assert.doesNotMatch(paused.stderr, /\n\s+at /, 'no stack trace');
      const web = await s.signIn('clivalve');
      assert.equal(await trashCount(web), 0);
      const status = JSON.parse((await coffer(['status', '--json'])).stdout);
      assert.equal(status.upload.deletes, 6);
      assert.match(status.lastError, /would delete 6 of 8/);
      const yes = await coffer(['sync', '--yes', '--json']);
      assert.equal(yes.code, 0, yes.stderr);
      assert.equal(JSON.parse(yes.stdout).deleted, 6);
      assert.equal(await trashCount(web), 6);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('a missing folder, or one without its root marker (an unmounted disk), is never read as "everything was deleted"', async () => {
    await s.server.coffer.services.users.create({ username: 'unmounted', password: TEST_PASSWORD });
    const laptop = await client('unmounted', 'laptop');
    await fill(laptop, TEN);
    await laptop.sync();
    const web = await s.signIn('unmounted');
    const serverBefore = await remotePaths(laptop.api);
    const before = await laptop.listing();
    const status = () => previewSync(syncApiOf(laptop.api), laptop.index, { folder: laptop.folder, deviceName: 'laptop' });
    const missing = { name: 'FolderMissingError', message: /missing or is not the folder this account was linked to .*is a disk unmounted\? Nothing was synced/ };
    // The disk is gone: no folder at all.
    await rename(laptop.folder, `${laptop.folder}.away`);
    await assert.rejects(laptop.sync(), missing);
    await assert.rejects(laptop.sync({ allowDeletes: true }), missing, '--yes does not make a missing folder an empty one');
    await assert.rejects(status(), missing);
    // An empty mount point where the disk used to be mounted.
    await mkdir(laptop.folder);
    await assert.rejects(laptop.sync(), missing);
    // A folder with files but without the marker (not the folder that was linked).
    await laptop.write('stray.txt', 'not ours');
    await assert.rejects(laptop.sync(), missing);
    assert.deepEqual(await remotePaths(laptop.api), serverBefore, 'the server is untouched');
    assert.equal(await trashCount(web), 0);
    // The disk comes back: nothing to do, nothing lost.
    await rm(laptop.folder, { recursive: true });
    await rename(`${laptop.folder}.away`, laptop.folder);
    const back = await laptop.sync();
    assert.equal(back.rounds, 0);
    assert.deepEqual(await laptop.listing(), before);
    // Only the marker gone (the folder is there with every file): still refused.
    await rename(join(laptop.folder, ROOT_MARKER), join(laptop.folder, '..', 'marker.away'));
    await assert.rejects(laptop.sync(), missing);
    assert.deepEqual(await listFolder(laptop.folder), before);
    assert.equal(await trashCount(web), 0);
  });
});
