/**
 * Credentials in the OS keyring, against a real one: GNOME Keyring's Secret
 * Service in a private D-Bus session (test/support/keyring-session.ts),
 * where /usr/bin/dbus-run-session and /usr/bin/gnome-keyring-daemon exist;
 * those checks skip, saying why, elsewhere. How sign-in chooses between the
 * keyring and the 0600 file when there is no keyring runs everywhere.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyringUnavailableReason, startKeyringSession, type KeyringSession } from '../../test/support/keyring-session.ts';
import type { Credentials } from '../remote/credentials.ts';
import { AccountStore, type Account } from './account-store.ts';
import { chooseCredentialStore, credentialStoreOf, saveSignIn, type CredentialStoreChoice } from './credential-stores.ts';
import { FileCredentialStore } from './file-credential-store.ts';
import { KeyringCredentialStore } from './keyring-credential-store.ts';
import { KEYRING_SERVICE, keyringCall, probeKeyring } from './keyring.ts';

const creds = (n: number): Credentials => ({ accessToken: `access-${n}`, refreshToken: `refresh-${n}`, accessExpiresAt: 1_000 + n, deviceKey: 'device-key', sessionId: 's', deviceId: 'd' });

/** This process's environment without any D-Bus session: no keyring can be reached. */
function noKeyringEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.DBUS_SESSION_BUS_ADDRESS;
  delete env.XDG_RUNTIME_DIR; // libdbus would look for $XDG_RUNTIME_DIR/bus
  return { ...env, ...extra };
}

async function tempHome(): Promise<AccountStore> {
  return new AccountStore(await mkdtemp(join(tmpdir(), 'coffer-keyring-home-')));
}

async function addAccount(store: AccountStore, name: string): Promise<Account> {
  const a: Account = { name, server: 'https://drive.example.org', folder: join(store.home, 'folders', name), username: name, deviceName: 'test', createdAt: new Date().toISOString() };
  await store.add(a);
  return a;
}

describe('where sign-in keeps credentials, without a keyring', () => {
  it('auto: the probe fails fast without a D-Bus session, and the credentials go to a 0600 file', async () => {
    const t0 = Date.now();
    const choice = await chooseCredentialStore({ env: noKeyringEnv() });
    const ms = Date.now() - t0;
    assert.equal(choice.kind, 'file');
    assert.match(choice.fallbackReason ?? '', /D-Bus|keyring|platform storage/i, 'says why');
    assert.ok(ms < 4_000, `the probe answered in ${ms} ms`);
    const store = await tempHome();
    try {
      const a = await addAccount(store, 'alice');
      const saved = await saveSignIn(store, a, choice, creds(1), { env: noKeyringEnv() });
      assert.equal(saved.credentials.kind, 'file');
      assert.match(saved.note ?? '', /OS keyring cannot be used here .*readable only by you/);
      const file = join(store.stateDir('alice'), 'credentials.json');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), creds(1));
      assert.equal((await store.pick('alice')).credentialStore, 'file', 'recorded in the account');
    } finally {
      await rm(store.home, { recursive: true, force: true });
    }
  });

  it('COFFER_CREDENTIAL_STORE=keyring without a keyring: a clear error, before anything is stored', async () => {
    await assert.rejects(chooseCredentialStore({ env: noKeyringEnv({ COFFER_CREDENTIAL_STORE: 'keyring' }) }), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'KEYRING_UNAVAILABLE');
      assert.match(e.message, /COFFER_CREDENTIAL_STORE=keyring, but the OS keyring cannot be used here/);
      assert.match(e.message, /COFFER_CREDENTIAL_STORE=auto or file/);
      return true;
    });
  });

  it('COFFER_CREDENTIAL_STORE=file needs no probe; a value it does not know is an error', async () => {
    assert.deepEqual(await chooseCredentialStore({ env: { COFFER_CREDENTIAL_STORE: 'file' } }), { kind: 'file', forced: true });
    await assert.rejects(chooseCredentialStore({ env: { COFFER_CREDENTIAL_STORE: 'vault' } }), { code: 'BAD_CREDENTIAL_STORE' });
  });

  it('a session bus that accepts connections but never answers: the probe gives up at its timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-mute-bus-'));
    const sock = join(dir, 'bus');
    const server: Server = createServer((c) => { c.on('data', () => {}); c.on('error', () => {}); });
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const t0 = Date.now();
      const r = await probeKeyring({ env: noKeyringEnv({ DBUS_SESSION_BUS_ADDRESS: `unix:path=${sock}` }), timeoutMs: 1_500 });
      const ms = Date.now() - t0;
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, /did not answer within 1.5 s/);
      assert.ok(ms < 5_000, `gave up after ${ms} ms`);
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an account kept in a keyring that cannot be reached: KEYRING_UNAVAILABLE saying what to do, never "not signed in"', async () => {
    const store = await tempHome();
    try {
      const a = { ...(await addAccount(store, 'alice')), credentialStore: 'keyring' as const };
      const s = credentialStoreOf(store, a, { env: noKeyringEnv() });
      assert.equal(s.kind, 'keyring');
      for (const op of [() => s.load(), () => s.save(creds(1)), () => s.clear()]) {
        await assert.rejects(op(), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'KEYRING_UNAVAILABLE');
          assert.match(e.message, /The credentials of the account "alice" are kept in the OS keyring, which cannot be used now/);
          assert.match(e.message, /Unlock the keyring/);
          assert.match(e.message, /coffer login https:\/\/drive\.example\.org --folder .* --name alice/);
          return true;
        });
      }
    } finally {
      await rm(store.home, { recursive: true, force: true });
    }
  });
});

