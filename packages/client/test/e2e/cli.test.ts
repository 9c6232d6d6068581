/**
 * The client's verbs through the real `coffer` command (spawned processes,
 * stdin not a terminal), against a real server: login links a folder and
 * stores credentials 0600 outside it; sync moves files both ways; status
 * and accounts report in text and JSON; two accounts on one device stay
 * independent; errors say what to do next, without a stack.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { CLI, childEnv, runCli, type CliResult } from '../../../server/test/support/processes.ts';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { listFolder } from '../support/sync-client.ts';

describe('coffer client CLI', () => {
  let s: TestServer;
  let home: string;
  let work: string;
  let env: Record<string, string>;
  const coffer = (args: string[], extra: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...env, ...extra }, timeoutMs: 60_000 });
  const ok = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await coffer(args, extra);
    assert.equal(r.code, 0, `coffer ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  };

  before(async () => {
    s = await startTestServer();
    await s.server.coffer.services.users.create({ username: 'alice', password: TEST_PASSWORD });
    await s.server.coffer.services.users.create({ username: 'bob', password: TEST_PASSWORD });
    home = await mkdtemp(join(tmpdir(), 'coffer-cli-home-'));
    work = await mkdtemp(join(tmpdir(), 'coffer-cli-work-'));
    env = { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD };
  });
  after(async () => {
    await s?.close();
    await rm(home, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it('login links a folder; credentials are 0600 in the state directory, not in the folder', async () => {
    const r = await ok(['login', s.url, '--folder', join(work, 'Alice'), '--username', 'alice', '--device-name', 'test-laptop', '--name', 'personal']);
    assert.match(r.stdout, /signed in as alice; .*Alice is linked to the account "personal"/);
    const creds = await stat(join(home, 'accounts', 'personal', 'credentials.json'));
    assert.equal(creds.mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(join(home, 'accounts', 'personal', 'credentials.json'), 'utf8'));
    assert.ok(stored.refreshToken && stored.accessToken, 'tokens are stored');
    const inFolder = await listFolder(join(work, 'Alice'));
    assert.deepEqual(inFolder, [], 'nothing but the hidden marker in the folder');
    const devices = (await (await s.signIn('alice')).json('/api/v1/devices')).body.devices as { name: string }[];
    assert.ok(devices.some((d) => d.name === 'test-laptop'), 'the device shows up under its name');
  });

  it('login without a password: the device is approved in a browser session, no password typed here', async () => {
    const child = spawn(process.execPath, [CLI, 'login', s.url, '--folder', join(work, 'Approved'), '--name', 'approved', '--device-name', 'kiosk'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv({ COFFER_CLIENT_HOME: home }) });
    let stderr = '';
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    try {
      let code: string | undefined;
      for (let i = 0; i < 200 && !code; i++) {
        code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(stderr)?.[1];
        if (!code) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(code, `the CLI shows a code: ${stderr}`);
      assert.match(stderr, new RegExp(`open ${s.url.replace(/[.]/g, '\\.')}/device`));
      const browser = await s.signIn('alice'); // stands for alice's signed-in browser (the page itself is tested in the server's browser test)
      const approved = await browser.json('/api/v1/auth/device/approve', { method: 'POST', body: { userCode: code, approve: true } });
      assert.equal(approved.status, 200, JSON.stringify(approved.body));
      const [exit] = await once(child, 'close') as [number];
      assert.equal(exit, 0, stderr);
      assert.match(stdout, /signed in as alice; .*Approved is linked to the account "approved"/);
      const devices = (await browser.json('/api/v1/devices')).body.devices as { name: string }[];
      assert.ok(devices.some((d) => d.name === 'kiosk'));
    } finally {
      child.kill();
    }
  });

  it('a wrong password fails with the server\'s message and no stack', async () => {
    const r = await coffer(['login', s.url, '--folder', join(work, 'Nope'), '--username', 'alice'], { COFFER_PASSWORD: 'wrong-password-here' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Wrong username or password/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('sync uploads and downloads; status and accounts report in text and JSON', async () => {
    await ok(['login', s.url, '--folder', join(work, 'Bob'), '--username', 'bob', '--name', 'work']);
    await mkdir(join(work, 'Alice', 'docs'));
    await writeFile(join(work, 'Alice', 'docs', 'plan.txt'), 'alice plan');
    const pending = JSON.parse((await ok(['status', '--account', 'personal', '--json'])).stdout);
    assert.equal(pending.upload.files, 1);
    assert.equal(pending.upload.folders, 1);
    assert.equal(pending.upToDate, false);
    const synced = await ok(['sync', '--account', 'personal']);
    assert.match(synced.stdout, /synced: 1 upload/);
    const after = JSON.parse((await ok(['status', '--account', 'personal', '--json'])).stdout);
    assert.equal(after.upToDate, true);
    // The server has it; bob's account (a second account on the same device) does not see alice's files.
    const alice = await s.signIn('alice');
    assert.equal((await alice.fetch('/api/v1/content/docs/plan.txt')).status, 200);
    const bobSync = JSON.parse((await ok(['sync', '--account', 'work', '--json'])).stdout);
    assert.equal(bobSync.downloaded, 0);
    assert.deepEqual(await listFolder(join(work, 'Bob')), []);
    // A change made elsewhere comes down.
    await alice.json('/api/v1/content/docs/from-web.txt', { method: 'PUT', body: 'uploaded in a browser' });
    const down = JSON.parse((await ok(['sync', '--account', 'personal', '--json'])).stdout);
    assert.equal(down.downloaded, 1);
    assert.equal(await readFile(join(work, 'Alice', 'docs', 'from-web.txt'), 'utf8'), 'uploaded in a browser');
    const accounts = JSON.parse((await ok(['accounts', '--json'])).stdout);
    assert.deepEqual(accounts.accounts.map((a: { name: string }) => a.name).sort(), ['approved', 'personal', 'work']);
    assert.ok(accounts.accounts.find((a: { name: string; lastSyncAt?: string }) => a.name === 'personal').lastSyncAt, 'last sync is recorded');
    const text = (await ok(['accounts'])).stdout;
    assert.match(text, /personal\talice on http/);
  });

  it('without --account, the default account (the first linked) is used; an unknown one is a clear error', async () => {
    const r = JSON.parse((await ok(['status', '--json'])).stdout);
    assert.equal(r.account, 'personal');
    const bad = await coffer(['sync', '--account', 'nope']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /No account named "nope" on this device; see `coffer accounts`/);
  });

  it('a folder that is gone is not read as "everything was deleted"', async () => {
    await rm(join(work, 'Bob'), { recursive: true });
    const r = await coffer(['sync', '--account', 'work']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /missing or is not the folder this account was linked to/);
  });

  it('a reader that closes the pipe early (| head) ends the command quietly, without an EPIPE stack', async () => {
    const child = spawn(process.execPath, [CLI, 'accounts', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) });
    child.stdout.destroy(); // closed before the command writes a byte: its write meets EPIPE
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(stderr, '', 'nothing on stderr');
    assert.equal(code, 0);
  });
});
