/**
 * Device login (RFC 8628 style) over real HTTP, on SQLite and PostgreSQL,
 * with a real SMTP sink for the new-device mail and a controllable clock:
 * the whole flow (request, pending, approval in a browser session,
 * exchange once), polling too fast (SLOW_DOWN, the interval grows by 5 s),
 * expiry, denial, reuse, approval binding only the approving user, the
 * second factor (satisfied by the approving session; a session still to
 * enrol cannot approve), throttled guessing of user codes, and what is
 * stored (hashes only).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { URI, TOTP } from 'otpauth';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { signInBrowser, signInSync, type BrowserSession } from '../support/sign-in.ts';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink.ts';
import { pollDeviceLogin, startDeviceLogin, type DeviceAuthorization } from '../support/device-login.ts';
import { pruneAccounts } from '../../src/services/accounts/account-maintenance.ts';

const pgSkip = await postgresUnavailable();
const SECOND = 1000;
const MINUTE = 60_000;
const USER_CODE = /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/;

interface Auth {
  token?: string;
  browser?: BrowserSession;
  /** Leave the CSRF header out (browser sessions). */
  noCsrf?: boolean;
  ip?: string;
  basic?: string;
}

async function call(url: string, method: string, path: string, auth: Auth = {}, body?: unknown): Promise<{ status: number; body: any; text: string; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.basic) headers.authorization = `Basic ${auth.basic}`;
  if (auth.browser) {
    headers.cookie = auth.browser.cookie;
    if (!auth.noCsrf) headers['x-csrf-token'] = auth.browser.csrfToken;
  }
  if (auth.ip) headers['x-forwarded-for'] = auth.ip;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
  const text = await res.text();
  let parsed: any = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

