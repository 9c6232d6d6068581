/**
 * The sync client's API client against a real Coffer server (real HTTP,
 * SQLite, local-disk blobs): sign-in, token rotation persisted through the
 * store (a controllable server clock makes tokens expire), single-flight
 * renewal under concurrency, sign-out and wipe seen from elsewhere, paged
 * listings, chunked uploads with dedup, verification and change detection,
 * streamed and resumed downloads, the change feed, push, and retries.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { URI, type TOTP } from 'otpauth';
import { CHUNK_MAX, EMPTY_CONTENT_HASH } from '@coffer/protocol';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { ApiClient } from './api-client.ts';
import { REFRESH_MARGIN_MS } from './token-keeper.ts';
import { ApiError } from './api-error.ts';
import { login, completeLogin2fa } from './auth.ts';
import { MemoryCredentialStore, type Credentials } from './credentials.ts';
import { uploadFile, type UploadApi } from './upload-file.ts';
import type { PushEvent } from './types.ts';

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const noSleep = async () => {};

async function rejectsWith(p: Promise<unknown>, code: string, status?: number): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError ${code}, got ${(e as Error)?.stack ?? e}`);
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected ApiError ${code}, but it succeeded`);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A fetch that counts the calls to each path. */
function countingFetch(counts: Map<string, number>, inner: typeof fetch = fetch): typeof fetch {
  return (input, init) => {
    const path = new URL(String(input)).pathname;
    counts.set(path, (counts.get(path) ?? 0) + 1);
    return inner(input, init);
  };
}

