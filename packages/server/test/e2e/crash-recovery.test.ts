/**
 * Crash recovery: a real server process is SIGKILLed while ~20 uploads are
 * mid-flight, then restarted on the same data. Every acknowledged upload must
 * be there, whole; no half-received file may be visible under any name; the
 * storage check must find no errors; the collector must clear every orphaned
 * blob; no temp file may survive.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { createTestDatabase, postgresUnavailable } from '../support/postgres.ts';
import {
  cliOk, getToken, spawnServer, startUpload, storageArgs, uploadsInProgress, waitFor,
  type HttpResult, type ServerProcess,
} from '../support/processes.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const PASSWORD = 'crash-test-password-1';
const IN_FLIGHT = 20;

/** Every file under `dir`, as paths relative to it ('/'-separated). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [];
    throw e;
  });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'));
}

interface CheckReport { users: number; items: number; versions: number; chunks: number; blobs: number; problems: { kind: string; severity: string; detail: string }[] }

async function check(storage: string[]): Promise<CheckReport> {
  return JSON.parse((await cliOk(['admin', 'check', '--json', ...storage])).stdout) as CheckReport;
}

function api(url: string, token: string) {
  return async <T>(path: string): Promise<T> => {
    const res = await fetch(url + path, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(15_000) });
    const text = await res.text();
    assert.equal(res.status, 200, `GET ${path}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
}

async function download(url: string, token: string, name: string): Promise<Buffer> {
  const res = await fetch(`${url}/api/v1/content/${encodeURIComponent(name)}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200, `download ${name}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

async function put(url: string, token: string, name: string, body: Buffer): Promise<number> {
  const res = await fetch(`${url}/api/v1/content/${encodeURIComponent(name)}`, {
    method: 'PUT', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return res.status;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function crashScenario(t: TestContext, databaseUrl?: string): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), 'coffer-crash-'));
  const blobDir = join(dataDir, 'blobs');
  const storage = storageArgs(dataDir, databaseUrl);
  let server: ServerProcess | undefined;
  let stopTrickling = false;
  t.after(async () => {
    stopTrickling = true;
    await server?.kill();
    await rm(dataDir, { recursive: true, force: true });
  });

  await cliOk(['admin', 'create-user', 'crash', '--password', PASSWORD, ...storage]);
  server = await spawnServer(storage);
  const token = await getToken(server.url, 'crash', PASSWORD);

  // Files completed (acknowledged) before the crash.
  const completed = new Map<string, Buffer>();
  const sizes = [0, 1, 100, 4 * KiB, 64 * KiB, 300 * KiB, 2 * MiB + 12_345, 3 * MiB];
  await Promise.all(sizes.map(async (size, i) => {
    const name = i === sizes.length - 1 ? 'replace-me.bin' : `done-${i}.bin`;
    const body = randomBytes(size);
    assert.equal(await put(server!.url, token, name, body), 201);
    completed.set(name, body);
  }));
  // The local store packs each upload's chunks: open packs are temp files, sealed ones (16 MiB) live under p/.
  const packsBefore = (await filesUnder(join(blobDir, 'p'))).length;

  // Uploads that are cut off by the crash: part of the body sent, the rest trickled.
  const startedInFlight = Date.now();
  const inFlight: { name: string; response: Promise<HttpResult>; prefixSent: Promise<void> }[] = [];
  for (let i = 0; i < IN_FLIGHT; i++) {
    // One of them replaces a completed file: its old content must survive.
    const name = i === 0 ? 'replace-me.bin' : `inflight-${String(i).padStart(2, '0')}.bin`;
    // Upload 1 sends more than a pack before it is cut off: it has a sealed pack on disk, the others only open ones.
    const size = i === 1 ? 24 * MiB : randomInt(2 * MiB, 20 * MiB + 1);
    const prefix = i === 1 ? 18 * MiB : Math.min(Math.floor(size * (0.2 + Math.random() * 0.4)), 5 * MiB);
    const up = startUpload(server.url, token, name, size);
    const prefixSent = (async () => {
      for (let sent = 0; sent < prefix; sent += 256 * KiB) await up.write(randomBytes(Math.min(256 * KiB, prefix - sent)));
    })();
    // Keep the upload visibly alive (never reaching its announced length) until the crash.
    void prefixSent.then(async () => {
      for (let sent = prefix; !stopTrickling && sent + 16 * KiB < size; sent += 16 * KiB) {
        await up.write(randomBytes(16 * KiB));
        await sleep(100);
      }
    }).catch(() => {});
    inFlight.push({ name, response: up.response, prefixSent: prefixSent.catch(() => {}) });
  }

  // Uploads racing the crash: each sent whole, slowly; some finish before the kill, maybe some not.
  const racing: { name: string; body: Buffer; response: Promise<HttpResult> }[] = [];
  for (let i = 0; i < 3; i++) {
    const name = `racing-${i}.bin`;
    const body = randomBytes(1 * MiB + i * 100 * KiB);
    const up = startUpload(server.url, token, name, body.length);
    void (async () => {
      for (let off = 0; off < body.length && !stopTrickling; off += 32 * KiB) {
        await up.write(body.subarray(off, off + 32 * KiB));
        if (i > 0) await sleep(i * 25);
      }
      if (!stopTrickling) up.end();
    })().catch(() => {});
    racing.push({ name, body, response: up.response });
  }

  // Crash only once every cut-off upload is being received and some of their chunks are on disk.
  await Promise.all(inFlight.map((u) => u.prefixSent));
  await waitFor('all cut-off uploads in progress', async () => (await uploadsInProgress(server!.url)) >= IN_FLIGHT, 30_000, 100);
  await waitFor('chunks of the cut-off uploads on disk', async () => (await filesUnder(join(blobDir, '.tmp'))).length >= IN_FLIGHT
    && (await filesUnder(join(blobDir, 'p'))).length > packsBefore + 3, 30_000, 100); // more than the 3 racing uploads can seal
  t.diagnostic(`crash ${Date.now() - startedInFlight} ms after the cut-off uploads began`);
  await server.kill();
  stopTrickling = true;
  assert.equal((await server.exited).signal, 'SIGKILL');

  // What the clients saw: no cut-off upload was acknowledged; racing ones may or may not have been.
  for (const u of inFlight) {
    const r = await Promise.race([u.response.then((x) => x, (e: Error) => e), sleep(10_000).then(() => 'pending')]);
    assert.ok(r instanceof Error, `${u.name}: the cut-off upload got ${JSON.stringify(r)}`);
  }
  const acknowledged = new Set<string>();
  for (const u of racing) {
    const r = await Promise.race([u.response.then((x) => x, (e: Error) => e), sleep(10_000).then(() => 'pending')]);
    if (typeof r === 'object' && !(r instanceof Error)) {
      assert.equal(r.status, 201, `${u.name}: ${r.body}`);
      acknowledged.add(u.name);
    }
  }
  t.diagnostic(`racing uploads acknowledged before the crash: ${acknowledged.size}/3`);

  t.diagnostic(`temp files left by the killed process: ${(await filesUnder(join(blobDir, '.tmp'))).length}`);

  // Restart on the same data.
  server = await spawnServer(storage);
  assert.deepEqual(await filesUnder(join(blobDir, '.tmp')), [], 'temp files of the killed process are removed at start');
  const token2 = await getToken(server.url, 'crash', PASSWORD);
  const get = api(server.url, token2);
  const root = await get<{ id: string }>('/api/v1/items/root');
  const listing = await get<{ items: { id: string; name: string; kind: string; size: number }[]; total: number }>(`/api/v1/items/${root.id}/children?limit=1000`);
  const names = listing.items.map((i) => i.name).sort();
  for (const name of completed.keys()) assert.ok(names.includes(name), `completed file ${name} is missing after the crash`);
  for (const name of acknowledged) assert.ok(names.includes(name), `acknowledged file ${name} is missing after the crash`);
  const racingNames = new Set(racing.map((r) => r.name));
  for (const name of names) {
    assert.ok(completed.has(name) || racingNames.has(name), `unexpected item after the crash: ${name}`);
  }
  assert.equal(listing.total, listing.items.length);
  const trash = await get<{ items: unknown[] }>('/api/v1/trash');
  assert.deepEqual(trash.items, [], 'nothing in the recycle bin');

  // Every visible file is exactly what was sent: the completed ones, a racing one that committed, and the old replace-me.bin.
  let expectedUsed = 0;
  for (const item of listing.items) {
    assert.equal(item.kind, 'file');
    const sent = completed.get(item.name) ?? racing.find((r) => r.name === item.name)!.body;
    assert.equal(item.size, sent.length, `${item.name}: size`);
    assert.ok((await download(server.url, token2, item.name)).equals(sent), `${item.name}: content differs from what was sent`);
    expectedUsed += sent.length;
  }
  const replaced = listing.items.find((i) => i.name === 'replace-me.bin')!;
  const { versions } = await get<{ versions: unknown[] }>(`/api/v1/items/${replaced.id}/versions`);
  assert.equal(versions.length, 1, 'the cut-off replacement left no version behind');
  const me = await get<{ usedBytes: number }>('/api/v1/me');
  assert.equal(me.usedBytes, expectedUsed, 'usage counts exactly the visible files');

  server.child.kill('SIGTERM');
  assert.deepEqual(await server.waitExit(30_000), { code: 0, signal: null });

  // The check finds no errors; the blobs of the cut-off uploads are orphans the collector removes.
  const before = await check(storage);
  assert.deepEqual(before.problems.filter((p) => p.severity === 'error'), []);
  const orphans = before.problems.filter((p) => p.kind === 'orphan-blob');
  t.diagnostic(`orphan blobs after the crash: ${orphans.length}`);

  // No server is running now, so the unrecorded blobs younger than 15 minutes may be swept too.
  const gc = JSON.parse((await cliOk(['admin', 'gc', '--grace', '0', '--sweep-orphans-now', ...storage])).stdout) as { orphanBlobsRemoved: number; chunksCollected: number };
  assert.ok(gc.orphanBlobsRemoved >= orphans.length, `gc removed ${gc.orphanBlobsRemoved} orphan blobs, check saw ${orphans.length}`);
  // Upload 1's sealed pack is an orphan, or recorded under its lease (kept until the lease expires, then collected).
  assert.ok(before.blobs > packsBefore + acknowledged.size, 'a cut-off upload left a sealed pack behind');
  t.diagnostic(`gc after the crash: ${gc.chunksCollected} chunks collected, ${gc.orphanBlobsRemoved} orphan blobs removed`);

  const after = await check(storage);
  assert.deepEqual(after.problems, [], 'no problems at all after gc');
  assert.ok(after.blobs > 0 && after.blobs <= after.chunks, `${after.blobs} packs hold ${after.chunks} chunks: every blob belongs to a chunk`);
  assert.deepEqual(await filesUnder(join(blobDir, '.tmp')), [], 'no temp files');
  for (const f of await filesUnder(blobDir)) assert.match(f, /^p\//, `unexpected file in the blob folder: ${f}`);
}

describe('crash recovery: SIGKILL during ~20 uploads', () => {
  it('SQLite + local blobs: only acknowledged files survive, whole; gc clears the rest', async (t) => {
    await crashScenario(t);
  });

  it('PostgreSQL + local blobs: the same', async (t) => {
    const reason = await postgresUnavailable();
    if (reason) {
      t.skip(reason);
      return;
    }
    const db = await createTestDatabase();
    t.after(() => db.drop());
    await crashScenario(t, db.url);
  });
});
