/**
 * PackedBlobStore over a real LocalBlobStore: chunks written into a pack are
 * read back through their member keys (whole, by range, as a local file
 * offset), stat tells a cut-short pack, put and delete of a member do what
 * the contract says, and every other key passes through unchanged.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readAll } from './blob-store.conformance.ts';
import { BlobNotFoundError } from './blob-store.ts';
import { LocalBlobStore } from './local.blob-store.ts';
import { PackedBlobStore, packMemberKey, parsePackMember, storedBlobKey } from './packed.blob-store.ts';

describe('pack member keys', () => {
  it('name the pack, offset and size, and nothing else parses as one', () => {
    const key = packMemberKey('p/u1/pack.abc-0123', 4096, 17);
    assert.equal(key, 'p/u1/pack.abc-0123/4096-17');
    assert.deepEqual(parsePackMember(key), { pack: 'p/u1/pack.abc-0123', offset: 4096, size: 17 });
    assert.equal(storedBlobKey(key), 'p/u1/pack.abc-0123');
    for (const other of ['c/u1/ab/ab.1-2', 'i/u1/x.1-2', 'p/u1/pack.x', 'p/4096-17', 'p/u1/pack.x/12', 'p/u1/pack.x/a-1', 'x/p/u1/1-2']) {
      assert.equal(parsePackMember(other), null, other);
      assert.equal(storedBlobKey(other), other);
    }
    assert.throws(() => packMemberKey('c/u1/x', 0, 1), /not a pack key/);
  });
});

describe('PackedBlobStore over local disk', () => {
  let root: string;
  let local: LocalBlobStore;
  let store: PackedBlobStore;
  const a = randomBytes(300_000);
  const b = randomBytes(5);
  let keyA: string;
  let keyB: string;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'coffer-packed-'));
    local = new LocalBlobStore(root);
    store = new PackedBlobStore(local);
    await store.init();
    const pack = store.openPack!();
    const pa = pack.append(a);
    const pb = pack.append(b);
    await pack.seal('p/u1/pack.t1-00');
    keyA = packMemberKey('p/u1/pack.t1-00', pa.offset, a.length);
    keyB = packMemberKey('p/u1/pack.t1-00', pb.offset, b.length);
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('reads each member whole and by range, clamped to the member', async () => {
    assert.ok((await readAll(await store.get(keyA))).equals(a));
    assert.ok((await readAll(await store.get(keyB))).equals(b));
    assert.ok((await readAll(await store.get(keyA, { start: 1000, end: 1999 }))).equals(a.subarray(1000, 2000)));
    assert.ok((await readAll(await store.get(keyB, { start: 2, end: 1_000_000 }))).equals(b.subarray(2)), 'an end past the member stops at the member');
    assert.equal((await readAll(await store.get(keyB, { start: 5, end: 9 }))).length, 0, 'a start past the member yields nothing');
    assert.deepEqual(await store.stat(keyA), { size: a.length });
    assert.deepEqual(await store.stat(keyB), { size: b.length });
  });

  it('hands out the pack file with the member offset, which reads the member', async () => {
    const f = store.localFile(keyB)!;
    assert.equal(f.path, join(root, 'p', 'u1', 'pack.t1-00'));
    assert.equal(f.offset, a.length);
    const fh = await open(f.path, 'r');
    try {
      const buf = Buffer.alloc(b.length);
      await fh.read(buf, 0, b.length, f.offset);
      assert.ok(buf.equals(b));
    } finally {
      await fh.close();
    }
    assert.deepEqual(store.localFile('c/u1/ab/x.1'), { path: join(root, 'c', 'u1', 'ab', 'x.1'), offset: 0 });
  });

  it('a cut-short pack shows in stat; a missing one is BlobNotFoundError for its members', async () => {
    await truncate(join(root, 'p', 'u1', 'pack.t1-00'), a.length + 2);
    assert.deepEqual(await store.stat(keyB), { size: 2 });
    await truncate(join(root, 'p', 'u1', 'pack.t1-00'), 100);
    assert.deepEqual(await store.stat(keyB), { size: 0 });
    await local.delete('p/u1/pack.t1-00');
    assert.equal(await store.stat(keyA), null);
    await assert.rejects(store.get(keyA), BlobNotFoundError);
    await assert.rejects(store.get(keyB, { start: 9, end: 10 }), BlobNotFoundError);
  });

  it('refuses to put a member, leaves the pack when a member is deleted, lists packs not members', async () => {
    await assert.rejects(store.put(keyA, Buffer.from('x')), /written through its pack/);
    await store.delete(keyA);
    assert.ok((await readAll(await store.get(keyA))).equals(a), 'deleting a member does not touch the pack');
    const listed = [];
    for await (const x of store.list('p/')) listed.push(x);
    assert.deepEqual(listed, [{ key: 'p/u1/pack.t1-00', size: a.length + b.length }]);
    await store.delete('p/u1/pack.t1-00');
    assert.equal(await store.stat('p/u1/pack.t1-00'), null, 'the pack itself is deleted by its own key');
  });

  it('passes other keys through to the store it wraps', async () => {
    const data = randomBytes(1000);
    await store.put('c/u1/ab/x.1', data);
    assert.ok((await readAll(await local.get('c/u1/ab/x.1'))).equals(data));
    assert.ok((await readAll(await store.get('c/u1/ab/x.1', { start: 10, end: 19 }))).equals(data.subarray(10, 20)));
    await store.delete('c/u1/ab/x.1');
    assert.equal(await local.stat('c/u1/ab/x.1'), null);
  });
});
