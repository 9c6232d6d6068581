/**
 * Sessions and devices over real HTTP, on SQLite and PostgreSQL: sync
 * clients (bearer access + single-use refresh tokens, one device entry per
 * device key), browsers (HttpOnly SameSite=Lax cookie, CSRF token, "keep me
 * signed in"), idle expiry with a controllable clock, activity written at
 * most once a minute, every way of signing out (refused on the very next
 * request), pending-changes reports, app passwords over basic auth (stored
 * hashed), and remote wipe (outlives sign-out; after confirmation the
 * device's credentials are dead).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { signInBrowser, signInSync, type BrowserSession } from '../support/sign-in.ts';

const pgSkip = await postgresUnavailable();
const MINUTE = 60_000;
const DAY = 86_400_000;

interface Auth {
  token?: string;
  /** A browser session: its cookie, and the CSRF token sent on state-changing requests (unless csrf is overridden). */
  browser?: BrowserSession;
  csrf?: string | null;
  basic?: [string, string];
  headers?: Record<string, string>;
}

async function call(url: string, method: string, path: string, auth: Auth = {}, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = { ...auth.headers };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.basic) headers.authorization = `Basic ${Buffer.from(`${auth.basic[0]}:${auth.basic[1]}`).toString('base64')}`;
  if (auth.browser) {
    headers.cookie = auth.browser.cookie;
    const csrf = auth.csrf === undefined ? auth.browser.csrfToken : auth.csrf;
    if (csrf !== null) headers['x-csrf-token'] = csrf;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: any = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: res.status, body: parsed, headers: res.headers };
}

const code = (r: { body: any }) => r.body?.error?.code;

