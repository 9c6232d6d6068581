import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, open, readdir, readFile, readlink, rm, stat, utimes, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readAll, runBlobStoreConformance } from './blob-store.conformance.ts';
import { BlobNotFoundError } from './blob-store.ts';
import { LocalBlobStore } from './local.blob-store.ts';

const MiB = 1 << 20;

runBlobStoreConformance('local', async () => {
  const root = await mkdtemp(join(tmpdir(), 'coffer-blobs-'));
  return { store: new LocalBlobStore(root), cleanup: () => rm(root, { recursive: true, force: true }) };
}, { packs: true });

describe('LocalBlobStore specifics', () => {
  let root: string;
  let store: LocalBlobStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-blobs-'));
    store = new LocalBlobStore(root);
    await store.init();
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  const tmpFiles = () => readdir(join(root, '.tmp'));

  it('keeps each blob at <root>/<key> and hands out that path', async () => {
    await store.put('ab/cd/owner-1/blob', Buffer.from('hello'));
    const path = join(root, 'ab', 'cd', 'owner-1', 'blob');
    assert.equal(store.localPath('ab/cd/owner-1/blob'), path);
    assert.equal(await readFile(path, 'utf8'), 'hello');
    assert.equal(store.capabilities.localFiles, true);
    assert.deepEqual(await tmpFiles(), []);
  });

  it('reserves .tmp/ for its own temp files', async () => {
    await assert.rejects(store.put('.tmp/x', Buffer.from('x')), /reserved/);
    await assert.rejects(store.get('.tmp'), /reserved/);
  });

  it('reads with a 1 MiB buffer', async () => {
    await store.put('k', Buffer.alloc(10));
    const stream = await store.get('k');
    assert.equal(stream.readableHighWaterMark, MiB);
    await readAll(stream);
  });

  it('a write failing midway leaves the old blob and no temp file', async (t) => {
    const old = Buffer.from('old content');
    await store.put('k/a', old);
    const probe = await open(root, 'r');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const write = proto.write;
    // The first 1 MiB slice lands on disk, the next write fails.
    t.mock.method(proto, 'write', function (this: FileHandle, ...args: Parameters<FileHandle['write']>) {
      if (args[1] !== 0) return Promise.reject(Object.assign(new Error('injected EIO'), { code: 'EIO' }));
      return (write as (...a: unknown[]) => unknown).apply(this, args);
    });
    await assert.rejects(store.put('k/a', Buffer.alloc(3 * MiB, 1)), /injected EIO/);
    await assert.rejects(store.put('k/new', Buffer.alloc(3 * MiB, 1)), /injected EIO/);
    t.mock.restoreAll();
    assert.ok((await readAll(await store.get('k/a'))).equals(old));
    await assert.rejects(store.get('k/new'), BlobNotFoundError);
    assert.deepEqual(await tmpFiles(), []);
  });

  it('hands the buffer back before the fsync, and an fsync that fails leaves no blob and no temp file', async (t) => {
    const probe = await open(root, 'r');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const events: string[] = [];
    const sync = proto.sync;
    let failSync = false;
    t.mock.method(proto, 'sync', function (this: FileHandle) {
      events.push('sync');
      if (failSync) return Promise.reject(Object.assign(new Error('injected EIO on fsync'), { code: 'EIO' }));
      return (sync as () => Promise<void>).apply(this);
    });
    await store.put('k/ok', Buffer.alloc(MiB, 2), { onWritten: () => events.push('written') });
    assert.deepEqual(events.slice(0, 2), ['written', 'sync'], 'the buffer is released before the file is synced');
    failSync = true;
    let written = 0;
    await assert.rejects(store.put('k/bad', Buffer.alloc(MiB, 3), { onWritten: () => { written++; } }), /injected EIO on fsync/);
    t.mock.restoreAll();
    assert.equal(written, 1);
    await assert.rejects(store.get('k/bad'), BlobNotFoundError);
    assert.deepEqual(await tmpFiles(), []);
  });

  it('a pack whose write, fsync or key fails is not stored and leaves no temp file; an open one survives cleanupAbandoned', async (t) => {
    const probe = await open(root, 'r');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const { write, sync } = proto;
    let fail: 'write' | 'sync' | null = null;
    const eio = (what: string) => Promise.reject(Object.assign(new Error(`injected EIO on ${what}`), { code: 'EIO' }));
    t.mock.method(proto, 'write', function (this: FileHandle, ...args: unknown[]) {
      return fail === 'write' && args[3] !== 0 ? eio('write') : (write as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    });
    t.mock.method(proto, 'sync', function (this: FileHandle) {
      return fail === 'sync' ? eio('fsync') : (sync as () => Promise<void>).apply(this);
    });
    for (const what of ['write', 'sync'] as const) {
      fail = what;
      const pack = store.openPack();
      const first = pack.append(Buffer.alloc(MiB, 1));
      const second = pack.append(Buffer.alloc(MiB, 2)); // at offset 1 MiB: its write fails when writes do
      await first.written;
      await second.written; // resolves even for a failed write: the seal reports it
      await assert.rejects(pack.seal(`pk/${what}`), new RegExp(`injected EIO on ${what === 'sync' ? 'fsync' : 'write'}`));
      fail = null;
      assert.equal(await store.stat(`pk/${what}`), null, `${what}: nothing stored`);
      assert.deepEqual(await tmpFiles(), [], `${what}: temp file dropped`);
      await pack.abort(); // after a failed seal: nothing left to do
    }
    t.mock.restoreAll();

    const bad = store.openPack();
    bad.append(Buffer.from('x'));
    await assert.rejects(bad.seal('.tmp/escape'), /reserved/);
    assert.deepEqual(await tmpFiles(), [], 'an invalid key drops the temp file too');

    const open1 = store.openPack();
    await open1.append(Buffer.alloc(1000, 7)).written;
    assert.equal((await tmpFiles()).length, 1);
    assert.equal(await store.cleanupAbandoned(), 0, 'a pack this process is filling is not abandoned');
    await open1.seal('pk/late');
    assert.deepEqual(await store.stat('pk/late'), { size: 1000 });
    assert.deepEqual(await tmpFiles(), []);
  });

  const openFoldersUnderRoot = async () => {
    let n = 0;
    for (const fd of await readdir('/proc/self/fd')) {
      const target = await readlink(join('/proc/self/fd', fd)).catch(() => '');
      if (target.startsWith(root) && !target.startsWith(join(root, '.tmp'))) n++;
    }
    return n;
  };

  it('a folder whose fsync fails is closed, not left open for the garbage collector', async (t) => {
    const probe = await open(root, 'r');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const sync = proto.sync;
    t.mock.method(proto, 'sync', async function (this: FileHandle) {
      if ((await this.stat()).isDirectory()) throw Object.assign(new Error('injected EIO on a folder fsync'), { code: 'EIO' });
      return (sync as () => Promise<void>).apply(this);
    });
    await assert.rejects(store.put('shard/k', Buffer.from('x')), /injected EIO on a folder fsync/);
    t.mock.restoreAll();
    await new Promise((r) => setImmediate(r));
    assert.equal(await openFoldersUnderRoot(), 0, 'the folder handle was closed');
    await store.put('shard/k2', Buffer.from('y')); // and the next put opens it again
    assert.equal((await readAll(await store.get('shard/k2'))).toString(), 'y');
  });

  it('keeps at most 64 folders open for fsync, closes them on close, and recovers when a folder is removed under it', async () => {
    const keys = Array.from({ length: 300 }, (_, i) => `d${i % 150}/k${i}`);
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
    for (const k of keys) assert.equal((await readAll(await store.get(k))).toString(), k);
    const open = await openFoldersUnderRoot();
    assert.ok(open > 0 && open <= 64, `${open} folders kept open`);
    await rm(join(root, 'd7'), { recursive: true });
    await store.put('d7/again', Buffer.from('again'));
    assert.equal((await readAll(await store.get('d7/again'))).toString(), 'again');
    await store.close();
    assert.equal(await openFoldersUnderRoot(), 0, 'close() closes every folder handle');
  });

  it('a writer killed midway leaves only a temp file, which cleanupAbandoned removes', async () => {
    // The child stalls in its second write, so SIGKILL lands while the blob is half written.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
        import { open } from 'node:fs/promises';
        import { LocalBlobStore } from ${JSON.stringify(new URL('./local.blob-store.ts', import.meta.url).href)};
        const probe = await open(process.env.ROOT, 'r');
        const proto = Object.getPrototypeOf(probe);
        await probe.close();
        const write = proto.write;
        let calls = 0;
        proto.write = function (...args) {
          if (++calls === 2) {
            setInterval(() => {}, 1000); // stay alive until the parent kills us
            process.stdout.write('stalled\\n');
            return new Promise(() => {});
          }
          return write.apply(this, args);
        };
        await new LocalBlobStore(process.env.ROOT).put('k/crash', Buffer.alloc(3 * 1024 * 1024, 7));
        `,
      ],
      { env: { ...process.env, ROOT: root }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    assert.equal(line.toString().trim(), 'stalled');
    child.kill('SIGKILL');
    const [, signal] = await once(child, 'exit');
    assert.equal(signal, 'SIGKILL');

    await assert.rejects(store.get('k/crash'), BlobNotFoundError);
    const [leftover] = await tmpFiles();
    assert.match(leftover, new RegExp(`^${child.pid}-`));
    assert.equal((await stat(join(root, '.tmp', leftover))).size, MiB, 'killed after its first slice');
    assert.equal(await store.cleanupAbandoned(), 1);
    assert.deepEqual(await tmpFiles(), []);
  });

  it('cleanupAbandoned removes temp files of dead or long-gone writers only', async () => {
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    try {
      await store.put('kept/blob', Buffer.from('committed'));
      const tmp = (name: string) => join(root, '.tmp', name);
      await writeFile(tmp(`${dead.pid}-aaaa`), 'partial');
      await writeFile(tmp(`${live.pid}-bbbb`), 'in progress');
      await writeFile(tmp(`${live.pid}-cccc`), 'stale');
      const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
      await utimes(tmp(`${live.pid}-cccc`), twoHoursAgo, twoHoursAgo);

      const listed = [];
      for await (const { key } of store.list('')) listed.push(key);
      assert.deepEqual(listed, ['kept/blob']);

      assert.equal(await store.cleanupAbandoned(), 2);
      assert.deepEqual(await tmpFiles(), [`${live.pid}-bbbb`]);
      assert.equal((await readAll(await store.get('kept/blob'))).toString(), 'committed');
    } finally {
      live.kill();
    }
  });
});