describe('auth and token lifecycle', () => {
  let s: TestServer;
  let offset = 0;
  const clock = { now: () => Date.now() + offset };
  const advance = (ms: number) => { offset += ms; };
  before(async () => {
    s = await startTestServer({ clock });
    await s.server.coffer.services.users.create({ username: 'alice', password: TEST_PASSWORD });
  });
  after(() => s.close());

  const signIn = async (deviceName = 'laptop'): Promise<Credentials> => {
    const r = await login(s.url, { login: 'alice', password: TEST_PASSWORD, deviceName, platform: 'linux' });
    assert.equal(r.status, 'signed-in');
    return r.credentials;
  };

  it('signs in, and refuses a wrong password or an incomplete second step', async () => {
    await rejectsWith(login(s.url, { login: 'alice', password: 'wrong-password-here' }), 'WRONG_CREDENTIALS', 401);
    const r = await login(s.url, { login: 'alice', password: TEST_PASSWORD, deviceName: 'laptop' });
    assert.equal(r.status, 'signed-in');
    if (r.status !== 'signed-in') return;
    assert.equal(r.user.username, 'alice');
    assert.ok(r.credentials.accessToken && r.credentials.refreshToken && r.credentials.deviceKey && r.credentials.sessionId && r.credentials.deviceId);
    assert.ok(r.credentials.accessExpiresAt > clock.now());
    // The same device key keeps the same device entry.
    const again = await login(s.url, { login: 'alice', password: TEST_PASSWORD, deviceKey: r.credentials.deviceKey });
    assert.equal(again.status === 'signed-in' && again.credentials.deviceId, r.credentials.deviceId);
    await assert.rejects(completeLogin2fa(s.url, { challenge: 'x' }), TypeError);
    await rejectsWith(completeLogin2fa(s.url, { challenge: 'not-a-challenge', code: '123456' }), 'UNAUTHENTICATED', 401);
  });

  it('signs in with a second factor: a TOTP code or a recovery code', async () => {
    const carol = await s.user('carol');
    const setup = await carol.json('/api/v1/account/2fa/setup', { method: 'POST' });
    const code = () => (URI.parse(setup.body.otpauthUri) as TOTP).generate({ timestamp: clock.now() });
    const enabled = await carol.json('/api/v1/account/2fa/enable', { method: 'POST', body: { code: code() } });
    assert.equal(enabled.status, 200, JSON.stringify(enabled.body));
    const recovery = enabled.body.recoveryCodes as string[];

    const first = await login(s.url, { login: 'carol', password: TEST_PASSWORD });
    assert.equal(first.status, 'mfa-required');
    if (first.status !== 'mfa-required') return;
    await rejectsWith(completeLogin2fa(s.url, { challenge: first.challenge, code: '000000' === code() ? '111111' : '000000' }), 'WRONG_MFA_CODE', 401);
    const viaRecovery = await completeLogin2fa(s.url, { challenge: first.challenge, recoveryCode: recovery[0] });
    assert.equal(viaRecovery.user.username, 'carol');
    assert.equal((await new ApiClient({ baseUrl: s.url, credentials: new MemoryCredentialStore(viaRecovery.credentials), now: clock.now }).me()).username, 'carol');

    advance(31_000); // the enabling code was spent: the next time step's
    const second = await login(s.url, { login: 'carol', password: TEST_PASSWORD });
    if (second.status !== 'mfa-required') assert.fail('expected a second step');
    const viaCode = await completeLogin2fa(s.url, { challenge: second.challenge, code: code() });
    assert.equal(viaCode.status, 'signed-in');
    assert.ok(viaCode.credentials.refreshToken);
  });

  it('renews an expiring token, saving the rotated pair before using it; a new client on the store continues', async () => {
    const first = await signIn();
    const store = new MemoryCredentialStore(first);
    const counts = new Map<string, number>();
    const api = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now, fetch: countingFetch(counts) });
    assert.equal((await api.me()).username, 'alice');
    assert.equal(store.history.length, 0, 'a fresh token is not renewed');

    advance(15 * MINUTE - REFRESH_MARGIN_MS / 2); // within the last minute: renewed before use
    const order: string[] = [];
    const saving = store.save.bind(store);
    store.save = async (c) => { order.push('save'); await saving(c); };
    const inner = countingFetch(counts);
    const api2 = new ApiClient({
      baseUrl: s.url, credentials: store, now: clock.now,
      fetch: (input, init) => {
        const h = new Headers(init?.headers);
        if (h.get('authorization')) order.push(h.get('authorization') === `Bearer ${first.accessToken}` ? 'old-token' : 'new-token');
        else order.push(new URL(String(input)).pathname);
        return inner(input, init);
      },
    });
    await api2.drive();
    assert.deepEqual(order, ['/api/v1/auth/refresh', 'save', 'new-token']);
    const saved = (await store.load())!;
    assert.notEqual(saved.refreshToken, first.refreshToken, 'the refresh token rotated');
    assert.notEqual(saved.accessToken, first.accessToken);
    assert.ok(saved.accessExpiresAt > first.accessExpiresAt);
    assert.equal(saved.deviceKey, first.deviceKey, 'the rest of the credentials is kept');
    assert.equal(saved.sessionId, first.sessionId);

    // Expired outright; a client started from the store (another process, say) renews from the saved pair.
    advance(20 * MINUTE);
    const fresh = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now });
    await fresh.drive();
    assert.equal(store.history.length, 2);
    assert.notEqual(store.history[1].refreshToken, saved.refreshToken);
  });

  it('renews once after a 401 when its clock thought the token valid, and sends the request again', async () => {
    const store = new MemoryCredentialStore(await signIn());
    const counts = new Map<string, number>();
    const lagging = { now: () => clock.now() - 30 * MINUTE }; // the client's clock is behind
    const api = new ApiClient({ baseUrl: s.url, credentials: store, now: lagging.now, fetch: countingFetch(counts) });
    advance(16 * MINUTE);
    assert.ok((await api.drive()).rootId);
    assert.equal(counts.get('/api/v1/auth/refresh'), 1);
    assert.equal(counts.get('/api/v1/drive'), 2, 'refused once, then accepted');
  });

  it('shares one renewal among 10 concurrent requests; the session stays valid (no reuse detected)', async () => {
    const store = new MemoryCredentialStore(await signIn());
    const counts = new Map<string, number>();
    const api = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now, fetch: countingFetch(counts) });
    await api.me();
    advance(16 * MINUTE);
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? api.me() : api.drive())));
    assert.equal(results.length, 10);
    assert.equal(counts.get('/api/v1/auth/refresh'), 1, 'one refresh for all ten');
    assert.equal(store.history.length, 1);

    // Other clients on the same store (another process, say) adopt a rotated pair instead of spending the old token again.
    const a = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now, fetch: countingFetch(counts) });
    const b = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now, fetch: countingFetch(counts) });
    await Promise.all([a.me(), b.me()]); // loaded, still fresh
    advance(16 * MINUTE);
    await a.me();
    await b.me();
    assert.equal(counts.get('/api/v1/auth/refresh'), 2, 'b took the pair a saved');
    advance(16 * MINUTE);
    await Promise.all([a.me(), b.me(), a.drive(), b.drive(), api.me()]); // racing: the store's lock keeps them apart
    assert.equal(counts.get('/api/v1/auth/refresh'), 3, 'one of them renewed, the others took its pair');
    // Still signed in: nothing was reused, so the session was not revoked.
    advance(16 * MINUTE);
    await a.me();
    await b.me();
    await api.me();
    const audit = await (await s.signIn('alice')).json('/api/v1/account/audit');
    assert.equal(audit.status, 200);
    assert.ok(!JSON.stringify(audit.body).includes('refresh.reuse'), 'no refresh token was used twice');
  });

  it('ends with SESSION_REVOKED when the session is signed out from elsewhere (requests and push)', async () => {
    const creds = await signIn('desktop');
    const store = new MemoryCredentialStore(creds);
    const api = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now });
    await api.drive();
    const stop = new AbortController();
    const stream = api.events(stop.signal)[Symbol.asyncIterator]();
    assert.equal((await stream.next()).value?.event, 'ready');

    const phone = await s.signIn('alice', { deviceName: 'phone' });
    const r = await phone.fetch(`/api/v1/sessions/${creds.sessionId}`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    const err = await rejectsWith(stream.next(), 'SESSION_REVOKED', 401);
    assert.match(err.message, /signed out/);
    const e2 = await rejectsWith(api.drive(), 'SESSION_REVOKED', 401);
    assert.match(e2.message, /sign in again/);
    assert.ok(await store.load(), 'the credentials are left for the caller to decide about');
    stop.abort();
  });

  it('passes DEVICE_WIPE_REQUESTED through; reports the wipe, after which the credentials are dead', async () => {
    const creds = await signIn('old-laptop');
    const api = new ApiClient({ baseUrl: s.url, credentials: new MemoryCredentialStore(creds), now: clock.now });
    assert.deepEqual(await api.wipeStatus(), { wipe: false, requestedAt: null });
    const admin = await s.signIn('alice', { deviceName: 'phone' });
    assert.equal((await admin.fetch(`/api/v1/devices/${creds.deviceId}/wipe`, { method: 'POST' })).status, 200);
    await rejectsWith(api.drive(), 'DEVICE_WIPE_REQUESTED', 403);
    const w = await api.wipeStatus();
    assert.equal(w.wipe, true);
    await api.confirmWipe({ removedCount: 2, removed: ['a.txt', 'b.txt'], kept: [{ path: 'c.txt', reason: 'not confirmed in the cloud' }] });
    await rejectsWith(api.wipeStatus(), 'SESSION_REVOKED', 401);
  });

  it('logs out: the session ends and the stored credentials are cleared (the device key is handed back)', async () => {
    const creds = await signIn('tablet');
    const store = new MemoryCredentialStore(creds);
    const api = new ApiClient({ baseUrl: s.url, credentials: store, now: clock.now });
    await api.reportPendingChanges(3);
    const phone = await s.signIn('alice', { deviceName: 'phone' });
    const devices = (await phone.json('/api/v1/devices')).body.devices as { id: string; pendingChanges: number | null }[];
    assert.equal(devices.find((d) => d.id === creds.deviceId)?.pendingChanges, 3);
    assert.deepEqual(await api.logout(), { deviceKey: creds.deviceKey });
    assert.equal(await store.load(), null);
    await rejectsWith(api.drive(), 'NOT_SIGNED_IN');
    const revoked = new ApiClient({ baseUrl: s.url, credentials: new MemoryCredentialStore(creds), now: clock.now });
    await rejectsWith(revoked.drive(), 'SESSION_REVOKED', 401);
  });
});

