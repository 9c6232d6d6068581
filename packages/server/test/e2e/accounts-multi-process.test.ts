/**
 * Accounts across two real `coffer server` processes on one fresh
 * PostgreSQL database: a session revoked through one process is refused by
 * the other on its very next request, an open push stream on the other
 * closes, a refresh token spent on one cannot be replayed on the other, and
 * the throttle counts guesses wherever they land (split over both
 * processes, even all at once, they hit the same limit).
 * Skipped, with the reason, when PostgreSQL is not reachable.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createTestDatabase, postgresUnavailable } from '../support/postgres.ts';
import { spawnServer, type ServerProcess } from '../support/processes.ts';
import { signInBrowser, signInSync } from '../support/sign-in.ts';
import { openStream, type SseStream } from '../support/sse.ts';

const PASSWORD = 'accounts-multi-process-1';
const STREAM_DEADLINE_MS = 2_000;
const unavailable = await postgresUnavailable();

async function call(url: string, method: string, path: string, auth: { token?: string; cookie?: string; csrf?: string } = {}, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.cookie) headers.cookie = auth.cookie;
  if (auth.csrf) headers['x-csrf-token'] = auth.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

function expectStatus(r: { status: number; body: any }, status: number, what: string, errorCode?: string): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  if (errorCode) assert.equal(r.body?.error?.code, errorCode, what);
}

describe('accounts across two coffer server processes on one PostgreSQL', { skip: unavailable ?? false }, () => {
  let db: { url: string; drop(): Promise<void> };
  let admin: pg.Client;
  const dirs: string[] = [];
  const streams: SseStream[] = [];
  let a: ServerProcess;
  let b: ServerProcess;

  const signUp = async (username: string) => expectStatus(await call(a.url, 'POST', '/api/v1/auth/signup', {}, { username, password: PASSWORD }), 201, `sign up ${username}`);
  const login = (on: ServerProcess, username: string, password: string) => call(on.url, 'POST', '/api/v1/auth/login', {}, { login: username, password, client: 'sync' });
  async function stream(url: string, token: string): Promise<SseStream> {
    const st = await openStream(url, token);
    streams.push(st);
    assert.equal(st.status, 200);
    await st.waitFor((e) => e.event === 'ready', 5_000);
    return st;
  }

  before(async () => {
    db = await createTestDatabase();
    const storage = async () => {
      const dir = await mkdtemp(join(tmpdir(), 'coffer-accounts-multi-'));
      dirs.push(dir);
      return ['--data', dir];
    };
    // Sign-up is open here so the test makes its users over HTTP; mail goes to each process's outbox.
    const env = { COFFER_DATABASE_URL: db.url, COFFER_ALLOW_SIGNUP: 'true' };
    [a, b] = await Promise.all([spawnServer(await storage(), { env }), spawnServer(await storage(), { env })]);
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    for (const u of ['alice', 'tess', 'tara']) await signUp(u);
  });

  after(async () => {
    for (const st of streams) st.close();
    await admin?.end().catch(() => {});
    await Promise.all([a?.kill(), b?.kill()]);
    await db?.drop().catch(() => {});
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a session revoked through A is refused by B on its very next request, whichever way it was signed out', async () => {
    const keeper = await signInSync(b.url, 'alice', PASSWORD);
    // One session by id.
    const s1 = await signInSync(b.url, 'alice', PASSWORD);
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: s1.accessToken }), 200, 'B before');
    expectStatus(await call(a.url, 'DELETE', `/api/v1/sessions/${s1.session.id}`, { token: keeper.accessToken }), 204, 'revoke on A');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: s1.accessToken }), 401, 'B right after', 'UNAUTHENTICATED');
    expectStatus(await call(b.url, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: s1.refreshToken }), 401, 'its refresh token on B', 'UNAUTHENTICATED');

    // A browser session signing itself out on A.
    const web = await signInBrowser(b.url, 'alice', PASSWORD);
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { cookie: web.cookie }), 200, 'browser on B');
    expectStatus(await call(a.url, 'POST', '/api/v1/auth/logout', { cookie: web.cookie, csrf: web.csrfToken }), 204, 'browser signs out on A');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { cookie: web.cookie }), 401, 'browser on B right after', 'UNAUTHENTICATED');

    // A whole device, and then every other session.
    const s2 = await signInSync(a.url, 'alice', PASSWORD);
    expectStatus(await call(a.url, 'DELETE', `/api/v1/devices/${s2.session.deviceId}`, { token: keeper.accessToken }), 204, 'remove device on A');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: s2.accessToken }), 401, 'its token on B', 'UNAUTHENTICATED');
    const s3 = await signInSync(b.url, 'alice', PASSWORD);
    const others = await call(a.url, 'POST', '/api/v1/sessions/sign-out-others', { token: keeper.accessToken });
    expectStatus(others, 200, 'sign out others on A');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: s3.accessToken }), 401, 'B right after', 'UNAUTHENTICATED');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: keeper.accessToken }), 200, 'the caller, on B');

    // A refresh token spent on A is a replay on B, and ends the session everywhere.
    const s4 = await signInSync(a.url, 'alice', PASSWORD);
    const renewed = await call(a.url, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: s4.refreshToken });
    expectStatus(renewed, 200, 'refresh on A');
    expectStatus(await call(b.url, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: s4.refreshToken }), 401, 'the spent refresh token on B', 'UNAUTHENTICATED');
    expectStatus(await call(a.url, 'GET', '/api/v1/me', { token: renewed.body.accessToken }), 401, 'the renewed token on A', 'UNAUTHENTICATED');
    const audit = await call(a.url, 'GET', '/api/v1/account/audit?limit=500', { token: keeper.accessToken });
    assert.ok(audit.body.events.some((e: any) => e.type === 'refresh.reuse' && e.sessionId === s4.session.id));
  });

  it('an open push stream on B closes when its session is revoked on A (and when its device is to be wiped)', async () => {
    const keeper = await signInSync(a.url, 'alice', PASSWORD);
    const doomed = await signInSync(b.url, 'alice', PASSWORD);
    const wiped = await signInSync(b.url, 'alice', PASSWORD);
    const survivor = await signInSync(b.url, 'alice', PASSWORD);
    const [sDoomed, sWiped, sSurvivor] = [await stream(b.url, doomed.accessToken), await stream(b.url, wiped.accessToken), await stream(b.url, survivor.accessToken)];

    let t0 = performance.now();
    expectStatus(await call(a.url, 'DELETE', `/api/v1/sessions/${doomed.session.id}`, { token: keeper.accessToken }), 204, 'revoke on A');
    let endedAt = await sDoomed.waitEnd(STREAM_DEADLINE_MS);
    console.log(`stream on B closed ${(endedAt - t0).toFixed(1)} ms after the session was revoked through A`);
    assert.equal(sDoomed.events.at(-1)?.event, 'revoked');

    t0 = performance.now();
    expectStatus(await call(a.url, 'POST', `/api/v1/devices/${wiped.session.deviceId}/wipe`, { token: keeper.accessToken }), 200, 'wipe requested on A');
    endedAt = await sWiped.waitEnd(STREAM_DEADLINE_MS);
    console.log(`stream on B closed ${(endedAt - t0).toFixed(1)} ms after a wipe of its device was requested through A`);
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: wiped.accessToken }), 403, 'the wiped device on B', 'DEVICE_WIPE_REQUESTED');
    const reopened = await openStream(b.url, wiped.accessToken);
    streams.push(reopened);
    assert.equal(reopened.status, 403, 'a device to be wiped cannot open a new stream');

    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sSurvivor.endedAt, null, 'other sessions keep their streams');
    expectStatus(await call(b.url, 'GET', '/api/v1/me', { token: survivor.accessToken }), 200, 'survivor');
  });

  it('throttling counts failures wherever they land: split over A and B they hit the limit, and block on both', async () => {
    for (let i = 1; i <= 6; i++) {
      const on = i % 2 ? a : b;
      expectStatus(await login(on, 'tess', `guess-${i}`), 401, `failure ${i} on ${on === a ? 'A' : 'B'}`, 'WRONG_CREDENTIALS');
    }
    for (const [name, on] of [['B', b], ['A', a]] as const) {
      const r = await login(on, 'tess', PASSWORD);
      expectStatus(r, 429, `the right password on ${name} after 6 failures split 3/3`, 'TOO_MANY_ATTEMPTS');
      assert.ok(r.body.error.details.retryAfterSeconds >= 1 && r.body.error.details.retryAfterSeconds <= 2, JSON.stringify(r.body));
    }
  });

  it('guesses fired at both processes at once are each counted exactly once', async () => {
    const me = await signInSync(a.url, 'tara', PASSWORD);
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => login(i % 2 ? b : a, 'tara', `parallel-${i}`)));
    const statuses = answers.map((r) => r.status);
    const seen = `${statuses.join()} ${JSON.stringify(answers.filter((r) => r.status !== 401).map((r) => r.body))}`;
    assert.ok(statuses.every((s) => s === 401 || s === 429), seen);
    const checked = statuses.filter((s) => s === 401).length;
    console.log(`10 wrong passwords at once over A and B: ${checked} checked and counted (401), ${10 - checked} refused as blocked (429)`);
    const row = await admin.query('select failures from throttle where key = $1', [`signin:user:${me.user.id}`]);
    assert.equal(row.rows[0]?.failures, checked, `every checked guess was counted once: ${seen}`);
    assert.ok(checked >= 6, `at least the free 5 and the first past them were checked: ${seen}`);
    expectStatus(await login(b, 'tara', PASSWORD), 429, 'blocked on B', 'TOO_MANY_ATTEMPTS');
    expectStatus(await login(a, 'tara', PASSWORD), 429, 'blocked on A', 'TOO_MANY_ATTEMPTS');
  });
});
