/**
 * Malformed, oversized and ill-typed requests: each gets its stable error
 * code in the one error shape, nothing is stored, and no internals (stack
 * frames, file paths) ever reach the caller.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';

const MAX_JSON = 1024;
const MAX_UPLOAD = 4096;
const MAX_HEADER = 8192;
const QUOTA = 1000;

/** Every error body seen in this file, checked once more at the end. */
const seen: { label: string; text: string }[] = [];

const STACK_TRACES = [/\n\s*at /, /\bat [^\s]+ \(/, /\/work\//, /node:internal/, /\.ts:\d+/, /\.js:\d+/, /node_modules/, /Error: /];

/** Asserts the error shape `{ error: { code, message, requestId, details? } }` and nothing else. */
async function expectError(res: Response | Promise<Response>, status: number, code: string, label: string): Promise<Record<string, any>> {
  const r = await res;
  const text = await r.text();
  seen.push({ label, text });
  assert.equal(r.status, status, `${label}: expected ${status} ${code}, got ${r.status} ${text.slice(0, 300)}`);
  assert.match(r.headers.get('content-type') ?? '', /^application\/json/, `${label}: content-type`);
  assertErrorShape(text, code, label);
  return JSON.parse(text).error;
}

function assertErrorShape(text: string, code: string | null, label: string): void {
  let body: any;
  assert.doesNotThrow(() => { body = JSON.parse(text); }, `${label}: the error body is not JSON: ${text.slice(0, 200)}`);
  assert.deepEqual(Object.keys(body), ['error'], `${label}: top-level keys`);
  const keys = Object.keys(body.error);
  for (const k of keys) assert.ok(['code', 'message', 'requestId', 'details'].includes(k), `${label}: unexpected key error.${k}`);
  assert.equal(typeof body.error.code, 'string', label);
  if (code !== null) assert.equal(body.error.code, code, label);
  assert.equal(typeof body.error.message, 'string', label);
  assert.ok(body.error.message.length > 0, label);
  assert.equal(typeof body.error.requestId, 'string', `${label}: requestId`);
  assert.ok(body.error.requestId.length > 0, label);
  if ('details' in body.error) {
    assert.ok(body.error.details !== null && typeof body.error.details === 'object' && !Array.isArray(body.error.details), `${label}: details must be an object`);
  }
  for (const re of STACK_TRACES) assert.doesNotMatch(text, re, `${label}: the error body leaks internals: ${text.slice(0, 300)}`);
}

const json = (body: string, extra: Record<string, string> = {}): RequestInit => ({ headers: { 'content-type': 'application/json', ...extra }, body });

/** A request body sent with Transfer-Encoding: chunked (no Content-Length). */
function chunked(bytes: Uint8Array | string, init: RequestInit = {}): RequestInit {
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < data.length; i += 700) c.enqueue(data.subarray(i, i + 700));
      c.close();
    },
  });
  return { ...init, body, duplex: 'half' } as RequestInit;
}

/** Sends raw bytes over a fresh connection; returns the status line's code and the raw answer. */
function rawHttp(url: string, request: string): Promise<{ status: number; raw: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(u.port), u.hostname);
    let raw = '';
    const done = () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(raw);
      if (m) resolve({ status: Number(m[1]), raw });
      else reject(new Error(`no HTTP answer: ${JSON.stringify(raw.slice(0, 200))}`));
    };
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => { raw += d; });
    socket.on('error', () => {}); // a reset after the answer is fine; 'close' follows
    socket.on('close', done);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.end(request);
  });
}

async function blobFiles(dataDir: string): Promise<string[]> {
  const all = await readdir(join(dataDir, 'blobs'), { recursive: true, withFileTypes: true });
  return all.filter((e) => e.isFile() && !join(e.parentPath, e.name).includes(`${join(dataDir, 'blobs', '.tmp')}`))
    .map((e) => join(e.parentPath, e.name)).sort();
}

