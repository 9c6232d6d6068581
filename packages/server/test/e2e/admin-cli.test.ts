/**
 * The `coffer` command as an operator uses it: real processes on a temp data
 * folder, stdin not a terminal. User management, expected failures (exit 1,
 * a clear message, no stack trace), `server --help`, and `check` on an
 * empty and on a damaged store.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, truncate, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OPTIONS } from '../../src/config/options.ts';
import { cliOk, getToken, runCli, spawnServer, storageArgs, type CliResult, type ServerProcess } from '../support/processes.ts';

const ALICE_PASSWORD = 'alice-first-password';
const ALICE_NEW_PASSWORD = 'alice-second-password';

function assertCleanFailure(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
  assert.match(r.stderr, message);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(r.stderr.trim().split('\n').length <= 2, `a short message, got:\n${r.stderr}`);
}

async function signIn(url: string, username: string, password: string): Promise<number> {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: username, password }), signal: AbortSignal.timeout(15_000),
  });
  await res.arrayBuffer();
  return res.status;
}

async function put(url: string, token: string, name: string, body: Buffer): Promise<number> {
  const res = await fetch(`${url}/api/v1/content/${encodeURIComponent(name)}`, {
    method: 'PUT', body, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000),
  });
  await res.arrayBuffer();
  return res.status;
}

/** The pack files of the local store (every upload packs its chunks: one pack for a small file). */
async function blobFiles(dataDir: string): Promise<string[]> {
  const dir = join(dataDir, 'blobs', 'p');
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name)).sort();
}

