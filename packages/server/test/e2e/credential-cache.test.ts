/**
 * On SQLite, checked credentials are kept in memory (credential-cache.ts):
 * a request authenticates without a database read while nothing a check
 * reads has changed. These tests make sure it never lets a stale one
 * through: every way a credential stops working is refused by the very next
 * request, after the credential has been used (and so kept) at least twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer, type TestUser } from '../support/test-server.ts';
import { cliOk, storageArgs } from '../support/processes.ts';

async function status(u: TestUser, path = '/api/v1/me'): Promise<number> {
  const r = await u.fetch(path);
  await r.arrayBuffer();
  return r.status;
}

async function warm(u: TestUser): Promise<void> {
  for (let i = 0; i < 3; i++) assert.equal(await status(u), 200);
}

describe('credentials kept in memory (SQLite) are never trusted past a change', () => {
  let now = Date.now();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ clock: { now: () => now }, config: { accessTokenSeconds: 900 } });
    await srv.user('kit');
  });
  after(async () => { await srv?.close(); });

  it('signing a session out from another device: its next request is refused', async () => {
    const a = await srv.signIn('kit');
    const b = await srv.signIn('kit');
    await warm(a);
    await warm(b);
    const r = await b.fetch(`/api/v1/sessions/${a.sessionId}`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    assert.equal(await status(a), 401);
    assert.equal(await status(b), 200, 'the other session is untouched');
  });

  it('marking a device for wipe restricts it at once', async () => {
    const lost = await srv.signIn('kit');
    const owner = await srv.signIn('kit');
    await warm(lost);
    assert.equal((await owner.fetch(`/api/v1/devices/${lost.deviceId}/wipe`, { method: 'POST' })).status, 200);
    const r = await lost.fetch('/api/v1/me');
    assert.equal(r.status, 403);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'DEVICE_WIPE_REQUESTED');
  });

  it('an access token expires on time though it is kept', async () => {
    const u = await srv.signIn('kit');
    await warm(u);
    now += 901_000;
    assert.equal(await status(u), 401);
  });

  it('an administrator resetting the password from another process signs every session out at once', async () => {
    const u = await srv.signIn('kit');
    await warm(u);
    await cliOk(['admin', 'reset-password', 'kit', '--password', `${TEST_PASSWORD}-2`, ...storageArgs(srv.dataDir)]);
    assert.equal(await status(u), 401);
  });

  it('a revocation written by any other connection is seen by the next request', async () => {
    // Another writer of the same database file (a second process would do the same): nothing in this process is told.
    await cliOk(['admin', 'reset-password', 'kit', '--password', TEST_PASSWORD, ...storageArgs(srv.dataDir)]);
    const u = await srv.signIn('kit');
    await warm(u);
    const other = new SQLite(join(srv.dataDir, 'coffer.db'));
    try {
      other.prepare('update sessions set revoked_at = ?, revoked_reason = ? where id = ?').run(now, 'test', u.sessionId);
    } finally {
      other.close();
    }
    assert.equal(await status(u), 401);
  });
});

describe('activity written once a minute keeps the cache, and never fools an idle check', () => {
  const HOUR = 3_600_000;
  let now = Date.now();
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer({ clock: { now: () => now }, config: { accessTokenSeconds: 7 * 86_400, clientIdleDays: 1 } });
    await srv.user('ivy');
  });
  after(async () => { await srv?.close(); });

  it('a kept session used again stays signed in, and one idle a day is signed out', async () => {
    const u = await srv.signIn('ivy');
    await warm(u);
    now += 20 * HOUR;
    await warm(u); // activity written: 20 h from now on is judged from here
    now += 20 * HOUR;
    assert.equal(await status(u), 200, '20 idle hours after the last activity');
    now += 25 * HOUR;
    assert.equal(await status(u), 401, '25 idle hours');
  });

  it('a touch that fails half-way (its session written, its device not) is not taken for no activity', async () => {
    const u = await srv.signIn('ivy');
    const failAt = now + 2 * HOUR;
    // Another connection (as a second process would): the device's activity write fails at exactly that moment.
    const other = new SQLite(join(srv.dataDir, 'coffer.db'));
    try {
      other.exec(`create trigger fail_device_touch before update of last_seen_at on devices when new.last_seen_at = ${failAt} begin select raise(abort, 'disk said no'); end`);
    } finally {
      other.close();
    }
    await warm(u);
    now = failAt;
    assert.equal(await status(u), 500, 'the failed write is an error');
    const db = new SQLite(join(srv.dataDir, 'coffer.db'), { readonly: true });
    try {
      assert.equal(db.prepare('select last_seen_at from sessions where id = ?').pluck().get(u.sessionId), failAt, 'the session row was written');
    } finally {
      db.close();
    }
    now += 23 * HOUR; // 25 h after the activity the cache saw before the failure, 23 h after the one the database has
    assert.equal(await status(u), 200);
  });
});