const skip = keyringUnavailableReason();
/** Each keyring test skips, saying why, where no keyring can be started (and counts as skipped). */
const needsKeyring = { skip: skip ? `skipped: ${skip}` : false };

describe('credentials in a real OS keyring (GNOME Keyring in a private D-Bus session)', () => {
  let session: KeyringSession;
  let env: NodeJS.ProcessEnv;
  const entries = async () => (await keyringCall({ op: 'list', service: KEYRING_SERVICE }, { env })).users ?? [];
  const keyringChoice: CredentialStoreChoice = { kind: 'keyring', forced: false };

  before(async () => {
    if (skip) return;
    session = await startKeyringSession();
    env = { ...noKeyringEnv(), ...session.env };
  });
  after(async () => { await session?.close(); });

  it('the probe works, and leaves no entry behind', needsKeyring, async () => {
    assert.deepEqual(await chooseCredentialStore({ env }), { kind: 'keyring', forced: false });
    assert.deepEqual(await chooseCredentialStore({ env: { ...env, COFFER_CREDENTIAL_STORE: 'keyring' } }), { kind: 'keyring', forced: true });
    assert.deepEqual(await entries(), []);
  });

  it('store, load, update, delete: one entry, its secret the credentials JSON; clear also removes a stale file', needsKeyring, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-keyring-state-'));
    try {
      const s = new KeyringCredentialStore({ stateDir: dir, user: 'round-trip', env });
      assert.equal(await s.load(), null);
      await s.save(creds(1));
      assert.deepEqual(await s.load(), creds(1));
      assert.deepEqual(await entries(), ['round-trip']);
      const raw = await keyringCall({ op: 'get', service: KEYRING_SERVICE, user: 'round-trip' }, { env });
      assert.deepEqual(JSON.parse(raw.value!), creds(1), 'the secret is the JSON the file store would hold');
      await s.save(creds(2));
      assert.deepEqual(await new KeyringCredentialStore({ stateDir: dir, user: 'round-trip', env }).load(), creds(2), 'another store object (another process) sees the update');
      await writeFile(join(dir, 'credentials.json'), '{}');
      await s.clear();
      assert.equal(await s.load(), null);
      await assert.rejects(stat(join(dir, 'credentials.json')), 'a credentials file from earlier is gone too');
      assert.deepEqual(await entries(), []);
      await s.clear(); // already gone: fine
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('two accounts side by side: separate entries; clearing one leaves the other', needsKeyring, async () => {
    const store = await tempHome();
    try {
      const alice = await addAccount(store, 'alice');
      const bob = await addAccount(store, 'bob');
      const a = await saveSignIn(store, alice, keyringChoice, creds(1), { env });
      const b = await saveSignIn(store, bob, keyringChoice, creds(2), { env });
      assert.equal(a.note, undefined);
      assert.equal(a.credentials.kind, 'keyring');
      const accounts = await store.list();
      assert.deepEqual(accounts.map((x) => [x.credentialStore, x.keyringUser]), [['keyring', store.stateDir('alice')], ['keyring', store.stateDir('bob')]]);
      await assert.rejects(stat(join(store.stateDir('alice'), 'credentials.json')), 'no credentials file');
      assert.doesNotMatch(await readFile(join(store.home, 'accounts.json'), 'utf8'), /refresh-/, 'no token in the configuration');
      assert.deepEqual(await credentialStoreOf(store, accounts[0], { env }).load(), creds(1));
      assert.deepEqual(await credentialStoreOf(store, accounts[1], { env }).load(), creds(2));
      assert.deepEqual(await entries(), [store.stateDir('alice'), store.stateDir('bob')].sort());
      await a.credentials.clear();
      assert.equal(await credentialStoreOf(store, accounts[0], { env }).load(), null);
      assert.deepEqual(await credentialStoreOf(store, accounts[1], { env }).load(), creds(2));
      await b.credentials.clear();
      assert.deepEqual(await entries(), []);
    } finally {
      await rm(store.home, { recursive: true, force: true });
    }
  });

  it('two processes renewing at once: read-modify-write under the lock file never loses the newest pair', needsKeyring, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'coffer-keyring-state-'));
    try {
      const first = new KeyringCredentialStore({ stateDir: dir, user: 'rotating', env });
      await first.save(creds(0));
      // Each "renewal" reads the pair, and stores the next one: one lost under a race would leave fewer than 4 steps.
      const renew = (s: KeyringCredentialStore) => s.withLock(async () => {
        const c = (await s.load())!;
        const n = Number(c.refreshToken.split('-')[1]) + 1;
        await s.save(creds(n));
      });
      await Promise.all([0, 1, 2, 3].map(() => renew(new KeyringCredentialStore({ stateDir: dir, user: 'rotating', env }))));
      assert.deepEqual(await first.load(), creds(4));
      await first.clear();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('signing in again moves the credentials between the keyring and the file, leaving no copy behind', needsKeyring, async () => {
    const store = await tempHome();
    try {
      const alice = await addAccount(store, 'alice');
      await saveSignIn(store, alice, keyringChoice, creds(1), { env });
      // The keyring could not be used at the next sign-in (auto fell back): the file holds the new pair, the keyring nothing.
      const toFile = await saveSignIn(store, await store.pick('alice'), { kind: 'file', forced: false, fallbackReason: 'locked' }, creds(2), { env });
      assert.equal(toFile.credentials.kind, 'file');
      assert.deepEqual(await entries(), []);
      assert.deepEqual(await new FileCredentialStore(store.stateDir('alice')).load(), creds(2));
      assert.equal((await store.pick('alice')).keyringUser, undefined);
      // And back to the keyring: the file is gone.
      await saveSignIn(store, await store.pick('alice'), keyringChoice, creds(3), { env });
      await assert.rejects(stat(join(store.stateDir('alice'), 'credentials.json')));
      assert.deepEqual(await credentialStoreOf(store, await store.pick('alice'), { env }).load(), creds(3));
      await credentialStoreOf(store, await store.pick('alice'), { env }).clear();
      assert.deepEqual(await entries(), []);
    } finally {
      await rm(store.home, { recursive: true, force: true });
    }
  });
});