describe('bad input', () => {
  let s: TestServer;
  let alice: TestUser;
  let folderId: string;

  before(async () => {
    s = await startTestServer({ config: { maxJsonBodyBytes: MAX_JSON, maxUploadBytes: MAX_UPLOAD, maxHeaderBytes: MAX_HEADER } });
    alice = await s.user('alice');
    const f = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name: 'docs' } });
    assert.equal(f.status, 201);
    folderId = f.body.id;
  });
  after(() => s?.close());

  describe('malformed JSON → 400 BAD_REQUEST', () => {
    const cases: [string, string][] = [
      ['truncated object', '{"parentId": "x", "name": '],
      ['not JSON at all', '{bad'],
      ['trailing comma', '{"name": "x",}'],
      ['single quotes', "{'name': 'x'}"],
      ['bare word', 'undefined'],
      ['two documents', '{} {}'],
      ['invalid UTF-8 escape', '{"name": "\\uZZZZ"}'],
      ['__proto__ key (prototype pollution)', '{"parentId": "x", "name": "y", "__proto__": {"admin": true}}'],
      ['constructor.prototype key', '{"parentId": "x", "name": "y", "constructor": {"prototype": {"admin": true}}}'],
    ];
    for (const [label, body] of cases) {
      it(`POST /api/v1/folders: ${label}`, async () => {
        await expectError(alice.fetch('/api/v1/folders', { method: 'POST', ...json(body) }), 400, 'BAD_REQUEST', label);
      });
    }

    it('an empty body declared as JSON', async () => {
      await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST', 'empty JSON');
    });

    it('on PATCH and on the public sign-in route too', async () => {
      await expectError(alice.fetch(`/api/v1/items/${folderId}`, { method: 'PATCH', ...json('{"name": ') }), 400, 'BAD_REQUEST', 'PATCH');
      await expectError(fetch(`${s.url}/api/v1/auth/token`, { method: 'POST', ...json('{"username": "alice",') }), 400, 'BAD_REQUEST', 'sign-in');
    });

    it('a body of another content type → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
      await expectError(alice.fetch('/api/v1/folders', { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<folder/>' }), 415, 'UNSUPPORTED_MEDIA_TYPE', 'xml');
    });
  });

  describe(`JSON body over maxJsonBodyBytes (${MAX_JSON}) → 413 PAYLOAD_TOO_LARGE`, () => {
    const big = JSON.stringify({ parentId: 'x', name: 'y', pad: 'p'.repeat(MAX_JSON) });

    it('with Content-Length', async () => {
      await expectError(alice.fetch('/api/v1/folders', { method: 'POST', ...json(big) }), 413, 'PAYLOAD_TOO_LARGE', 'JSON with length');
    });

    it('chunked, without Content-Length', async () => {
      await expectError(alice.fetch('/api/v1/folders', { method: 'POST', ...chunked(big, { headers: { 'content-type': 'application/json' } }) }),
        413, 'PAYLOAD_TOO_LARGE', 'chunked JSON');
    });

    it('on the public sign-in route', async () => {
      const body = JSON.stringify({ username: 'alice', password: 'p'.repeat(MAX_JSON) });
      await expectError(fetch(`${s.url}/api/v1/auth/token`, { method: 'POST', ...json(body) }), 413, 'PAYLOAD_TOO_LARGE', 'sign-in');
    });

    it('a body of exactly the limit is accepted', async () => {
      const base = { parentId: alice.rootId, name: 'exactly-at-limit', pad: '' };
      const pad = MAX_JSON - Buffer.byteLength(JSON.stringify(base));
      const body = JSON.stringify({ ...base, pad: 'p'.repeat(pad) });
      assert.equal(Buffer.byteLength(body), MAX_JSON);
      const r = await alice.fetch('/api/v1/folders', { method: 'POST', ...json(body) });
      assert.equal(r.status, 201, await r.text());
    });

    it('an anonymous oversized body is refused as 401 before it is read', async () => {
      await expectError(fetch(`${s.url}/api/v1/folders`, { method: 'POST', ...json(big) }), 401, 'UNAUTHENTICATED', 'anonymous big');
    });
  });

  describe(`header block over maxHeaderBytes (${MAX_HEADER}) → 431`, () => {
    it('is answered 431 by Node', async () => {
      const r = await rawHttp(s.url, `GET /api/v1/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${alice.token}\r\nX-Filler: ${'a'.repeat(MAX_HEADER + 100)}\r\n\r\n`);
      assert.equal(r.status, 431);
      assert.ok(!r.raw.includes(alice.rootId));
    });

    it('many small headers count together', async () => {
      const headers = Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'b'.repeat(60)}\r\n`).join('');
      const r = await rawHttp(s.url, `GET /healthz HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`);
      assert.equal(r.status, 431);
    });

    it('a header block under the limit is served', async () => {
      const r = await rawHttp(s.url, `GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Filler: ${'a'.repeat(MAX_HEADER / 2)}\r\n\r\n`);
      assert.equal(r.status, 200);
    });
  });

  describe('wrong types and missing fields → 400 VALIDATION_FAILED', () => {
    const bodies: [string, string, string, string][] = [
      ['POST', '/api/v1/folders', 'null body', 'null'],
      ['POST', '/api/v1/folders', 'array body', '[]'],
      ['POST', '/api/v1/folders', 'string body', '"docs"'],
      ['POST', '/api/v1/folders', 'neither parentId+name nor path', '{}'],
      ['POST', '/api/v1/folders', 'parentId without name', '{"parentId": "ROOT"}'],
      ['POST', '/api/v1/folders', 'name is an object', '{"parentId": "ROOT", "name": {}}'],
      ['POST', '/api/v1/folders', 'parentId is an object', '{"parentId": {"$ne": null}, "name": "x"}'],
      ['POST', '/api/v1/folders', 'parentId over 64 characters', `{"parentId": "${'a'.repeat(65)}", "name": "x"}`],
      ['PATCH', '/api/v1/items/FOLDER', 'ifRev is a word', '{"ifRev": "abc"}'],
      ['PATCH', '/api/v1/items/FOLDER', 'ifRev is a fraction', '{"ifRev": 1.5}'],
      ['PATCH', '/api/v1/items/FOLDER', 'ifRev is zero', '{"ifRev": 0}'],
      ['PATCH', '/api/v1/items/FOLDER', 'name is an object', '{"name": {"x": 1}}'],
      ['POST', '/api/v1/items/FOLDER/copy', 'copy without parentId', '{}'],
      ['POST', '/api/v1/items/FOLDER/copy', 'copy with parentId object', '{"parentId": {}}'],
    ];
    for (const [method, path, label, body] of bodies) {
      it(`${method} ${path}: ${label}`, async () => {
        const url = path.replace('FOLDER', folderId);
        const err = await expectError(alice.fetch(url, { method, ...json(body.replace('ROOT', alice.rootId)) }), 400, 'VALIDATION_FAILED', label);
        assert.ok(!('stack' in err));
      });
    }

    const anonymous: [string, string][] = [
      ['no username', '{"password": "x"}'],
      ['no password', '{"username": "alice"}'],
      ['username is an object', '{"username": {}, "password": "x"}'],
      ['password is an array of two', '{"username": "alice", "password": ["a", "b"]}'],
    ];
    for (const [label, body] of anonymous) {
      it(`POST /api/v1/auth/token: ${label}`, async () => {
        await expectError(fetch(`${s.url}/api/v1/auth/token`, { method: 'POST', ...json(body) }), 400, 'VALIDATION_FAILED', label);
      });
    }

    const queries = [
      'children?limit=0', 'children?limit=1001', 'children?limit=abc', 'children?limit=-1', 'children?sort=owner', 'children?order=up',
      'children?cursor=not-a-cursor', `children?cursor=${'c'.repeat(65)}`,
    ];
    for (const q of queries) {
      it(`GET /api/v1/items/:id/${q}`, async () => {
        await expectError(alice.fetch(`/api/v1/items/${folderId}/${q}`), 400, 'VALIDATION_FAILED', q);
      });
    }

    it('other query and path parameters', async () => {
      await expectError(alice.fetch('/api/v1/items/by-path'), 400, 'VALIDATION_FAILED', 'by-path without path');
      await expectError(alice.fetch(`/api/v1/items/${folderId}?ifRev=abc`, { method: 'DELETE' }), 400, 'VALIDATION_FAILED', 'DELETE ifRev');
      await expectError(alice.fetch('/api/v1/trash?limit=0'), 400, 'VALIDATION_FAILED', 'trash limit');
      await expectError(alice.fetch(`/api/v1/items/${'a'.repeat(65)}`), 400, 'VALIDATION_FAILED', 'id too long');
      await expectError(alice.fetch('/api/v1/items/'), 400, 'VALIDATION_FAILED', 'empty id');
    });

    it('nothing was created or changed by the refused requests', async () => {
      const root = await alice.json(`/api/v1/items/${alice.rootId}/children`);
      assert.deepEqual(root.body.items.map((i: { name: string }) => i.name).sort(), ['docs', 'exactly-at-limit']);
      const folder = await alice.json(`/api/v1/items/${folderId}`);
      assert.equal(folder.body.rev, 1);
      assert.equal(folder.body.name, 'docs');
    });
  });

  describe('unknown routes → 404 ROUTE_NOT_FOUND', () => {
    const cases: [string, string][] = [
      ['GET', '/'], ['GET', '/api'], ['GET', '/api/v1'], ['GET', '/api/v2/items/root'], ['GET', '/api/v1/nope'],
      ['POST', '/api/v1/me'], ['PUT', '/healthz'], ['DELETE', '/api/v1/folders'], ['PATCH', '/api/v1/trash'],
      ['GET', '/api/v1/items/x/y/z/w'], ['GET', '/.env'], ['GET', '/api/v1/items/root/../../../etc/passwd'],
    ];
    for (const [method, path] of cases) {
      it(`${method} ${path}, signed in and anonymous`, async () => {
        await expectError(alice.fetch(path, { method }), 404, 'ROUTE_NOT_FOUND', `${method} ${path}`);
        await expectError(fetch(s.url + path, { method }), 404, 'ROUTE_NOT_FOUND', `anonymous ${method} ${path}`);
      });
    }
  });

  describe('router-level failures use the same error shape', () => {
    it('bad percent-encoding → 400 BAD_REQUEST', async () => {
      await expectError(alice.fetch('/api/v1/content/%ZZ'), 400, 'BAD_REQUEST', 'bad URL');
      await expectError(alice.fetch('/api/v1/items/%E0%A4%A'), 400, 'BAD_REQUEST', 'bad URL param');
    });

    it('a path parameter longer than the router allows → 400 BAD_REQUEST', async () => {
      await expectError(alice.fetch(`/api/v1/items/${'x'.repeat(5000)}`), 400, 'BAD_REQUEST', 'long param');
    });
  });

  describe(`uploads over maxUploadBytes (${MAX_UPLOAD}) → 413 PAYLOAD_TOO_LARGE, nothing stored`, () => {
    const tooBig = new Uint8Array(MAX_UPLOAD + 1).fill(7);

    async function assertNothingStored(before: { used: number; blobs: string[] }, name: string): Promise<void> {
      await expectError(alice.fetch(`/api/v1/items/by-path?path=${encodeURIComponent(`docs/${name}`)}`), 404, 'NOT_FOUND', 'after refused upload');
      const me = await alice.json('/api/v1/me');
      assert.equal(me.body.usedBytes, before.used, 'usedBytes unchanged');
      assert.deepEqual(await blobFiles(s.dataDir), before.blobs, 'no blob written');
    }

    async function state() {
      return { used: (await alice.json('/api/v1/me')).body.usedBytes as number, blobs: await blobFiles(s.dataDir) };
    }

    it('with Content-Length: refused before a byte is stored', async () => {
      const before = await state();
      const err = await expectError(alice.fetch('/api/v1/content/docs/big.bin', { method: 'PUT', body: tooBig }), 413, 'PAYLOAD_TOO_LARGE', 'big upload');
      assert.equal(err.details?.limit, MAX_UPLOAD);
      await assertNothingStored(before, 'big.bin');
    });

    it('chunked, without Content-Length: refused while streaming', async () => {
      const before = await state();
      await expectError(alice.fetch('/api/v1/content/docs/big.bin', { method: 'PUT', ...chunked(tooBig) }), 413, 'PAYLOAD_TOO_LARGE', 'big chunked upload');
      await assertNothingStored(before, 'big.bin');
    });

    it('by folder id and name, and as a new version', async () => {
      await expectError(alice.fetch(`/api/v1/items/${folderId}/children/big.bin/content`, { method: 'PUT', body: tooBig }), 413, 'PAYLOAD_TOO_LARGE', 'by name');
      const small = await alice.json('/api/v1/content/docs/small.bin', { method: 'PUT', body: new Uint8Array(10) });
      assert.equal(small.status, 201);
      const before = await state();
      await expectError(alice.fetch(`/api/v1/items/${small.body.id}/content`, { method: 'PUT', body: tooBig }), 413, 'PAYLOAD_TOO_LARGE', 'new version');
      await expectError(alice.fetch(`/api/v1/items/${small.body.id}/content`, { method: 'PUT', ...chunked(tooBig) }), 413, 'PAYLOAD_TOO_LARGE', 'new version chunked');
      const versions = await alice.json(`/api/v1/items/${small.body.id}/versions`);
      assert.equal(versions.body.versions.length, 1);
      const item = await alice.json(`/api/v1/items/${small.body.id}`);
      assert.equal(item.body.size, 10);
      assert.equal(item.body.rev, 1);
      assert.equal((await alice.json('/api/v1/me')).body.usedBytes, before.used);
      assert.deepEqual(await blobFiles(s.dataDir), before.blobs);
    });

    it('an upload of exactly the limit is stored', async () => {
      const r = await alice.json('/api/v1/content/docs/exact.bin', { method: 'PUT', body: new Uint8Array(MAX_UPLOAD).fill(1) });
      assert.equal(r.status, 201);
      assert.equal(r.body.size, MAX_UPLOAD);
    });
  });

  describe(`quota: a user with quotaBytes=${QUOTA}`, () => {
    let q: TestUser;
    before(async () => {
      q = await s.user('quentin', { quotaBytes: QUOTA });
    });

    const usage = async () => (await q.json('/api/v1/me')).body as { usedBytes: number; quotaBytes: number };
    const names = async () => (await q.json(`/api/v1/items/${q.rootId}/children`)).body.items.map((i: { name: string }) => i.name).sort();

    it('uploading 2000 bytes with Content-Length → 507 QUOTA_EXCEEDED, nothing visible', async () => {
      assert.deepEqual(await usage(), { ...(await usage()), quotaBytes: QUOTA, usedBytes: 0 });
      await expectError(q.fetch('/api/v1/content/big.bin', { method: 'PUT', body: new Uint8Array(2000) }), 507, 'QUOTA_EXCEEDED', 'quota with length');
      assert.equal((await usage()).usedBytes, 0);
      assert.deepEqual(await names(), []);
      await expectError(q.fetch('/api/v1/items/by-path?path=big.bin'), 404, 'NOT_FOUND', 'after quota');
    });

    it('uploading 2000 bytes chunked (no Content-Length) → 507 QUOTA_EXCEEDED, nothing visible', async () => {
      await expectError(q.fetch('/api/v1/content/big.bin', { method: 'PUT', ...chunked(new Uint8Array(2000).fill(3)) }), 507, 'QUOTA_EXCEEDED', 'quota chunked');
      assert.equal((await usage()).usedBytes, 0);
      assert.deepEqual(await names(), []);
      await expectError(q.fetch('/api/v1/items/by-path?path=big.bin'), 404, 'NOT_FOUND', 'after chunked quota');
      const trash = await q.json('/api/v1/trash');
      assert.deepEqual(trash.body.items, []);
    });

    it('what fits is stored; the upload that would cross the quota is refused either way', async () => {
      const first = await q.json('/api/v1/content/a.bin', { method: 'PUT', body: new Uint8Array(600).fill(1) });
      assert.equal(first.status, 201);
      assert.equal((await usage()).usedBytes, 600);
      await expectError(q.fetch('/api/v1/content/b.bin', { method: 'PUT', body: new Uint8Array(600) }), 507, 'QUOTA_EXCEEDED', 'second with length');
      await expectError(q.fetch('/api/v1/content/b.bin', { method: 'PUT', ...chunked(new Uint8Array(600).fill(2)) }), 507, 'QUOTA_EXCEEDED', 'second chunked');
      assert.equal((await usage()).usedBytes, 600);
      assert.deepEqual(await names(), ['a.bin']);

      // Replacing counts only the growth: 600 → 900 fits.
      const replaced = await q.json('/api/v1/content/a.bin', { method: 'PUT', body: new Uint8Array(900).fill(4) });
      assert.equal(replaced.status, 200);
      assert.equal((await usage()).usedBytes, 900);

      // A new version that would not fit leaves the current one alone.
      for (const init of [{ body: new Uint8Array(2000) }, chunked(new Uint8Array(2000).fill(5))]) {
        await expectError(q.fetch(`/api/v1/items/${first.body.id}/content`, { method: 'PUT', ...init }), 507, 'QUOTA_EXCEEDED', 'new version over quota');
      }
      const item = await q.json(`/api/v1/items/${first.body.id}`);
      assert.equal(item.body.size, 900);
      assert.equal(item.body.rev, 2);
      assert.equal((await q.json(`/api/v1/items/${first.body.id}/versions`)).body.versions.length, 2);
      const content = new Uint8Array(await (await q.fetch(`/api/v1/items/${first.body.id}/content`)).arrayBuffer());
      assert.deepEqual(content, new Uint8Array(900).fill(4));
      assert.equal((await usage()).usedBytes, 900);
    });

    it('copying past the quota is refused too', async () => {
      const first = await q.json('/api/v1/items/by-path?path=a.bin');
      await expectError(q.fetch(`/api/v1/items/${first.body.id}/copy`, { method: 'POST', ...json(JSON.stringify({ parentId: q.rootId, name: 'copy.bin' })) }),
        507, 'QUOTA_EXCEEDED', 'copy');
      assert.deepEqual(await names(), ['a.bin']);
      assert.equal((await usage()).usedBytes, 900);
    });

    it('leftover chunks of refused uploads are collectable: nothing stays in storage', async () => {
      await s.server.coffer.services.maintenance.runAll({ graceMs: 0, orphanGraceMs: 0 });
      const root = join(s.dataDir, 'blobs');
      const files = (await blobFiles(s.dataDir)).map((f) => f.slice(root.length + 1).split('\\').join('/')).sort();
      // What remains is exactly what the chunk rows name, and every chunk row is referenced by a live version.
      const rows = await s.server.coffer.metadata.db.selectFrom('chunks').select('blob_key').execute();
      assert.deepEqual(files, rows.map((r) => r.blob_key).sort());
    });
  });

  it('no error body seen in this file carried a stack trace or a file path', () => {
    assert.ok(seen.length > 50, `only ${seen.length} error bodies checked`);
    for (const { label, text } of seen) assertErrorShape(text, null, label);
  });
});
