/**
 * Safe disconnect, scenario by scenario, through the real `coffer` command
 * against a real server, with real folders. Every scenario ends by checking
 * that no file's content was lost: each content that was in the folder is
 * still in the folder or on the server.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { runCli, type CliResult } from '../../../server/test/support/processes.ts';

interface Ctx { home: string; work: string; env: Record<string, string> }

async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const name of await readdir(join(dir, rel)).catch(() => [] as string[])) {
      if (dir.endsWith('Drive') && name.startsWith('.coffer-')) continue; // the client's own marker, not user content
      const p = rel ? `${rel}/${name}` : name;
      const st = await stat(join(dir, p));
      if (st.isDirectory()) { out.set(`${p}/`, ''); await walk(p); } else out.set(p, createHash('sha256').update(await readFile(join(dir, p))).digest('hex'));
    }
  };
  await walk('');
  return out;
}

describe('coffer disconnect', () => {
  let s: TestServer;
  let n = 0;
  before(async () => { s = await startTestServer(); });
  after(async () => { await s?.close(); });

  async function setup(opts: { quotaBytes?: number } = {}): Promise<Ctx & { user: string; run: (args: string[]) => Promise<CliResult>; ok: (args: string[]) => Promise<CliResult>; folder: string; serverHashes: () => Promise<Set<string>> }> {
    const user = `dc${++n}`;
    await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD, quotaBytes: opts.quotaBytes });
    const home = await mkdtemp(join(tmpdir(), 'coffer-dc-home-'));
    const work = await mkdtemp(join(tmpdir(), 'coffer-dc-work-'));
    const env = { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD };
    const run = (args: string[]) => runCli(args, { env, timeoutMs: 60_000 });
    const ok = async (args: string[]) => {
      const r = await run(args);
      assert.equal(r.code, 0, `coffer ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    const folder = join(work, 'Drive');
    await ok(['login', s.url, '--folder', folder, '--username', user, '--name', 'main', '--device-name', 'laptop']);
    const serverHashes = async () => {
      const c = await s.signIn(user);
      const hashes = new Set<string>();
      const walk = async (id: string, path: string) => {
        const kids = (await c.json(`/api/v1/items/${id}/children?limit=1000`)).body.items as { id: string; name: string; kind: string }[];
        for (const k of kids) {
          if (k.kind === 'folder') await walk(k.id, `${path}${k.name}/`);
          else hashes.add(createHash('sha256').update(Buffer.from(await (await c.fetch(`/api/v1/items/${k.id}/content`)).arrayBuffer())).digest('hex'));
        }
      };
      await walk(c.rootId, '');
      return hashes;
    };
    return { user, home, work, env, run, ok, folder, serverHashes };
  }

  /** Every content that was in the folder before is in the folder or on the server now. */
  async function assertNothingLost(before: Map<string, string>, folder: string, serverHashes: () => Promise<Set<string>>): Promise<void> {
    const now = new Set((await tree(folder)).values());
    const server = await serverHashes();
    for (const [path, hash] of before) if (hash) assert.ok(now.has(hash) || server.has(hash), `${path}: its content is still somewhere`);
  }

  it('nothing pending: the device is signed out on the server, state is gone, the files stay', async () => {
    const c = await setup();
    await writeFile(join(c.folder, 'a.txt'), 'synced');
    await c.ok(['sync']);
    const creds = JSON.parse(await readFile(join(c.home, 'accounts', 'main', 'credentials.json'), 'utf8'));
    const before = await tree(c.folder);
    await c.ok(['disconnect']);
    const me = await fetch(`${s.url}/api/v1/me`, { headers: { authorization: `Bearer ${creds.accessToken}` } });
    assert.equal(me.status, 401, 'the session is revoked on the server');
    await assert.rejects(stat(join(c.home, 'accounts', 'main')), 'the state directory is gone');
    const after = await tree(c.folder);
    assert.equal(after.get('a.txt'), before.get('a.txt'), 'the file stays');
    assert.equal(JSON.parse((await c.ok(['accounts', '--json'])).stdout).accounts.length, 0);
  });

  it('pending local edits are uploaded first, verified, then the device is signed out', async () => {
    const c = await setup();
    await writeFile(join(c.folder, 'a.txt'), 'v1');
    await c.ok(['sync']);
    await writeFile(join(c.folder, 'a.txt'), 'v2 not yet synced');
    await mkdir(join(c.folder, 'new'));
    await writeFile(join(c.folder, 'new', 'b.txt'), 'brand new');
    const before = await tree(c.folder);
    const r = await c.ok(['disconnect']);
    assert.match(r.stdout, /finishing 3 change\(s\) not yet in the cloud/);
    const server = await c.serverHashes();
    assert.ok(server.has(before.get('a.txt')!) && server.has(before.get('new/b.txt')!), 'both edits reached the server');
    await assertNothingLost(before, c.folder, c.serverHashes);
  });

  it('quota full: refuses, names the file and the choices; --force disconnects and keeps it', async () => {
    const c = await setup({ quotaBytes: 1000 });
    await writeFile(join(c.folder, 'small.txt'), 'fits');
    await c.ok(['sync']);
    await writeFile(join(c.folder, 'big.bin'), Buffer.alloc(5000, 7));
    const before = await tree(c.folder);
    const r = await c.run(['disconnect']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /Not disconnected: 1 change\(s\) are not safely in the cloud/);
    assert.match(r.stderr, /big\.bin: new file, not uploaded yet/);
    assert.match(r.stderr, /--wait.*--force/s);
    assert.ok((await stat(join(c.home, 'accounts', 'main', 'credentials.json'))).isFile(), 'still signed in');
    const forced = await c.ok(['disconnect', '--force']);
    assert.match(forced.stdout, /disconnected with --force; 1 change did not reach the cloud/);
    await assertNothingLost(before, c.folder, c.serverHashes);
  });

  it('server unreachable: refuses and lists the pending file; nothing is lost', async () => {
    const other = await startTestServer();
    try {
      await other.server.coffer.services.users.create({ username: 'far', password: TEST_PASSWORD });
      const home = await mkdtemp(join(tmpdir(), 'coffer-dc-home-'));
      const folder = join(await mkdtemp(join(tmpdir(), 'coffer-dc-work-')), 'Far');
      const env = { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD };
      const login = await runCli(['login', other.url, '--folder', folder, '--username', 'far'], { env });
      assert.equal(login.code, 0, login.stdout + login.stderr);
      await writeFile(join(folder, 'offline.txt'), 'written while the server is down');
      await other.close();
      const r = await runCli(['disconnect'], { env, timeoutMs: 120_000 });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /offline\.txt: new file, not uploaded yet/);
      assert.equal(await readFile(join(folder, 'offline.txt'), 'utf8'), 'written while the server is down');
    } finally {
      await other.close().catch(() => {});
    }
  });

  it('--dry-run changes nothing: folder and state are byte-identical', async () => {
    const c = await setup();
    await writeFile(join(c.folder, 'a.txt'), 'synced');
    await c.ok(['sync']);
    await writeFile(join(c.folder, 'pending.txt'), 'not yet');
    const folderBefore = await tree(c.folder);
    const stateBefore = await tree(c.home);
    const r = await c.ok(['disconnect', '--dry-run', '--remove-local-files']);
    assert.match(r.stdout, /dry run: nothing was changed/);
    assert.match(r.stdout, /pending\.txt: new file, not uploaded yet/);
    assert.deepEqual(await tree(c.folder), folderBefore);
    assert.deepEqual(await tree(c.home), stateBefore);
  });

  it('--remove-local-files deletes only files the server confirmed and keeps one it did not', async () => {
    const c = await setup({ quotaBytes: 1000 });
    await mkdir(join(c.folder, 'docs'));
    await writeFile(join(c.folder, 'docs', 'safe.txt'), 'on the server');
    await c.ok(['sync']);
    await writeFile(join(c.folder, 'docs', 'unsafe.bin'), Buffer.alloc(5000, 1)); // over quota: never confirmed
    const before = await tree(c.folder);
    const r = await c.ok(['disconnect', '--force', '--remove-local-files', '--json']);
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    assert.deepEqual(report.removedFiles, ['docs/safe.txt']);
    assert.deepEqual(report.keptFiles, ['docs/unsafe.bin']);
    assert.deepEqual([...(await tree(c.folder)).keys()].filter((k) => !k.startsWith('.coffer')), ['docs/', 'docs/unsafe.bin']);
    await assertNothingLost(before, c.folder, c.serverHashes);
  });

  it('a crash in the middle of disconnect: the next run continues and finishes', async () => {
    const c = await setup();
    await writeFile(join(c.folder, 'a.txt'), 'synced');
    await c.ok(['sync']);
    // As if a disconnect was killed after revoking and deleting the credentials.
    const accounts = JSON.parse(await readFile(join(c.home, 'accounts.json'), 'utf8'));
    accounts.accounts[0].disconnecting = { startedAt: new Date().toISOString(), step: 'clearing' };
    await writeFile(join(c.home, 'accounts.json'), JSON.stringify(accounts));
    await rm(join(c.home, 'accounts', 'main', 'credentials.json'));
    await c.ok(['disconnect']);
    assert.equal(JSON.parse((await c.ok(['accounts', '--json'])).stdout).accounts.length, 0);
    assert.equal(await readFile(join(c.folder, 'a.txt'), 'utf8'), 'synced');
  });

  it('two accounts on one device: disconnecting one leaves the other syncing', async () => {
    const c = await setup();
    const second = `dc${++n}`;
    await s.server.coffer.services.users.create({ username: second, password: TEST_PASSWORD });
    await c.ok(['login', s.url, '--folder', join(c.work, 'Work'), '--username', second, '--name', 'work']);
    await writeFile(join(c.work, 'Work', 'w.txt'), 'work file');
    await c.ok(['disconnect', '--account', 'main']);
    const synced = JSON.parse((await c.ok(['sync', '--account', 'work', '--json'])).stdout);
    assert.equal(synced.uploaded, 1);
    assert.deepEqual(JSON.parse((await c.ok(['accounts', '--json'])).stdout).accounts.map((a: { name: string }) => a.name), ['work']);
  });
});
