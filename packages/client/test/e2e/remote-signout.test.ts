/**
 * Signed out or wiped from elsewhere, through the real `coffer` command and
 * a real server: a revoked device stops, keeps its files and its pending
 * changes, and syncs them after signing in again; a wiped device (asked
 * while it was offline) removes only what the server holds, keeps and
 * reports the rest, and the server records the report.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { runCli } from '../../../server/test/support/processes.ts';

describe('remote sign-out and wipe, client side', () => {
  let s: TestServer;
  let n = 0;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s?.close(); });

  async function linked(deviceName: string) {
    const user = `rs${++n}`;
    await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD });
    const home = await mkdtemp(join(tmpdir(), 'coffer-rs-home-'));
    const folder = join(await mkdtemp(join(tmpdir(), 'coffer-rs-work-')), 'Drive');
    const env = { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD };
    const run = (args: string[]) => runCli(args, { env, timeoutMs: 60_000 });
    const r = await run(['login', s.url, '--folder', folder, '--username', user, '--name', 'main', '--device-name', deviceName]);
    assert.equal(r.code, 0, r.stderr);
    const web = await s.signIn(user);
    const device = ((await web.json('/api/v1/devices')).body.devices as { id: string; name: string }[]).find((d) => d.name === deviceName)!;
    return { user, home, folder, run, web, deviceId: device.id };
  }

  it('signed out remotely with edits pending: stops with a clear message, keeps files and changes, syncs them after signing in again', async () => {
    const c = await linked('old-laptop');
    await writeFile(join(c.folder, 'a.txt'), 'synced');
    assert.equal((await c.run(['sync'])).code, 0);
    await writeFile(join(c.folder, 'draft.txt'), 'pending when signed out');
    assert.equal((await c.web.fetch(`/api/v1/devices/${c.deviceId}`, { method: 'DELETE' })).status, 204);
    const r = await c.run(['sync']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /this device was signed out of main; local files and unsynced changes are kept/);
    assert.match(r.stderr, /coffer login/);
    assert.equal(await readFile(join(c.folder, 'draft.txt'), 'utf8'), 'pending when signed out');
    assert.equal((await c.web.fetch('/api/v1/content/draft.txt')).status, 404, 'not uploaded by a revoked device');
    const again = await c.run(['login', s.url, '--folder', c.folder, '--username', c.user]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /signed in again/);
    assert.equal((await c.run(['sync'])).code, 0);
    assert.equal(await (await c.web.fetch('/api/v1/content/draft.txt')).text(), 'pending when signed out');
  });

  it('wipe requested while the device was offline, with unsynced edits: removes only confirmed files, keeps and reports the rest', async () => {
    const c = await linked('lost-phone');
    await writeFile(join(c.folder, 'safe.txt'), 'in the cloud');
    await writeFile(join(c.folder, 'also-safe.txt'), 'in the cloud too');
    assert.equal((await c.run(['sync'])).code, 0);
    await writeFile(join(c.folder, 'unsynced.txt'), 'only on this device');
    await writeFile(join(c.folder, 'safe.txt'), 'edited here, not uploaded');
    // The owner asks for a wipe from another device while this one is offline (no coffer process running).
    const wipe = await c.web.json(`/api/v1/devices/${c.deviceId}/wipe`, { method: 'POST' });
    assert.equal(wipe.status, 200);
    const r = await c.run(['sync']);
    assert.equal(r.code, 1, 'the run ends: the account is no longer linked');
    assert.match(r.stdout, /this device was wiped at the account owner's request: removed 1 file\(s\)/);
    await assert.rejects(stat(join(c.folder, 'also-safe.txt')), 'the confirmed file is removed');
    assert.equal(await readFile(join(c.folder, 'unsynced.txt'), 'utf8'), 'only on this device');
    assert.equal(await readFile(join(c.folder, 'safe.txt'), 'utf8'), 'edited here, not uploaded');
    await assert.rejects(stat(join(c.home, 'accounts', 'main')), 'credentials and index are gone');
    const device = ((await c.web.json('/api/v1/devices')).body.devices as { id: string; wipe: { confirmedAt: number | null; report: { removedCount: number; kept: { path: string }[] } } }[]).find((d) => d.id === c.deviceId)!;
    assert.ok(device.wipe.confirmedAt, 'the server recorded the confirmation');
    assert.equal(device.wipe.report.removedCount, 1);
    assert.deepEqual(device.wipe.report.kept.map((k) => k.path).sort(), ['safe.txt', 'unsynced.txt']);
  });
});
