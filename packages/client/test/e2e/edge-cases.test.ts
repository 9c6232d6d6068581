/**
 * The awkward files, over a real server and real folders: each is handled
 * with a clear message, never a crash, and never by deleting something.
 *
 * - Unicode: a name in NFD here is one item in NFC on the server and comes
 *   back to the same local file; two names differing only in their
 *   normalization: the one synced (else the NFC one) is synced, the other is
 *   reported, neither is touched.
 * - A case-only rename travels as a rename, both ways. Names on the server
 *   that differ only in case reach a device whose file system folds case as
 *   two files: one is renamed as a conflict copy, on the server too (as
 *   Dropbox's "case conflict"), so no device has to hold both names.
 * - Names the server refuses (Windows-reserved, forbidden characters, a
 *   trailing dot, bytes that are not UTF-8) are reported with the server's
 *   own reason, never sent (so never retried), and the rest syncs; a synced
 *   file renamed to such a name stays on the server.
 * - A symbolic link is reported, not followed.
 * - An empty file syncs both ways.
 * - A 20 MiB file edited in the middle re-sends only the chunks around the
 *   edit (counted from the `missing` answers and the chunk bodies on the
 *   wire, through an instrumented fetch).
 * - A download that fails its hash check leaves nothing under the real name
 *   (an existing file keeps its content) and no temp file; download temp
 *   files a crash left behind are reported by status and removed by the
 *   next sync once stale (a fresh one may be a download in progress).
 * - A file the server refuses (quota) is reported once per run, not retried
 *   round after round; the pending count reaches the devices list.
 * - `status` reading the change feed does not hide a change from the next sync.
 * - Through the real `coffer` command, run as an unprivileged user (chmod
 *   000 means nothing to root): an unreadable file or folder is reported by
 *   status and sync, never deleted on the server, counted in the device's
 *   pending changes, and synced once readable; conflict copies are listed by
 *   status across runs until they are deleted.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cutAll } from '@coffer/protocol/chunker.ts';
import { once } from 'node:events';
import { chmod, chown, lstat, mkdir, mkdtemp, open, readdir, readFile, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startTestServer, TEST_PASSWORD, type TestServer } from '../../../server/test/support/test-server.ts';
import { childEnv, CLI } from '../../../server/test/support/processes.ts';
import { syncApiOf } from '../../src/accounts/open-account.ts';
import { SyncIndex } from '../../src/index/sync-index.ts';
import { ApiClient } from '../../src/remote/api-client.ts';
import { login } from '../../src/remote/auth.ts';
import { MemoryCredentialStore } from '../../src/remote/credentials.ts';
import type { FetchFn } from '../../src/remote/http.ts';
import { ROOT_MARKER } from '../../src/scanner/ignore.ts';
import { previewSync } from '../../src/sync/preview.ts';
import { syncOnce, type SyncOptions, type SyncReport } from '../../src/sync/sync-engine.ts';
import { listFolder, startClient, type TestClient } from '../support/sync-client.ts';

const DAY = '2026-11-25';
const NOW = () => Date.parse(`${DAY}T12:00:00Z`);

/** What went over the wire (an instrumented fetch), and a switch that corrupts downloads. */
interface Wire {
  requests: string[];
  /** Hashes the server answered "missing" for. */
  missing: number;
  /** The same hashes, in the order they came (for diagnosing a test that sees more than it expects). */
  missingHashes: string[];
  /** Bytes of chunk bodies sent. */
  chunkBytes: number;
  corruptDownloads: boolean;
}

function instrumentedFetch(wire: Wire): FetchFn {
  return async (input, init) => {
    const url = new URL(String(input));
    const method = init?.method ?? 'GET';
    wire.requests.push(`${method} ${url.pathname}`);
    if (method === 'PUT' && url.pathname.endsWith('/chunks') && init?.body instanceof ReadableStream) {
      const count = new TransformStream<Uint8Array, Uint8Array>({ transform(c, ctl) { wire.chunkBytes += c.byteLength; ctl.enqueue(c); } });
      init = { ...init, body: init.body.pipeThrough(count) };
    }
    const res = await fetch(input, init);
    if (method === 'POST' && url.pathname.endsWith('/missing') && res.ok) {
      const { missing } = (await res.clone().json()) as { missing: string[] };
      wire.missing += missing.length;
      wire.missingHashes.push(...missing);
    }
    if (wire.corruptDownloads && method === 'GET' && /\/items\/[^/]+\/content$/.test(url.pathname) && res.ok && res.body) {
      let flipped = false;
      const corrupt = new TransformStream<Uint8Array, Uint8Array>({
        transform(c, ctl) {
          const copy = new Uint8Array(c);
          if (!flipped && copy.length > 0) { copy[0] ^= 0xff; flipped = true; }
          ctl.enqueue(copy);
        },
      });
      return new Response(res.body.pipeThrough(corrupt), { status: res.status, statusText: res.statusText, headers: res.headers });
    }
    return res;
  };
}