function expectStatus(r: { status: number; body: any }, status: number, what: string, errorCode?: string): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  if (errorCode) assert.equal(code(r), errorCode, what);
}

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`accounts: sessions and devices on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let now = Date.now();
    let srv: TestServer;
    let url: string;
    const users = () => srv.server.coffer.services.users;
    const db = () => srv.server.coffer.metadata.db;
    const createUser = (name: string) => users().create({ username: name, password: TEST_PASSWORD });
    const sync = (name: string, extra: Record<string, unknown> = {}) => signInSync(url, name, TEST_PASSWORD, extra);
    const browser = (name: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) => signInBrowser(url, name, TEST_PASSWORD, extra, headers);
    const refresh = (refreshToken: string) => call(url, 'POST', '/api/v1/auth/refresh', {}, { refreshToken });
    const devicesOf = async (token: string) => {
      const r = await call(url, 'GET', '/api/v1/devices', { token });
      expectStatus(r, 200, 'devices list');
      return r.body.devices as any[];
    };
    const auditOf = async (token: string) => {
      const r = await call(url, 'GET', '/api/v1/account/audit?limit=500', { token });
      expectStatus(r, 200, 'audit');
      return r.body.events as any[];
    };

    before(async () => {
      srv = await startTestServer({ dialect, clock: { now: () => now } });
      url = srv.url;
    });
    after(() => srv?.close());

    it('a sync sign-in gives access + refresh tokens and a device key; signing in again with the key keeps one device and ends its earlier session', async () => {
      await createUser('sam');
      const first = await sync('sam', { deviceName: 'Laptop', platform: 'linux' });
      assert.match(first.accessToken, /^cfa_/);
      assert.match(first.refreshToken, /^cfr_/);
      assert.match(first.deviceKey, /^cfk_/);
      assert.equal(first.session.kind, 'bearer');
      assert.equal(first.session.deviceName, 'Laptop');
      assert.ok(first.accessExpiresAt > now);
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: first.accessToken }), 200, 'first session works');

      const second = await sync('sam', { deviceKey: first.deviceKey });
      assert.equal(second.session.deviceId, first.session.deviceId, 'the same device');
      assert.notEqual(second.session.id, first.session.id, 'a new session');
      assert.equal(second.deviceKey, first.deviceKey);

      const devices = await devicesOf(second.accessToken);
      assert.equal(devices.length, 1, JSON.stringify(devices));
      assert.equal(devices[0].id, first.session.deviceId);
      assert.equal(devices[0].name, 'Laptop');
      assert.equal(devices[0].platform, 'linux');
      assert.equal(devices[0].current, true);
      assert.deepEqual(devices[0].sessions.map((s: any) => s.id), [second.session.id], 'only the new session is live');

      expectStatus(await call(url, 'GET', '/api/v1/me', { token: first.accessToken }), 401, 'the replaced session', 'UNAUTHENTICATED');
      expectStatus(await refresh(first.refreshToken), 401, 'the replaced session\'s refresh token', 'UNAUTHENTICATED');

      // A key the server never gave out (or none) makes a new device.
      const other = await sync('sam', { deviceKey: 'cfk_not-a-key-this-server-gave-out' });
      assert.notEqual(other.session.deviceId, first.session.deviceId);
      assert.equal((await devicesOf(other.accessToken)).length, 2);
      const newDevice = (await auditOf(other.accessToken)).filter((e) => e.type === 'signin.new_device');
      assert.equal(newDevice.length, 2, 'a re-login of a known device is not a new device');
    });

    it('refresh rotates the tokens; reusing a refresh token is refused and ends the whole session (audit refresh.reuse)', async () => {
      await createUser('rory');
      const s = await sync('rory');
      const r1 = await refresh(s.refreshToken);
      expectStatus(r1, 200, 'first refresh');
      assert.notEqual(r1.body.accessToken, s.accessToken);
      assert.notEqual(r1.body.refreshToken, s.refreshToken);
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: r1.body.accessToken }), 200, 'new access token');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: r1.body.refreshToken }), 401, 'a refresh token is not an access token', 'UNAUTHENTICATED');
      expectStatus(await refresh(r1.body.accessToken), 401, 'an access token is not a refresh token', 'UNAUTHENTICATED');
      // An access token lives 15 minutes; the refresh token renews it.
      now += 15 * MINUTE + 1_000;
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: r1.body.accessToken }), 401, 'an access token past its 15 minutes', 'UNAUTHENTICATED');
      const r2 = await refresh(r1.body.refreshToken);
      expectStatus(r2, 200, 'second refresh');
      assert.equal(r2.body.accessExpiresAt, now + 15 * MINUTE);
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: r2.body.accessToken }), 200, 'the renewed access token');

      const replay = await refresh(s.refreshToken);
      expectStatus(replay, 401, 'an already used refresh token', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: r2.body.accessToken }), 401, 'the newest access token of the session', 'UNAUTHENTICATED');
      expectStatus(await refresh(r2.body.refreshToken), 401, 'the newest refresh token of the session', 'UNAUTHENTICATED');

      const witness = await sync('rory');
      const reuse = (await auditOf(witness.accessToken)).filter((e) => e.type === 'refresh.reuse');
      assert.equal(reuse.length, 1);
      assert.equal(reuse[0].sessionId, s.session.id);
      assert.equal(reuse[0].deviceId, s.session.deviceId);
      assert.ok(!(await devicesOf(witness.accessToken)).find((d) => d.id === s.session.deviceId)?.signedIn, 'the device is signed out');
    });

    it('a browser gets an HttpOnly SameSite=Lax cookie (Max-Age only with "keep me signed in"), needs the CSRF token to change anything, and keeps its device across sign-ins', async () => {
      await createUser('bea');
      const ua = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0' };
      const b1 = await browser('bea', {}, ua);
      const sessionCookie = b1.setCookie.find((c) => c.startsWith('coffer_session='))!;
      assert.ok(sessionCookie, b1.setCookie.join(' | '));
      assert.match(sessionCookie, /;\s*HttpOnly/i);
      assert.match(sessionCookie, /;\s*SameSite=Lax/i);
      assert.match(sessionCookie, /;\s*Path=\//i);
      assert.doesNotMatch(sessionCookie, /Max-Age|Expires/i, 'without "keep me signed in" the cookie ends with the browser');
      const deviceCookie = b1.setCookie.find((c) => c.startsWith('coffer_device='))!;
      assert.match(deviceCookie, /;\s*HttpOnly/i);
      assert.equal(b1.body.deviceKey, undefined, 'a browser keeps its device key in a cookie, not in script reach');
      assert.equal(b1.body.accessToken, undefined);
      assert.equal(b1.body.session.persistent, false);
      assert.equal(b1.body.session.idleTimeoutSeconds, 30 * 60);
      assert.equal(b1.body.session.deviceName, 'Firefox on Linux');
      assert.ok(b1.csrfToken);

      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: b1 }), 200, 'cookie authenticates');
      const sess = await call(url, 'GET', '/api/v1/auth/session', { browser: b1 });
      assert.equal(sess.body.via, 'cookie');
      assert.equal(sess.body.csrfToken, b1.csrfToken, 'the CSRF token can be fetched again after a page reload');

      expectStatus(await call(url, 'POST', '/api/v1/folders', { browser: b1, csrf: null }, { path: 'no-token' }), 403, 'state change without CSRF token', 'CSRF_FAILED');
      expectStatus(await call(url, 'POST', '/api/v1/folders', { browser: b1, csrf: 'x'.repeat(43) }, { path: 'wrong-token' }), 403, 'state change with a wrong CSRF token', 'CSRF_FAILED');
      expectStatus(await call(url, 'POST', '/api/v1/folders', { browser: b1 }, { path: 'with-token' }), 201, 'state change with the CSRF token');
      expectStatus(await call(url, 'POST', '/api/v1/auth/logout', { browser: b1, csrf: null }), 403, 'even sign-out needs the token (no forced sign-out by another site)', 'CSRF_FAILED');

      // Signing in again on this browser (its coffer_device cookie) keeps the device, now with "keep me signed in".
      const b2 = await browser('bea', { remember: true }, { ...ua, cookie: b1.deviceCookie });
      assert.equal(b2.body.session.deviceId, b1.body.session.deviceId, 'the same device');
      const remembered = b2.setCookie.find((c) => c.startsWith('coffer_session='))!;
      assert.match(remembered, /;\s*Max-Age=2592000/i, '"keep me signed in": 30 days');
      assert.match(remembered, /;\s*HttpOnly/i);
      assert.match(remembered, /;\s*SameSite=Lax/i);
      assert.equal(b2.body.session.persistent, true);
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: b1 }), 401, 'the device\'s earlier session ended', 'UNAUTHENTICATED');
      const devices = (await call(url, 'GET', '/api/v1/devices', { browser: b2 })).body.devices;
      assert.equal(devices.length, 1, JSON.stringify(devices));
      assert.equal(devices[0].kind, 'browser');

      // The CSRF token of one session is worthless with another's cookie.
      expectStatus(await call(url, 'POST', '/api/v1/folders', { browser: b2, csrf: b1.csrfToken }, { path: 'old-token' }), 403, 'another session\'s CSRF token', 'CSRF_FAILED');

      const out = await call(url, 'POST', '/api/v1/auth/logout', { browser: b2 });
      expectStatus(out, 204, 'browser sign-out');
      assert.match(out.headers.getSetCookie().join(' | '), /coffer_session=;/, 'the cookie is cleared');
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: b2 }), 401, 'signed out', 'UNAUTHENTICATED');
    });

    it('without "keep me signed in" a browser session ends after 30 idle minutes; a remembered one lives (until 30 idle days)', async () => {
      await createUser('ida');
      const pub = await browser('ida');
      const rem = await browser('ida', { remember: true });
      assert.equal(rem.body.session.idleTimeoutSeconds, 30 * 86_400);

      now += 20 * MINUTE;
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: pub }), 200, 'public session after 20 idle minutes');
      now += 29 * MINUTE;
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: pub }), 200, 'public session used again 29 minutes later (activity counts)');
      now += 31 * MINUTE;
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: pub }), 401, 'public session after 31 idle minutes', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: rem }), 200, 'remembered session after 80 minutes');
      const devices = (await call(url, 'GET', '/api/v1/devices', { browser: rem })).body.devices as any[];
      assert.equal(devices.find((d) => d.id === pub.body.session.deviceId)?.signedIn, false, 'the idle session is not listed as signed in');

      now += 29 * DAY;
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: rem }), 200, 'remembered session after 29 idle days');
      now += 30 * DAY + MINUTE;
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: rem }), 401, 'remembered session after 30 idle days', 'UNAUTHENTICATED');
    });

    it('checking a session writes nothing; activity (last_seen_at) is recorded at most once a minute', async () => {
      await createUser('tess');
      const s = await sync('tess');
      // Everything of this user in the accounts tables: a request that only reads must leave it byte for byte as it was.
      const snapshot = async () => JSON.stringify(await Promise.all([
        db().selectFrom('sessions').selectAll().where('user_id', '=', s.user.id).orderBy('id').execute(),
        db().selectFrom('devices').selectAll().where('user_id', '=', s.user.id).orderBy('id').execute(),
        db().selectFrom('credentials').selectAll().where('session_id', '=', s.session.id).orderBy('hash').execute(),
        db().selectFrom('audit_events').selectAll().where('user_id', '=', s.user.id).orderBy('id').execute(),
        db().selectFrom('throttle').selectAll().orderBy('key').execute(),
      ]));
      const lastSeen = async () => {
        const row = await db().selectFrom('sessions').innerJoin('devices', 'devices.id', 'sessions.device_id')
          .select(['sessions.last_seen_at as session', 'devices.last_seen_at as device']).where('sessions.id', '=', s.session.id).executeTakeFirstOrThrow();
        return { session: Number(row.session), device: Number(row.device) };
      };
      const signedInAt = now;
      const before = await snapshot();
      assert.deepEqual(await lastSeen(), { session: signedInAt, device: signedInAt });

      now += 30_000;
      for (const path of ['/api/v1/me', '/api/v1/drive', '/api/v1/me']) expectStatus(await call(url, 'GET', path, { token: s.accessToken }), 200, path);
      now += 29_000;
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s.accessToken }), 200, 'after 59 s');
      assert.equal(await snapshot(), before, 'four authenticated requests within a minute wrote nothing');

      now += 2_000;
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s.accessToken }), 200, 'after 61 s');
      assert.deepEqual(await lastSeen(), { session: now, device: now }, 'past a minute, the activity is recorded');
      const touchedAt = now;
      now += 10_000;
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s.accessToken }), 200, 'again 10 s later');
      assert.deepEqual(await lastSeen(), { session: touchedAt, device: touchedAt }, 'and then not again within the minute');
      const listed = (await devicesOf(s.accessToken)).find((d) => d.id === s.session.deviceId);
      assert.equal(listed.lastSeenAt, touchedAt);
      assert.equal(listed.sessions[0].lastSeenAt, touchedAt);
    });

    it('signing out this session, one session by id, every other session, or a whole device: each is refused on its very next request', async () => {
      await createUser('otto');
      await createUser('mallory');
      const [s1, s2, s3, s4] = [await sync('otto', { deviceName: 'one' }), await sync('otto', { deviceName: 'two' }), await sync('otto', { deviceName: 'three' }), await sync('otto', { deviceName: 'four' })];
      const b = await browser('otto');
      for (const s of [s1, s2, s3, s4]) expectStatus(await call(url, 'GET', '/api/v1/me', { token: s.accessToken }), 200, 'signed in');

      expectStatus(await call(url, 'POST', '/api/v1/auth/logout', { token: s1.accessToken }), 204, 'sign out this session');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s1.accessToken }), 401, 'after sign-out', 'UNAUTHENTICATED');
      expectStatus(await refresh(s1.refreshToken), 401, 'refresh after sign-out', 'UNAUTHENTICATED');

      expectStatus(await call(url, 'DELETE', `/api/v1/sessions/${s2.session.id}`, { token: s3.accessToken }), 204, 'sign out session 2 from session 3');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s2.accessToken }), 401, 'session 2', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'DELETE', `/api/v1/sessions/${s2.session.id}`, { token: s3.accessToken }), 404, 'an ended session', 'NOT_FOUND');
      const stranger = await sync('mallory');
      expectStatus(await call(url, 'DELETE', `/api/v1/sessions/${s3.session.id}`, { token: stranger.accessToken }), 404, 'another user\'s session', 'NOT_FOUND');
      expectStatus(await call(url, 'DELETE', `/api/v1/devices/${s3.session.deviceId}`, { token: stranger.accessToken }), 404, 'another user\'s device', 'NOT_FOUND');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s3.accessToken }), 200, 'untouched by the stranger');

      expectStatus(await call(url, 'DELETE', `/api/v1/devices/${s4.session.deviceId}`, { token: s3.accessToken }), 204, 'remove device 4');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s4.accessToken }), 401, 'device 4', 'UNAUTHENTICATED');
      expectStatus(await refresh(s4.refreshToken), 401, 'device 4 refresh', 'UNAUTHENTICATED');
      assert.equal((await devicesOf(s3.accessToken)).find((d) => d.id === s4.session.deviceId), undefined, 'a removed device leaves the list');

      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: b }), 200, 'browser still in');
      const others = await call(url, 'POST', '/api/v1/sessions/sign-out-others', { token: s3.accessToken });
      expectStatus(others, 200, 'sign out everywhere else');
      assert.equal(others.body.signedOut, 1, 'the browser session');
      expectStatus(await call(url, 'GET', '/api/v1/me', { browser: b }), 401, 'browser', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: s3.accessToken }), 200, 'the caller stays signed in');
      const live = (await devicesOf(s3.accessToken)).flatMap((d) => d.sessions.map((s: any) => s.id));
      assert.deepEqual(live, [s3.session.id], 'only the caller\'s session is left');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: stranger.accessToken }), 200, 'other users are not affected');

      const types = (await auditOf(s3.accessToken)).map((e) => e.type);
      assert.ok(types.includes('signout') && types.includes('session.revoked') && types.includes('device.removed'), types.join());
    });

    it('a sync client\'s count of pending changes shows in the devices list', async () => {
      await createUser('pia');
      const client = await sync('pia', { deviceName: 'Workstation' });
      const phone = await sync('pia', { deviceName: 'Phone' });
      expectStatus(await call(url, 'PUT', '/api/v1/device/pending-changes', { token: client.accessToken }, { pendingChanges: 17 }), 204, 'report');
      expectStatus(await call(url, 'PUT', '/api/v1/device/pending-changes', { token: client.accessToken }, { pendingChanges: -1 }), 400, 'negative count', 'VALIDATION_FAILED');
      const devices = await devicesOf(phone.accessToken);
      const ws = devices.find((d) => d.id === client.session.deviceId);
      assert.equal(ws.pendingChanges, 17);
      assert.equal(ws.pendingReportedAt, now);
      assert.equal(ws.current, false);
      assert.equal(devices.find((d) => d.id === phone.session.deviceId).pendingChanges, null, 'never reported');
      expectStatus(await call(url, 'PUT', '/api/v1/device/pending-changes', { token: client.accessToken }, { pendingChanges: 0 }), 204, 'all uploaded');
      assert.equal((await devicesOf(phone.accessToken)).find((d) => d.id === client.session.deviceId).pendingChanges, 0);
    });

    it('app passwords: basic auth with the right username works, any other fails, removing the device kills it, and only hashes are stored', async () => {
      await createUser('appy');
      await createUser('other');
      const s = await sync('appy');
      const created = await call(url, 'POST', '/api/v1/app-passwords', { token: s.accessToken }, { name: 'Backup script' });
      expectStatus(created, 201, 'create app password');
      const { deviceId, password } = created.body;
      assert.equal(created.body.name, 'Backup script');
      assert.match(password, /^cfp_/);

      const me = await call(url, 'GET', '/api/v1/me', { basic: ['appy', password] });
      expectStatus(me, 200, 'basic auth with the app password');
      assert.equal(me.body.username, 'appy');
      expectStatus(await call(url, 'GET', '/api/v1/drive', { basic: ['appy', password] }), 200, 'a files route');
      expectStatus(await call(url, 'GET', '/api/v1/me', { basic: ['Appy', password] }), 200, 'usernames compare without case');
      expectStatus(await call(url, 'GET', '/api/v1/me', { basic: ['other', password] }), 401, 'another user\'s name', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { basic: ['appy', TEST_PASSWORD] }), 401, 'the account password is not an app password', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: password }), 401, 'an app password is not a bearer token', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { basic: ['appy', s.accessToken] }), 401, 'an access token is not an app password', 'UNAUTHENTICATED');
      const listed = (await devicesOf(s.accessToken)).find((d) => d.id === deviceId);
      assert.equal(listed.kind, 'app_password');
      expectStatus(await call(url, 'POST', `/api/v1/devices/${deviceId}/wipe`, { token: s.accessToken }), 400, 'an app password holds no files to wipe', 'VALIDATION_FAILED');
      assert.equal(listed.name, 'Backup script');

      // No secret handed out is stored in the clear; each is stored as its SHA-256.
      const b = await browser('appy');
      const secrets = { appPassword: password, accessToken: s.accessToken, refreshToken: s.refreshToken, deviceKey: s.deviceKey, cookie: b.cookie.split('=')[1], csrf: b.csrfToken };
      const dump = JSON.stringify(await Promise.all(['credentials', 'sessions', 'devices', 'users', 'audit_events', 'login_challenges'].map((t) =>
        db().selectFrom(t as 'credentials').selectAll().execute())));
      for (const [what, secret] of Object.entries(secrets)) {
        assert.ok(!dump.includes(secret), `${what} is not stored in the clear`);
      }
      const sha = (x: string) => createHash('sha256').update(x).digest('hex');
      const stored = await db().selectFrom('credentials').select(['hash', 'kind']).where('hash', 'in', [sha(password), sha(s.accessToken), sha(s.refreshToken)]).orderBy('kind').execute();
      assert.deepEqual(stored.map((r) => r.kind), ['access', 'app_password', 'refresh']);
      if (dialect === 'sqlite') {
        const files = (await readdir(srv.dataDir)).filter((f) => f.startsWith('coffer.db'));
        assert.ok(files.includes('coffer.db'), files.join());
        const bytes = Buffer.concat(await Promise.all(files.map((f) => readFile(join(srv.dataDir, f)))));
        for (const [what, secret] of Object.entries(secrets)) assert.equal(bytes.indexOf(secret), -1, `${what} appears nowhere in the SQLite files (${files.join(', ')})`);
        assert.ok(bytes.indexOf(sha(password)) >= 0, 'its hash is there');
      }

      expectStatus(await call(url, 'DELETE', `/api/v1/devices/${deviceId}`, { token: s.accessToken }), 204, 'remove the app password');
      expectStatus(await call(url, 'GET', '/api/v1/me', { basic: ['appy', password] }), 401, 'a removed app password', 'UNAUTHENTICATED');
    });

    it('remote wipe: the device learns of it on its next request, a sign-out does not cancel it, and after its report its credentials are dead', async () => {
      await createUser('wendy');
      const a = await sync('wendy', { deviceName: 'Desktop' });
      const b = await sync('wendy', { deviceName: 'Laptop' });
      const bDevice = b.session.deviceId;
      expectStatus(await call(url, 'POST', `/api/v1/devices/${a.session.deviceId}/wipe`, { token: a.accessToken }), 400, 'wiping the device one uses', 'VALIDATION_FAILED');

      const requested = await call(url, 'POST', `/api/v1/devices/${bDevice}/wipe`, { token: a.accessToken });
      expectStatus(requested, 200, 'request wipe');
      assert.equal(requested.body.id, bDevice);
      assert.equal(requested.body.wipe.requestedAt, now);
      assert.equal(requested.body.wipe.fetchedAt, null);
      assert.equal(requested.body.wipe.confirmedAt, null);

      for (const [method, path, body] of [['GET', '/api/v1/me'], ['GET', '/api/v1/drive'], ['GET', '/api/v1/devices'], ['GET', '/api/v1/changes?cursor=latest'], ['POST', '/api/v1/folders', { path: 'x' }], ['PUT', '/api/v1/device/pending-changes', { pendingChanges: 1 }]] as const) {
        expectStatus(await call(url, method, path, { token: b.accessToken }, body), 403, `B: ${method} ${path}`, 'DEVICE_WIPE_REQUESTED');
      }
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: a.accessToken }), 200, 'A is not restricted');

      now += 1_000;
      const fetched = await call(url, 'GET', '/api/v1/device/wipe', { token: b.accessToken });
      expectStatus(fetched, 200, 'B fetches the wipe');
      assert.deepEqual(fetched.body, { wipe: true, requestedAt: requested.body.wipe.requestedAt });
      const fetchedAt = now;
      assert.equal((await devicesOf(a.accessToken)).find((d) => d.id === bDevice).wipe.fetchedAt, fetchedAt);

      // Signing B out does not cancel the wipe: B can still fetch and confirm it.
      expectStatus(await call(url, 'DELETE', `/api/v1/devices/${bDevice}`, { token: a.accessToken }), 204, 'sign B out');
      const stillListed = (await devicesOf(a.accessToken)).find((d) => d.id === bDevice);
      assert.ok(stillListed, 'a device with a pending wipe stays in the list');
      assert.equal(stillListed.signedIn, false);
      now += 1_000;
      const again = await call(url, 'GET', '/api/v1/device/wipe', { token: b.accessToken });
      expectStatus(again, 200, 'B fetches again after being signed out');
      assert.equal(again.body.wipe, true);
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: b.accessToken }), 403, 'but nothing else', 'DEVICE_WIPE_REQUESTED');
      assert.equal((await devicesOf(a.accessToken)).find((d) => d.id === bDevice).wipe.fetchedAt, fetchedAt, 'the first fetch is what is recorded');

      const report = { removedCount: 2, removed: ['notes.txt', 'photos/cat.jpg'], kept: [{ path: 'drafts/unsent.docx', reason: 'not uploaded yet' }] };
      expectStatus(await call(url, 'POST', '/api/v1/device/wipe/confirm', { token: b.accessToken }, { removedCount: 1 }), 400, 'a report without kept', 'VALIDATION_FAILED');
      now += 1_000;
      expectStatus(await call(url, 'POST', '/api/v1/device/wipe/confirm', { token: b.accessToken }, report), 204, 'B confirms');
      const done = (await devicesOf(a.accessToken)).find((d) => d.id === bDevice);
      assert.equal(done.wipe.confirmedAt, now);
      assert.deepEqual(done.wipe.report, report);

      expectStatus(await call(url, 'GET', '/api/v1/device/wipe', { token: b.accessToken }), 401, 'B after the wipe', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: b.accessToken }), 401, 'B after the wipe', 'UNAUTHENTICATED');
      expectStatus(await refresh(b.refreshToken), 401, 'B\'s refresh token after the wipe', 'UNAUTHENTICATED');

      const wipeEvents = (await auditOf(a.accessToken)).filter((e) => e.type.startsWith('wipe.')).reverse();
      assert.deepEqual(wipeEvents.map((e) => e.type), ['wipe.requested', 'wipe.fetched', 'wipe.confirmed']);
      assert.ok(wipeEvents.every((e) => e.deviceId === bDevice));
      assert.deepEqual(wipeEvents[2].detail, { removedCount: 2, keptCount: 1 });
      assert.deepEqual((await call(url, 'GET', '/api/v1/device/wipe', { token: a.accessToken })).body, { wipe: false, requestedAt: null });

      // The wiped machine is set up again by its owner (it still presents its old device key): a fresh start, not a dead end.
      const back = await sync('wendy', { deviceKey: b.deviceKey, deviceName: 'Laptop' });
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: back.accessToken }), 200, 'signing in again after a wipe');
      assert.notEqual(back.session.deviceId, bDevice, 'a new device entry; the wiped one keeps its record');
      assert.deepEqual((await call(url, 'GET', '/api/v1/device/wipe', { token: back.accessToken })).body, { wipe: false, requestedAt: null });
      assert.deepEqual((await devicesOf(a.accessToken)).find((d) => d.id === bDevice).wipe.report, report);
    });
  });
}

