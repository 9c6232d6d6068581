/**
 * One suite every BlobStore passes (like rclone's fstests), so a service tested
 * against MemoryBlobStore behaves the same on disk or S3.
 *
 * Each case gets a fresh store from `make`; the suite calls `init()` before the
 * case and `close()` then `cleanup()` after it. A skipped case must name why:
 * `skip: { '<case title>': 's3rver writes objects in place' }`. Stores that
 * build packs (`openPack`: local, memory) also run the pack cases (`packs: true`).
 *
 * A put that fails or dies midway cannot be provoked through the interface
 * alone, so each implementation's own tests cover it (local: injected write
 * error and a SIGKILLed writer).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { BlobNotFoundError, type BlobStore } from './blob-store.ts';

export type BlobStoreFactory = () => Promise<{ store: BlobStore; cleanup: () => Promise<void> }>;

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function listAll(store: BlobStore, prefix: string): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const { key, size } of store.list(prefix)) {
    assert.ok(!found.has(key), `list yielded ${key} twice`);
    found.set(key, size);
  }
  return found;
}

async function assertContent(store: BlobStore, key: string, expected: Uint8Array): Promise<void> {
  const got = await readAll(await store.get(key));
  assert.equal(got.length, expected.byteLength, `size of ${key}`);
  assert.ok(got.equals(expected), `content of ${key}`);
}

const MiB = 1 << 20;
const INVALID_KEYS = ['', '../x', 'a/../b', '/abs', 'a//b', 'a/', './a', 'a/./b', 'a\\b', 'a b', 'ä'];

type Case = [title: string, run: (store: BlobStore) => Promise<void>];

const cases: Case[] = [
  ['init is idempotent', async (store) => {
    await store.init();
    await store.put('k/1', Buffer.from('x'));
    await store.init();
    await assertContent(store, 'k/1', Buffer.from('x'));
  }],

  ['put and get round-trip: empty, 1 byte, 5 MiB', async (store) => {
    const blobs: [string, Uint8Array][] = [
      ['rt/empty', new Uint8Array(0)],
      ['rt/one', Uint8Array.of(0xa5)],
      ['rt/big', randomBytes(5 * MiB)],
    ];
    for (const [key, data] of blobs) await store.put(key, data);
    for (const [key, data] of blobs) {
      await assertContent(store, key, data);
      assert.deepEqual(await store.stat(key), { size: data.byteLength });
    }
  }],

  ['put keeps its own copy of the data', async (store) => {
    const data = Buffer.from('original');
    await store.put('copy/a', data);
    data.fill(0);
    await assertContent(store, 'copy/a', Buffer.from('original'));
  }],

  ['overwrite replaces the content', async (store) => {
    await store.put('ow/a', randomBytes(3 * MiB));
    const next = randomBytes(1000);
    await store.put('ow/a', next);
    await assertContent(store, 'ow/a', next);
    assert.deepEqual(await store.stat('ow/a'), { size: 1000 });
  }],

  ['ranges: first byte, start, middle, last byte, whole, across read buffers', async (store) => {
    const data = randomBytes(3 * MiB + 17);
    const last = data.length - 1;
    await store.put('rg/a', data);
    const ranges = [[0, 0], [0, 9], [1000, 1999], [last, last], [0, last], [MiB - 3, 2 * MiB + 5]];
    for (const [start, end] of ranges) {
      const got = await readAll(await store.get('rg/a', { start, end }));
      assert.ok(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`);
    }
  }],

  ['range past the end: end is clamped, a later start yields nothing', async (store) => {
    const data = randomBytes(100);
    await store.put('rg/b', data);
    assert.ok((await readAll(await store.get('rg/b', { start: 90, end: 1000 }))).equals(data.subarray(90)));
    assert.equal((await readAll(await store.get('rg/b', { start: 500, end: 600 }))).length, 0);
  }],

  ['invalid ranges are rejected', async (store) => {
    await store.put('rg/c', randomBytes(10));
    for (const range of [{ start: 5, end: 4 }, { start: -1, end: 3 }, { start: 0.5, end: 3 }]) {
      await assert.rejects(store.get('rg/c', range), RangeError, JSON.stringify(range));
    }
  }],

  ['missing key: get rejects with BlobNotFoundError, stat is null', async (store) => {
    await assert.rejects(store.get('no/such'), BlobNotFoundError);
    await assert.rejects(store.get('no/such', { start: 0, end: 0 }), BlobNotFoundError);
    assert.equal(await store.stat('no/such'), null);
    // A key that is a folder of other keys is no blob either.
    await store.put('no/dir/child', Buffer.from('x'));
    await assert.rejects(store.get('no/dir'), BlobNotFoundError);
    assert.equal(await store.stat('no/dir'), null);
  }],

  ['delete removes and is idempotent', async (store) => {
    await store.put('del/a', Buffer.from('a'));
    await store.put('del/b', Buffer.from('b'));
    await store.delete('del/a');
    assert.equal(await store.stat('del/a'), null);
    await assert.rejects(store.get('del/a'), BlobNotFoundError);
    assert.deepEqual([...(await listAll(store, 'del/')).keys()], ['del/b']);
    await store.delete('del/a');
    await store.delete('never/was');
    await assertContent(store, 'del/b', Buffer.from('b'));
  }],

  ['list by prefix gives the exact set, nested keys included', async (store) => {
    const keys = ['a/1', 'a/2', 'a/b/3', 'a/b/c/4', 'ab/5', 'b/6', 'top'];
    await Promise.all(keys.map((k, i) => store.put(k, randomBytes(i))));
    const sizes = (ks: string[]) => new Map(ks.map((k) => [k, keys.indexOf(k)]));
    assert.deepEqual(await listAll(store, 'a/'), sizes(['a/1', 'a/2', 'a/b/3', 'a/b/c/4']));
    assert.deepEqual(await listAll(store, 'a/b/'), sizes(['a/b/3', 'a/b/c/4']));
    assert.deepEqual(await listAll(store, 'a'), sizes(['a/1', 'a/2', 'a/b/3', 'a/b/c/4', 'ab/5']));
    assert.deepEqual(await listAll(store, 'a/b/c/4'), sizes(['a/b/c/4']));
    assert.deepEqual(await listAll(store, ''), sizes(keys));
    assert.deepEqual(await listAll(store, 'zz/'), new Map());
  }],

  ['list during puts shows only whole blobs, never temp files', async (store) => {
    const size = 2 * MiB;
    const expected = new Set(Array.from({ length: 10 }, (_, i) => `lp/${i}`));
    let done = false;
    const puts = Promise.all([...expected].map((k) => store.put(k, randomBytes(size)))).finally(() => {
      done = true;
    });
    do {
      for (const [key, got] of await listAll(store, '')) {
        assert.ok(expected.has(key), `unexpected key listed: ${key}`);
        assert.equal(got, size, `partial blob listed: ${key}`);
      }
    } while (!done);
    await puts;
    assert.equal((await listAll(store, '')).size, expected.size);
  }],

  ['put tells onWritten once, and the caller may then reuse its buffer', async (store) => {
    const data = randomBytes(3 * MiB);
    const original = Buffer.from(data);
    let calls = 0;
    await store.put('w/reuse', data, { onWritten: () => { calls++; data.fill(0); } });
    assert.equal(calls, 1);
    await assertContent(store, 'w/reuse', original);
    let failed = 0;
    await assert.rejects(store.put('../escape', Buffer.from('x'), { onWritten: () => { failed++; } }), /invalid blob key/);
    assert.equal(failed, 1, 'a put that fails is done with the buffer too');
  }],

  ['invalid keys and prefixes are rejected', async (store) => {
    for (const key of INVALID_KEYS) {
      const label = JSON.stringify(key);
      await assert.rejects(store.put(key, Buffer.from('x')), /invalid blob key/, `put ${label}`);
      await assert.rejects(store.get(key), /invalid blob key/, `get ${label}`);
      await assert.rejects(store.stat(key), /invalid blob key/, `stat ${label}`);
      await assert.rejects(store.delete(key), /invalid blob key/, `delete ${label}`);
    }
    for (const prefix of ['../', '/abs', 'a//', '..', 'a/../']) {
      await assert.rejects(listAll(store, prefix), /invalid blob prefix/, `list ${JSON.stringify(prefix)}`);
    }
    assert.deepEqual(await listAll(store, ''), new Map());
  }],

  ['50 concurrent puts of different keys', async (store) => {
    const blobs = Array.from({ length: 50 }, (_, i) => [`cc/${i % 5}/${i}`, randomBytes(1 + i * 997)] as const);
    await Promise.all(blobs.map(([k, d]) => store.put(k, d)));
    await Promise.all(blobs.map(([k, d]) => assertContent(store, k, d)));
    assert.equal((await listAll(store, 'cc/')).size, 50);
  }],

  ['puts racing deletes in one folder: every put lands, every delete removes only its key', async (store) => {
    // The garbage collector deletes blobs while uploads store new ones beside them (same shard
    // folder): a delete that empties a folder must not pull it from under a put in progress.
    const data = randomBytes(200 * 1024);
    for (let round = 0; round < 40; round++) {
      const older = `race/x/${round}-old`;
      await store.put(older, data);
      const newer = `race/x/${round}-new`;
      await Promise.all([store.delete(older), store.put(newer, data)]);
      await assertContent(store, newer, data);
      assert.equal(await store.stat(older), null, `${older} deleted`);
      await store.delete(newer);
    }
    assert.deepEqual(await listAll(store, 'race/'), new Map());
  }],

  ['20 concurrent puts of the same key leave one whole content', async (store) => {
    // Different sizes, so a mix of two writers cannot pass for either one.
    const versions = Array.from({ length: 20 }, (_, i) => randomBytes(64 * 1024 + i * 4099));
    await Promise.all(versions.map((d) => store.put('same/key', d)));
    const got = await readAll(await store.get('same/key'));
    assert.ok(versions.some((d) => d.equals(got)), `content (${got.length} bytes) matches no writer`);
    assert.deepEqual(await store.stat('same/key'), { size: got.length });
    assert.deepEqual([...(await listAll(store, '')).keys()], ['same/key']);
  }],

  ['cleanupAbandoned keeps committed blobs', async (store) => {
    const data = randomBytes(4096);
    await store.put('cl/a', data);
    await store.put('cl/b/c', data);
    const removed = await store.cleanupAbandoned();
    assert.ok(Number.isInteger(removed) && removed >= 0);
    await assertContent(store, 'cl/a', data);
    await assertContent(store, 'cl/b/c', data);
    assert.equal(await store.cleanupAbandoned(), 0);
  }],
];

/** Cases for stores that build packs (`openPack`): run with `packs: true`. */
const packCases: Case[] = [
  ['a pack holds its appends in order at the offsets append gave, visible only once sealed', async (store) => {
    const pack = store.openPack!();
    const parts = [randomBytes(3 * MiB + 7), new Uint8Array(0), randomBytes(1), randomBytes(200_000)];
    const placed = parts.map((d) => pack.append(d));
    assert.deepEqual(placed.map((p) => p.offset), [0, 3 * MiB + 7, 3 * MiB + 7, 3 * MiB + 8]);
    assert.equal(pack.size, 3 * MiB + 8 + 200_000);
    await Promise.all(placed.map((p) => p.written));
    assert.equal(await store.stat('pk/one'), null, 'nothing under the key before the seal');
    assert.deepEqual(await listAll(store, 'pk/'), new Map());
    await pack.seal('pk/one');
    await assertContent(store, 'pk/one', Buffer.concat(parts));
    const mid = await readAll(await store.get('pk/one', { start: 3 * MiB + 7, end: 3 * MiB + 7 }));
    assert.ok(mid.equals(parts[2]!), 'a range reads one member');
    assert.deepEqual([...(await listAll(store, 'pk/')).entries()], [['pk/one', 3 * MiB + 8 + 200_000]]);
  }],

  ['a pack with no appends seals to an empty blob', async (store) => {
    const pack = store.openPack!();
    await pack.seal('pk/empty');
    assert.deepEqual(await store.stat('pk/empty'), { size: 0 });
  }],

  ['an aborted pack leaves nothing, and cannot be sealed afterwards', async (store) => {
    const pack = store.openPack!();
    await pack.append(randomBytes(MiB)).written;
    await pack.abort();
    await pack.abort(); // idempotent
    await assert.rejects(pack.seal('pk/aborted'));
    assert.throws(() => pack.append(Buffer.from('late')));
    assert.equal(await store.stat('pk/aborted'), null);
    assert.deepEqual(await listAll(store, ''), new Map());
    assert.equal(await store.cleanupAbandoned(), 0, 'no temp file left for the cleanup either');
  }],

  ['abort after a seal keeps the sealed blob; append after a seal throws', async (store) => {
    const pack = store.openPack!();
    const data = randomBytes(4096);
    pack.append(data);
    await pack.seal('pk/kept');
    await pack.abort();
    assert.throws(() => pack.append(data));
    await assertContent(store, 'pk/kept', data);
  }],

  ['packs filled at once do not mix', async (store) => {
    const packs = Array.from({ length: 6 }, () => store.openPack!());
    const data = packs.map(() => Array.from({ length: 5 }, () => randomBytes(50_000 + Math.floor(Math.random() * 50_000))));
    for (let i = 0; i < 5; i++) packs.forEach((p, j) => p.append(data[j]![i]!));
    await Promise.all(packs.map((p, j) => p.seal(`pk/many/${j}`)));
    for (let j = 0; j < packs.length; j++) await assertContent(store, `pk/many/${j}`, Buffer.concat(data[j]!));
  }],
];

export function runBlobStoreConformance(
  name: string,
  make: BlobStoreFactory,
  opts: { skip?: Record<string, string>; packs?: boolean } = {},
): void {
  const skip = opts.skip ?? {};
  const unknown = Object.keys(skip).filter((title) => ![...cases, ...packCases].some(([t]) => t === title));
  if (unknown.length > 0) throw new Error(`skip names unknown conformance cases: ${unknown.join(', ')}`);

  describe(`BlobStore conformance: ${name}`, () => {
    for (const [title, run] of opts.packs ? [...cases, ...packCases] : cases) {
      it(title, { skip: skip[title] ?? false }, async () => {
        const { store, cleanup } = await make();
        try {
          await store.init();
          await run(store);
        } finally {
          await store.close();
          await cleanup();
        }
      });
    }
  });
}