/** startClient with an instrumented fetch. */
async function startWired(url: string, username: string, name: string): Promise<TestClient & { wire: Wire }> {
  const dir = await mkdtemp(join(tmpdir(), `coffer-client-${name}-`));
  const folder = join(dir, 'Coffer');
  await mkdir(folder);
  const r = await login(url, { login: username, password: TEST_PASSWORD, deviceName: name });
  if (r.status !== 'signed-in') throw new Error('test users have no second factor');
  const wire: Wire = { requests: [], missing: 0, missingHashes: [], chunkBytes: 0, corruptDownloads: false };
  const api = new ApiClient({ baseUrl: url, credentials: new MemoryCredentialStore(r.credentials), fetch: instrumentedFetch(wire), maxAttempts: 1 });
  const drive = await api.drive();
  await writeFile(join(folder, ROOT_MARKER), JSON.stringify({ rootId: drive.rootId }));
  const index = new SyncIndex(join(dir, 'index.sqlite'));
  const syncApi = syncApiOf(api);
  return {
    name, folder, api, index, wire,
    sync: (opts: Partial<SyncOptions> = {}) => syncOnce(syncApi, index, { folder, deviceName: name, now: NOW, ...opts }),
    listing: () => listFolder(folder),
    async write(path: string, content: string | Buffer) {
      await mkdir(join(folder, path, '..'), { recursive: true });
      await writeFile(join(folder, path), content);
    },
    read: (path: string) => readFile(join(folder, path), 'utf8'),
    async close() {
      index.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Every path in the drive ("dir/" for folders), sorted. */
async function remotePaths(api: ApiClient): Promise<string[]> {
  const { rootId } = await api.drive();
  const items = await api.listTree(rootId);
  const byId = new Map(items.map((i) => [i.id, i]));
  const path = (id: string): string => {
    const i = byId.get(id)!;
    return i.parentId && byId.has(i.parentId) ? `${path(i.parentId)}/${i.name}` : i.name;
  };
  return items.map((i) => path(i.id) + (i.kind === 'folder' ? '/' : '')).sort();
}

/** Every name under `dir` as the file system spells it, recursively, including hidden ones. */
async function rawNames(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}

/** A run whose download failed its hash check: it either stops with that error or reports the step as not done. */
async function refusedDownload(run: Promise<SyncReport>): Promise<void> {
  const r = await run.then((x) => x, (e: Error) => e);
  if (r instanceof Error) assert.match(r.message, /download of .* does not match its content hash/);
  else assert.ok(r.skipped.some((x) => x.op.side === 'local' && x.op.type === 'write') && r.downloaded === 0, `the download is not counted as done: ${JSON.stringify(r.skipped)}`);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const problemsOf = (r: SyncReport | { problems: SyncReport['problems'] }) => Object.fromEntries(r.problems.map((p) => [p.path, p.message]));

describe('edge cases over a real server and real folders', () => {
  let s: TestServer;
  const clients: TestClient[] = [];
  let n = 0;
  /** A fresh user with a laptop (instrumented) and a phone. */
  const pair = async (opts: { quotaBytes?: number } = {}) => {
    const user = `edge${++n}`;
    await s.server.coffer.services.users.create({ username: user, password: TEST_PASSWORD, quotaBytes: opts.quotaBytes });
    const laptop = await startWired(s.url, user, 'laptop');
    const phone = await startClient(s.url, user, TEST_PASSWORD, 'phone');
    clients.push(laptop, phone);
    return { user, laptop, phone };
  };
  before(async () => { s = await startTestServer(); });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await s?.close();
  });

  it('a name in NFD here is one item in NFC on the server, and changes come back to the same local file', async () => {
    const { laptop, phone } = await pair();
    const nfdFile = 'Cafe\u0301 menu.txt';
    const nfdDir = 'Re\u0301sume\u0301';
    await laptop.write(nfdFile, 'menu v1');
    await laptop.write(`${nfdDir}/cv.txt`, 'cv');
    const first = await laptop.sync();
    assert.equal(first.uploaded, 2);
    assert.deepEqual(first.problems, []);
    const server = await remotePaths(laptop.api);
    assert.deepEqual(server, ['Caf\u00e9 menu.txt', 'R\u00e9sum\u00e9/', 'R\u00e9sum\u00e9/cv.txt'], 'stored once, in NFC');
    assert.equal((await laptop.sync()).rounds, 0, 'not uploaded again, not duplicated');
    await phone.sync();
    assert.deepEqual(await phone.listing(), ['Caf\u00e9 menu.txt=menu v1', 'R\u00e9sum\u00e9/', 'R\u00e9sum\u00e9/cv.txt=cv']);
    // An edit elsewhere lands in the NFD-named file; no NFC twin appears.
    await phone.write('Caf\u00e9 menu.txt', 'menu v2');
    await phone.sync();
    const down = await laptop.sync();
    assert.equal(down.downloaded, 1);
    assert.deepEqual(await rawNames(laptop.folder), ['.coffer-root', nfdFile, nfdDir, `${nfdDir}/cv.txt`].sort());
    assert.equal(await laptop.read(nfdFile), 'menu v2');
    // And back.
    await laptop.write(nfdFile, 'menu v3');
    assert.equal((await laptop.sync()).uploaded, 1);
    await phone.sync();
    assert.equal(await phone.read('Caf\u00e9 menu.txt'), 'menu v3');
    assert.deepEqual(await remotePaths(laptop.api), server);
  });

  it('two names differing only in Unicode form: the synced one (else the NFC one) syncs, the other is reported, neither is touched', async () => {
    const { laptop } = await pair();
    const nfc = 'Caf\u00e9.txt';
    const nfd = 'Cafe\u0301.txt';
    await laptop.write(nfc, 'synced first');
    await laptop.sync();
    // The NFD twin sorts first, but the synced file keeps the name.
    await laptop.write(nfd, 'the twin');
    // Both new at once, in a folder: the NFC spelling is the one synced.
    await laptop.write(`both/${nfd}`, 'nfd, new');
    await laptop.write(`both/${nfc}`, 'nfc, new');
    const r = await laptop.sync();
    const problems = problemsOf(r);
    assert.deepEqual(Object.keys(problems).sort(), [nfd, `both/${nfd}`].sort());
    for (const m of Object.values(problems)) assert.match(m, /another item in this folder \(".*"\) has the same name in another Unicode form \(NFC\/NFD\).*Rename one of them/);
    assert.deepEqual(await remotePaths(laptop.api), ['both/', `both/${nfc}`, nfc].sort());
    const web = await s.signIn(`edge${n}`);
    assert.equal(await (await web.fetch(`/api/v1/content/${encodeURIComponent(nfc)}`)).text(), 'synced first');
    assert.equal(await (await web.fetch(`/api/v1/content/both/${encodeURIComponent(nfc)}`)).text(), 'nfc, new');
    // Nothing lost, nothing renamed.
    assert.equal(await laptop.read(nfc), 'synced first');
    assert.equal(await laptop.read(nfd), 'the twin');
    assert.equal(await laptop.read(`both/${nfd}`), 'nfd, new');
    assert.equal(await laptop.read(`both/${nfc}`), 'nfc, new');
    assert.equal((await laptop.sync()).rounds, 0, 'reported, not retried');
    // Renamed by the user: now it syncs.
    await rename(join(laptop.folder, nfd), join(laptop.folder, 'Cafe\u0301 2.txt'));
    const fixed = await laptop.sync();
    assert.deepEqual(Object.keys(problemsOf(fixed)), [`both/${nfd}`]);
    assert.ok((await remotePaths(laptop.api)).includes('Caf\u00e9 2.txt'));
  });

  it('a case-only rename travels as a rename, both ways', async () => {
    const { laptop, phone } = await pair();
    await laptop.write('Report.txt', 'report');
    await laptop.write('Docs/a.txt', 'a');
    await laptop.sync();
    await phone.sync();
    const idOf = async (name: string) => (await laptop.api.listChildren((await laptop.api.drive()).rootId)).find((i) => i.name === name)?.id;
    const reportId = await idOf('Report.txt');
    await rename(join(laptop.folder, 'Report.txt'), join(laptop.folder, 'report.txt'));
    const up = await laptop.sync();
    assert.deepEqual([up.moved, up.uploaded, up.deleted], [1, 0, 0]);
    assert.equal(await idOf('report.txt'), reportId, 'the same item, renamed');
    await phone.sync();
    assert.deepEqual(await phone.listing(), ['Docs/', 'Docs/a.txt=a', 'report.txt=report']);
    // The other way, to a client on a case-insensitive file system (as on macOS or Windows).
    await rename(join(phone.folder, 'Docs'), join(phone.folder, 'docs'));
    await phone.sync();
    const down = await laptop.sync({ caseInsensitive: true });
    assert.deepEqual([down.moved, down.downloaded, down.deleted], [1, 0, 0]);
    assert.deepEqual(await laptop.listing(), ['docs/', 'docs/a.txt=a', 'report.txt=report']);
    assert.equal((await laptop.sync({ caseInsensitive: true })).rounds, 0);
  });

  it('names that differ only in case on the server reach a case-insensitive device as two files, none lost', async () => {
    const { laptop, phone } = await pair();
    await laptop.write('Notes.txt', 'upper');
    await laptop.write('notes.txt', 'lower');
    await laptop.write('Photos/a.jpg', 'a');
    await laptop.write('photos/b.jpg', 'b');
    await laptop.sync();
    // The phone's file system here is case-sensitive; the flag makes its engine plan as one that is not would.
    const down = await phone.sync({ caseInsensitive: true });
    assert.deepEqual(down.problems, []);
    const listing = await phone.listing();
    const folded = listing.map((l) => l.split('=')[0].toLowerCase());
    assert.equal(new Set(folded).size, folded.length, `no two local names differ only in case: ${listing.join(', ')}`);
    for (const content of ['upper', 'lower', 'a', 'b']) assert.ok(listing.some((l) => l.endsWith(`=${content}`)), `${content} is kept: ${listing.join(', ')}`);
    assert.equal((await phone.sync({ caseInsensitive: true })).rounds, 0, 'settled');
    await laptop.sync();
    const server = await remotePaths(laptop.api);
    console.log(`case twins: phone ${listing.join(', ')}; server ${server.join(', ')}`);
    assert.deepEqual((await laptop.listing()).map((l) => l.split('=')[1]).filter(Boolean).sort(), ['a', 'b', 'lower', 'upper']);
  });

  it('names the server refuses are reported with its reason, never sent, and the rest syncs', async () => {
    const { user, laptop, phone } = await pair();
    await laptop.write('plan.txt', 'the plan');
    await laptop.sync();
    await rename(join(laptop.folder, 'plan.txt'), join(laptop.folder, 'plan?.txt'));
    await laptop.write('aux.txt', 'reserved');
    await laptop.write('a:b', 'colon');
    await laptop.write('trailing.', 'dot');
    await laptop.write('bad|dir/inner.txt', 'inside a refused folder');
    await writeFile(Buffer.concat([Buffer.from(`${laptop.folder}/latin1-`), Buffer.from([0xe9]), Buffer.from('.txt')]), 'not UTF-8');
    await laptop.write('ok.txt', 'fine');
    await laptop.write('sub/fine.txt', 'fine too');
    const r = await laptop.sync();
    const p = problemsOf(r);
    assert.deepEqual(Object.keys(p).sort(), ['a:b', 'aux.txt', 'bad|dir', 'latin1-\ufffd.txt', 'plan?.txt', 'trailing.']);
    assert.match(p['aux.txt'], /server does not accept this name: This name is reserved on Windows \(CON, PRN, AUX, NUL, COM1-9, LPT1-9\)\. Rename it/);
    assert.match(p['a:b'], /cannot contain control characters or any of < > : " \/ \\ \| \? \*/);
    assert.match(p['trailing.'], /cannot end with a dot or a space/);
    assert.match(p['bad|dir'], /cannot contain/);
    assert.match(p['latin1-\ufffd.txt'], /not valid UTF-8/);
    assert.match(p['plan?.txt'], /cannot contain/);
    // The rest synced; the synced file renamed to a refused name is kept on the server, not deleted.
    assert.deepEqual(await remotePaths(laptop.api), ['ok.txt', 'plan.txt', 'sub/', 'sub/fine.txt']);
    assert.equal(r.pendingLocal, 0, 'a refused name is not a pending upload: it can never be one until renamed');
    // The server itself refuses these names too (the client's check is the server's rule).
    const web = await s.signIn(user);
    for (const name of ['aux.txt', 'a:b', 'trailing.']) {
      const res = await web.json(`/api/v1/content/${encodeURIComponent(name)}`, { method: 'PUT', body: 'x' });
      assert.equal(res.status, 400, name);
      assert.equal(res.body.error.code, 'INVALID_NAME');
    }
    // Not retried: the next run sends nothing, and still reports them (status too).
    laptop.wire.requests.length = 0;
    const again = await laptop.sync();
    assert.equal(again.rounds, 0);
    assert.deepEqual(laptop.wire.requests.filter((q) => !q.startsWith('GET ') && q !== 'PUT /api/v1/device/pending-changes'), [], 'no upload, move or delete was tried');
    assert.equal(again.problems.length, 6);
    assert.equal(laptop.index.problems().length, 6, 'remembered for `coffer status`');
    const status = await previewSync(syncApiOf(laptop.api), laptop.index, { folder: laptop.folder, deviceName: 'laptop' });
    assert.equal(status.problems.length, 6);
    // Nothing was touched here, and the phone got only what the server holds.
    assert.equal(await readFile(join(laptop.folder, 'plan?.txt'), 'utf8'), 'the plan');
    assert.equal(await readFile(join(laptop.folder, 'bad|dir/inner.txt'), 'utf8'), 'inside a refused folder');
    await phone.sync();
    assert.deepEqual(await phone.listing(), ['ok.txt=fine', 'plan.txt=the plan', 'sub/', 'sub/fine.txt=fine too']);
    // Renamed to a name the server takes: the same item moves.
    await rename(join(laptop.folder, 'plan?.txt'), join(laptop.folder, 'plan-2.txt'));
    const fixed = await laptop.sync();
    assert.deepEqual([fixed.moved, fixed.uploaded], [1, 0]);
    assert.ok((await remotePaths(laptop.api)).includes('plan-2.txt'));
  });

  it('a symbolic link is reported and not followed', async () => {
    const { laptop, phone } = await pair();
    const outside = await mkdtemp(join(tmpdir(), 'coffer-outside-'));
    try {
      await writeFile(join(outside, 'secret.txt'), 'outside the folder');
      await symlink(join(outside, 'secret.txt'), join(laptop.folder, 'link-to-file'));
      await symlink(outside, join(laptop.folder, 'link-to-dir'));
      await symlink('/nonexistent/coffer', join(laptop.folder, 'dangling'));
      await laptop.write('real.txt', 'real');
      const r = await laptop.sync();
      assert.deepEqual(Object.keys(problemsOf(r)).sort(), ['dangling', 'link-to-dir', 'link-to-file']);
      for (const m of Object.values(problemsOf(r))) assert.match(m, /symbolic links are not synced/);
      assert.deepEqual(await remotePaths(laptop.api), ['real.txt']);
      assert.ok((await lstat(join(laptop.folder, 'link-to-dir'))).isSymbolicLink(), 'left alone');
      await phone.sync();
      assert.deepEqual(await phone.listing(), ['real.txt=real']);
      assert.equal((await laptop.sync()).rounds, 0);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('an empty file (and an empty folder) syncs both ways', async () => {
    const { laptop, phone } = await pair();
    await laptop.write('empty.txt', '');
    await mkdir(join(laptop.folder, 'empty-dir'));
    await laptop.sync();
    const item = (await laptop.api.listChildren((await laptop.api.drive()).rootId)).find((i) => i.name === 'empty.txt')!;
    assert.equal(item.size, 0);
    assert.equal(item.contentHash, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    await phone.sync();
    assert.deepEqual(await phone.listing(), ['empty-dir/', 'empty.txt=']);
    await phone.write('empty.txt', 'not empty any more');
    await phone.sync();
    await laptop.sync();
    assert.equal(await laptop.read('empty.txt'), 'not empty any more');
    await laptop.write('empty.txt', '');
    await laptop.sync();
    await phone.sync();
    assert.equal(await phone.read('empty.txt'), '');
  });

  it('a 20 MiB file edited in the middle re-sends only the chunks around the edit', async () => {
    const { laptop, phone } = await pair();
    const bytes = randomBytes(20 * 1024 * 1024);
    await laptop.write('big.bin', bytes);
    await laptop.sync();
    const firstMissing = laptop.wire.missing;
    const firstBytes = laptop.wire.chunkBytes;
    assert.ok(firstMissing >= 5, `the whole file went up in chunks (${firstMissing})`);
    assert.ok(firstBytes >= bytes.length, `${firstBytes} bytes sent`);
    // 4 KiB overwritten at 10 MiB.
    const edit = randomBytes(4096);
    edit.copy(bytes, 10 * 1024 * 1024);
    const fh = await open(join(laptop.folder, 'big.bin'), 'r+');
    await fh.write(edit, 0, edit.length, 10 * 1024 * 1024);
    await fh.close();
    laptop.wire.missing = 0;
    laptop.wire.missingHashes = [];
    laptop.wire.chunkBytes = 0;
    const requestsBefore = laptop.wire.requests.length;
    const r = await laptop.sync();
    assert.equal(r.uploaded, 1);
    const resent = new Set(laptop.wire.missingHashes).size;
    if (laptop.wire.missing > resent || resent > 3) {
      // Where the re-sent chunks are, and what was asked: chunks far from the edit mean the server lost some, not the chunker.
      const at = new Map<string, number>();
      let off = 0;
      for (const n of cutAll(bytes)) { at.set(sha256(bytes.subarray(off, off + n)), off); off += n; }
      console.log(`# re-sent chunks at MiB ${laptop.wire.missingHashes.map((h) => ((at.get(h) ?? -1) / 2 ** 20).toFixed(2)).join(', ')} (edit at 10.00); requests: ${laptop.wire.requests.slice(requestsBefore).join(', ')}`);
    }
    console.log(`# 20 MiB file: first upload ${firstMissing} chunks (${(firstBytes / 2 ** 20).toFixed(1)} MiB); after a 4 KiB edit ${laptop.wire.missing} chunk(s) (${(laptop.wire.chunkBytes / 2 ** 20).toFixed(2)} MiB)`);
    // Distinct chunks: a round retried after a failed request asks `missing` again and is told the same chunk.
    assert.ok(resent >= 1 && resent <= 3, `${resent} chunks re-sent`);
    assert.ok(laptop.wire.chunkBytes < 3 * 4 * 1024 * 1024 && laptop.wire.chunkBytes < bytes.length / 4, `${laptop.wire.chunkBytes} bytes re-sent`);
    await phone.sync();
    assert.equal(sha256(await readFile(join(phone.folder, 'big.bin'))), sha256(bytes), 'the other device has exactly the edited bytes');
  });

  it('a download that fails its hash check leaves nothing under the real name and no temp file', async () => {
    const { laptop, phone } = await pair();
    await phone.write('existing.txt', 'version 1');
    await phone.sync();
    await laptop.sync();
    // A new file, with the bytes corrupted on the way.
    await phone.write('new.bin', randomBytes(300_000));
    await phone.sync();
    laptop.wire.corruptDownloads = true;
    await refusedDownload(laptop.sync());
    assert.deepEqual(await rawNames(laptop.folder), ['.coffer-root', 'existing.txt'], 'no new.bin, no .coffer-dl-* file');
    // A new version of an existing file, corrupted: the old content stays.
    laptop.wire.corruptDownloads = false;
    await laptop.sync();
    await phone.write('existing.txt', 'version 2');
    await phone.sync();
    laptop.wire.corruptDownloads = true;
    await refusedDownload(laptop.sync());
    assert.equal(await laptop.read('existing.txt'), 'version 1');
    assert.deepEqual(await rawNames(laptop.folder), ['.coffer-root', 'existing.txt', 'new.bin']);
    // Honest bytes again: it arrives.
    laptop.wire.corruptDownloads = false;
    const ok = await laptop.sync();
    assert.equal(ok.downloaded, 1);
    assert.equal(await laptop.read('existing.txt'), 'version 2');
    assert.deepEqual(await laptop.listing(), await phone.listing());
  });

  it('download temp files left by a crash: status reports the stale ones, the next sync removes them, a fresh one is left alone', async () => {
    const { laptop } = await pair();
    await laptop.write('docs/a.txt', 'a');
    await laptop.sync();
    const stale = ['.coffer-dl-0123456789ab', 'docs/.coffer-dl-ba9876543210'];
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    for (const t of stale) {
      await writeFile(join(laptop.folder, t), 'half a download');
      await utimes(join(laptop.folder, t), twoHoursAgo, twoHoursAgo);
    }
    await writeFile(join(laptop.folder, 'docs/.coffer-dl-inprogress'), 'a download running now');
    const status = await previewSync(syncApiOf(laptop.api), laptop.index, { folder: laptop.folder, deviceName: 'laptop' });
    assert.deepEqual(status.staleTemps.sort(), stale.sort());
    assert.equal(status.upToDate, true, 'temp files are not changes');
    assert.ok((await rawNames(laptop.folder)).includes(stale[0]), 'status changes nothing');
    const r = await laptop.sync();
    assert.equal(r.uploaded, 0, 'temp files are never uploaded');
    assert.deepEqual(await rawNames(laptop.folder), ['.coffer-root', 'docs', 'docs/.coffer-dl-inprogress', 'docs/a.txt']);
    assert.deepEqual(await remotePaths(laptop.api), ['docs/', 'docs/a.txt']);
  });

  it('a file the server refuses (quota) is reported once per run, not retried each round; the pending count reaches the devices list', async () => {
    const { user, laptop } = await pair({ quotaBytes: 64 * 1024 });
    await laptop.write('small.txt', 'fits');
    await laptop.write('big.bin', randomBytes(100 * 1024));
    const r = await laptop.sync();
    assert.equal(r.uploaded, 1, 'the rest syncs');
    assert.deepEqual(r.problems.map((p) => [p.path, p.kind]), [['big.bin', 'rejected']]);
    assert.match(r.problems[0].message, /QUOTA_EXCEEDED/);
    const commits = laptop.wire.requests.filter((q) => /\/commit(-batch)?$/.test(q));
    assert.equal(commits.length, 1, `one attempt in this run, not one per round: ${commits.join(', ')}`);
    assert.equal(r.pendingLocal, 1);
    const web = await s.signIn(user);
    const pendingOf = async () => (await web.json<{ devices: { name: string; pendingChanges: number | null }[] }>('/api/v1/devices')).body.devices.find((d) => d.name === 'laptop')?.pendingChanges;
    assert.equal(await pendingOf(), 1, 'GET /api/v1/devices shows what this device could not upload');
    // More room: the next run uploads it and reports nothing pending.
    await s.server.coffer.services.users.setQuota(user, 10 * 1024 * 1024);
    const later = await laptop.sync();
    assert.equal(later.uploaded, 1);
    assert.equal(later.pendingLocal, 0);
    assert.equal(await pendingOf(), 0);
  });

  it('`status` reading the change feed first does not hide a change from the next sync', async () => {
    const { laptop, phone } = await pair();
    await laptop.write('a.txt', 'a');
    await laptop.sync(); // ends in agreement: the next run may skip planning while nothing new arrives
    await phone.sync();
    await phone.write('from-phone.txt', 'new');
    await phone.sync();
    const status = await previewSync(syncApiOf(laptop.api), laptop.index, { folder: laptop.folder, deviceName: 'laptop' });
    assert.equal(status.download.files, 1);
    const r = await laptop.sync();
    assert.equal(r.downloaded, 1);
    assert.equal(await laptop.read('from-phone.txt'), 'new');
  });
});

describe('edge cases through the coffer command, as an unprivileged user', () => {
  let s: TestServer;
  let work: string;
  let home: string;
  let folder: string;
  let phone: TestClient;
  // chmod 000 means nothing to root (CAP_DAC_OVERRIDE): run the client as "nobody" then.
  const asRoot = process.getuid?.() === 0;
  const uid = asRoot ? 65534 : process.getuid!();
  const gid = asRoot ? 65534 : process.getgid!();

  const coffer = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], uid, gid,
      env: childEnv({ COFFER_CLIENT_HOME: home, COFFER_PASSWORD: TEST_PASSWORD, HOME: home }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code] = (await once(child, 'close')) as [number | null];
    clearTimeout(timer);
    return { code, stdout, stderr };
  };
  const json = async (args: string[]) => {
    const r = await coffer([...args, '--json']);
    assert.equal(r.code, 0, `coffer ${args.join(' ')}\n${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  /** Writes a file in the folder as the client's user would. */
  const put = async (path: string, content: string) => {
    const abs = join(folder, path);
    await mkdir(dirname(abs), { recursive: true });
    await writeFile(abs, content);
    for (let p = abs; p !== folder; p = dirname(p)) await chown(p, uid, gid);
  };
  const device = 'locked-box';

  before(async () => {
    s = await startTestServer();
    await s.server.coffer.services.users.create({ username: 'locked', password: TEST_PASSWORD });
    work = await mkdtemp(join(tmpdir(), 'coffer-edge-cli-'));
    await chmod(work, 0o755);
    home = join(work, 'home');
    folder = join(work, 'Coffer');
    for (const d of [home, folder]) {
      await mkdir(d);
      await chown(d, uid, gid);
    }
    const r = await coffer(['login', s.url, '--folder', folder, '--username', 'locked', '--device-name', device]);
    assert.equal(r.code, 0, r.stderr);
    phone = await startClient(s.url, 'locked', TEST_PASSWORD, 'phone');
  });
  after(async () => {
    await phone?.close();
    await s?.close();
    if (work) {
      await chmod(join(work, 'Coffer', 'notes'), 0o755).catch(() => {});
      await rm(work, { recursive: true, force: true });
    }
  });

  it('an unreadable file or folder is reported by status and sync, never deleted on the server, counted as pending, and synced once readable', async () => {
    await put('doc.txt', 'v1');
    await put('notes/a.txt', 'note');
    await put('plain.txt', 'plain');
    assert.equal((await json(['sync'])).uploaded, 3);
    await put('doc.txt', 'v2, written while locked');
    await chmod(join(folder, 'doc.txt'), 0o000);
    await put('secret.txt', 'new and locked');
    await chmod(join(folder, 'secret.txt'), 0o000);
    await chmod(join(folder, 'notes'), 0o000);
    const status = await json(['status']);
    const shown = problemsOf(status);
    assert.deepEqual(Object.keys(shown).sort(), ['doc.txt', 'notes', 'secret.txt']);
    assert.match(shown['doc.txt'], /cannot read this file \(permission denied\); the synced version is left as it is until it can be read/);
    assert.match(shown['secret.txt'], /cannot read this file \(permission denied\); it is not uploaded until it can be read/);
    assert.match(shown.notes, /cannot list this folder \(permission denied\)/);
    assert.equal(status.upToDate, false);
    assert.equal(status.upload.deletes, 0, 'nothing unreadable reads as deleted');
    const text = await coffer(['status']);
    assert.match(text.stdout, /not synced: doc\.txt: cannot read this file/);
    const report = await json(['sync']);
    assert.deepEqual(Object.keys(problemsOf(report)).sort(), ['doc.txt', 'notes', 'secret.txt']);
    assert.equal(report.deleted, 0);
    assert.equal(report.pendingLocal, 3);
    assert.deepEqual(await remotePaths(phone.api), ['doc.txt', 'notes/', 'notes/a.txt', 'plain.txt'], 'nothing deleted on the server, nothing new');
    const web = await s.signIn('locked');
    assert.equal(await (await web.fetch('/api/v1/content/doc.txt')).text(), 'v1');
    assert.equal((await web.json<{ items: unknown[] }>('/api/v1/trash')).body.items.length, 0);
    const pendingOf = async () => (await web.json<{ devices: { name: string; pendingChanges: number | null }[] }>('/api/v1/devices')).body.devices.find((d) => d.name === device)?.pendingChanges;
    assert.equal(await pendingOf(), 3, 'the devices list shows what this device could not upload');
    // Readable again: it all goes up.
    await chmod(join(folder, 'doc.txt'), 0o644);
    await chmod(join(folder, 'secret.txt'), 0o644);
    await chmod(join(folder, 'notes'), 0o755);
    const fixed = await json(['sync']);
    assert.equal(fixed.uploaded, 2);
    assert.equal(fixed.pendingLocal, 0);
    assert.deepEqual(fixed.problems, []);
    assert.equal(await (await web.fetch('/api/v1/content/doc.txt')).text(), 'v2, written while locked');
    assert.equal(await (await web.fetch('/api/v1/content/secret.txt')).text(), 'new and locked');
    assert.equal(await pendingOf(), 0);
  });

  it('conflict copies are listed by status across runs until they are gone', async () => {
    await phone.sync();
    await phone.write('plain.txt', 'edited on the phone');
    await phone.sync();
    await put('plain.txt', 'edited on the box');
    const day = new Date().toISOString().slice(0, 10);
    const copy = `plain (conflict from ${device} ${day}).txt`;
    const report = await json(['sync']);
    assert.deepEqual(report.conflicts, [copy], 'the report names the copy, not the original');
    assert.equal(await readFile(join(folder, copy), 'utf8'), 'edited on the box');
    assert.equal(await readFile(join(folder, 'plain.txt'), 'utf8'), 'edited on the phone');
    const listed = (st: { unresolvedConflicts: { path: string; original: string }[] }) => st.unresolvedConflicts.map((c) => [c.path, c.original]);
    assert.deepEqual(listed(await json(['status'])), [[copy, 'plain.txt']]);
    // Another run, another process: still listed (and in the text output).
    assert.equal((await json(['sync'])).rounds, 0);
    const text = await coffer(['status']);
    assert.match(text.stdout, new RegExp(`conflict copy: ${copy.replace(/[()]/g, '\\$&')} \\(your version of plain\\.txt`));
    // Resolved: the user deleted the copy.
    await unlink(join(folder, copy));
    await json(['sync']);
    assert.deepEqual(listed(await json(['status'])), []);
  });
});