describe('files, feed and push', () => {
  let s: TestServer;
  let dir: string;
  let api: ApiClient;
  let rootId: string;
  const credentialsOf = async (name: string): Promise<Credentials> => {
    const r = await login(s.url, { login: name, password: TEST_PASSWORD });
    if (r.status !== 'signed-in') throw new Error('sign-in did not complete');
    return r.credentials;
  };
  const clientFor = async (name: string) =>
    new ApiClient({ baseUrl: s.url, credentials: new MemoryCredentialStore(await credentialsOf(name)), sleep: noSleep });
  const file = async (name: string, data: Uint8Array): Promise<string> => {
    const p = join(dir, name);
    await writeFile(p, data);
    return p;
  };
  const readAll = async (body: AsyncIterable<Uint8Array>): Promise<Buffer> => {
    const parts: Uint8Array[] = [];
    for await (const b of body) parts.push(b);
    return Buffer.concat(parts);
  };

  before(async () => {
    s = await startTestServer();
    dir = await mkdtemp(join(tmpdir(), 'coffer-remote-'));
    await s.server.coffer.services.users.create({ username: 'alice', password: TEST_PASSWORD });
    await s.server.coffer.services.users.create({ username: 'bob', password: TEST_PASSWORD });
    api = await clientFor('alice');
    rootId = (await api.drive()).rootId;
  });
  after(async () => {
    await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lists a folder of more than 1000 children across pages, and the whole tree breadth-first', async () => {
    const big = await api.mkdir(rootId, 'big');
    const sub = await api.mkdir(big.id, 'sub');
    const session = await api.startUpload();
    const files = Array.from({ length: 1005 }, (_, i) => ({ parentId: big.id, name: `f${String(i).padStart(4, '0')}.txt`, mustNotExist: true, chunks: [], size: 0 }));
    const results = await api.commitBatch(session.uploadId, files);
    assert.equal(results.length, 1005);
    assert.ok(results.every((r) => r.status === 201 && r.item?.contentHash === EMPTY_CONTENT_HASH));
    const deep = await api.mkdir(sub.id, 'deep');

    const children = await api.listChildren(big.id);
    assert.equal(children.length, 1006);
    assert.equal(new Set(children.map((c) => c.id)).size, 1006);
    const tree = await api.listTree(rootId);
    const at = (id: string) => tree.findIndex((i) => i.id === id);
    assert.ok(at(big.id) >= 0 && at(big.id) < at(sub.id) && at(sub.id) < at(deep.id), 'folders before their contents');
    assert.ok(tree.length >= 1008);
    assert.ok(!tree.some((i) => i.id === rootId), 'the root itself is not listed');
    // commit-batch: one file of a batch failing changes nothing for the others.
    const again = await api.startUpload();
    const mixed = await api.commitBatch(again.uploadId, [files[0], { parentId: big.id, name: 'new.txt', mustNotExist: true, chunks: [], size: 0 }]);
    assert.equal(mixed[0].status, 412);
    assert.equal(mixed[0].error?.code, 'VERSION_CONFLICT');
    assert.equal(mixed[1].status, 201);
    await api.abandonUpload(again.uploadId);
    await api.abandonUpload(again.uploadId); // already gone: fine
  });

  it('uploads empty, 100 KiB and 6 MiB files, verified; the same content again sends no chunk', async () => {
    const folder = await api.mkdir(rootId, 'uploads');
    for (const [name, size] of [['empty.bin', 0], ['small.bin', 100 * 1024], ['large.bin', 6 * MiB]] as const) {
      const data = randomBytes(size);
      const path = await file(name, data);
      let sent = 0;
      const r = await uploadFile(api, path, { parentId: folder.id, name }, { onProgress: (n) => { sent = n; } });
      assert.equal(r.size, size);
      assert.equal(r.item.size, size);
      assert.equal(r.item.contentHash, r.contentHash);
      assert.equal(r.item.name, name);
      assert.equal(sent, size, 'every byte went up once');
      // The same bytes under another name: `missing` lists nothing, nothing is sent.
      const calls: string[] = [];
      const spy: UploadApi = {
        startUpload: () => api.startUpload(),
        missing: async (id, h) => { const m = await api.missing(id, h); calls.push(`missing:${m.length}`); return m; },
        putChunks: (id, c) => { calls.push('put'); return api.putChunks(id, c); },
        commit: (id, f) => api.commit(id, f),
        abandonUpload: (id) => api.abandonUpload(id),
        backoff: (n, e) => api.backoff(n, e),
      };
      const copy = await uploadFile(spy, path, { parentId: folder.id, name: `copy-${name}` });
      assert.equal(copy.contentHash, r.contentHash);
      assert.deepEqual(calls, size === 0 ? [] : ['missing:0'], 'dedup: no chunk sent twice');
      // Byte-exact download.
      const d = await api.download(r.item.id);
      assert.equal(d.size, size);
      assert.equal(d.etag, r.item.etag);
      assert.equal(sha256(await readAll(d.body)), sha256(data));
    }
  });

  it('commits conditionally: a taken name or a stale ETag is VERSION_CONFLICT; a new version with the right one', async () => {
    const folder = await api.mkdir(rootId, 'versions');
    const path = await file('v.txt', Buffer.from('one'));
    const v1 = await uploadFile(api, path, { parentId: folder.id, name: 'v.txt' });
    await rejectsWith(uploadFile(api, path, { parentId: folder.id, name: 'v.txt' }), 'VERSION_CONFLICT', 412);
    await writeFile(path, 'two');
    const v2 = await uploadFile(api, path, { itemId: v1.item.id, ifMatch: v1.item.etag });
    assert.equal(v2.item.id, v1.item.id);
    assert.notEqual(v2.item.etag, v1.item.etag);
    const e = await rejectsWith(uploadFile(api, path, { itemId: v1.item.id, ifMatch: v1.item.etag }), 'VERSION_CONFLICT', 412);
    assert.equal(e.details?.currentEtag, v2.item.etag);
    assert.equal((await readAll((await api.download(v1.item.id)).body)).toString(), 'two');
  });

  it('abandons with LOCAL_FILE_CHANGED when the file changes during the upload', async () => {
    const folder = await api.mkdir(rootId, 'changing');
    const path = await file('moving.bin', randomBytes(2 * MiB));
    const abandoned: string[] = [];
    const racing = (change: () => Promise<void>): UploadApi => ({
      startUpload: () => api.startUpload(),
      missing: async (id, h) => { await change(); return api.missing(id, h); },
      putChunks: (id, c) => api.putChunks(id, c),
      commit: (id, f) => api.commit(id, f),
      abandonUpload: async (id) => { abandoned.push(id); await api.abandonUpload(id); },
      backoff: (n, e) => api.backoff(n, e),
    });
    // Rewritten in place with other bytes of the same size: a chunk read again hashes differently.
    await rejectsWith(uploadFile(racing(() => writeFile(path, randomBytes(2 * MiB))), path, { parentId: folder.id, name: 'moving.bin' }), 'LOCAL_FILE_CHANGED');
    // Grown: its size differs from the start.
    await rejectsWith(uploadFile(racing(async () => { await writeFile(path, randomBytes(3 * MiB)); }), path, { parentId: folder.id, name: 'moving.bin' }), 'LOCAL_FILE_CHANGED');
    assert.equal(abandoned.length, 2, 'the session was abandoned each time');
    assert.equal((await api.listChildren(folder.id)).length, 0, 'nothing was committed');
  });

  it('reads the change feed after edits; another drive\'s cursor is RESYNC_REQUIRED', async () => {
    const { cursor } = await api.drive();
    const folder = await api.mkdir(rootId, 'feed');
    const path = await file('feed.txt', Buffer.from('hello'));
    const up = await uploadFile(api, path, { parentId: folder.id, name: 'a.txt' });
    const moved = await api.move(up.item.id, { name: 'b.txt', ifRev: up.item.rev });
    await rejectsWith(api.move(up.item.id, { name: 'c.txt', ifRev: up.item.rev }), 'VERSION_CONFLICT', 412);
    await api.trash(folder.id);
    const page = await api.changes(cursor);
    assert.deepEqual(page.changes.map((c) => `${c.op} ${c.item.name}`), ['create feed', 'create a.txt', 'move b.txt', 'delete feed', 'delete b.txt']);
    assert.equal(page.hasMore, false);
    assert.equal(page.changes[2].item.rev, moved.rev);
    const limited = await api.changes(cursor, 2);
    assert.equal(limited.changes.length, 2);
    assert.equal(limited.hasMore, true);
    assert.equal((await api.changes(page.cursor)).changes.length, 0);
    await rejectsWith(api.stat(folder.id), 'NOT_FOUND', 404);

    const bob = await clientFor('bob');
    const e = await rejectsWith(bob.changes(cursor), 'RESYNC_REQUIRED', 410);
    assert.equal(e.details?.reason, 'other-drive');
  });

  it('hears a `changed` event when another client of the drive uploads', async () => {
    const other = await clientFor('alice');
    const stop = new AbortController();
    const seen: PushEvent[] = [];
    let ready!: () => void;
    const isReady = new Promise<void>((r) => { ready = r; });
    const listening = (async () => {
      for await (const ev of api.events(stop.signal)) {
        seen.push(ev);
        if (ev.event === 'ready') ready();
        if (ev.event === 'changed') break;
      }
    })();
    await isReady;
    const path = await file('pushed.txt', Buffer.from('push me'));
    await uploadFile(other, path, { parentId: rootId, name: 'pushed.txt' });
    await Promise.race([listening, new Promise((_, rej) => setTimeout(() => rej(new Error(`no changed event; got ${JSON.stringify(seen)}`)), 5000))]);
    const changed = seen.find((e) => e.event === 'changed')!;
    assert.ok(JSON.parse(changed.data).position > JSON.parse(seen[0].data).position);
    // Aborting ends the stream quietly.
    const quiet = (async () => { for await (const _ of api.events(stop.signal)) stop.abort(); })();
    await quiet;
  });

  it('retries safe requests after a network failure or a 503, and not a POST the server may have seen', async () => {
    const creds = await credentialsOf('alice');
    let failNext = 0;
    let failWith: () => Promise<Response> = async () => { throw new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) }); };
    const calls: string[] = [];
    const flaky: typeof fetch = async (input, init) => {
      calls.push(`${init?.method ?? 'GET'} ${new URL(String(input)).pathname}`);
      if (failNext > 0) { failNext--; return failWith(); }
      return fetch(input, init);
    };
    const sleeps: number[] = [];
    const make = () => new ApiClient({ baseUrl: s.url, credentials: new MemoryCredentialStore(creds), fetch: flaky, sleep: async (ms) => { sleeps.push(ms); } });

    failNext = 1;
    const c = make();
    assert.equal((await c.drive()).rootId, rootId);
    assert.deepEqual(calls, ['GET /api/v1/drive', 'GET /api/v1/drive']);
    assert.equal(sleeps.length, 1);

    // Not repeated: the server may have created the folder already.
    calls.length = 0;
    failNext = 1;
    await rejectsWith(c.mkdir(rootId, 'maybe'), 'NETWORK', 0);
    assert.equal(calls.length, 1);
    // ...unless the request never left (connection refused).
    failNext = 1;
    failWith = async () => { throw new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }); };
    assert.equal((await c.mkdir(rootId, 'surely')).name, 'surely');

    // 503 with Retry-After is waited for; a chunk upload (an array) is sent again.
    failWith = async () => new Response(JSON.stringify({ error: { code: 'STORAGE_UNAVAILABLE', message: 'later' } }), { status: 503, headers: { 'retry-after': '2', 'content-type': 'application/json' } });
    sleeps.length = 0;
    const session = await c.startUpload();
    failNext = 2;
    const chunk = randomBytes(1000);
    assert.deepEqual(await c.putChunks(session.uploadId, [chunk]), [sha256(chunk)]);
    assert.equal(sleeps.length, 2);
    assert.ok(sleeps.every((ms) => ms >= 2000), 'Retry-After honoured');
    await c.abandonUpload(session.uploadId);

    // Gives up after maxAttempts.
    failNext = 100;
    await rejectsWith(c.drive(), 'STORAGE_UNAVAILABLE', 503);
    assert.equal(failNext, 95);
    failNext = 0;

    // A download cut off mid-way resumes where it broke (If-Range keeps it to the same version).
    const data = randomBytes(3 * MiB);
    const up = await uploadFile(c, await file('resume.bin', data), { parentId: rootId, name: 'resume.bin' });
    let cut = true;
    const cutting = new ApiClient({
      baseUrl: s.url, credentials: new MemoryCredentialStore(creds), sleep: noSleep,
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        if (!cut || !String(input).endsWith('/content')) return res;
        cut = false;
        const reader = res.body!.getReader();
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          async pull(ctl) {
            if (sent >= MiB) { await reader.cancel(); ctl.error(new TypeError('terminated')); return; }
            const r = await reader.read();
            if (r.done) { ctl.close(); return; }
            sent += r.value.length;
            ctl.enqueue(r.value);
          },
        });
        return new Response(body, { status: res.status, headers: res.headers });
      },
    });
    const d = await cutting.download(up.item.id);
    assert.equal(sha256(await readAll(d.body)), sha256(data));
    assert.equal(cut, false);
  });

  it('streams chunks with flat memory: what was sent is not kept', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const count = 64; // 64 MiB of CHUNK_MAX chunks
    let before = 0;
    let atEnd = 0;
    async function* chunks() {
      gc();
      before = process.memoryUsage().arrayBuffers;
      for (let i = 0; i < count; i++) {
        if (i === count - 1) {
          gc();
          atEnd = process.memoryUsage().arrayBuffers;
        }
        yield randomBytes(CHUNK_MAX);
      }
    }
    // The server runs in this process: a first round lets it fill its buffer pools, the second is measured.
    // Chunks in flight (the socket, the server's writers) account for ~24 MiB whatever the volume; a client
    // that kept what it sent would hold 64 MiB more.
    for (let round = 0; round < 2; round++) {
      const session = await api.startUpload();
      assert.equal((await api.putChunks(session.uploadId, chunks())).length, count);
      await api.abandonUpload(session.uploadId);
    }
    assert.ok(atEnd - before < 40 * MiB, `held ${((atEnd - before) / MiB).toFixed(1)} MiB more after sending ${(count * CHUNK_MAX) / MiB} MiB`);
  });

  it('refuses a chunk over the protocol maximum before sending it', async () => {
    const session = await api.startUpload();
    await rejectsWith(api.putChunks(session.uploadId, (function* () { yield new Uint8Array(CHUNK_MAX + 1); })()), 'CHUNK_TOO_LARGE');
    await api.abandonUpload(session.uploadId);
  });
});