function expectError(r: { status: number; body: any }, status: number, code: string, what: string): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body?.error?.code, code, `${what}: ${JSON.stringify(r.body)}`);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`device login on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let now = Date.now();
    const clock = { now: () => now };
    let sink: SmtpSink;
    /** SMTP to the sink; trusts X-Forwarded-For, so every scenario can come from addresses of its own. */
    let srv: TestServer;
    /** require2fa, and requests that last 3 minutes. */
    let strict: TestServer;
    let url: string;
    let ipSeq = 0;
    const nextIp = () => `198.18.${dialect === 'sqlite' ? 1 : 2}.${++ipSeq}`;

    const createUser = (name: string, opts: { email?: string; on?: TestServer } = {}) =>
      (opts.on ?? srv).server.coffer.services.users.create({ username: name, password: TEST_PASSWORD, email: opts.email });
    const browser = (name: string, ip: string, on = url) => signInBrowser(on, name, TEST_PASSWORD, {}, { 'x-forwarded-for': ip });
    const start = (body: { deviceName: string; platform?: string }, ip: string, on = url) => startDeviceLogin(on, body, { 'x-forwarded-for': ip });
    const poll = (d: DeviceAuthorization, ip: string, extra: { deviceKey?: string } = {}, on = url) => pollDeviceLogin(on, d.deviceCode, extra, { 'x-forwarded-for': ip });
    const pending = (auth: Auth, userCode: string, on = url) => call(on, 'GET', `/api/v1/auth/device/pending?userCode=${encodeURIComponent(userCode)}`, auth);
    const decide = (auth: Auth, body: Record<string, unknown>, on = url) => call(on, 'POST', '/api/v1/auth/device/approve', auth, body);
    const auditOf = async (token: string) => {
      const r = await call(url, 'GET', '/api/v1/account/audit?limit=500', { token });
      assert.equal(r.status, 200);
      return r.body.events as { type: string; ip: string | null; sessionId: string | null; deviceId: string | null; detail: any }[];
    };
    const settled = () => srv.server.coffer.services.notices.settled();

    before(async () => {
      sink = await startSmtpSink();
      [srv, strict] = await Promise.all([
        startTestServer({ dialect, clock, config: { smtpUrl: sink.url, trustProxy: true, mailFrom: 'Coffer <coffer@example.test>' } }),
        startTestServer({ dialect, clock, config: { require2fa: true, trustProxy: true, deviceCodeMinutes: 3 } }),
      ]);
      url = srv.url;
    });
    after(async () => {
      await Promise.all([srv?.close(), strict?.close()]);
      await sink?.close();
    });

    it('full flow: request, pending, approval in a browser, one exchange for a sync-client session; nothing stored in the clear', async () => {
      await createUser('alice', { email: 'alice@example.test' });
      const deviceIp = nextIp();
      const browserIp = nextIp();
      const d = await start({ deviceName: 'Alice Laptop', platform: 'linux' }, deviceIp);
      assert.match(d.deviceCode, /^cfd_[A-Za-z0-9_-]{43}$/, '256 random bits');
      assert.match(d.userCode, USER_CODE);
      assert.equal(d.verificationUri, `${url}/device`);
      assert.equal(d.verificationUriComplete, `${url}/device?code=${d.userCode}`);
      assert.equal(d.expiresIn, 600, 'ten minutes by default');
      assert.equal(d.interval, 5);
      assert.deepEqual(Object.keys(d).sort(), ['deviceCode', 'expiresIn', 'interval', 'userCode', 'verificationUri', 'verificationUriComplete']);

      // Only hashes are stored.
      const rows = await srv.server.coffer.metadata.db.selectFrom('device_logins').selectAll().execute();
      const row = rows.find((r) => r.device_code_hash === sha256(d.deviceCode));
      assert.ok(row, 'the row is found by the SHA-256 of the device code');
      const stored = JSON.stringify(rows);
      for (const secret of [d.deviceCode, d.userCode, d.userCode.replace('-', '')]) assert.ok(!stored.includes(secret), `${secret} is not stored`);

      const first = await poll(d, deviceIp);
      expectError(first, 400, 'AUTHORIZATION_PENDING', 'first poll');
      assert.equal(first.body.error.details.interval, 5);
      assert.equal(first.body.error.details.expiresIn, 600);

      const b = await browser('alice', browserIp);
      // Case, spaces and the dash do not matter.
      const typed = ` ${d.userCode.toLowerCase().replace('-', ' ')} `;
      const shown = await pending({ browser: b, ip: browserIp }, typed);
      assert.equal(shown.status, 200, shown.text);
      assert.deepEqual(shown.body, {
        userCode: d.userCode, deviceName: 'Alice Laptop', platform: 'linux', ip: deviceIp, userAgent: 'node',
        createdAt: now, expiresAt: now + 10 * MINUTE,
      });

      now += 2 * SECOND;
      const approved = await decide({ browser: b, ip: browserIp }, { userCode: d.userCode.replace('-', ''), approve: true, deviceName: 'Alice Work Laptop' });
      assert.equal(approved.status, 200, approved.text);
      assert.deepEqual(approved.body, { status: 'approved', deviceName: 'Alice Work Laptop', platform: 'linux' });

      now += 5 * SECOND;
      const got = await poll(d, deviceIp);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      // Exactly the answer a sync client's password sign-in gets.
      assert.deepEqual(Object.keys(got.body).sort(), ['accessExpiresAt', 'accessToken', 'deviceKey', 'refreshToken', 'session', 'status', 'user']);
      assert.equal(got.body.status, 'signed-in');
      assert.equal(got.body.user.username, 'alice');
      assert.match(got.body.accessToken, /^cfa_/);
      assert.match(got.body.refreshToken, /^cfr_/);
      assert.match(got.body.deviceKey, /^cfk_/);
      assert.deepEqual({ ...got.body.session, id: undefined, deviceId: undefined }, {
        id: undefined, deviceId: undefined, deviceName: 'Alice Work Laptop', kind: 'bearer', persistent: true, idleTimeoutSeconds: 90 * 86_400, mfaEnrollmentRequired: false,
      });
      assert.equal(got.headers.getSetCookie().length, 0, 'no cookie for a sync client');
      const me = await call(url, 'GET', '/api/v1/me', { token: got.body.accessToken, ip: deviceIp });
      assert.equal(me.body.username, 'alice');
      const renewed = await call(url, 'POST', '/api/v1/auth/refresh', { ip: deviceIp }, { refreshToken: got.body.refreshToken });
      assert.equal(renewed.status, 200, 'a normal sync session: its refresh token renews it');

      // Spent: the code works once, and the user code cannot be approved again.
      now += 5 * SECOND;
      expectError(await poll(d, deviceIp), 400, 'INVALID_DEVICE_CODE', 'second exchange');
      expectError(await pending({ browser: b, ip: browserIp }, d.userCode), 409, 'USER_CODE_USED', 'looking up a spent code');
      expectError(await decide({ browser: b, ip: browserIp }, { userCode: d.userCode, approve: true }), 409, 'USER_CODE_USED', 'approving a spent code');
      expectError(await poll({ ...d, deviceCode: 'cfd_not-a-device-code' }, deviceIp), 400, 'INVALID_DEVICE_CODE', 'an unknown device code');

      // The device list and the audit trail, as for a password sign-in from a new device.
      const token = renewed.body.accessToken as string;
      const devices = (await call(url, 'GET', '/api/v1/devices', { token, ip: deviceIp })).body.devices as any[];
      const device = devices.find((x) => x.id === got.body.session.deviceId);
      assert.equal(device.name, 'Alice Work Laptop');
      assert.equal(device.kind, 'sync');
      assert.equal(device.platform, 'linux');
      assert.equal(device.ip, deviceIp, "the device's address, not the browser's");
      assert.ok(device.current);
      const events = await auditOf(token);
      const approval = events.find((e) => e.type === 'device_login.approved');
      assert.ok(approval, 'device_login.approved');
      assert.equal(approval.sessionId, b.body.session.id, 'by the browser session that approved');
      assert.equal(approval.ip, browserIp);
      assert.deepEqual(approval.detail, { name: 'Alice Work Laptop', requestedName: 'Alice Laptop', platform: 'linux', ip: deviceIp });
      const success = events.find((e) => e.type === 'signin.success' && e.sessionId === got.body.session.id);
      assert.ok(success, 'signin.success for the new session');
      assert.equal(success.ip, deviceIp);
      assert.deepEqual(success.detail, { client: 'sync', via: 'device-login', approvedBy: b.body.session.id });
      assert.ok(events.some((e) => e.type === 'signin.new_device' && e.deviceId === got.body.session.deviceId && e.detail?.name === 'Alice Work Laptop'));
      await settled();
      const mail = await sink.waitFor((m) => m.to.includes('alice@example.test') && m.subject === 'New sign-in to your Coffer account' && m.text.includes('Alice Work Laptop'));
      assert.match(mail.text, new RegExp(`IP ${deviceIp.replaceAll('.', '\\.')}`));

      // Signing in again the same way with its device key keeps the device's entry (and mails nothing).
      const mailsBefore = sink.messages.length;
      const again = await start({ deviceName: 'Alice Laptop', platform: 'linux' }, deviceIp);
      assert.notEqual(again.userCode, d.userCode);
      assert.equal((await decide({ browser: b, ip: browserIp }, { userCode: again.userCode, approve: true })).status, 200);
      const second = await poll(again, deviceIp, { deviceKey: got.body.deviceKey });
      assert.equal(second.status, 200, JSON.stringify(second.body));
      assert.equal(second.body.session.deviceId, got.body.session.deviceId, 'the same device');
      assert.equal(second.body.session.deviceName, 'Alice Laptop', 'renamed to the name approved this time');
      assert.equal(second.body.deviceKey, got.body.deviceKey);
      expectError(await call(url, 'GET', '/api/v1/me', { token }), 401, 'UNAUTHENTICATED', 'the earlier session of that device was replaced');
      const newDevices = (await auditOf(second.body.accessToken)).filter((e) => e.type === 'signin.new_device' && e.deviceId === got.body.session.deviceId);
      assert.equal(newDevices.length, 1, 'not a new device the second time');
      await settled();
      assert.equal(sink.messages.length, mailsBefore, 'no new-device mail for a known device');
    });

    it(`polling: sooner than the interval gives SLOW_DOWN and 5 s more; half a second early is forgiven; concurrent polls get one answer`, async () => {
      const ip = nextIp();
      const d = await start({ deviceName: 'Impatient' }, ip);
      expectError(await poll(d, ip), 400, 'AUTHORIZATION_PENDING', 'first poll, at once');
      now += 1 * SECOND;
      const slow = await poll(d, ip);
      expectError(slow, 400, 'SLOW_DOWN', 'after 1 s');
      assert.equal(slow.body.error.details.interval, 10);
      now += 9 * SECOND;
      const slower = await poll(d, ip);
      expectError(slower, 400, 'SLOW_DOWN', '9 s later, under the new interval of 10 s');
      assert.equal(slower.body.error.details.interval, 15, 'grows again');
      now += 15 * SECOND;
      const ok = await poll(d, ip);
      expectError(ok, 400, 'AUTHORIZATION_PENDING', 'after the full 15 s');
      assert.equal(ok.body.error.details.interval, 15, 'the interval stays where it grew to');
      now += 15 * SECOND - 500;
      expectError(await poll(d, ip), 400, 'AUTHORIZATION_PENDING', 'half a second early is on time');
      now += 15 * SECOND - 501;
      expectError(await poll(d, ip), 400, 'SLOW_DOWN', 'more than half a second early is not');

      now += 60 * SECOND;
      const burst = await Promise.all(Array.from({ length: 6 }, () => poll(d, ip)));
      const codes = burst.map((r) => r.body.error.code).sort();
      assert.deepEqual(codes, ['AUTHORIZATION_PENDING', 'SLOW_DOWN', 'SLOW_DOWN', 'SLOW_DOWN', 'SLOW_DOWN', 'SLOW_DOWN'], 'one poll of a burst is answered, the rest told to slow down');

      // Approved, but polled too soon: still SLOW_DOWN, and the session waits for a poll on time.
      await createUser('paula');
      const b = await browser('paula', nextIp());
      assert.equal((await decide({ browser: b }, { userCode: d.userCode, approve: true })).status, 200);
      const early = await poll(d, ip);
      expectError(early, 400, 'SLOW_DOWN', 'approved, polled too soon');
      now += early.body.error.details.interval * SECOND;
      const got = await poll(d, ip);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.user.username, 'paula');
    });

    it('expiry: after 10 minutes the device gets DEVICE_CODE_EXPIRED and the browser 410 USER_CODE_EXPIRED; the lifetime is a setting', async () => {
      await createUser('ed');
      const ip = nextIp();
      const b = await browser('ed', ip);
      const d = await start({ deviceName: 'Slow' }, ip);
      const approvedLate = await start({ deviceName: 'Approved but never fetched' }, ip);
      now += 10 * MINUTE - 1;
      assert.equal((await pending({ browser: b }, d.userCode)).status, 200, 'valid to the last millisecond');
      assert.equal((await decide({ browser: b }, { userCode: approvedLate.userCode, approve: true })).status, 200);
      now += 1;
      expectError(await poll(d, ip), 400, 'DEVICE_CODE_EXPIRED', 'poll after expiry');
      expectError(await pending({ browser: b }, d.userCode), 410, 'USER_CODE_EXPIRED', 'lookup after expiry');
      expectError(await decide({ browser: b }, { userCode: d.userCode, approve: true }), 410, 'USER_CODE_EXPIRED', 'approval after expiry');
      expectError(await poll(approvedLate, ip), 400, 'DEVICE_CODE_EXPIRED', 'an approval must be fetched before the request expires');

      // Pruned an hour past expiry; then the code is simply unknown.
      now += 61 * MINUTE;
      await pruneAccounts(srv.server.coffer.metadata.db, srv.server.coffer.services.sessions, now);
      expectError(await poll(d, ip), 400, 'INVALID_DEVICE_CODE', 'after pruning');
      const b2 = await browser('ed', ip);
      expectError(await pending({ browser: b2 }, d.userCode), 404, 'UNKNOWN_USER_CODE', 'after pruning');

      // deviceCodeMinutes: 3 on the strict server.
      const short = await start({ deviceName: 'Short' }, ip, strict.url);
      assert.equal(short.expiresIn, 180);
      now += 3 * MINUTE;
      expectError(await poll(short, ip, {}, strict.url), 400, 'DEVICE_CODE_EXPIRED', 'after 3 minutes there');
    });

    it('denial: the device gets ACCESS_DENIED for good, the code cannot be approved after all, and the denial is in the audit trail', async () => {
      await createUser('dora');
      const ip = nextIp();
      const d = await start({ deviceName: 'Not mine', platform: 'windows' }, ip);
      const t = await signInSync(url, 'dora', TEST_PASSWORD);
      const denied = await decide({ token: t.accessToken }, { userCode: d.userCode, approve: false, deviceName: 'ignored when denying' });
      assert.equal(denied.status, 200, denied.text);
      assert.deepEqual(denied.body, { status: 'denied', deviceName: 'Not mine', platform: 'windows' });
      expectError(await poll(d, ip), 400, 'ACCESS_DENIED', 'poll after denial');
      now += 5 * SECOND;
      expectError(await poll(d, ip), 400, 'ACCESS_DENIED', 'and again');
      expectError(await decide({ token: t.accessToken }, { userCode: d.userCode, approve: true }), 409, 'USER_CODE_USED', 'approving after denying');
      const events = await auditOf(t.accessToken);
      const e = events.find((x) => x.type === 'device_login.denied');
      assert.ok(e);
      assert.equal(e.sessionId, t.session.id);
      assert.deepEqual(e.detail, { name: 'Not mine', requestedName: 'Not mine', platform: 'windows', ip });
      assert.ok(!events.some((x) => x.type === 'signin.success' && x.detail?.via === 'device-login'));
    });

    it("approval binds only the approving user: bob approving alice's device signs it in to bob's account, and alice's stays as it was", async () => {
      await createUser('amy', { email: 'amy@example.test' });
      await createUser('ben', { email: 'ben@example.test' });
      const ip = nextIp();
      const amy = await signInSync(url, 'amy', TEST_PASSWORD, { deviceName: "Amy's Desktop" }, );
      const amyDevicesBefore = (await call(url, 'GET', '/api/v1/devices', { token: amy.accessToken })).body;
      await settled();
      const amyMailsBefore = sink.find((m) => m.to.includes('amy@example.test')).length;
      const d = await start({ deviceName: "Amy's Desktop" }, ip);
      const ben = await browser('ben', nextIp());
      assert.equal((await decide({ browser: ben }, { userCode: d.userCode, approve: true })).status, 200);
      // Amy's device key is sent along: it names no device of ben's, so this is a new device of ben's.
      const got = await poll(d, ip, { deviceKey: amy.deviceKey });
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.user.username, 'ben');
      assert.notEqual(got.body.deviceKey, amy.deviceKey);
      assert.notEqual(got.body.session.deviceId, amy.session.deviceId);
      const me = await call(url, 'GET', '/api/v1/me', { token: got.body.accessToken });
      assert.equal(me.body.username, 'ben');
      const benRoot = (await srv.server.coffer.services.users.findByLogin('ben'))!.root_id;
      assert.equal(me.body.rootId, benRoot);
      assert.deepEqual((await call(url, 'GET', '/api/v1/devices', { token: amy.accessToken })).body, amyDevicesBefore, "amy's devices are untouched");
      assert.equal((await call(url, 'GET', '/api/v1/me', { token: amy.accessToken })).status, 200, "amy's session is untouched");
      const amyEvents = await auditOf(amy.accessToken);
      assert.ok(!amyEvents.some((e) => e.type.startsWith('device_login.') || (e.type === 'signin.success' && e.detail?.via === 'device-login')), "nothing in amy's trail");
      await settled();
      await sink.waitFor((m) => m.to.includes('ben@example.test') && m.subject === 'New sign-in to your Coffer account');
      assert.equal(sink.find((m) => m.to.includes('amy@example.test')).length, amyMailsBefore, 'no mail to amy');
    });

    it('two-factor: a session that passed it approves and the device needs no code; a session still to enrol cannot approve; an app password cannot either', async () => {
      await createUser('erin');
      const setupSession = await signInSync(url, 'erin', TEST_PASSWORD);
      const setup = await call(url, 'POST', '/api/v1/account/2fa/setup', { token: setupSession.accessToken });
      const code = () => (URI.parse(setup.body.otpauthUri) as TOTP).generate({ timestamp: now });
      assert.equal((await call(url, 'POST', '/api/v1/account/2fa/enable', { token: setupSession.accessToken }, { code: code() })).status, 200);
      const ip = nextIp();
      const first = await call(url, 'POST', '/api/v1/auth/login', { ip }, { login: 'erin', password: TEST_PASSWORD, client: 'browser' });
      assert.equal(first.body.status, 'mfa-required');
      now += 30 * SECOND;
      const second = await call(url, 'POST', '/api/v1/auth/login/2fa', { ip }, { challenge: first.body.challenge, code: code() });
      assert.equal(second.status, 200, second.text);
      const cookie = second.headers.getSetCookie().find((c) => c.startsWith('coffer_session='))!.split(';')[0];
      const erinBrowser = { cookie, deviceCookie: '', csrfToken: second.body.csrfToken, setCookie: [], body: second.body } satisfies BrowserSession;
      const d = await start({ deviceName: 'Erin Server' }, ip);
      assert.equal((await decide({ browser: erinBrowser }, { userCode: d.userCode, approve: true })).status, 200);
      const got = await poll(d, ip);
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.status, 'signed-in', 'no second factor asked of the device');
      assert.equal(got.body.session.mfaEnrollmentRequired, false);

      // An app password of erin's: refused (it is for tools that speak only basic auth).
      const tool = await call(url, 'POST', '/api/v1/app-passwords', { token: setupSession.accessToken }, { name: 'backup tool' });
      const basic = Buffer.from(`erin:${tool.body.password}`).toString('base64');
      const d2 = await start({ deviceName: 'Via app password' }, ip);
      expectError(await decide({ basic }, { userCode: d2.userCode, approve: true }), 403, 'FORBIDDEN', 'approve with an app password');
      expectError(await pending({ basic }, d2.userCode), 403, 'FORBIDDEN', 'look up with an app password');

      // A server that requires 2FA: carol has none yet, so her sessions may only enrol.
      await createUser('carol', { on: strict });
      const carolBrowser = await browser('carol', ip, strict.url);
      assert.equal(carolBrowser.body.session.mfaEnrollmentRequired, true);
      const carolSync = await signInSync(strict.url, 'carol', TEST_PASSWORD);
      const d3 = await start({ deviceName: 'Carol Laptop' }, ip, strict.url);
      for (const [label, auth] of [['browser', { browser: carolBrowser }], ['sync client', { token: carolSync.accessToken }]] as const) {
        expectError(await decide(auth, { userCode: d3.userCode, approve: true }, strict.url), 403, 'MFA_ENROLLMENT_REQUIRED', `${label} approve`);
        expectError(await pending(auth, d3.userCode, strict.url), 403, 'MFA_ENROLLMENT_REQUIRED', `${label} look up`);
      }
      expectError(await poll(d3, ip, {}, strict.url), 400, 'AUTHORIZATION_PENDING', 'still pending');
    });

    it('CSRF: a browser session approves only with its X-CSRF-Token; reading the request needs none', async () => {
      await createUser('cleo');
      const ip = nextIp();
      const b = await browser('cleo', ip);
      const d = await start({ deviceName: 'CSRF target' }, ip);
      expectError(await decide({ browser: b, noCsrf: true }, { userCode: d.userCode, approve: true }), 403, 'CSRF_FAILED', 'approve without the token');
      expectError(await decide({ browser: { ...b, csrfToken: 'forged' } }, { userCode: d.userCode, approve: true }), 403, 'CSRF_FAILED', 'approve with a wrong token');
      assert.equal((await pending({ browser: b, noCsrf: true }, d.userCode)).status, 200);
      expectError(await poll(d, ip), 400, 'AUTHORIZATION_PENDING', 'nothing was approved');
    });

    it('an approval lapses with the session that gave it: signed out before the exchange → ACCESS_DENIED', async () => {
      await createUser('sam');
      const ip = nextIp();
      const b = await browser('sam', ip);
      const d = await start({ deviceName: 'Too late' }, ip);
      assert.equal((await decide({ browser: b }, { userCode: d.userCode, approve: true })).status, 200);
      assert.equal((await call(url, 'POST', '/api/v1/auth/logout', { browser: b })).status, 204);
      const r = await poll(d, ip);
      expectError(r, 400, 'ACCESS_DENIED', 'approver signed out');
      assert.match(r.body.error.message, /session that approved/);
      expectError(await poll(d, ip), 400, 'INVALID_DEVICE_CODE', 'and the code is spent');
    });

    it('guessing user codes is throttled per account and per IP; right codes cost nothing', async () => {
      await createUser('gil');
      await createUser('gia');
      const ip = nextIp();
      const gil = await signInSync(url, 'gil', TEST_PASSWORD);
      const d = await start({ deviceName: 'Target' }, nextIp());
      // Right codes, however often, are never counted.
      for (let i = 0; i < 15; i++) assert.equal((await pending({ token: gil.accessToken, ip }, d.userCode)).status, 200, `right code ${i}`);
      const wrong = (i: number) => `BBBB-${'CDFGHJKLMN'[i % 10]}${'CDFGHJKLMN'[Math.floor(i / 10) % 10]}BB`;
      for (let i = 0; i < 10; i++) {
        expectError(await pending({ token: gil.accessToken, ip }, i % 2 ? wrong(i) : 'not even a code'), 404, 'UNKNOWN_USER_CODE', `wrong code ${i + 1}`);
      }
      expectError(await decide({ token: gil.accessToken, ip }, { userCode: wrong(10), approve: true }), 404, 'UNKNOWN_USER_CODE', 'wrong code 11 (approve counts too)');
      const blocked = await pending({ token: gil.accessToken, ip }, d.userCode);
      expectError(blocked, 429, 'TOO_MANY_ATTEMPTS', 'blocked, even with the right code');
      assert.equal(blocked.body.error.details.retryAfterSeconds, 5);
      assert.match(blocked.body.error.message, /wrong codes/);
      expectError(await decide({ token: gil.accessToken, ip }, { userCode: d.userCode, approve: true }), 429, 'TOO_MANY_ATTEMPTS', 'approving while blocked');
      // The same account from elsewhere, and another account from the same address, are blocked too.
      expectError(await pending({ token: gil.accessToken, ip: nextIp() }, d.userCode), 429, 'TOO_MANY_ATTEMPTS', 'same account, another IP');
      const gia = await signInSync(url, 'gia', TEST_PASSWORD);
      expectError(await pending({ token: gia.accessToken, ip }, d.userCode), 429, 'TOO_MANY_ATTEMPTS', 'another account, same IP');
      // Delays double.
      now += 5 * SECOND;
      expectError(await pending({ token: gil.accessToken, ip }, wrong(11)), 404, 'UNKNOWN_USER_CODE', 'after the delay, another wrong code');
      const longer = await pending({ token: gil.accessToken, ip }, d.userCode);
      expectError(longer, 429, 'TOO_MANY_ATTEMPTS', 'blocked again');
      assert.equal(longer.body.error.details.retryAfterSeconds, 10);
      now += 10 * SECOND;
      const ok = await decide({ token: gil.accessToken, ip }, { userCode: d.userCode, approve: true });
      assert.equal(ok.status, 200, 'after the delay the right code works');
      assert.equal((await poll(d, nextIp())).body.user.username, 'gil');
    });

    it('new requests are limited per address (30 free, then growing delays)', async () => {
      const ip = nextIp();
      for (let i = 0; i < 31; i++) await start({ deviceName: `Device ${i}` }, ip); // the 31st starts a 2 s delay
      const r = await call(url, 'POST', '/api/v1/auth/device', { ip }, { deviceName: 'one too many' });
      expectError(r, 429, 'TOO_MANY_ATTEMPTS', '32nd request from one address');
      assert.equal(r.body.error.details.retryAfterSeconds, 2);
      assert.match(r.body.error.message, /sign-in requests/);
      await start({ deviceName: 'From elsewhere' }, nextIp());
      now += 2 * SECOND;
      await start({ deviceName: 'After the delay' }, ip);
    });

    it('the /device page: public HTML, not cached, a CSP without unsafe-inline, no framing, and not in the API document', async () => {
      const res = await fetch(`${url}/device?code=BBBB-BBBB`);
      const html = await res.text();
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.ok(!csp.includes('unsafe'), csp);
      for (const d of ["default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "base-uri 'none'"]) assert.ok(csp.includes(d), `${d} in ${csp}`);
      const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1];
      assert.ok(csp.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`), 'the inline script is admitted by its hash');
      assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
      assert.ok(!html.includes('BBBB-BBBB'), 'the code is not echoed into the markup');
      assert.ok(!/innerHTML|outerHTML|insertAdjacentHTML|document\.write/.test(html), 'what the device sent is only ever set as text');
      const doc = await (await fetch(`${url}/api/openapi.json`)).json() as { paths: Record<string, unknown> };
      assert.equal(doc.paths['/device'], undefined);
    });
  });
}
