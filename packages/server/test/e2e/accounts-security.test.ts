/**
 * Account security over real HTTP, on SQLite and PostgreSQL, with a real
 * SMTP server catching the mail: two-factor authentication (TOTP codes
 * computed as an authenticator app does, single use, recovery codes,
 * require2fa), password reset by mailed link and password change (sessions
 * signed out, weak passwords refused, notices mailed; without SMTP the mail
 * lands in data/outbox/), new-device notices, throttling of guessing (per
 * account and per IP, delays that expire, reset still possible while
 * blocked) and the audit trail. Time is a controllable clock.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { URI, TOTP } from 'otpauth';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/test-server.ts';
import { postgresUnavailable } from '../support/postgres.ts';
import { signInBrowser, signInSync } from '../support/sign-in.ts';
import { parseMail, startSmtpSink, type SmtpSink, type SunkMail } from '../support/smtp-sink.ts';

const pgSkip = await postgresUnavailable();
const MINUTE = 60_000;
const NEW_PASSWORD = 'a-brand-new-passphrase-42';

interface Auth {
  token?: string;
  /** Sent as X-Forwarded-For (the servers here trust the proxy), so each scenario can come from an IP of its own. */
  ip?: string;
  headers?: Record<string, string>;
}

async function call(url: string, method: string, path: string, auth: Auth = {}, body?: unknown): Promise<{ status: number; body: any; headers: Headers; ms: number }> {
  const headers: Record<string, string> = { ...auth.headers };
  if (auth.token) headers.authorization = `Bearer ${auth.token}`;
  if (auth.ip) headers['x-forwarded-for'] = auth.ip;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const t0 = performance.now();
  const res = await fetch(url + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  const ms = performance.now() - t0;
  let parsed: any = null;
  try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
  return { status: res.status, body: parsed, headers: res.headers, ms };
}

function expectStatus(r: { status: number; body: any }, status: number, what: string, errorCode?: string): void {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  if (errorCode) assert.equal(r.body?.error?.code, errorCode, `${what}: ${JSON.stringify(r.body)}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const resetTokenIn = (m: SunkMail) => /\/reset-password#token=(cfw_[A-Za-z0-9_-]+)/.exec(m.text)?.[1];

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`accounts: security on ${dialect}`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
    let now = Date.now();
    const clock = { now: () => now };
    let sink: SmtpSink;
    /** SMTP to the sink; trusts X-Forwarded-For. */
    let srv: TestServer;
    /** require2fa, and no SMTP (mail goes to data/outbox/). */
    let strict: TestServer;
    let url: string;

    const createUser = (name: string, opts: { email?: string; admin?: boolean; on?: TestServer } = {}) =>
      (opts.on ?? srv).server.coffer.services.users.create({ username: name, password: TEST_PASSWORD, email: opts.email, isAdmin: opts.admin });
    const login = (login: string, password = TEST_PASSWORD, extra: Record<string, unknown> = {}, auth: Auth = {}, on = url) =>
      call(on, 'POST', '/api/v1/auth/login', auth, { login, password, client: 'sync', ...extra });
    const mailsTo = (addr: string) => sink.find((m) => m.to.includes(addr));
    const settled = async (s: TestServer = srv) => {
      await s.server.coffer.services.passwords.settled();
      await s.server.coffer.services.notices.settled();
    };
    const auditOf = async (token: string, on = url) => {
      const r = await call(on, 'GET', '/api/v1/account/audit?limit=500', { token });
      expectStatus(r, 200, 'audit');
      return r.body.events as any[];
    };
    /** A TOTP code as an authenticator app computes it from the otpauth:// URI, at the server's (test) time. */
    const totpCode = (otpauthUri: string, at = now) => (URI.parse(otpauthUri) as TOTP).generate({ timestamp: at });

    before(async () => {
      sink = await startSmtpSink();
      [srv, strict] = await Promise.all([
        startTestServer({ dialect, clock, config: { smtpUrl: sink.url, trustProxy: true, mailFrom: 'Coffer <coffer@example.test>' } }),
        startTestServer({ dialect, clock, config: { require2fa: true } }),
      ]);
      url = srv.url;
    });
    after(async () => {
      await Promise.all([srv?.close(), strict?.close()]);
      await sink?.close();
    });

    it('2FA: setup gives an otpauth:// URI, enabling gives 10 recovery codes, sign-in then needs a code that works once', async () => {
      await createUser('mia', { email: 'mia@example.test' });
      const s = await signInSync(url, 'mia', TEST_PASSWORD);
      assert.deepEqual((await call(url, 'GET', '/api/v1/account/2fa', { token: s.accessToken })).body, { enabled: false, recoveryCodesLeft: 0 });
      const setup = await call(url, 'POST', '/api/v1/account/2fa/setup', { token: s.accessToken });
      expectStatus(setup, 200, 'setup');
      const { otpauthUri, secret } = setup.body;
      assert.match(secret, /^[A-Z2-7]{32}$/, 'base32, 160 bits');
      assert.match(otpauthUri, /^otpauth:\/\/totp\/Coffer:mia\?/);
      assert.equal(new URL(otpauthUri).searchParams.get('secret'), secret);
      assert.deepEqual({ digits: setup.body.digits, period: setup.body.period, algorithm: setup.body.algorithm }, { digits: 6, period: 30, algorithm: 'SHA1' });

      const wrong = String((Number(totpCode(otpauthUri)) + 1) % 1_000_000).padStart(6, '0');
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/enable', { token: s.accessToken }, { code: wrong }), 401, 'enable with a wrong code', 'WRONG_MFA_CODE');
      const enableCode = totpCode(otpauthUri);
      const enabled = await call(url, 'POST', '/api/v1/account/2fa/enable', { token: s.accessToken }, { code: enableCode });
      expectStatus(enabled, 200, 'enable');
      const recovery: string[] = enabled.body.recoveryCodes;
      assert.equal(recovery.length, 10);
      assert.equal(new Set(recovery).size, 10);
      for (const c of recovery) assert.match(c, /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/);
      assert.deepEqual((await call(url, 'GET', '/api/v1/account/2fa', { token: s.accessToken })).body, { enabled: true, recoveryCodesLeft: 10 });
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/setup', { token: s.accessToken }), 409, 'setup again', 'MFA_ALREADY_ENABLED');
      await sink.waitFor((m) => m.to.includes('mia@example.test') && m.subject === 'Two-factor authentication turned on');

      // The password alone gives a challenge, not a session.
      const first = await login('mia');
      expectStatus(first, 200, 'password step');
      assert.equal(first.body.status, 'mfa-required');
      assert.match(first.body.challenge, /^cfc_/);
      for (const k of ['accessToken', 'refreshToken', 'session', 'deviceKey', 'csrfToken']) assert.equal(first.body[k], undefined, k);
      assert.equal(first.headers.getSetCookie().length, 0, 'no cookie either');
      const browserFirst = await call(url, 'POST', '/api/v1/auth/login', {}, { login: 'mia', password: TEST_PASSWORD, client: 'browser' });
      assert.equal(browserFirst.body.status, 'mfa-required');
      assert.equal(browserFirst.headers.getSetCookie().length, 0, 'a browser gets no cookie before the second step');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: first.body.challenge }), 401, 'a challenge is not a credential', 'UNAUTHENTICATED');
      const step2 = (challenge: string, factor: Record<string, string>) => call(url, 'POST', '/api/v1/auth/login/2fa', {}, { challenge, ...factor });

      expectStatus(await step2(first.body.challenge, { code: enableCode }), 401, 'the code already spent on enabling', 'WRONG_MFA_CODE');
      now += 30_000;
      const code = totpCode(otpauthUri);
      const done = await step2(first.body.challenge, { code });
      expectStatus(done, 200, 'second step');
      assert.equal(done.body.status, 'signed-in');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: done.body.accessToken }), 200, 'the new session');
      expectStatus(await step2(first.body.challenge, { code }), 401, 'a completed challenge', 'UNAUTHENTICATED');

      const second = await login('mia');
      expectStatus(await step2(second.body.challenge, { code }), 401, 'the same code on a new challenge (replay)', 'WRONG_MFA_CODE');
      const byRecovery = await step2(second.body.challenge, { recoveryCode: recovery[0].toUpperCase().replace(/-/g, ' ') });
      expectStatus(byRecovery, 200, 'a recovery code (case and separators do not matter)');
      const third = await login('mia');
      expectStatus(await step2(third.body.challenge, { recoveryCode: recovery[0] }), 401, 'a recovery code works once', 'WRONG_MFA_CODE');
      assert.equal((await call(url, 'GET', '/api/v1/account/2fa', { token: s.accessToken })).body.recoveryCodesLeft, 9);

      // New recovery codes void the old set.
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/recovery-codes', { token: s.accessToken }, { code }), 401, 'regenerating with a spent code', 'WRONG_MFA_CODE');
      now += 30_000;
      const regen = await call(url, 'POST', '/api/v1/account/2fa/recovery-codes', { token: s.accessToken }, { code: totpCode(otpauthUri) });
      expectStatus(regen, 200, 'regenerate');
      const fresh: string[] = regen.body.recoveryCodes;
      assert.equal(fresh.length, 10);
      assert.equal(fresh.filter((c) => recovery.includes(c)).length, 0);
      expectStatus(await step2(third.body.challenge, { recoveryCode: recovery[1] }), 401, 'an old, unused recovery code after regenerating', 'WRONG_MFA_CODE');
      expectStatus(await step2(third.body.challenge, { recoveryCode: fresh[0] }), 200, 'a new recovery code');

      // Turning it off needs a current code or a recovery code.
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, {}), 400, 'disable with nothing', 'VALIDATION_FAILED');
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { code: wrong }), 401, 'disable with a wrong code', 'WRONG_MFA_CODE');
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { recoveryCode: fresh[0] }), 401, 'disable with a spent recovery code', 'WRONG_MFA_CODE');
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { recoveryCode: fresh[1] }), 204, 'disable with a recovery code');
      assert.deepEqual((await call(url, 'GET', '/api/v1/account/2fa', { token: s.accessToken })).body, { enabled: false, recoveryCodesLeft: 0 });
      const plain = await login('mia');
      assert.equal(plain.body.status, 'signed-in', 'the password is enough again');
      await sink.waitFor((m) => m.to.includes('mia@example.test') && m.subject === 'Two-factor authentication turned off');

      const types = (await auditOf(s.accessToken)).map((e) => e.type);
      for (const t of ['mfa.enabled', 'mfa.failure', 'mfa.recovery_code_used', 'mfa.recovery_codes_regenerated', 'mfa.disabled']) assert.ok(types.includes(t), `${t} in ${types}`);
    });

    it('2FA codes cannot be guessed through the disable and recovery-code routes of a stolen session: they are throttled like the sign-in step', async () => {
      await createUser('gus');
      const s = await signInSync(url, 'gus', TEST_PASSWORD);
      const setup = await call(url, 'POST', '/api/v1/account/2fa/setup', { token: s.accessToken });
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/enable', { token: s.accessToken }, { code: totpCode(setup.body.otpauthUri) }), 200, 'enable');
      now += 30_000;
      const right = totpCode(setup.body.otpauthUri);
      const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, '0');
      for (let i = 1; i <= 3; i++) expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { code: wrong }), 401, `wrong code ${i} on disable`, 'WRONG_MFA_CODE');
      for (let i = 4; i <= 6; i++) expectStatus(await call(url, 'POST', '/api/v1/account/2fa/recovery-codes', { token: s.accessToken }, { code: wrong }), 401, `wrong code ${i} on regenerate`, 'WRONG_MFA_CODE');
      const blocked = await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { code: right });
      expectStatus(blocked, 429, 'blocked, even with the right code', 'TOO_MANY_ATTEMPTS');
      // The sign-in step shares the counter: guesses cannot be spread over both.
      const challenge = (await login('gus')).body.challenge;
      expectStatus(await call(url, 'POST', '/api/v1/auth/login/2fa', {}, { challenge, code: right }), 429, 'sign-in step while blocked', 'TOO_MANY_ATTEMPTS');
      now += blocked.body.error.details.retryAfterSeconds * 1000;
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/disable', { token: s.accessToken }, { code: right }), 204, 'after the delay, the right code');
      const failures = (await auditOf(s.accessToken)).filter((e) => e.type === 'mfa.failure');
      assert.equal(failures.length, 6, 'each wrong code is in the audit trail');
    });

    it('require2fa: a user without 2FA gets a session restricted to enrolling (403 MFA_ENROLLMENT_REQUIRED) until it is on', async () => {
      await createUser('rex', { on: strict });
      const s = await signInSync(strict.url, 'rex', TEST_PASSWORD);
      assert.equal(s.session.mfaEnrollmentRequired, true);
      const as = (method: string, path: string, body?: unknown) => call(strict.url, method, path, { token: s.accessToken }, body);
      expectStatus(await as('GET', '/api/v1/drive'), 403, 'drive', 'MFA_ENROLLMENT_REQUIRED');
      expectStatus(await as('GET', '/api/v1/changes?cursor=latest'), 403, 'changes', 'MFA_ENROLLMENT_REQUIRED');
      expectStatus(await as('POST', '/api/v1/folders', { path: 'x' }), 403, 'create folder', 'MFA_ENROLLMENT_REQUIRED');
      expectStatus(await as('GET', '/api/v1/devices'), 403, 'devices', 'MFA_ENROLLMENT_REQUIRED');
      expectStatus(await as('POST', '/api/v1/app-passwords', { name: 'sneaky' }), 403, 'an app password would sidestep 2FA', 'MFA_ENROLLMENT_REQUIRED');
      expectStatus(await as('GET', '/api/v1/me'), 200, 'me');
      assert.equal((await as('GET', '/api/v1/auth/session')).body.restriction, 'mfa-enrollment');

      const setup = await as('POST', '/api/v1/account/2fa/setup');
      expectStatus(setup, 200, 'setup while restricted');
      expectStatus(await as('POST', '/api/v1/account/2fa/enable', { code: totpCode(setup.body.otpauthUri) }), 200, 'enable while restricted');
      expectStatus(await as('GET', '/api/v1/drive'), 200, 'the same session has full access now');
      expectStatus(await as('POST', '/api/v1/folders', { path: 'x' }), 201, 'create folder');
      assert.equal((await as('GET', '/api/v1/auth/session')).body.restriction, null);
      const again = await login('rex', TEST_PASSWORD, {}, {}, strict.url);
      assert.equal(again.body.status, 'mfa-required');

      // Turning 2FA off again (say, to move it to a new phone) puts the sessions back behind enrollment, not into full access without 2FA.
      now += 30_000;
      expectStatus(await as('POST', '/api/v1/account/2fa/disable', { code: totpCode(setup.body.otpauthUri) }), 204, 'disable');
      expectStatus(await as('GET', '/api/v1/drive'), 403, 'drive after turning 2FA off', 'MFA_ENROLLMENT_REQUIRED');
      const setup2 = await as('POST', '/api/v1/account/2fa/setup');
      expectStatus(await as('POST', '/api/v1/account/2fa/enable', { code: totpCode(setup2.body.otpauthUri) }), 200, 'enable on the new phone');
      expectStatus(await as('GET', '/api/v1/drive'), 200, 'full access again');
    });

    it('password reset by mail: same answer for every login, a single-use link that signs everything out, and a notice', async () => {
      await createUser('rita', { email: 'rita@example.test' });
      await createUser('tim', { email: 'tim@example.test' });
      const sync = await signInSync(url, 'rita', TEST_PASSWORD);
      const web = await signInBrowser(url, 'rita', TEST_PASSWORD, { remember: true });

      // The answer does not tell whether the account exists: same status, same body; the times are printed.
      const times = { existing: [] as number[], unknown: [] as number[] };
      let reference: { status: number; body: any } | undefined;
      for (let i = 0; i < 5; i++) {
        for (const [kind, who] of [['existing', 'tim'], ['unknown', 'nobody-at-all']] as const) {
          const r = await call(url, 'POST', '/api/v1/auth/password/forgot', {}, { login: who });
          expectStatus(r, 202, `forgot for ${kind}`);
          reference ??= r;
          assert.deepEqual({ status: r.status, body: r.body }, { status: reference.status, body: reference.body }, `${kind}: identical answer`);
          times[kind].push(r.ms);
          await settled(); // the lookup and the mail run after the answer: let them finish before timing the next request
        }
      }
      console.log(`forgot-password answer time (${dialect}), median of 5: existing account ${median(times.existing).toFixed(1)} ms, no such account ${median(times.unknown).toFixed(1)} ms; all existing [${times.existing.map((t) => t.toFixed(1)).join(', ')}], unknown [${times.unknown.map((t) => t.toFixed(1)).join(', ')}]`);
      await settled();
      assert.equal(mailsTo('tim@example.test').filter((m) => m.subject === 'Reset your Coffer password').length, 5);

      const from = sink.messages.length;
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/forgot', {}, { login: 'RITA@example.test' }), 202, 'forgot by e-mail address');
      const mail = await sink.waitFor((m) => m.to.includes('rita@example.test') && m.subject === 'Reset your Coffer password', 5_000, from);
      assert.match(mail.from, /coffer@example\.test/);
      assert.ok(mail.text.includes(`${url}/reset-password#token=`), mail.text);
      assert.match(mail.text, /within 30 minutes/);
      const token = resetTokenIn(mail)!;
      assert.ok(token, mail.text);

      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token, password: 'qwertyuiop' }), 400, 'a weak new password', 'WEAK_PASSWORD');
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token: token + 'x', password: NEW_PASSWORD }), 400, 'a tampered token', 'INVALID_RESET_TOKEN');
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token, password: NEW_PASSWORD }), 204, 'reset (the weak try did not spend the link)');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: sync.accessToken }), 401, 'the sync session', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { headers: { cookie: web.cookie } }), 401, 'the remembered browser session', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'POST', '/api/v1/auth/refresh', {}, { refreshToken: sync.refreshToken }), 401, 'the refresh token', 'UNAUTHENTICATED');
      expectStatus(await login('rita', TEST_PASSWORD), 401, 'the old password', 'WRONG_CREDENTIALS');
      const fresh = await login('rita', NEW_PASSWORD);
      expectStatus(fresh, 200, 'the new password');
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token, password: 'yet-another-passphrase-7' }), 400, 'the link a second time', 'INVALID_RESET_TOKEN');
      const notice = await sink.waitFor((m) => m.to.includes('rita@example.test') && m.subject === 'Your Coffer password was reset', 5_000, from);
      assert.match(notice.text, /Every session was signed out/);
      const types = (await auditOf(fresh.body.accessToken)).map((e) => e.type);
      assert.ok(types.includes('password.reset_requested') && types.includes('password.reset'), types.join());
    });

    it('a reset link expires after 30 minutes, and a newer link voids the older one', async () => {
      await createUser('eve', { email: 'eve@example.test' });
      const ask = async () => {
        const from = sink.messages.length;
        expectStatus(await call(url, 'POST', '/api/v1/auth/password/forgot', {}, { login: 'eve' }), 202, 'forgot');
        return resetTokenIn(await sink.waitFor((m) => m.to.includes('eve@example.test') && m.subject === 'Reset your Coffer password', 5_000, from))!;
      };
      const older = await ask();
      const newer = await ask();
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token: older, password: NEW_PASSWORD }), 400, 'the older link', 'INVALID_RESET_TOKEN');
      now += 31 * MINUTE;
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', {}, { token: newer, password: NEW_PASSWORD }), 400, 'a link 31 minutes old', 'INVALID_RESET_TOKEN');
      expectStatus(await login('eve'), 200, 'the password is unchanged');
    });

    it('changing the password: the current one is checked, weak ones refused, other sessions signed out unless kept, and a notice mailed', async () => {
      await createUser('carl', { email: 'carl@example.test' });
      const me = await signInSync(url, 'carl', TEST_PASSWORD);
      const other = await signInSync(url, 'carl', TEST_PASSWORD);
      const change = (currentPassword: string, newPassword: string, keepOtherSessions?: boolean) =>
        call(url, 'POST', '/api/v1/account/password', { token: me.accessToken }, { currentPassword, newPassword, ...(keepOtherSessions === undefined ? {} : { keepOtherSessions }) });

      expectStatus(await change('not-my-password', NEW_PASSWORD), 401, 'wrong current password', 'WRONG_CREDENTIALS');
      for (const weak of ['password123', 'qwertyuiop', 'short', 'Password123', 'iloveyou12']) {
        expectStatus(await change(TEST_PASSWORD, weak), 400, `weak password ${weak}`, 'WEAK_PASSWORD');
      }
      expectStatus(await login('carl', TEST_PASSWORD), 200, 'still the old password');

      const from = sink.messages.length;
      const kept = await change(TEST_PASSWORD, NEW_PASSWORD, true);
      expectStatus(kept, 200, 'change, keeping other sessions');
      assert.equal(kept.body.otherSessionsSignedOut, 0);
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: other.accessToken }), 200, 'the other session was kept');
      const keptMail = await sink.waitFor((m) => m.to.includes('carl@example.test') && m.subject === 'Your Coffer password was changed', 5_000, from);
      assert.match(keptMail.text, /other sessions stay signed in/);

      const signedOut = await change(NEW_PASSWORD, 'third-time-lucky-passphrase');
      expectStatus(signedOut, 200, 'change, signing out the others');
      assert.ok(signedOut.body.otherSessionsSignedOut >= 1, JSON.stringify(signedOut.body));
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: other.accessToken }), 401, 'the other session', 'UNAUTHENTICATED');
      expectStatus(await call(url, 'GET', '/api/v1/me', { token: me.accessToken }), 200, 'this session stays');
      expectStatus(await login('carl', NEW_PASSWORD), 401, 'the previous password', 'WRONG_CREDENTIALS');
      expectStatus(await login('carl', 'third-time-lucky-passphrase'), 200, 'the new password');
      await sink.waitFor((m) => m.to.includes('carl@example.test') && /other session\(s\) were signed out/.test(m.text), 5_000, from);
    });

    it('without SMTP configured, the mail lands in data/outbox/ as an .eml file', async () => {
      await createUser('olga', { email: 'olga@example.test', on: strict });
      expectStatus(await call(strict.url, 'POST', '/api/v1/auth/password/forgot', {}, { login: 'olga' }), 202, 'forgot');
      await settled(strict);
      const dir = join(strict.dataDir, 'outbox');
      const files = (await readdir(dir)).filter((f) => f.endsWith('.eml'));
      const mails = await Promise.all(files.map(async (f) => parseMail(await readFile(join(dir, f), 'utf8'))));
      const reset = mails.find((m) => /To: olga@example\.test/.test(m.raw) && m.subject === 'Reset your Coffer password');
      assert.ok(reset, `outbox: ${files.join(', ')}`);
      const token = resetTokenIn(reset)!;
      expectStatus(await call(strict.url, 'POST', '/api/v1/auth/password/reset', {}, { token, password: NEW_PASSWORD }), 204, 'the outbox link works');
      assert.equal(sink.find((m) => m.to.includes('olga@example.test')).length, 0, 'nothing went to the SMTP server of the other instance');
    });

    it('a sign-in from a new device mails a notice; signing in again on a known device does not', async () => {
      await createUser('nina', { email: 'nina@example.test' });
      const isNotice = (m: SunkMail) => m.subject === 'New sign-in to your Coffer account';
      const first = await signInSync(url, 'nina', TEST_PASSWORD, { deviceName: 'Nina\'s laptop' });
      const notice = await sink.waitFor((m) => m.to.includes('nina@example.test') && isNotice(m));
      assert.match(notice.text, /Nina's laptop/);
      assert.match(notice.text, /IP 127\.0\.0\.1/);
      await signInSync(url, 'nina', TEST_PASSWORD, { deviceKey: first.deviceKey });
      const web = await signInBrowser(url, 'nina', TEST_PASSWORD);
      await signInBrowser(url, 'nina', TEST_PASSWORD, {}, { cookie: web.deviceCookie });
      await settled();
      assert.equal(mailsTo('nina@example.test').filter(isNotice).length, 2, 'the laptop and the browser, each once');
      const before = sink.messages.length;
      await createUser('noemail');
      await signInSync(url, 'noemail', TEST_PASSWORD);
      await settled();
      assert.equal(sink.messages.length, before, 'a user without an e-mail address gets no mail');
    });

    it('throttling: 5 free failures per account, then growing delays (429 with retryAfterSeconds) that expire; a blocked account can still reset its password', async () => {
      await createUser('tina', { email: 'tina@example.test' });
      const attacker = { ip: '203.0.113.7' };
      for (let i = 1; i <= 5; i++) expectStatus(await login('tina', `guess-${i}`, {}, attacker), 401, `free failure ${i}`, 'WRONG_CREDENTIALS');
      // The sixth failure is the first past the free ones: it is still checked, and starts a 2 s delay.
      expectStatus(await login('tina', 'guess-6', {}, attacker), 401, 'failure 6', 'WRONG_CREDENTIALS');
      const blocked = await login('tina', 'guess-7', {}, attacker);
      expectStatus(blocked, 429, 'attempt 7', 'TOO_MANY_ATTEMPTS');
      assert.equal(blocked.body.error.details.retryAfterSeconds, 2);
      const owner = { ip: '198.51.100.20' };
      const ownerBlocked = await login('tina', TEST_PASSWORD, {}, owner);
      expectStatus(ownerBlocked, 429, 'even the right password from another IP while the account is blocked', 'TOO_MANY_ATTEMPTS');
      expectStatus(await login('TINA@example.test', TEST_PASSWORD, {}, owner), 429, 'or by e-mail address', 'TOO_MANY_ATTEMPTS');

      now += 2_000;
      expectStatus(await login('tina', 'guess-8', {}, attacker), 401, 'after the delay, one more try', 'WRONG_CREDENTIALS');
      const longer = await login('tina', 'guess-9', {}, attacker);
      expectStatus(longer, 429, 'blocked again', 'TOO_MANY_ATTEMPTS');
      assert.equal(longer.body.error.details.retryAfterSeconds, 4, 'the delay doubles');
      now += 1_000;
      assert.equal((await login('tina', TEST_PASSWORD, {}, owner)).body.error.details.retryAfterSeconds, 3, 'the wait counts down');

      // The owner resets by mail while blocked, and is in at once.
      const from = sink.messages.length;
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/forgot', owner, { login: 'tina' }), 202, 'forgot while blocked');
      const token = resetTokenIn(await sink.waitFor((m) => m.to.includes('tina@example.test') && m.subject === 'Reset your Coffer password', 5_000, from))!;
      expectStatus(await call(url, 'POST', '/api/v1/auth/password/reset', owner, { token, password: NEW_PASSWORD }), 204, 'reset while blocked');
      const inAgain = await login('tina', NEW_PASSWORD, {}, owner);
      expectStatus(inAgain, 200, 'signing in right after the reset');
      const types = (await auditOf(inAgain.body.accessToken)).map((e) => e.type);
      assert.ok(types.includes('signin.throttled'), types.join());

      // And a delay, once waited out, lets the right password in.
      await createUser('theo');
      for (let i = 1; i <= 6; i++) await login('theo', `nope-${i}`, {}, attacker);
      expectStatus(await login('theo', TEST_PASSWORD, {}, owner), 429, 'theo blocked', 'TOO_MANY_ATTEMPTS');
      now += 2_000;
      expectStatus(await login('theo', TEST_PASSWORD, {}, owner), 200, 'theo after waiting 2 s');
      for (let i = 1; i <= 6; i++) expectStatus(await login('theo', `again-${i}`, {}, attacker), 401, `a success starts the account over: failure ${i} is free again`, 'WRONG_CREDENTIALS');
    });

    it('throttling per IP: 20 failures across different accounts block that IP (and only that IP) until the delay passes', async () => {
      const names = ['ipa', 'ipb', 'ipc', 'ipd', 'ipe'];
      for (const n of names) await createUser(n);
      const guesser = { ip: '192.0.2.66' };
      for (const n of names) for (let i = 1; i <= 4; i++) expectStatus(await login(n, `x-${i}`, {}, guesser), 401, `${n} failure ${i}`, 'WRONG_CREDENTIALS');
      expectStatus(await login('no-such-user', 'x', {}, guesser), 401, 'failure 21 (an unknown login counts too)', 'WRONG_CREDENTIALS');
      const blocked = await login('ipa', TEST_PASSWORD, {}, guesser);
      expectStatus(blocked, 429, 'any account from that IP, even with the right password', 'TOO_MANY_ATTEMPTS');
      assert.equal(blocked.body.error.details.retryAfterSeconds, 1);
      expectStatus(await login('ipa', TEST_PASSWORD, {}, { ip: '192.0.2.67' }), 200, 'another IP is not affected');
      now += 1_000;
      expectStatus(await login('ipb', TEST_PASSWORD, {}, guesser), 200, 'after the delay');
    });

    it('measures sign-ins per second (argon2id verification) with the right password, sequentially', async () => {
      await createUser('speedy');
      const n = 20;
      const first = await login('speedy', TEST_PASSWORD, {}, { ip: '192.0.2.100' });
      const t0 = performance.now();
      for (let i = 0; i < n; i++) expectStatus(await login('speedy', TEST_PASSWORD, { deviceKey: first.body.deviceKey }, { ip: '192.0.2.100' }), 200, `sign-in ${i}`);
      const ms = performance.now() - t0;
      console.log(`sign-ins (${dialect}): ${n} sequential in ${ms.toFixed(0)} ms = ${(n / (ms / 1000)).toFixed(1)} per second, ${(ms / n).toFixed(1)} ms each (argon2id m=19 MiB t=2 p=1 + session issue)`);
    });

    it('behind a TLS-terminating proxy (trustProxy): cookies are Secure, and devices and the audit trail show the client\'s IP', async () => {
      await createUser('pat');
      const web = await signInBrowser(url, 'pat', TEST_PASSWORD, {}, { 'x-forwarded-for': '198.51.100.77', 'x-forwarded-proto': 'https' });
      for (const c of web.setCookie) assert.match(c, /;\s*Secure/i, c);
      const direct = await signInBrowser(url, 'pat', TEST_PASSWORD);
      for (const c of direct.setCookie) assert.doesNotMatch(c, /;\s*Secure/i, 'plain HTTP: no Secure flag, or the browser would drop the cookie');
      const s = await signInSync(url, 'pat', TEST_PASSWORD);
      const devices = (await call(url, 'GET', '/api/v1/devices', { token: s.accessToken })).body.devices as any[];
      assert.equal(devices.find((d) => d.id === web.body.session.deviceId).ip, '198.51.100.77');
      const success = (await auditOf(s.accessToken)).find((e) => e.type === 'signin.success' && e.sessionId === web.body.session.id);
      assert.equal(success.ip, '198.51.100.77');
    });

    it('the audit trail: my events with time, IP and device, paged; administrators can read anyone\'s', async () => {
      await createUser('aud', { email: 'aud@example.test' });
      await createUser('boss', { admin: true });
      await createUser('pleb');
      const start = now;
      expectStatus(await login('aud', 'wrong-password-here'), 401, 'a failure', 'WRONG_CREDENTIALS');
      now += 1;
      const s1 = await signInSync(url, 'aud', TEST_PASSWORD, { deviceName: 'one' });
      now += 1;
      expectStatus(await call(url, 'POST', '/api/v1/auth/logout', { token: s1.accessToken }), 204, 'sign out');
      now += 1;
      const s2 = await signInSync(url, 'aud', TEST_PASSWORD, { deviceKey: s1.deviceKey });
      now += 1;
      expectStatus(await call(url, 'POST', '/api/v1/account/password', { token: s2.accessToken }, { currentPassword: TEST_PASSWORD, newPassword: NEW_PASSWORD, keepOtherSessions: true }), 200, 'change password');
      now += 1;
      const setup = await call(url, 'POST', '/api/v1/account/2fa/setup', { token: s2.accessToken });
      expectStatus(await call(url, 'POST', '/api/v1/account/2fa/enable', { token: s2.accessToken }, { code: totpCode(setup.body.otpauthUri) }), 200, '2FA on');

      const pages: any[][] = [];
      let cursor: string | null = null;
      do {
        const r = await call(url, 'GET', `/api/v1/account/audit?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: s2.accessToken });
        expectStatus(r, 200, 'audit page');
        assert.ok(r.body.events.length <= 2);
        pages.push(r.body.events);
        cursor = r.body.nextCursor;
      } while (cursor && pages.length < 20);
      const events = pages.flat();
      assert.ok(pages.length >= 4, `paged: ${pages.length} pages`);
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event twice across pages');
      const all = await auditOf(s2.accessToken);
      assert.deepEqual(events.map((e) => e.id), all.map((e) => e.id), 'the pages together are the whole list');
      assert.deepEqual(events.map((e) => e.at), [...events.map((e) => e.at)].sort((a, b) => b - a), 'newest first');
      // Oldest first, grouped by time: events of one request share their millisecond (and their order within it is not defined).
      const byTime = new Map<number, string[]>();
      for (const e of [...events].reverse()) byTime.set(e.at, [...(byTime.get(e.at) ?? []), e.type]);
      assert.deepEqual([...byTime.values()].map((types) => types.sort()), [
        ['signin.failure'], ['signin.new_device', 'signin.success'], ['signout'], ['signin.success'], ['password.changed'], ['mfa.enabled'],
      ]);
      for (const e of events) {
        assert.equal(e.ip, '127.0.0.1', e.type);
        assert.ok(e.at >= start && e.at <= now, e.type);
      }
      const success = events.find((e) => e.type === 'signin.success');
      assert.equal(success.deviceId, s1.session.deviceId);
      assert.equal(success.detail.client, 'sync');
      assert.equal(events.find((e) => e.type === 'signout').sessionId, s1.session.id);
      expectStatus(await call(url, 'GET', '/api/v1/account/audit?cursor=bm90LWEtY3Vyc29y', { token: s2.accessToken }), 400, 'a made-up cursor', 'VALIDATION_FAILED');

      const boss = await signInSync(url, 'boss', TEST_PASSWORD);
      const pleb = await signInSync(url, 'pleb', TEST_PASSWORD);
      const asAdmin = await call(url, 'GET', '/api/v1/admin/users/aud/audit', { token: boss.accessToken });
      expectStatus(asAdmin, 200, 'admin reads aud\'s audit');
      assert.deepEqual(asAdmin.body.events.map((e: any) => e.id), all.map((e) => e.id));
      expectStatus(await call(url, 'GET', '/api/v1/admin/users/aud/audit', { token: pleb.accessToken }), 403, 'a non-admin', 'FORBIDDEN');
      expectStatus(await call(url, 'GET', '/api/v1/admin/users/nobody-here/audit', { token: boss.accessToken }), 404, 'an unknown user', 'NOT_FOUND');
      assert.ok(!(await auditOf(pleb.accessToken)).some((e) => all.some((x) => x.id === e.id)), 'my list holds only my events');
    });
  });
}
