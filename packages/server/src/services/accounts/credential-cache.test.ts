/**
 * The cache's own rules, with the epoch as a plain counter (the real epoch is
 * tested on a SQLite file in db/credential-epoch.test.ts, and the whole chain
 * over HTTP in test/e2e/credential-cache.test.ts).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { CredentialCache } from './credential-cache.ts';
import type { AuthenticatedCredential } from '../../repositories/session.repository.ts';

function credential(sessionId: string, lastSeenAt: number): AuthenticatedCredential {
  return {
    credential_kind: 'access', credential_expires_at: null, credential_used_at: null, username: 'ann', root_id: 'r', is_admin: 0,
    wipe_requested_at: null, wipe_confirmed_at: null,
    session: { id: sessionId, last_seen_at: lastSeenAt, ip: '127.0.0.1' } as AuthenticatedCredential['session'],
  };
}

function counted(row: () => AuthenticatedCredential) {
  const load = async () => { load.calls++; return row(); };
  load.calls = 0;
  return load;
}

it('touched() brings every kept credential of that session up to date, and no other; nothing is read again', async () => {
  const cache = new CredentialCache(() => 1);
  const access = counted(() => credential('s1', 100));
  const refresh = counted(() => credential('s1', 100));
  const other = counted(() => credential('s2', 100));
  await cache.find('h-access', access);
  await cache.find('h-refresh', refresh);
  await cache.find('h-other', other);
  cache.touched('s1', 70_000, '10.0.0.2');
  assert.equal((await cache.find('h-access', access))?.session.last_seen_at, 70_000);
  assert.equal((await cache.find('h-access', access))?.session.ip, '10.0.0.2');
  assert.equal((await cache.find('h-refresh', refresh))?.session.last_seen_at, 70_000);
  assert.equal((await cache.find('h-other', other))?.session.last_seen_at, 100);
  assert.deepEqual([access.calls, refresh.calls, other.calls], [1, 1, 1], 'all from memory');
  cache.touched('s1', 80_000, null);
  assert.equal((await cache.find('h-access', access))?.session.ip, '10.0.0.2', 'no address: the last one stays');
});

it('a row read while a touch happened is not kept (it may predate the activity)', async () => {
  const cache = new CredentialCache(() => 1);
  let touchDuringLoad = true;
  const load = counted(() => {
    if (touchDuringLoad) cache.touched('s1', 70_000, null);
    return credential('s1', 100);
  });
  await cache.find('h', load);
  touchDuringLoad = false;
  await cache.find('h', load);
  await cache.find('h', load);
  assert.equal(load.calls, 2, 'the first row was dropped, the second kept');
});

it('a moved epoch empties the cache, touched sessions included', async () => {
  let epoch = 1;
  const cache = new CredentialCache(() => epoch);
  const load = counted(() => credential('s1', 100));
  await cache.find('h', load);
  cache.touched('s1', 70_000, null);
  epoch++;
  assert.equal((await cache.find('h', load))?.session.last_seen_at, 100, 'read again from the database');
  assert.equal(load.calls, 2);
});

it('forget() drops the kept rows of that session only (a touch that failed half-way), and a load across it is not kept', async () => {
  const cache = new CredentialCache(() => 1);
  const mine = counted(() => credential('s1', 100));
  const other = counted(() => credential('s2', 100));
  await cache.find('h1', mine);
  await cache.find('h2', other);
  cache.forget('s1');
  await cache.find('h1', mine);
  await cache.find('h2', other);
  assert.deepEqual([mine.calls, other.calls], [2, 1]);
  const across = counted(() => { cache.forget('s3'); return credential('s3', 100); });
  await cache.find('h3', across);
  assert.equal(across.calls, 1);
  await cache.find('h3', across);
  assert.equal(across.calls, 2, 'the row read while forget() ran was not kept');
});
