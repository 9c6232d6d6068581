/**
 * More safe sign-out scenarios through the real `coffer` command against a
 * real server, with real folders: an upload killed mid-way, a conflicting
 * edit on the server, an unreadable file, "sign out everywhere" reaching
 * two watching clients over push, device codes denied / expired / reused,
 * and how long `coffer disconnect` takes. Each scenario with files ends by
 * checking that no file's content was lost.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { childEnv, CLI, runCli, type CliResult } from '../../../server/test/support/processes.ts';
import { pollDeviceLogin, startDeviceLogin } from '../../../server/test/support/device-login.ts';

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

async function tree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const name of await readdir(join(dir, rel)).catch(() => [] as string[])) {
      if (!rel && name.startsWith('.coffer-')) continue; // the client's own marker / temp files, not user content
      const p = rel ? `${rel}/${name}` : name;
      const st = await stat(join(dir, p));
      if (st.isDirectory()) { out.set(`${p}/`, ''); await walk(p); } else out.set(p, sha(await readFile(join(dir, p))));
    }
  };
  await walk('');
  return out;
}

/** A spawned `coffer` process that is not awaited to completion. */
function spawnCli(args: string[], env: Record<string, string>, extra: { uid?: number; gid?: number } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env), ...extra });
  const r = { child, stdout: '', stderr: '', exited: null as null | Promise<{ code: number | null; signal: NodeJS.Signals | null }> };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { r.stdout += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { r.stderr += d; });
  r.exited = once(child, 'close').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  return r as typeof r & { exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> };
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, everyMs = 25): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function kill(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

describe('coffer disconnect, more scenarios', () => {
  let s: TestServer;
  let n = 0;
  const spawned: ChildProcess[] = [];
  const dirs: string[] = [];
  before(async () => { s = await startTestServer(); });
  after(async () => {
    for (const c of spawned) kill(c);
    await s?.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true }).catch(() => {});
  });

  async function newUser(): Promise<string> {
    const user = `dm${++n}`;
    await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD });
    return user;
  }

  async function serverHashesOf(user: string): Promise<Map<string, string>> {
    const c = await s.signIn(user);
    const out = new Map<string, string>();
    const walk = async (id: string, path: string) => {
      const kids = (await c.json(`/api/v1/items/${id}/children?limit=1000`)).body.items as { id: string; name: string; kind: string }[];
      for (const k of kids) {
        if (k.kind === 'folder') await walk(k.id, `${path}${k.name}/`);
        else out.set(`${path}${k.name}`, sha(Buffer.from(await (await c.fetch(`/api/v1/items/${k.id}/content`)).arrayBuffer())));
      }
    };
    await walk(c.rootId, '');
    return out;
  }

  /** A linked account in a fresh client home; `user` may be shared by several clients. */
  async function linked(opts: { user?: string; deviceName?: string; uid?: number; gid?: number } = {}) {
    const user = opts.user ?? await newUser();
    const work = await mkdtemp(join(tmpdir(), 'coffer-dm-'));
    dirs.push(work);
    await chmod(work, 0o755);
    const home = join(work, 'home');
    const folder = join(work, 'Drive');
    await mkdir(home);
    await mkdir(folder);
    if (opts.uid !== undefined) for (const d of [home, folder]) await chown(d, opts.uid, opts.gid!);
    const env = { COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD, HOME: home };
    const run = (args: string[], timeoutMs = 60_000): Promise<CliResult> => {
      if (opts.uid === undefined) return runCli(args, { env, timeoutMs });
      const p = spawnCli(args, env, { uid: opts.uid, gid: opts.gid });
      const timer = setTimeout(() => kill(p.child), timeoutMs);
      return p.exited.then(({ code, signal }) => { clearTimeout(timer); return { code, signal, stdout: p.stdout, stderr: p.stderr }; });
    };
    const ok = async (args: string[], timeoutMs?: number) => {
      const r = await run(args, timeoutMs);
      assert.equal(r.code, 0, `coffer ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
      return r;
    };
    await ok(['login', s.url, '--folder', folder, '--username', user, '--name', 'main', '--device-name', opts.deviceName ?? `dev${n}`]);
    return { user, home, folder, env, run, ok };
  }

  /** Every content that was in the folder before is in the folder or on the server now. */
  async function assertNothingLost(before: Map<string, string>, folder: string, user: string): Promise<void> {
    const now = new Set((await tree(folder)).values());
    const server = new Set((await serverHashesOf(user)).values());
    for (const [path, hash] of before) if (hash) assert.ok(now.has(hash) || server.has(hash), `${path}: its content is still somewhere`);
  }

  it('an upload interrupted mid-way: disconnect finishes it (the server has the exact bytes), then disconnects', async () => {
    const c = await linked();
    const big = randomBytes(12 * 1024 * 1024);
    await writeFile(join(c.folder, 'big.bin'), big);
    const before = await tree(c.folder);
    // The client sends a file's chunks as one streamed PUT: count those the server is receiving.
    const sessions = s.server.coffer.services.uploadSessions as unknown as { putChunks: (...a: unknown[]) => Promise<unknown> };
    const original = sessions.putChunks;
    let receiving = 0;
    sessions.putChunks = function (this: unknown, ...a: unknown[]) {
      receiving++;
      return original.apply(this, a).finally(() => { receiving--; });
    };
    const sync = spawnCli(['sync'], c.env);
    spawned.push(sync.child);
    const started = Date.now();
    // Kill once the server is receiving the file's chunks (or a streaming upload); failing that after 5 s: either state is fine.
    let state = 'timeout';
    try {
      await waitFor('an upload in progress', () => {
        if (sync.child.exitCode !== null) { state = 'sync already ended'; return true; }
        if (receiving > 0 || s.server.coffer.services.upload.active > 0) { state = 'chunks being received'; return true; }
        return Date.now() - started > 5_000;
      }, 10_000, 1);
      if (state === 'chunks being received') await new Promise((r) => setTimeout(r, 15)); // a few frames in
    } finally {
      sessions.putChunks = original;
    }
    kill(sync.child);
    const ended = await sync.exited;
    const partial = await serverHashesOf(c.user);
    console.log(`# interrupted upload: killed after ${Date.now() - started} ms (${state}); sync ended with ${ended.signal ?? ended.code}; big.bin on the server before disconnect: ${partial.has('big.bin') ? (partial.get('big.bin') === sha(big) ? 'complete' : 'different!') : 'no'}`);
    const r = await c.ok(['disconnect']);
    assert.match(r.stdout, /disconnected main/);
    const server = await serverHashesOf(c.user);
    assert.equal(server.get('big.bin'), sha(big), 'the server has the exact 12 MiB');
    await assert.rejects(stat(join(c.home, 'accounts', 'main')), 'the state directory is gone');
    assert.equal(sha(await readFile(join(c.folder, 'big.bin'))), sha(big), 'the local file stays');
    assert.deepEqual([...(await readdir(c.folder))].filter((x) => x.startsWith('.coffer-tmp') || x.includes('partial')), [], 'no temporary files left');
    await assertNothingLost(before, c.folder, c.user);
  });

  it('a conflicting edit on the server: disconnect keeps both (server edit under the name, local edit as a conflict copy)', async () => {
    const c = await linked();
    await writeFile(join(c.folder, 'notes.txt'), 'v1 synced');
    await c.ok(['sync']);
    await writeFile(join(c.folder, 'notes.txt'), 'v2 edited on this device');
    const web = await s.signIn(c.user);
    const put = await web.fetch('/api/v1/content/notes.txt', { method: 'PUT', body: 'v2 edited on the server, differently' });
    assert.equal(put.status, 200, await put.text());
    const before = await tree(c.folder);
    const r = await c.ok(['disconnect']);
    assert.match(r.stdout, /finishing 1 change\(s\) not yet in the cloud/);
    assert.match(r.stdout, /disconnected main/);
    const server = await serverHashesOf(c.user);
    assert.equal(server.get('notes.txt'), sha('v2 edited on the server, differently'), 'the server edit keeps the name');
    const copies = [...server].filter(([p, h]) => p !== 'notes.txt' && h === sha('v2 edited on this device'));
    assert.equal(copies.length, 1, `the local edit is on the server as a conflict copy: ${[...server.keys()].join(', ')}`);
    assert.match(copies[0]![0], /notes.*conflict|conflict.*notes/i, copies[0]![0]);
    console.log(`# conflict copy on the server: ${copies[0]![0]}`);
    await assertNothingLost(before, c.folder, c.user);
  });

  it('an unreadable file: disconnect refuses naming it; --force disconnects and leaves the file', async () => {
    // chmod 000 means nothing to root (CAP_DAC_OVERRIDE): run the client as "nobody" then.
    const asRoot = process.getuid?.() === 0;
    const uid = asRoot ? 65534 : process.getuid!();
    const gid = asRoot ? 65534 : process.getgid!();
    const c = await linked({ uid, gid });
    const put = async (name: string, content: string, mode = 0o644) => {
      await writeFile(join(c.folder, name), content);
      await chown(join(c.folder, name), uid, gid);
      await chmod(join(c.folder, name), mode);
    };
    await put('readable.txt', 'synced');
    await c.ok(['sync']);
    await put('secret.txt', 'nobody can read this', 0o000);
    const before = await tree(c.folder); // read as root
    const r = await c.run(['disconnect']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /Not disconnected: 1 change\(s\) are not safely in the cloud/);
    assert.match(r.stderr, /secret\.txt: cannot be read/);
    assert.ok((await stat(join(c.home, 'accounts', 'main', 'credentials.json'))).isFile(), 'still signed in');
    const forced = await c.ok(['disconnect', '--force']);
    assert.match(forced.stdout, /disconnected with --force; 1 change did not reach the cloud/);
    await assert.rejects(stat(join(c.home, 'accounts', 'main')), 'the state directory is gone');
    assert.equal(await readFile(join(c.folder, 'secret.txt'), 'utf8'), 'nobody can read this', 'the unreadable file stays');
    assert.equal((await stat(join(c.folder, 'secret.txt'))).mode & 0o777, 0, 'and keeps its mode');
    await assertNothingLost(before, c.folder, c.user);
  });

  it('sign out everywhere with two clients watching on push: both stop within seconds and keep their files', async () => {
    const user = await newUser();
    const a = await linked({ user, deviceName: 'laptop' });
    const b = await linked({ user, deviceName: 'desktop' });
    await writeFile(join(a.folder, 'from-a.txt'), 'written on a');
    await a.ok(['sync']);
    await b.ok(['sync']);
    const watchers = [spawnCli(['sync', '--watch'], a.env), spawnCli(['sync', '--watch'], b.env)];
    for (const w of watchers) spawned.push(w.child);
    await waitFor('both watchers to watch', () => watchers.every((w) => /watching /.test(w.stdout)), 30_000);
    await new Promise((r) => setTimeout(r, 500)); // let the push channels connect
    const beforeA = await tree(a.folder);
    const beforeB = await tree(b.folder);
    assert.equal(beforeB.get('from-a.txt'), sha('written on a'));
    const third = await s.signIn(user);
    const t0 = Date.now();
    const r = await third.json('/api/v1/sessions/sign-out-others', { method: 'POST' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.signedOut >= 2, `signed out ${r.body.signedOut}`);
    const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), 10_000).unref());
    const ends = await Promise.all(watchers.map(async (w) => {
      const e = await Promise.race([w.exited, timeout]);
      return { e, ms: Date.now() - t0 };
    }));
    for (const w of watchers) kill(w.child);
    console.log(`# sign out everywhere: watchers exited after ${ends.map((x) => `${x.ms} ms (${x.e === 'timeout' ? 'timeout' : x.e.signal ?? `exit ${x.e.code}`})`).join(' and ')}`);
    console.log(`# watcher said: ${JSON.stringify((watchers[0]!.stdout + watchers[0]!.stderr).trim().split('\n').slice(-2))}`);
    for (const [i, x] of ends.entries()) {
      assert.notEqual(x.e, 'timeout', `watcher ${i} did not stop:\n${watchers[i]!.stdout}\n${watchers[i]!.stderr}`);
      assert.ok(x.ms < 5_000, `watcher ${i} stopped after ${x.ms} ms`);
      assert.match(watchers[i]!.stdout + watchers[i]!.stderr, /signed out/, `watcher ${i} says so`);
      assert.equal((x.e as { code: number | null }).code, 1, `watcher ${i} exits 1: a supervisor can tell it from a normal stop`);
    }
    assert.deepEqual(await tree(a.folder), beforeA, 'a keeps its files');
    assert.deepEqual(await tree(b.folder), beforeB, 'b keeps its files');
    await assertNothingLost(beforeA, a.folder, user);
    await assertNothingLost(beforeB, b.folder, user);
  });

  it('device code denied, expired, and reused', async () => {
    let offset = 0;
    const other = await startTestServer({ clock: { now: () => Date.now() + offset } });
    try {
      for (const srv of [s, other]) await srv.server.coffer.services.users.create({ username: 'dev-owner', password: TEST_PASSWORD }).catch(() => {});
      const browserLogin = async (url: string) => {
        const work = await mkdtemp(join(tmpdir(), 'coffer-dm-dev-'));
        dirs.push(work);
        const home = join(work, 'home');
        const folder = join(work, 'Drive');
        const p = spawnCli(['login', url, '--folder', folder, '--name', 'main', '--device-name', 'kiosk'], { COFFER_CLIENT_HOME: home, HOME: home });
        spawned.push(p.child);
        await waitFor('the user code', () => /enter the code (\S+)/.test(p.stderr) || p.child.exitCode !== null, 30_000);
        const userCode = /enter the code (\S+)/.exec(p.stderr)?.[1];
        assert.ok(userCode, p.stdout + p.stderr);
        return { p, userCode, home, folder };
      };
      const bounded = async (p: ReturnType<typeof spawnCli>) => {
        const timer = setTimeout(() => kill(p.child), 30_000);
        const e = await p.exited;
        clearTimeout(timer);
        assert.equal(e.signal, null, `did not finish:\n${p.stdout}\n${p.stderr}`);
        return e;
      };
      const linkedNothing = async (home: string, folder: string) => {
        const names = await readdir(folder).catch(() => [] as string[]);
        assert.ok(!names.some((x) => x.startsWith('.coffer')), `the folder is not linked: ${names.join(', ')}`);
        const accounts = await readFile(join(home, 'accounts.json'), 'utf8').then((t) => JSON.parse(t).accounts as unknown[], () => []);
        assert.equal(accounts.length, 0, 'no account on the device');
      };

      // (a) denied in a signed-in session, (b) expired: in parallel, each about one poll interval.
      const denied = await browserLogin(s.url);
      const expired = await browserLogin(other.url);
      const web = await s.signIn('dev-owner');
      const deny = await web.json('/api/v1/auth/device/approve', { method: 'POST', body: { userCode: denied.userCode, approve: false } });
      assert.equal(deny.status, 200, JSON.stringify(deny.body));
      assert.equal(deny.body.status, 'denied');
      offset = 11 * 60_000; // past the 10-minute default
      const [de, ee] = await Promise.all([bounded(denied.p), bounded(expired.p)]);
      console.log(`# denied: exit ${de.code}: ${denied.p.stderr.trim().split('\n').slice(-1)[0]}`);
      console.log(`# expired: exit ${ee.code}: ${expired.p.stderr.trim().split('\n').slice(-1)[0]}`);
      assert.notEqual(de.code, 0);
      assert.match(denied.p.stderr, /denied|refused/i);
      assert.notEqual(ee.code, 0);
      assert.match(expired.p.stderr, /expired/i);
      await linkedNothing(denied.home, denied.folder);
      await linkedNothing(expired.home, expired.folder);

      // (c) reused: approved, exchanged once, then the same device code again.
      const d = await startDeviceLogin(s.url, { deviceName: 'script', platform: 'linux' });
      const ok = await web.json('/api/v1/auth/device/approve', { method: 'POST', body: { userCode: d.userCode, approve: true } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const first = await pollDeviceLogin(s.url, d.deviceCode);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.ok(first.body.accessToken);
      const again = await pollDeviceLogin(s.url, d.deviceCode);
      assert.equal(again.status, 400, JSON.stringify(again.body));
      assert.equal(again.body.error.code, 'INVALID_DEVICE_CODE');
    } finally {
      await other.close();
    }
  });

  it('timing: coffer disconnect on 2,000 synced small files, and with 200 pending', async () => {
    const time = async (label: string, count: number, pending: number) => {
      const c = await linked();
      await Promise.all(Array.from({ length: 20 }, (_, d) => mkdir(join(c.folder, `d${d}`))));
      await Promise.all(Array.from({ length: count }, (_, i) => writeFile(join(c.folder, `d${i % 20}`, `f${i}.txt`), `file ${i} ${label}`)));
      let t = Date.now();
      await c.ok(['sync'], 120_000);
      const syncMs = Date.now() - t;
      await Promise.all(Array.from({ length: pending }, (_, i) => writeFile(join(c.folder, `d${i % 20}`, `p${i}.txt`), `pending ${i}`)));
      const before = await tree(c.folder);
      t = Date.now();
      const r = await c.ok(['disconnect'], 120_000);
      const ms = Date.now() - t;
      console.log(`# timing: coffer disconnect, ${count} synced small files, ${pending} pending: ${ms} ms (the initial coffer sync took ${syncMs} ms)`);
      if (pending) assert.match(r.stdout, new RegExp(`finishing ${pending} change`));
      await assertNothingLost(before, c.folder, c.user);
    };
    await time('clean', 2000, 0);
    await time('pending', 2000, 200);
  });
});