describe('coffer admin CLI', () => {
  let dataDir: string;
  let emptyDir: string;
  let storage: string[];
  let bobPassword = '';
  /** Results of the commands run side by side in `before`. */
  let batch: Record<'bob' | 'duplicate' | 'weak' | 'reset' | 'quota' | 'emptyCheck' | 'help', CliResult>;
  let server: ServerProcess | undefined;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'coffer-cli-'));
    emptyDir = await mkdtemp(join(tmpdir(), 'coffer-cli-empty-'));
    storage = storageArgs(dataDir);
    // The first command creates the database; the rest run at once, as separate processes would.
    const alice = await cliOk(['admin', 'create-user', 'alice', '--password', ALICE_PASSWORD, '--admin', '--quota', '1000000', ...storage]);
    assert.equal(alice.stdout, 'created user alice (admin)\n');
    const [bob, duplicate, weak, reset, quota, emptyCheck, help] = await Promise.all([
      runCli(['admin', 'create-user', 'bob', ...storage]),
      runCli(['admin', 'create-user', 'alice', '--password', 'another-long-password', ...storage]),
      runCli(['admin', 'create-user', 'weakling', '--password', 'short', ...storage]),
      runCli(['admin', 'reset-password', 'alice', '--password', ALICE_NEW_PASSWORD, ...storage]),
      runCli(['admin', 'set-quota', 'alice', '5000', ...storage]),
      runCli(['admin', 'check', ...storageArgs(emptyDir)]),
      runCli(['server', '--help']),
    ]);
    batch = { bob, duplicate, weak, reset, quota, emptyCheck, help };
  });

  after(async () => {
    await server?.kill();
    await rm(dataDir, { recursive: true, force: true });
    await rm(emptyDir, { recursive: true, force: true });
  });

  it('create-user with --password, and without a terminal: a generated password, printed', () => {
    const { bob } = batch;
    assert.equal(bob.code, 0, bob.stderr);
    const m = /^created user bob\ngenerated password: (\S+)\n$/.exec(bob.stdout);
    assert.ok(m, `unexpected output: ${bob.stdout}`);
    bobPassword = m[1];
    assert.ok(bobPassword.length >= 10, 'the generated password passes the password rules');
  });

  it('a duplicate user: exit 1, a clear message, no stack trace', () => {
    assertCleanFailure(batch.duplicate, /already exists/);
    assert.equal(batch.duplicate.stdout, '');
  });

  it('a weak password is refused', () => {
    assertCleanFailure(batch.weak, /at least 10 characters/);
  });

  it('list-users --json shows the users with their settings', async () => {
    assert.equal(batch.quota.code, 0, batch.quota.stderr);
    assert.equal(batch.quota.stdout, 'quota of alice set to 5000 bytes\n');
    const r = await cliOk(['admin', 'list-users', '--json', ...storage]);
    const users = (JSON.parse(r.stdout) as { username: string; admin: boolean; usedBytes: number; quotaBytes: number }[])
      .sort((a, b) => a.username.localeCompare(b.username));
    assert.deepEqual(users.map(({ username, admin, usedBytes, quotaBytes }) => ({ username, admin, usedBytes, quotaBytes })), [
      { username: 'alice', admin: true, usedBytes: 0, quotaBytes: 5000 },
      { username: 'bob', admin: false, usedBytes: 0, quotaBytes: 0 },
    ]);
  });

  it('reset-password: the new password signs in on a server on the same data, the old one no longer does', async () => {
    assert.equal(batch.reset.code, 0, batch.reset.stderr);
    assert.equal(batch.reset.stdout, 'password of alice changed; 0 session(s) signed out\n');
    server = await spawnServer(storage);
    assert.equal(await signIn(server.url, 'alice', ALICE_NEW_PASSWORD), 200);
    assert.equal(await signIn(server.url, 'alice', ALICE_PASSWORD), 401);
    assert.ok(bobPassword, 'bob was created');
    assert.equal(await signIn(server.url, 'bob', bobPassword), 200);
    // The quota set from the command line holds on the server.
    const alice = await getToken(server.url, 'alice', ALICE_NEW_PASSWORD);
    assert.equal(await put(server.url, alice, 'too-big.bin', randomBytes(6000)), 507);
    assert.equal(await put(server.url, alice, 'fits.bin', randomBytes(4000)), 201);
  });

  it('sign-out ends every session of a user at once (next request 401); audit shows sign-ins, failures and the sign-out', async () => {
    assert.ok(server, 'the server of the reset-password test is running');
    const [laptop, phone] = [await getToken(server.url, 'alice', ALICE_NEW_PASSWORD), await getToken(server.url, 'alice', ALICE_NEW_PASSWORD)];
    const bob = await getToken(server.url, 'bob', bobPassword);
    const me = (token: string) => fetch(`${server!.url}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => { await r.arrayBuffer(); return r.status; });
    assert.equal(await me(laptop), 200);
    const out = await cliOk(['admin', 'sign-out', 'alice', ...storage]);
    assert.match(out.stdout, /^[3-9] session\(s\) of alice signed out\n$/, 'both new sessions and the earlier test\'s');
    assert.equal(await me(laptop), 401);
    assert.equal(await me(phone), 401);
    assert.equal(await me(bob), 200, 'other users stay signed in');
    const audit = JSON.parse((await cliOk(['admin', 'audit', 'alice', '--json', ...storage])).stdout) as { type: string; ip: string | null }[];
    const types = audit.map((e) => e.type);
    assert.equal(types[0], 'session.revoked', 'newest first');
    assert.ok(types.includes('signin.success') && types.includes('signin.failure') && types.includes('password.reset'), types.join(', '));
    assert.ok(audit.filter((e) => e.type === 'signin.success').every((e) => e.ip === '127.0.0.1'), 'sign-ins carry the IP');
    assertCleanFailure(await runCli(['admin', 'audit', 'nobody', ...storage]), /No such user/);
  });

  it('check on an empty store exits 0', () => {
    const r = batch.emptyCheck;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /0 users, 0 items, 0 versions, 0 chunks, 0 blobs/);
    assert.match(r.stdout, /storage is consistent/);
  });

  it('server --help lists every setting with its flag and environment variable', () => {
    const r = batch.help;
    assert.equal(r.code, 0, r.stderr);
    const help = r.stdout.replace(/\s+/g, ' ');
    const required = ['COFFER_PORT', 'COFFER_HOST', 'COFFER_DATA_DIR', 'COFFER_DATABASE_URL', 'COFFER_S3_ENDPOINT', 'COFFER_S3_BUCKET',
      'COFFER_S3_REGION', 'COFFER_S3_ACCESS_KEY_ID', 'COFFER_S3_SECRET_ACCESS_KEY'];
    for (const env of required) assert.ok(OPTIONS.some((o) => o.env === env), `${env} is a declared setting`);
    for (const o of OPTIONS) {
      assert.ok(help.includes(`${o.flag} <value>`), `--help shows ${o.flag}`);
      assert.ok(help.includes(`[env ${o.env}]`), `--help shows ${o.env}`);
    }
  });

  it('check on a damaged store: exit 1, naming a missing blob and a truncated one', async () => {
    assert.ok(server, 'the server of the previous test is running');
    const bob = await getToken(server.url, 'bob', bobPassword);
    for (const name of ['one.bin', 'two.bin', 'three.bin']) assert.equal(await put(server.url, bob, name, randomBytes(50_000)), 201);
    server.child.kill('SIGTERM');
    assert.deepEqual(await server.waitExit(30_000), { code: 0, signal: null });
    server = undefined;

    const healthy = await runCli(['admin', 'check', ...storage]);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    assert.match(healthy.stdout, /storage is consistent/);

    const blobs = await blobFiles(dataDir);
    assert.equal(blobs.length, 3, 'one pack per 50 kB file (one, two, three); the 4 kB fits.bin is a database row (--inline-max-bytes)');
    await unlink(blobs[0]);
    const missing = await runCli(['admin', 'check', ...storage]);
    assert.equal(missing.code, 1, missing.stdout + missing.stderr);
    assert.match(missing.stdout, /^error: missing-blob: .+$/m);
    assert.ok(missing.stdout.includes(blobs[0].slice(join(dataDir, 'blobs').length + 1)), 'the missing blob is named');
    assert.match(missing.stdout, /1 error\(s\) found/);

    await truncate(blobs[1], 10);
    const report = await runCli(['admin', 'check', '--json', ...storage]);
    assert.equal(report.code, 1, report.stdout + report.stderr);
    const problems = (JSON.parse(report.stdout) as { problems: { kind: string; severity: string; detail: string }[] }).problems;
    assert.deepEqual(problems.map((p) => `${p.severity} ${p.kind}`).sort(), ['error blob-size', 'error missing-blob']);
    assert.match(problems.find((p) => p.kind === 'blob-size')!.detail, /stored 10 bytes/);
  });
});
