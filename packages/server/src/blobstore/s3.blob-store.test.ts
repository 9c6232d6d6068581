import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startS3Server, type S3TestServer } from '../../test/support/s3-server.ts';
import { BlobNotFoundError } from './blob-store.ts';
import { readAll, runBlobStoreConformance } from './blob-store.conformance.ts';
import { S3BlobStore, type S3BlobStoreOptions } from './s3.blob-store.ts';

let server: S3TestServer;
before(async () => {
  server = await startS3Server();
});
after(async () => {
  await server.stop();
});

let buckets = 0;
function options(extra: Partial<S3BlobStoreOptions> = {}): S3BlobStoreOptions {
  const { endpoint, bucket, region, accessKeyId, secretAccessKey } = server;
  return { endpoint, bucket, region, accessKeyId, secretAccessKey, ...extra };
}

// A fresh bucket per case isolates cases and exercises init()'s CreateBucket.
runBlobStoreConformance(
  's3 (s3rver)',
  async () => ({
    store: new S3BlobStore(options({ bucket: `conformance-${++buckets}` })),
    cleanup: async () => {},
  }),
  {
    skip: {
      // A server property, not the store's: real S3 publishes an object only once its PUT completes.
      'list during puts shows only whole blobs, never temp files':
        's3rver writes objects in place, so a PUT in progress is listed with its partial size',
      '20 concurrent puts of the same key leave one whole content':
        's3rver writes objects in place, so concurrent PUTs of one key can interleave (seen ~1 run in 20)',
    },
  },
);

describe('S3BlobStore specifics', () => {
  it('stores under its prefix and lists keys without it', async () => {
    const a = new S3BlobStore(options({ prefix: 'tenant-a' }));
    const b = new S3BlobStore(options({ prefix: 'tenant-b/' }));
    await a.init();
    await a.put('x/1', Buffer.from('from a'));
    await b.put('x/1', Buffer.from('from b'));
    assert.equal((await readAll(await a.get('x/1'))).toString(), 'from a');
    const listed = [];
    for await (const item of a.list('x/')) listed.push(item);
    assert.deepEqual(listed, [{ key: 'x/1', size: 6 }]);
    await a.delete('x/1');
    assert.equal((await readAll(await b.get('x/1'))).toString(), 'from b');
    await Promise.all([a.close(), b.close()]);
  });

  it('list follows continuation tokens across pages', async () => {
    const store = new S3BlobStore(options({ bucket: 'paging', listPageSize: 7 }));
    await store.init();
    const keys = Array.from({ length: 23 }, (_, i) => `p/${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((k) => store.put(k, randomBytes(3))));
    const listed = [];
    for await (const { key } of store.list('p/')) listed.push(key);
    assert.deepEqual(listed.sort(), keys);
    await store.close();
  });

  it('cleanupAbandoned returns 0 where ListMultipartUploads is not implemented', async () => {
    const store = new S3BlobStore(options());
    assert.equal(await store.cleanupAbandoned(), 0);
    await store.close();
  });

  it('a missing bucket reads as missing blobs after init creates it', async () => {
    const store = new S3BlobStore(options({ bucket: 'created-on-init' }));
    await store.init();
    await store.init();
    await assert.rejects(store.get('k'), BlobNotFoundError);
    await store.close();
  });

  it('an endpoint that accepts requests and never answers fails them after the idle timeout instead of hanging', async () => {
    // A TCP listener that reads everything and says nothing: what a wedged S3 gateway looks like.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => { sockets.add(socket); socket.resume(); });
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    const port = (silent.address() as AddressInfo).port;
    const store = new S3BlobStore({ ...options(), endpoint: `http://127.0.0.1:${port}`, idleTimeoutMs: 300 });
    try {
      const started = Date.now();
      await assert.rejects(store.put('k/1', randomBytes(1024)), (err: Error) => err.name === 'TimeoutError');
      await assert.rejects(store.get('k/1'), (err: Error) => err.name === 'TimeoutError');
      // Three attempts each (the SDK retries a timeout) with back-off: seconds, not forever.
      assert.ok(Date.now() - started < 20_000, `took ${Date.now() - started} ms`);
      assert.ok(sockets.size >= 2, 'the requests reached the endpoint');
    } finally {
      await store.close();
      for (const s of sockets) s.destroy();
      await new Promise((res) => silent.close(res));
    }
  });
});
