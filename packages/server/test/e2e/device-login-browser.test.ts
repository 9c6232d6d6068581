/**
 * The /device approval page in a real browser: Debian's chromium, driven by
 * playwright-core, on a phone-sized screen, against a real server (SQLite).
 * A sync client (plain HTTP here) starts a device login and polls while the
 * user signs in on the page (second factor included), enters the code,
 * sees what is asking, and approves or denies; the client then gets its
 * tokens, or is refused. Also: the page obeys its own Content Security
 * Policy (no violation, no script error), shows what the device sent as
 * text only, and never scrolls sideways on a phone.
 *
 * Skipped, with the reason, when /usr/bin/chromium is absent.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { URI, TOTP } from 'otpauth';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../support/test-server.ts';
import { signInSync } from '../support/sign-in.ts';
import { pollDeviceLogin, startDeviceLogin, type Answer, type DeviceAuthorization } from '../support/device-login.ts';

const CHROMIUM = '/usr/bin/chromium';
const chromiumMissing = existsSync(CHROMIUM) ? null : 'chromium is not installed (npm test installs it via apt)';
const PHONE = { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 };
const VISIBLE = { state: 'visible', timeout: 10_000 } as const;

describe('device login page in chromium', { skip: chromiumMissing ?? false }, () => {
  let now = Date.now();
  const clock = { now: () => now };
  let s: TestServer;
  let browser: Browser;
  /** What went wrong inside pages: script errors, console errors (CSP violations are reported there). */
  const problems: string[] = [];

  before(async () => {
    s = await startTestServer({ clock });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  });
  after(async () => {
    await browser?.close();
    await s?.close();
  });

  async function phone(): Promise<{ context: BrowserContext; page: Page }> {
    problems.length = 0;
    const context = await browser.newContext({ ...PHONE, baseURL: s.url });
    const page = await context.newPage();
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    // API refusals the page handles (401 before signing in, 404 for a mistyped code) are logged by the browser too; anything else is a problem.
    page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`); });
    page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); void d.dismiss(); });
    return { context, page };
  }

  /**
   * The sync client's side: polls at the interval it is given until it gets
   * an answer other than AUTHORIZATION_PENDING. Time is the test clock: each
   * wait moves it on by the interval (and lets a quarter second of real time
   * pass, for the browser: ten minutes of requests in half a minute).
   */
  const pollers: { stopped: boolean; result: Promise<unknown> }[] = [];
  function pollInBackground(d: DeviceAuthorization): { result: Promise<Answer>; polls: () => number } {
    let polls = 0;
    const state = { stopped: false, result: Promise.resolve() as Promise<unknown> };
    const result = (async () => {
      let interval = d.interval;
      for (;;) {
        if (state.stopped) throw new Error('the test ended before the device login did');
        const r = await pollDeviceLogin(s.url, d.deviceCode);
        polls++;
        const code = r.body?.error?.code;
        if (code === 'SLOW_DOWN') interval = r.body.error.details.interval;
        else if (code !== 'AUTHORIZATION_PENDING') return r;
        await sleep(250);
        now += interval * 1000;
      }
    })();
    state.result = result.catch(() => {});
    pollers.push(state);
    return { result, polls: () => polls };
  }
  /** A failed test must not leave its client polling a closed server. */
  afterEach(async () => {
    for (const p of pollers.splice(0)) {
      p.stopped = true;
      await p.result;
    }
  });

  async function assertFitsPhone(page: Page, label: string): Promise<void> {
    // (Page-side code as strings: this project compiles without the DOM types.)
    const { scrollWidth, innerWidth } = await page.evaluate<{ scrollWidth: number; innerWidth: number }>('({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth })');
    assert.ok(scrollWidth <= innerWidth, `${label}: the page is ${scrollWidth}px wide on a ${innerWidth}px screen`);
  }

  it('sign in on the page, enter the code, approve: the polling client gets its tokens', async () => {
    await s.server.coffer.services.users.create({ username: 'dana', password: TEST_PASSWORD });
    const d = await startDeviceLogin(s.url, { deviceName: 'Dana Laptop', platform: 'linux' });
    const client = pollInBackground(d);
    const { context, page } = await phone();
    try {
      const res = await page.goto('/device');
      assert.equal(res?.status(), 200);
      await page.waitForSelector('#signin', VISIBLE);
      await assertFitsPhone(page, 'sign-in form');
      await page.fill('#login', 'dana');
      await page.fill('#password', 'not-her-password');
      await page.click('#signin-button');
      // (Waiting by selector: the page's CSP rightly forbids the eval that waitForFunction would need.)
      await page.locator('#msg', { hasText: 'Wrong username or password' }).waitFor(VISIBLE);
      await page.fill('#password', TEST_PASSWORD);
      await page.click('#signin-button');
      await page.waitForSelector('#enter', VISIBLE);
      assert.equal(await page.textContent('#who'), 'dana');
      assert.equal(await page.inputValue('#password'), '', 'the password does not linger in the form');

      // A mistyped code is explained; the right one, typed in lower case without the dash, works.
      await page.fill('#code', 'BBBB-BBBB');
      await page.click('#code-button');
      await page.locator('#msg', { hasText: 'No device is waiting for this code' }).waitFor(VISIBLE);
      await page.fill('#code', d.userCode.replace('-', '').toLowerCase());
      await page.click('#code-button');
      await page.waitForSelector('#confirm', VISIBLE);
      await assertFitsPhone(page, 'confirmation');
      assert.equal(await page.textContent('#device-name'), 'Dana Laptop');
      assert.equal(await page.textContent('#device-platform'), 'linux');
      assert.equal(await page.textContent('#device-ip'), '127.0.0.1');
      assert.equal(await page.textContent('#device-code'), d.userCode);
      assert.equal(await page.textContent('#confirm-who'), 'dana');
      assert.equal(await page.inputValue('#new-name'), 'Dana Laptop');
      assert.ok((await page.textContent('#device-time'))!.length > 0);

      await page.tap('#approve');
      await page.waitForSelector('#done', VISIBLE);
      assert.match((await page.textContent('#done-text'))!, /Approved\. "Dana Laptop" is now signing in/);

      const got = await client.result;
      assert.equal(got.status, 200, JSON.stringify(got.body));
      assert.equal(got.body.status, 'signed-in');
      assert.equal(got.body.user.username, 'dana');
      assert.equal(got.body.session.deviceName, 'Dana Laptop');
      assert.ok(client.polls() >= 2, 'the client polled while the user approved');
      const me = await fetch(`${s.url}/api/v1/me`, { headers: { authorization: `Bearer ${got.body.accessToken}` } });
      assert.equal((await me.json() as { username: string }).username, 'dana');

      // Signed in already, the page goes straight from a link with the code to the confirmation; a new name can be given.
      const again = await startDeviceLogin(s.url, { deviceName: 'Dana Desktop', platform: 'windows' });
      const second = pollInBackground(again);
      await page.goto(again.verificationUriComplete.slice(s.url.length));
      await page.waitForSelector('#confirm', VISIBLE);
      assert.equal(new URL(page.url()).search, '', 'the code is taken out of the address bar and history');
      assert.equal(await page.textContent('#device-name'), 'Dana Desktop');
      await page.fill('#new-name', 'Dana Gaming PC');
      await page.tap('#approve');
      await page.waitForSelector('#done', VISIBLE);
      const got2 = await second.result;
      assert.equal(got2.status, 200, JSON.stringify(got2.body));
      assert.equal(got2.body.session.deviceName, 'Dana Gaming PC');

      // Signing out of the browser from the page.
      await page.tap('#signout');
      await page.waitForSelector('#signin', VISIBLE);
      const session = await page.evaluate<number>(`fetch('/api/v1/auth/session').then((r) => r.status)`);
      assert.equal(session, 401);
    } finally {
      await context.close();
    }
    assert.deepEqual(problems, []);
  });

  it('with a second factor: password, then the authenticator code; a denial refuses the device', async () => {
    await s.server.coffer.services.users.create({ username: 'erik', password: TEST_PASSWORD });
    const t = await signInSync(s.url, 'erik', TEST_PASSWORD);
    const auth = { authorization: `Bearer ${t.accessToken}`, 'content-type': 'application/json' };
    const setup = await (await fetch(`${s.url}/api/v1/account/2fa/setup`, { method: 'POST', headers: { authorization: auth.authorization } })).json() as { otpauthUri: string };
    const totp = () => (URI.parse(setup.otpauthUri) as TOTP).generate({ timestamp: now });
    const enabled = await fetch(`${s.url}/api/v1/account/2fa/enable`, { method: 'POST', headers: auth, body: JSON.stringify({ code: totp() }) });
    assert.equal(enabled.status, 200);
    now += 30_000;

    // What a device sends is shown as text, never run as markup.
    const hostile = '<img src=x onerror=alert(1)> Erik "PC"';
    const d = await startDeviceLogin(s.url, { deviceName: hostile, platform: '<b>bold</b>' });
    const { context, page } = await phone();
    try {
      await page.goto(d.verificationUriComplete.slice(s.url.length));
      await page.waitForSelector('#signin', VISIBLE);
      await page.fill('#login', 'erik');
      await page.fill('#password', TEST_PASSWORD);
      await page.click('#signin-button');
      await page.waitForSelector('#mfa', VISIBLE);
      await page.fill('#mfa-code', totp());
      await page.click('#mfa-button');
      // (The client starts polling only now, so that the clock stands still while the code is typed.)
      const client = pollInBackground(d);
      // The code came with the link: after the second factor the request is shown at once.
      await page.waitForSelector('#confirm', VISIBLE);
      assert.equal(await page.textContent('#device-name'), hostile);
      assert.equal(await page.textContent('#device-platform'), '<b>bold</b>');
      assert.equal(await page.locator('#confirm img, #confirm b').count(), 0, 'no markup from the device');
      await assertFitsPhone(page, 'confirmation with a long name');
      await page.tap('#deny');
      await page.waitForSelector('#done', VISIBLE);
      assert.match((await page.textContent('#done-text'))!, /^Denied\./);
      const r = await client.result;
      assert.equal(r.status, 400);
      assert.equal(r.body.error.code, 'ACCESS_DENIED');
    } finally {
      await context.close();
    }
    assert.deepEqual(problems, []);
  });
});
