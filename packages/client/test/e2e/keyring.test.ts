/**
 * The OS keyring through the real `coffer` command and a real server, with
 * a real keyring (GNOME Keyring in a private D-Bus session; skipped, saying
 * why, where dbus-run-session or gnome-keyring-daemon is missing): login
 * keeps the credentials there and not in a file; tokens rotate through it
 * (access tokens here last 2 s, so every command renews, two at once too);
 * a keyring gone later is a clear error that keeps the credentials;
 * disconnect and remote wipe leave nothing in it. Without a keyring, login
 * falls back to the 0600 file and says so, unless the keyring is demanded.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { runCli, type CliResult } from '../../../server/test/support/processes.ts';
import { keyringUnavailableReason, startKeyringSession, type KeyringSession } from '../support/keyring-session.ts';
import { KEYRING_SERVICE, keyringCall } from '../../src/accounts/keyring.ts';

const skip = keyringUnavailableReason();
/** Each keyring test skips, saying why, where no keyring can be started (and counts as skipped). */
const needsKeyring = { skip: skip ? `skipped: ${skip}` : false };
const NO_BUS = { DBUS_SESSION_BUS_ADDRESS: 'unix:path=/nonexistent/coffer-test-bus' };

describe('coffer CLI with the OS keyring', () => {
  let s: TestServer;
  let session: KeyringSession;
  let work: string;
  let n = 0;
  const keyringEnv = () => ({ ...process.env, ...session.env });
  const entries = async () => (await keyringCall({ op: 'list', service: KEYRING_SERVICE }, { env: keyringEnv() })).users ?? [];
  const secret = async (user: string) => (await keyringCall({ op: 'get', service: KEYRING_SERVICE, user }, { env: keyringEnv() })).value ?? null;

  before(async () => {
    if (skip) return;
    [s, session] = await Promise.all([startTestServer({ config: { accessTokenSeconds: 2 } }), startKeyringSession()]);
    work = await mkdtemp(join(tmpdir(), 'coffer-keyring-cli-'));
  });
  after(async () => {
    await s?.close();
    await session?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** A user, a home and a folder of their own; `run` is `coffer` with the keyring session (or `extra`) in its environment. */
  async function device() {
    const user = `kr${++n}`;
    await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD });
    const home = join(work, `home-${user}`);
    const folder = join(work, `folder-${user}`);
    const run = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> =>
      runCli(args, { env: { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD, ...session.env, ...extra }, timeoutMs: 60_000 });
    const ok = async (args: string[], extra: Record<string, string> = {}) => {
      const r = await run(args, extra);
      assert.equal(r.code, 0, `coffer ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      return r;
    };
    const login = (extra: Record<string, string> = {}) => run(['login', s.url, '--folder', folder, '--username', user, '--name', 'main', '--device-name', `${user}-laptop`, '--json'], extra);
    return { user, home, folder, stateDir: join(home, 'accounts', 'main'), run, ok, login };
  }

  let d: Awaited<ReturnType<typeof device>>;

  it('login keeps the credentials in the keyring, not in a file; `coffer accounts` says where they are', needsKeyring, async () => {
    d = await device();
    const r = await d.login();
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.credentialStore, 'keyring');
    assert.equal(out.credentialNote, undefined, 'nothing to warn about');
    await assert.rejects(stat(join(d.stateDir, 'credentials.json')), 'no credentials file');
    assert.deepEqual(await entries(), [d.stateDir], 'one entry, named after the account\'s state directory');
    assert.ok(JSON.parse((await secret(d.stateDir))!).refreshToken, 'the entry holds the tokens');
    const listed = JSON.parse((await d.ok(['accounts', '--json'])).stdout).accounts;
    assert.equal(listed[0].credentialStore, 'keyring');
    assert.match(listed[0].credentialLocation, /^OS keyring, service "coffer"/);
    assert.match((await d.ok(['accounts'])).stdout, /credentials: OS keyring/);
  });

  it('sync works; tokens rotate through the keyring, two processes renewing at once included', needsKeyring, async () => {
    const before = JSON.parse((await secret(d.stateDir))!).refreshToken;
    await writeFile(join(d.folder, 'a.txt'), 'through the keyring');
    assert.match((await d.ok(['sync'])).stdout, /synced: 1 upload/);
    const after = JSON.parse((await secret(d.stateDir))!).refreshToken;
    assert.notEqual(after, before, 'the renewed pair was saved in the keyring');
    // Both find an expired access token and renew: under the lock, one spends the refresh token, the other adopts its pair.
    const both = await Promise.all([d.run(['status']), d.run(['status'])]);
    for (const r of both) assert.equal(r.code, 0, r.stderr);
    assert.match((await d.ok(['sync'])).stdout, /synced: 0 uploads/, 'still signed in: no refresh token was spent twice');
    const web = await s.signIn(d.user);
    assert.equal(await (await web.fetch('/api/v1/content/a.txt')).text(), 'through the keyring');
  });

  it('the keyring unavailable later: a clear error with a stable code, and the credentials stay where they are', needsKeyring, async () => {
    const stored = await secret(d.stateDir);
    const r = await d.run(['status'], NO_BUS);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /The credentials of the account "main" are kept in the OS keyring, which cannot be used now/);
    assert.match(r.stderr, /Unlock the keyring/);
    assert.match(r.stderr, /coffer login .* --name main/);
    assert.match(r.stderr, /\(KEYRING_UNAVAILABLE\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await secret(d.stateDir), stored, 'nothing lost');
    await assert.rejects(stat(join(d.stateDir, 'credentials.json')), 'and no switch to a file');
  });

  it('disconnect deletes the keyring entry', needsKeyring, async () => {
    await d.ok(['disconnect']);
    assert.deepEqual(await entries(), []);
    await assert.rejects(stat(d.stateDir));
  });

  it('a remote wipe deletes the keyring entry', needsKeyring, async () => {
    const w = await device();
    assert.equal((await w.login()).code, 0);
    await writeFile(join(w.folder, 'b.txt'), 'soon wiped');
    await w.ok(['sync']);
    const web = await s.signIn(w.user);
    const id = ((await web.json('/api/v1/devices')).body.devices as { id: string; name: string }[]).find((x) => x.name === `${w.user}-laptop`)!.id;
    assert.equal((await web.json(`/api/v1/devices/${id}/wipe`, { method: 'POST' })).status, 200);
    const r = await w.run(['sync']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /this device was wiped/);
    assert.deepEqual(await entries(), []);
  });

  it('no keyring at login: the credentials go to a 0600 file, and login says so (once)', needsKeyring, async () => {
    const f = await device();
    const r = await f.login(NO_BUS);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.credentialStore, 'file');
    assert.match(out.credentialNote, /the OS keyring cannot be used here .*readable only by you/);
    assert.equal((await stat(join(f.stateDir, 'credentials.json'))).mode & 0o777, 0o600);
    const sync = await f.ok(['sync']); // a keyring present now changes nothing: the account names its store
    assert.doesNotMatch(sync.stdout + sync.stderr, /keyring/);
    assert.match((await f.ok(['accounts'])).stdout, /credentials: file .*credentials\.json/);
    assert.deepEqual(await entries(), []);
    await f.ok(['disconnect']);
  });

  it('COFFER_CREDENTIAL_STORE=keyring without a keyring: login fails before signing in', needsKeyring, async () => {
    const k = await device();
    const r = await k.login({ ...NO_BUS, COFFER_CREDENTIAL_STORE: 'keyring' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /COFFER_CREDENTIAL_STORE=keyring, but the OS keyring cannot be used here.*\(KEYRING_UNAVAILABLE\)/s);
    assert.deepEqual(JSON.parse((await k.ok(['accounts', '--json'])).stdout).accounts, []);
    const web = await s.signIn(k.user);
    assert.ok(!((await web.json('/api/v1/devices')).body.devices as { name: string }[]).some((x) => x.name === `${k.user}-laptop`), 'never signed in');
  });
});
