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
import { postgresUnavailable, startTestServer, TEST_PASSWORD, type TestServer, type TestUser } from '../support/test-server.ts';

const pgSkip = await postgresUnavailable();

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
      await expectError(fetch(`${s.url}/api/v1/auth/login`, { method: 'POST', ...json('{"login": "alice",') }), 400, 'BAD_REQUEST', 'sign-in');
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
      const body = JSON.stringify({ login: 'alice', password: 'p'.repeat(MAX_JSON) });
      await expectError(fetch(`${s.url}/api/v1/auth/login`, { method: 'POST', ...json(body) }), 413, 'PAYLOAD_TOO_LARGE', 'sign-in');
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
      ['no login', '{"password": "x"}'],
      ['no password', '{"login": "alice"}'],
      ['login is an object', '{"login": {}, "password": "x"}'],
      ['password is an array of two', '{"login": "alice", "password": ["a", "b"]}'],
      ['the stand-in shape {username, password}', '{"username": "alice", "password": "x"}'],
    ];
    for (const [label, body] of anonymous) {
      it(`POST /api/v1/auth/login: ${label}`, async () => {
        await expectError(fetch(`${s.url}/api/v1/auth/login`, { method: 'POST', ...json(body) }), 400, 'VALIDATION_FAILED', label);
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
      // The stand-in token routes are gone.
      ['POST', '/api/v1/auth/token'], ['DELETE', '/api/v1/auth/token'], ['GET', '/api/v1/auth/login'], ['PUT', '/api/v1/auth/logout'],
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
      assert.deepEqual((await state()).blobs, before.blobs, 'no blob written');
    }

    async function state() {
      // Small chunks are database rows, not files: both count as written blobs.
      const rows = await s.server.coffer.metadata.db.selectFrom('inline_blobs').select('key').orderBy('key').execute();
      return { used: (await alice.json('/api/v1/me')).body.usedBytes as number, blobs: [...await blobFiles(s.dataDir), ...rows.map((r) => r.key)] };
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
      assert.deepEqual((await state()).blobs, before.blobs);
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
      const files = (await blobFiles(s.dataDir)).map((f) => f.slice(root.length + 1).split('\\').join('/'));
      // Small chunks are rows of the metadata database instead of files (--inline-max-bytes).
      const inline = await s.server.coffer.metadata.db.selectFrom('inline_blobs').select('key').execute();
      // What remains is exactly what the chunk rows name, and every chunk row is referenced by a live version.
      const rows = await s.server.coffer.metadata.db.selectFrom('chunks').select('blob_key').execute();
      assert.deepEqual([...files, ...inline.map((r) => r.key)].sort(), rows.map((r) => r.blob_key).sort());
    });
  });

  for (const dialect of ['sqlite', 'postgres'] as const) {
    describe(`accounts on ${dialect}: sign-in, sign-up and account routes answer bad input with a stable 4xx`, { skip: dialect === 'postgres' && pgSkip ? `skipped: ${pgSkip}` : false }, () => {
      let a: TestServer;
      let carol: TestUser;
      let n = 0;
      /** Every anonymous request comes from its own address (the server trusts X-Forwarded-For here), so per-IP throttles never mix in. */
      const nextIp = () => { n++; return `10.${dialect === 'sqlite' ? 1 : 2}.${(n >> 8) & 255}.${n & 255}`; };
      const anon = (path: string, init: RequestInit = {}) =>
        fetch(a.url + path, { method: 'POST', ...init, headers: { 'x-forwarded-for': nextIp(), ...(init.headers as Record<string, string>) } });
      const asCarol = (method: string, path: string, init: RequestInit = {}) => carol.fetch(path, { method, ...init });
      /** Every route whose JSON body is read without credentials, with a well-formed body. */
      const PUBLIC: [string, Record<string, unknown>][] = [
        ['/api/v1/auth/login', { login: 'carol', password: 'not-her-password' }],
        ['/api/v1/auth/login/2fa', { challenge: 'cfc_x', code: '123456' }],
        ['/api/v1/auth/refresh', { refreshToken: 'cfr_x' }],
        ['/api/v1/auth/signup', { username: 'someone', password: 'a-long-enough-password-42' }],
        ['/api/v1/auth/password/forgot', { login: 'carol' }],
        ['/api/v1/auth/password/reset', { token: 'cfw_x', password: 'a-long-enough-password-42' }],
        ['/api/v1/auth/device', { deviceName: 'Laptop' }],
        ['/api/v1/auth/device/token', { deviceCode: 'cfd_x' }],
      ];
      /** The account and device routes that take a JSON body, with a well-formed body. */
      const ACCOUNT: [string, string, Record<string, unknown>][] = [
        ['POST', '/api/v1/account/password', { currentPassword: 'x', newPassword: 'y' }],
        ['POST', '/api/v1/account/2fa/enable', { code: '123456' }],
        ['POST', '/api/v1/account/2fa/disable', { code: '123456' }],
        ['POST', '/api/v1/account/2fa/recovery-codes', { code: '123456' }],
        ['POST', '/api/v1/app-passwords', { name: 'tool' }],
        ['PUT', '/api/v1/device/pending-changes', { pendingChanges: 1 }],
        ['POST', '/api/v1/device/wipe/confirm', { removedCount: 0, kept: [] }],
        ['POST', '/api/v1/auth/device/approve', { userCode: 'BBBB-BBBB', approve: true }],
      ];

      before(async () => {
        a = await startTestServer({ dialect, config: { maxJsonBodyBytes: MAX_JSON, allowSignup: true, trustProxy: true } });
        carol = await a.user('carol', { email: 'carol@example.com' });
      });
      after(() => a?.close());

      it('malformed JSON → 400 BAD_REQUEST on every sign-in and account route', async () => {
        const bodies = ['{"login": ', '{bad', "{'login': 'carol'}", '{} {}', '{"login": "\\uZZZZ"}', '{"login": "carol",}', '{"__proto__": {"isAdmin": true}}'];
        for (const body of bodies) {
          for (const [path] of PUBLIC) await expectError(anon(path, json(body)), 400, 'BAD_REQUEST', `${path}: ${body}`);
          for (const [method, path] of ACCOUNT) await expectError(asCarol(method, path, json(body)), 400, 'BAD_REQUEST', `${method} ${path}: ${body}`);
        }
        for (const [path] of PUBLIC) await expectError(anon(path, { headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST', `${path}: empty`);
      });

      it('a form post (the way another site could submit one) is refused before any sign-in is tried', async () => {
        await expectError(anon('/api/v1/auth/login', { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'login=carol&password=x' }),
          415, 'UNSUPPORTED_MEDIA_TYPE', 'urlencoded sign-in');
        await expectError(anon('/api/v1/auth/login', { headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x\r\n\r\n--x--' }),
          415, 'UNSUPPORTED_MEDIA_TYPE', 'multipart sign-in');
        // text/plain (what an HTML form can also send): JSON text inside is still not an object.
        await expectError(anon('/api/v1/auth/login', { headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ login: 'carol', password: TEST_PASSWORD }) }),
          400, 'VALIDATION_FAILED', 'text/plain sign-in');
        await expectError(anon('/api/v1/auth/signup', { headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ username: 'formpost', password: 'a-long-enough-password-42' }) }),
          400, 'VALIDATION_FAILED', 'text/plain sign-up');
      });

      it(`bodies over maxJsonBodyBytes (${MAX_JSON}) → 413 PAYLOAD_TOO_LARGE, with and without Content-Length`, async () => {
        for (const [path, body] of PUBLIC) {
          const big = JSON.stringify({ ...body, pad: 'p'.repeat(MAX_JSON) });
          await expectError(anon(path, json(big)), 413, 'PAYLOAD_TOO_LARGE', `${path} with length`);
          await expectError(anon(path, chunked(big, { headers: { 'content-type': 'application/json' } })), 413, 'PAYLOAD_TOO_LARGE', `${path} chunked`);
        }
        for (const [method, path, body] of ACCOUNT) {
          const big = JSON.stringify({ ...body, pad: 'p'.repeat(MAX_JSON) });
          await expectError(asCarol(method, path, json(big)), 413, 'PAYLOAD_TOO_LARGE', `${path} with length`);
          await expectError(asCarol(method, path, chunked(big, { headers: { 'content-type': 'application/json' } })), 413, 'PAYLOAD_TOO_LARGE', `${path} chunked`);
        }
        // A password just under the limit is read (and is simply wrong); multi-byte characters count as bytes.
        const long = JSON.stringify({ login: 'carol', password: 'é'.repeat(MAX_JSON / 2) });
        assert.ok(Buffer.byteLength(long) > MAX_JSON);
        await expectError(anon('/api/v1/auth/login', json(long)), 413, 'PAYLOAD_TOO_LARGE', 'multi-byte password');
      });

      describe('wrong types, missing and unknown fields → 400 VALIDATION_FAILED', () => {
        const publicCases: [string, string, unknown][] = [
          ['/api/v1/auth/login', 'login is a number', { login: 123, password: 'x' }],
          ['/api/v1/auth/login', 'login is an array', { login: ['carol'], password: 'x' }],
          ['/api/v1/auth/login', 'login is null', { login: null, password: 'x' }],
          ['/api/v1/auth/login', 'login is empty', { login: '', password: 'x' }],
          ['/api/v1/auth/login', 'login over 254 characters', { login: `${'c'.repeat(250)}@example.com`, password: 'x' }],
          ['/api/v1/auth/login', 'password is a number', { login: 'carol', password: 12345678901 }],
          ['/api/v1/auth/login', 'password is null', { login: 'carol', password: null }],
          ['/api/v1/auth/login', 'client is not browser or sync', { login: 'carol', password: 'x', client: 'cli' }],
          ['/api/v1/auth/login', 'client in another case', { login: 'carol', password: 'x', client: 'Sync' }],
          ['/api/v1/auth/login', 'remember is a string', { login: 'carol', password: 'x', remember: 'true' }],
          ['/api/v1/auth/login', 'remember is a number', { login: 'carol', password: 'x', remember: 1 }],
          ['/api/v1/auth/login', 'deviceName is empty', { login: 'carol', password: 'x', deviceName: '' }],
          ['/api/v1/auth/login', 'deviceName over 100 characters', { login: 'carol', password: 'x', deviceName: 'd'.repeat(101) }],
          ['/api/v1/auth/login', 'platform is an object', { login: 'carol', password: 'x', platform: { os: 'linux' } }],
          ['/api/v1/auth/login', 'deviceKey over 200 characters', { login: 'carol', password: 'x', deviceKey: 'k'.repeat(201) }],
          ['/api/v1/auth/login', 'an unknown field', { login: 'carol', password: 'x', isAdmin: true }],
          ['/api/v1/auth/login', 'the stand-in shape', { username: 'carol', password: 'x' }],
          ['/api/v1/auth/login', 'an array body', [{ login: 'carol', password: 'x' }]],
          ['/api/v1/auth/login', 'a string body', 'carol'],
          ['/api/v1/auth/login/2fa', 'neither code nor recovery code', { challenge: 'cfc_x' }],
          ['/api/v1/auth/login/2fa', 'both code and recovery code', { challenge: 'cfc_x', code: '123456', recoveryCode: 'abcd-efgh-jkmn' }],
          ['/api/v1/auth/login/2fa', 'code is a number', { challenge: 'cfc_x', code: 123456 }],
          ['/api/v1/auth/login/2fa', 'code over 12 characters', { challenge: 'cfc_x', code: '1'.repeat(13) }],
          ['/api/v1/auth/login/2fa', 'no challenge', { code: '123456' }],
          ['/api/v1/auth/refresh', 'no refresh token', {}],
          ['/api/v1/auth/refresh', 'refresh token is a number', { refreshToken: 42 }],
          ['/api/v1/auth/refresh', 'an unknown field', { refreshToken: 'cfr_x', sessionId: 'x' }],
          ['/api/v1/auth/signup', 'username is a number', { username: 42, password: 'a-long-enough-password-42' }],
          ['/api/v1/auth/signup', 'username over 63 characters', { username: 'u'.repeat(64), password: 'a-long-enough-password-42' }],
          ['/api/v1/auth/signup', 'email is an object', { username: 'dora', password: 'a-long-enough-password-42', email: { address: 'x' } }],
          ['/api/v1/auth/signup', 'asks to be an administrator', { username: 'dora', password: 'a-long-enough-password-42', isAdmin: true }],
          ['/api/v1/auth/signup', 'sets its own quota', { username: 'dora', password: 'a-long-enough-password-42', quotaBytes: 1e15 }],
          ['/api/v1/auth/password/forgot', 'login is a number', { login: 5 }],
          ['/api/v1/auth/password/forgot', 'no login', {}],
          ['/api/v1/auth/password/forgot', 'an unknown field', { login: 'carol', redirect: 'https://evil.example' }],
          ['/api/v1/auth/password/reset', 'no password', { token: 'cfw_x' }],
          ['/api/v1/auth/password/reset', 'token is a number', { token: 1, password: 'a-long-enough-password-42' }],
          ['/api/v1/auth/device', 'no device name', {}],
          ['/api/v1/auth/device', 'device name is empty', { deviceName: '' }],
          ['/api/v1/auth/device', 'device name over 100 characters', { deviceName: 'd'.repeat(101) }],
          ['/api/v1/auth/device', 'device name with a NUL', { deviceName: 'Laptop\u0000' }],
          ['/api/v1/auth/device', 'device name with a terminal escape', { deviceName: 'Laptop\u001b[2J' }],
          ['/api/v1/auth/device', 'platform is a number', { deviceName: 'Laptop', platform: 7 }],
          ['/api/v1/auth/device', 'an unknown field', { deviceName: 'Laptop', userId: 'someone' }],
          ['/api/v1/auth/device/token', 'no device code', {}],
          ['/api/v1/auth/device/token', 'device code is a number', { deviceCode: 42 }],
          ['/api/v1/auth/device/token', 'device code over 200 characters', { deviceCode: `cfd_${'x'.repeat(200)}` }],
          ['/api/v1/auth/device/token', 'device key is an object', { deviceCode: 'cfd_x', deviceKey: { key: 'x' } }],
          ['/api/v1/auth/device/token', 'an unknown field', { deviceCode: 'cfd_x', userId: 'someone' }],
        ];
        for (const [path, label, body] of publicCases) {
          it(`POST ${path}: ${label}`, async () => {
            await expectError(anon(path, json(JSON.stringify(body))), 400, 'VALIDATION_FAILED', `${path}: ${label}`);
          });
        }
        const accountCases: [string, string, string, unknown][] = [
          ['POST', '/api/v1/account/password', 'no new password', { currentPassword: TEST_PASSWORD }],
          ['POST', '/api/v1/account/password', 'keepOtherSessions is a string', { currentPassword: TEST_PASSWORD, newPassword: 'another-long-password-7', keepOtherSessions: 'yes' }],
          ['POST', '/api/v1/account/2fa/enable', 'code is a number', { code: 123456 }],
          ['POST', '/api/v1/account/2fa/disable', 'neither code nor recovery code', {}],
          ['POST', '/api/v1/account/2fa/disable', 'both', { code: '123456', recoveryCode: 'abcd-efgh-jkmn' }],
          ['POST', '/api/v1/account/2fa/recovery-codes', 'recovery code over 40 characters', { recoveryCode: 'r'.repeat(41) }],
          ['POST', '/api/v1/app-passwords', 'no name', {}],
          ['POST', '/api/v1/app-passwords', 'empty name', { name: '' }],
          ['POST', '/api/v1/app-passwords', 'name over 100 characters', { name: 'n'.repeat(101) }],
          ['PUT', '/api/v1/device/pending-changes', 'negative', { pendingChanges: -1 }],
          ['PUT', '/api/v1/device/pending-changes', 'a fraction', { pendingChanges: 1.5 }],
          ['PUT', '/api/v1/device/pending-changes', 'a numeric string', { pendingChanges: '3' }],
          ['PUT', '/api/v1/device/pending-changes', 'over a billion', { pendingChanges: 1e10 }],
          ['POST', '/api/v1/device/wipe/confirm', 'negative count', { removedCount: -1, kept: [] }],
          ['POST', '/api/v1/device/wipe/confirm', 'kept is a string', { removedCount: 0, kept: 'everything' }],
          ['POST', '/api/v1/device/wipe/confirm', 'kept entry without reason', { removedCount: 0, kept: [{ path: 'a' }] }],
          ['POST', '/api/v1/auth/device/approve', 'no approve', { userCode: 'BBBB-BBBB' }],
          ['POST', '/api/v1/auth/device/approve', 'approve is a string', { userCode: 'BBBB-BBBB', approve: 'true' }],
          ['POST', '/api/v1/auth/device/approve', 'no user code', { approve: true }],
          ['POST', '/api/v1/auth/device/approve', 'user code is a number', { userCode: 12345678, approve: true }],
          ['POST', '/api/v1/auth/device/approve', 'user code with a NUL', { userCode: 'BBBB\u0000BBBB', approve: true }],
          ['POST', '/api/v1/auth/device/approve', 'user code over 32 characters', { userCode: 'B'.repeat(33), approve: true }],
          ['POST', '/api/v1/auth/device/approve', 'device name is empty', { userCode: 'BBBB-BBBB', approve: true, deviceName: '' }],
          ['POST', '/api/v1/auth/device/approve', 'device name with a newline', { userCode: 'BBBB-BBBB', approve: true, deviceName: 'a\nb' }],
          ['POST', '/api/v1/auth/device/approve', 'an unknown field', { userCode: 'BBBB-BBBB', approve: true, userId: 'someone' }],
        ];
        for (const [method, path, label, body] of accountCases) {
          it(`${method} ${path}: ${label}`, async () => {
            await expectError(asCarol(method, path, json(JSON.stringify(body))), 400, 'VALIDATION_FAILED', `${path}: ${label}`);
          });
        }
        it('query and path parameters of the account routes', async () => {
          for (const q of ['limit=0', 'limit=501', 'limit=ten', 'cursor=not-a-cursor', `cursor=${'c'.repeat(201)}`, `cursor=${Buffer.from('123').toString('base64url')}`,
            `cursor=${Buffer.from('1|\u0000').toString('base64url')}`, `cursor=${Buffer.from('1|x\u0000y').toString('base64url')}`]) {
            await expectError(asCarol('GET', `/api/v1/account/audit?${q}`), 400, 'VALIDATION_FAILED', `audit ${q}`);
          }
          for (const p of [`/api/v1/devices/${'d'.repeat(65)}`, `/api/v1/sessions/${'s'.repeat(65)}`, '/api/v1/sessions/']) {
            await expectError(asCarol('DELETE', p), 400, 'VALIDATION_FAILED', `DELETE ${p}`);
          }
          await expectError(asCarol('POST', `/api/v1/devices/${'d'.repeat(65)}/wipe`), 400, 'VALIDATION_FAILED', 'wipe id too long');
          for (const q of ['', '?userCode=', `?userCode=${'B'.repeat(33)}`, '?userCode=BBBB%00BBBB', '?code=BBBB-BBBB']) {
            await expectError(asCarol('GET', `/api/v1/auth/device/pending${q}`), 400, 'VALIDATION_FAILED', `device login lookup ${q}`);
          }
        });
      });

      describe('unicode tricks in logins, user names and e-mail addresses', () => {
        const signIn = (login: string, extra: Record<string, unknown> = {}) =>
          anon('/api/v1/auth/login', json(JSON.stringify({ login, password: TEST_PASSWORD, ...extra })));
        const signUp = (username: string, email?: string) =>
          anon('/api/v1/auth/signup', json(JSON.stringify({ username, password: 'a-long-enough-password-42', ...(email === undefined ? {} : { email }) })));

        it('the same login in other case or with surrounding spaces signs in', async () => {
          // (JavaScript's trim() also takes no-break and ideographic spaces and a byte-order mark, as pasted from documents.)
          for (const login of ['CAROL', ' carol ', 'Carol', 'CAROL@EXAMPLE.COM', ' carol@example.com', '\u00a0carol\u3000', 'carol\ufeff', '\tcarol\n']) {
            const r = await signIn(login);
            const text = await r.text();
            assert.equal(r.status, 200, `${JSON.stringify(login)}: ${text}`);
            assert.equal(JSON.parse(text).user.username, 'carol');
          }
        });

        it('look-alike logins are nobody: 401 WRONG_CREDENTIALS, as for any unknown login', async () => {
          const lookAlikes = [
            'ｃａｒｏｌ', // fullwidth
            'ｃarol@example.com',
            'carol\u0301', // combining acute accent
            'c\u0430rol', // Cyrillic а
            '\u202ecarol', // right-to-left override
            'car\u200bol', // zero-width space
            'carol\ud800', // lone surrogate
            'carol@example.com\u200b',
            'carol\u001b[31m', // terminal escape
            '\u2063carol', // invisible separator
            'carol@exam\u0440le.com',
          ];
          for (const login of lookAlikes) await expectError(signIn(login), 401, 'WRONG_CREDENTIALS', `login ${JSON.stringify(login)}`);
        });

        it('a NUL character in a login is refused as such: 400 VALIDATION_FAILED, on both databases', async () => {
          for (const login of ['carol\u0000', '\u0000', 'car\u0000ol', 'carol@example.com\u0000']) {
            await expectError(signIn(login), 400, 'VALIDATION_FAILED', `sign-in ${JSON.stringify(login)}`);
            await expectError(anon('/api/v1/auth/password/forgot', json(JSON.stringify({ login }))), 400, 'VALIDATION_FAILED', `forgot ${JSON.stringify(login)}`);
          }
        });

        it('"forgot password" answers look-alike logins exactly like any other', async () => {
          for (const login of ['ｃａｒｏｌ', '\u202ecarol', 'carol\u0301', 'carol@example.com\u200b']) {
            const r = await anon('/api/v1/auth/password/forgot', json(JSON.stringify({ login })));
            const text = await r.text();
            assert.equal(r.status, 202, `${JSON.stringify(login)}: ${text}`);
          }
          await a.server.coffer.services.passwords.settled();
        });

        it('device names and platforms with control characters are refused; other unicode is kept as sent', async () => {
          for (const extra of [{ deviceName: 'Phone\u0000' }, { deviceName: 'Phone\u001b[2J' }, { deviceName: 'Pho\nne' }, { platform: 'Linux\u0000' }, { platform: '\u0007' }]) {
            await expectError(signIn('carol', extra), 400, 'VALIDATION_FAILED', `sign-in with ${JSON.stringify(extra)}`);
          }
          for (const name of ['tool\u0000', 'tool\r\nX-Injected: 1', '\u007f']) {
            await expectError(asCarol('POST', '/api/v1/app-passwords', json(JSON.stringify({ name }))), 400, 'VALIDATION_FAILED', `app password ${JSON.stringify(name)}`);
          }
          const r = await signIn('carol', { deviceName: 'Téléphone 📱 de Carol', platform: 'Linux ﬁ' });
          const text = await r.text();
          assert.equal(r.status, 200, text);
          assert.equal(JSON.parse(text).session.deviceName, 'Téléphone 📱 de Carol');
        });

        it('sign-up refuses user names that are not plain lower-case ASCII after normalization', async () => {
          const bad = [
            'ｄｏｒａ', 'dora\u0000', '\u0000', 'do\u0301ra', 'd\u043era', '\u202edora', 'dora\u202e', 'do\u200bra', 'dora\ufeff', 'dora\ud800',
            'dora\u001b', 'dora ', ' dora', 'do ra', 'dora\n', 'd', '', '-dora', '.dora', 'dora/x', 'dora@example.com',
          ];
          for (const username of bad) {
            const err = await expectError(signUp(username), 400, 'VALIDATION_FAILED', `username ${JSON.stringify(username)}`);
            assert.equal(err.details?.field, 'username', JSON.stringify(username));
          }
        });

        it('sign-up refuses e-mail addresses with control, format or fullwidth characters', async () => {
          const bad = [
            'dora\u0000@example.com', 'dora@example.com\u0000', 'dora\u202e@example.com', 'dora@exam\u200bple.com', 'dora\ufeff@example.com',
            'dora＠example.com', 'dora@example', 'dora@@example.com', 'dora @example.com', 'dora@exa mple.com', 'dora\n@example.com',
            '@example.com', 'dora@.com.', `${'d'.repeat(65)}@example.com`, 'dora\ud800@example.com', 'dora@example.com\u2063',
          ];
          for (const [i, email] of bad.entries()) {
            const err = await expectError(signUp(`dora${i}`, email), 400, 'VALIDATION_FAILED', `email ${JSON.stringify(email)}`);
            assert.equal(err.details?.field, 'email', JSON.stringify(email));
          }
        });

        it('names and addresses that normalize to a taken one are taken: 409 USER_EXISTS', async () => {
          // Upper case folds to lower case; the Kelvin sign K (U+212A) is canonically K; composed and decomposed é are one.
          const first = await signUp('Kim-1', 'ki\u0301m@example.com');
          const text = await first.text();
          assert.equal(first.status, 201, text);
          assert.equal(JSON.parse(text).username, 'kim-1');
          await expectError(signUp('KIM-1'), 409, 'USER_EXISTS', 'same name in upper case');
          await expectError(signUp('\u212Aim-1'), 409, 'USER_EXISTS', 'Kelvin sign');
          await expectError(signUp('kim-2', 'KÍM@EXAMPLE.COM'), 409, 'USER_EXISTS', 'composed and upper-case e-mail');
          await expectError(signUp('kim-3', 'CAROL@example.com'), 409, 'USER_EXISTS', "carol's address in upper case");
          // And sign-in finds the account by either spelling.
          for (const login of ['\u212Aim-1', 'kím@example.com', 'KI\u0301M@EXAMPLE.COM']) {
            const r = await anon('/api/v1/auth/login', json(JSON.stringify({ login, password: 'a-long-enough-password-42' })));
            const body = await r.text();
            assert.equal(r.status, 200, `${JSON.stringify(login)}: ${body}`);
            assert.equal(JSON.parse(body).user.username, 'kim-1');
          }
        });

        it('ids with NUL or control characters are a clear 4xx on the device and session routes, never a 500', async () => {
          for (const id of ['a%00b', '%00', 'x%1b[2J', '%0d%0aX-Injected:%201']) {
            for (const [method, path] of [['DELETE', `/api/v1/devices/${id}`], ['POST', `/api/v1/devices/${id}/wipe`], ['DELETE', `/api/v1/sessions/${id}`]]) {
              const r = await asCarol(method, path);
              const text = await r.text();
              seen.push({ label: `${method} ${path}`, text });
              assert.ok(r.status === 404 || r.status === 400, `${method} ${path}: ${r.status} ${text}`);
              assertErrorShape(text, r.status === 404 ? 'NOT_FOUND' : 'VALIDATION_FAILED', `${method} ${path}`);
            }
          }
        });

        it('nothing was created, changed or signed out by the refused requests', async () => {
          const users = (await a.server.coffer.services.users.list()).map((u) => u.username).sort();
          assert.deepEqual(users, ['carol', 'kim-1']);
          const me = await carol.json('/api/v1/me');
          assert.equal(me.status, 200, 'carol is still signed in');
          const devices = await carol.json('/api/v1/devices');
          assert.ok(!devices.body.devices.some((d: { name: string }) => /tool|Phone|\u0000/.test(d.name)), JSON.stringify(devices.body.devices.map((d: { name: string }) => d.name)));
          const tfa = await carol.json('/api/v1/account/2fa');
          assert.deepEqual(tfa.body, { enabled: false, recoveryCodesLeft: 0 });
        });
      });
    });
  }

  it('no error body seen in this file carried a stack trace or a file path', () => {
    assert.ok(seen.length > 50, `only ${seen.length} error bodies checked`);
    for (const { label, text } of seen) assertErrorShape(text, null, label);
  });
});
