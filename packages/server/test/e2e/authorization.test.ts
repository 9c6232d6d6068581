/**
 * Authorization over the whole API, driven by the served OpenAPI document:
 * every documented route must have a row in ROUTES below, and for each row
 *   - without credentials (or with a bad or revoked token) it answers 401
 *     UNAUTHENTICATED, before looking at any id (public routes excepted);
 *   - as bob with alice's ids it answers 404 NOT_FOUND, exactly as for an id
 *     that does not exist, and nothing alice owns shows up in any response.
 * A new route without a row fails the first test: add it to ROUTES.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, TEST_PASSWORD, type TestServer, type TestUser } from '../support/test-server.ts';

/** Alice's data that bob must never see. */
interface Ids {
  rootId: string;
  folderId: string;
  fileId: string;
  /** The first (no longer current) version of the file. */
  versionId: string;
  /** A file in alice's recycle bin. */
  trashedId: string;
  /** The file's path from alice's root, URL-encoded per segment. */
  filePath: string;
  bobRootId: string;
  bobFileId: string;
  /** A change-feed cursor of alice's drive. */
  aliceCursor: string;
  /** An open upload session (chunk protocol) of alice's. */
  uploadId: string;
}

interface Call {
  path: string;
  /** A JSON body. */
  json?: unknown;
  /** Raw upload bytes. */
  bytes?: string;
  /** The call revokes the token it carries: send it with a throwaway one. */
  revokesToken?: boolean;
  /** The answer is a stream that stays open: read up to the first event, then hang up. */
  stream?: boolean;
}

interface RouteSpec {
  /** Reachable without credentials (the document marks it with `security: []`). */
  public?: boolean;
  /** The request: alice's ids wherever the route takes one. */
  call(ids: Ids): Call;
  /** What bob gets for that request: 404 where it names alice's data, else his own answer. */
  bob: number;
  /** Status for an anonymous call of a public route. */
  anonymous?: number;
}

const FOLDER_NAME = 'Alice Secret Folder';
const FILE_NAME = 'alice-secret-plan.txt';
const TRASHED_NAME = 'alice-trashed-diary.txt';
const CONTENT_V1 = 'ALICE-SECRET-CONTENT-version-one';
const CONTENT_V2 = 'ALICE-SECRET-CONTENT-version-two';
const TRASHED_CONTENT = 'ALICE-TRASHED-CONTENT';
const BOB_CONTENT = 'bob-own-content';

/**
 * One row per documented route, keyed `METHOD /path` exactly as in the
 * OpenAPI document. Adding a route to the server without adding it here fails
 * 'every documented route has a row'.
 */
const ROUTES: Record<string, RouteSpec> = {
  'POST /api/v1/auth/token': { public: true, anonymous: 401, bob: 401, call: () => ({ path: '/api/v1/auth/token', json: { username: 'alice', password: 'not-her-password' } }) },
  'DELETE /api/v1/auth/token': { bob: 204, call: () => ({ path: '/api/v1/auth/token', revokesToken: true }) },
  'GET /api/v1/me': { bob: 200, call: () => ({ path: '/api/v1/me' }) },
  'GET /api/v1/items/root': { bob: 200, call: () => ({ path: '/api/v1/items/root' }) },
  'GET /api/v1/items/by-path': { bob: 404, call: (i) => ({ path: `/api/v1/items/by-path?path=${encodeURIComponent(decodeURIComponent(i.filePath))}` }) },
  'GET /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}` }) },
  'PATCH /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}`, json: { name: 'stolen.txt' } }) },
  'DELETE /api/v1/items/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}` }) },
  'GET /api/v1/items/{id}/children': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.folderId}/children` }) },
  'POST /api/v1/folders': { bob: 404, call: (i) => ({ path: '/api/v1/folders', json: { parentId: i.folderId, name: 'planted' } }) },
  'POST /api/v1/items/{id}/copy': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/copy`, json: { parentId: i.bobRootId } }) },
  'GET /api/v1/drive': { bob: 200, call: () => ({ path: '/api/v1/drive' }) },
  'POST /api/v1/uploads': { bob: 201, call: () => ({ path: '/api/v1/uploads' }) },
  'DELETE /api/v1/uploads/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}` }) },
  'POST /api/v1/uploads/{id}/missing': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/missing`, json: { hashes: ['0'.repeat(64)] } }) },
  'PUT /api/v1/uploads/{id}/chunks': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/chunks`, bytes: '\u0000\u0000\u0000\u0001x' }) },
  'POST /api/v1/uploads/{id}/commit': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/commit`, json: { parentId: i.bobRootId, name: 'planted.txt', chunks: [], size: 0 } }) },
  'POST /api/v1/uploads/{id}/commit-batch': { bob: 404, call: (i) => ({ path: `/api/v1/uploads/${i.uploadId}/commit-batch`, json: { files: [{ parentId: i.bobRootId, name: 'planted.txt', chunks: [], size: 0 }] } }) },
  // Another drive's cursor cannot be continued: bob is told to resync his own drive, and learns nothing of alice's.
  'GET /api/v1/changes': { bob: 410, call: (i) => ({ path: `/api/v1/changes?cursor=${i.aliceCursor}` }) },
  // Push names no id: bob gets his own drive's stream.
  'GET /api/v1/changes/stream': { bob: 200, call: () => ({ path: '/api/v1/changes/stream', stream: true }) },
  'GET /api/v1/trash': { bob: 200, call: () => ({ path: '/api/v1/trash' }) },
  'DELETE /api/v1/trash': { bob: 200, call: () => ({ path: '/api/v1/trash' }) },
  'POST /api/v1/trash/{id}/restore': { bob: 404, call: (i) => ({ path: `/api/v1/trash/${i.trashedId}/restore` }) },
  'DELETE /api/v1/trash/{id}': { bob: 404, call: (i) => ({ path: `/api/v1/trash/${i.trashedId}` }) },
  'GET /api/v1/items/{id}/versions': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions` }) },
  'GET /api/v1/items/{id}/versions/{versionId}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions/${i.versionId}/content` }) },
  'POST /api/v1/items/{id}/versions/{versionId}/restore': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/versions/${i.versionId}/restore` }) },
  'PUT /api/v1/content/{*}': { bob: 404, call: (i) => ({ path: `/api/v1/content/${i.filePath}`, bytes: 'overwritten by bob' }) },
  'GET /api/v1/content/{*}': { bob: 404, call: (i) => ({ path: `/api/v1/content/${i.filePath}` }) },
  'PUT /api/v1/items/{id}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/content`, bytes: 'overwritten by bob' }) },
  'GET /api/v1/items/{id}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.fileId}/content` }) },
  'PUT /api/v1/items/{id}/children/{name}/content': { bob: 404, call: (i) => ({ path: `/api/v1/items/${i.folderId}/children/planted.txt/content`, bytes: 'planted by bob' }) },
};

/**
 * Requests that mix bob's own ids with alice's: the alice half must be
 * invisible too. Not tied to the document; they complement ROUTES.
 */
const MIXED: { label: string; method: string; call(i: Ids): Call }[] = [
  { label: 'move my file into her folder', method: 'PATCH', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}`, json: { parentId: i.folderId } }) },
  { label: 'copy my file into her folder', method: 'POST', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/copy`, json: { parentId: i.folderId } }) },
  { label: 'list her root', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.rootId}/children` }) },
  { label: 'stat her root', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.rootId}` }) },
  { label: 'create a folder in her root', method: 'POST', call: (i) => ({ path: '/api/v1/folders', json: { parentId: i.rootId, name: 'planted' } }) },
  { label: 'upload into her root by id', method: 'PUT', call: (i) => ({ path: `/api/v1/items/${i.rootId}/children/planted.txt/content`, bytes: 'x' }) },
  { label: 'her version id on my file (download)', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/versions/${i.versionId}/content` }) },
  { label: 'her version id on my file (restore)', method: 'POST', call: (i) => ({ path: `/api/v1/items/${i.bobFileId}/versions/${i.versionId}/restore` }) },
  { label: 'stat her trashed item', method: 'GET', call: (i) => ({ path: `/api/v1/items/${i.trashedId}` }) },
  { label: 'trash her folder', method: 'DELETE', call: (i) => ({ path: `/api/v1/items/${i.folderId}` }) },
];

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;

function specPath(key: string): { method: string; path: string } {
  const [method, path] = key.split(' ');
  return { method, path };
}

interface Answer { status: number; text: string; headers: Headers }

/** Sends a call with an Authorization header value (or none). */
async function send(url: string, method: string, call: Call, authorization: string | null): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (authorization !== null) headers.authorization = authorization;
  let body: string | undefined;
  if (call.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(call.json);
  } else if (call.bytes !== undefined) {
    headers['content-type'] = 'application/octet-stream';
    body = call.bytes;
  }
  if (call.stream) {
    // An open event stream never ends by itself: take what arrives up to the first event, then abort.
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5_000);
    try {
      const res = await fetch(url + call.path, { method, headers, signal: abort.signal });
      let text = '';
      if (res.body && res.status === 200) {
        const decoder = new TextDecoder();
        for await (const chunk of res.body) {
          text += decoder.decode(chunk, { stream: true });
          if (text.includes('\n\n')) break;
        }
      } else {
        text = await res.text();
      }
      return { status: res.status, text, headers: res.headers };
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
  }
  const res = await fetch(url + call.path, { method, headers, body });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** The error body shape of every failure: `{ error: { code, message, requestId, details? } }` and nothing else. */
function assertError(a: Answer, status: number, code: string, label: string): void {
  assert.equal(a.status, status, `${label}: expected ${status} ${code}, got ${a.status} ${a.text.slice(0, 300)}`);
  if (a.text === '') return; // HEAD
  assert.match(a.headers.get('content-type') ?? '', /^application\/json/, label);
  const body = JSON.parse(a.text);
  assert.deepEqual(Object.keys(body), ['error'], label);
  const keys = Object.keys(body.error);
  assert.ok(keys.every((k) => ['code', 'message', 'requestId', 'details'].includes(k)), `${label}: unexpected keys ${keys}`);
  assert.equal(body.error.code, code, label);
  assert.equal(typeof body.error.message, 'string', label);
  assert.equal(typeof body.error.requestId, 'string', label);
}

describe('authorization: every route in the OpenAPI document', () => {
  let s: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  let ids: Ids;
  let spec: { paths: Record<string, Record<string, { security?: unknown[] }>>; security?: unknown[] };
  /** Strings that identify alice's data; none may appear in anything bob or an anonymous caller receives. */
  let secrets: string[];

  function assertNoLeak(a: { text: string; headers?: Headers }, label: string): void {
    const headerText = a.headers ? [...a.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n') : '';
    for (const secret of secrets) {
      assert.ok(!a.text.includes(secret), `${label}: the response body contains alice's ${JSON.stringify(secret)}`);
      assert.ok(!headerText.includes(secret), `${label}: a response header contains alice's ${JSON.stringify(secret)}`);
    }
  }

  /** Every documented operation, as `METHOD /path`. */
  function documented(): string[] {
    return Object.entries(spec.paths).flatMap(([path, ops]) =>
      METHODS.filter((m) => ops[m] !== undefined).map((m) => `${m.toUpperCase()} ${path}`));
  }

  async function freshToken(username: string): Promise<string> {
    const res = await fetch(`${s.url}/api/v1/auth/token`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password: TEST_PASSWORD }),
    });
    assert.equal(res.status, 200);
    return ((await res.json()) as { token: string }).token;
  }

  before(async () => {
    s = await startTestServer();
    alice = await s.user('alice');
    bob = await s.user('bob');

    const folder = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name: FOLDER_NAME } });
    assert.equal(folder.status, 201);
    const filePath = `${encodeURIComponent(FOLDER_NAME)}/${encodeURIComponent(FILE_NAME)}`;
    const v1 = await alice.json(`/api/v1/content/${filePath}`, { method: 'PUT', body: CONTENT_V1 });
    assert.equal(v1.status, 201);
    const v2 = await alice.json(`/api/v1/content/${filePath}`, { method: 'PUT', body: CONTENT_V2 });
    assert.equal(v2.status, 200);
    const versions = await alice.json(`/api/v1/items/${v1.body.id}/versions`);
    assert.equal(versions.body.versions.length, 2);
    const oldVersion = versions.body.versions.find((v: { current: boolean }) => !v.current);
    const trashed = await alice.json(`/api/v1/content/${encodeURIComponent(TRASHED_NAME)}`, { method: 'PUT', body: TRASHED_CONTENT });
    assert.equal(trashed.status, 201);
    assert.equal((await alice.json(`/api/v1/items/${trashed.body.id}`, { method: 'DELETE' })).status, 200);
    const me = await alice.json('/api/v1/me');

    const bobFile = await bob.json('/api/v1/content/bob.txt', { method: 'PUT', body: BOB_CONTENT });
    assert.equal(bobFile.status, 201);

    ids = {
      rootId: alice.rootId, folderId: folder.body.id, fileId: v1.body.id, versionId: oldVersion.id, trashedId: trashed.body.id,
      filePath, bobRootId: bob.rootId, bobFileId: bobFile.body.id, aliceCursor: (await alice.json('/api/v1/drive')).body.cursor,
      uploadId: (await alice.json('/api/v1/uploads', { method: 'POST' })).body.uploadId,
    };
    secrets = [
      alice.rootId, folder.body.id, v1.body.id, oldVersion.id, v2.body.etag.replaceAll('"', ''), trashed.body.id, me.body.id, alice.token,
      FOLDER_NAME, FILE_NAME, TRASHED_NAME, CONTENT_V1, CONTENT_V2, TRASHED_CONTENT, v2.body.contentHash,
    ];
    secrets.push(ids.uploadId);

    const res = await fetch(`${s.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    spec = await res.json() as typeof spec;
  });

  after(() => s?.close());

  it('every documented route has a row in ROUTES, and every row is documented', () => {
    const inSpec = documented();
    const missing = inSpec.filter((k) => !(k in ROUTES));
    assert.deepEqual(missing, [], `routes in /api/openapi.json without an authorization expectation; add them to ROUTES in ${import.meta.filename}`);
    const stale = Object.keys(ROUTES).filter((k) => !inSpec.includes(k));
    assert.deepEqual(stale, [], 'rows in ROUTES for routes the OpenAPI document no longer has');
    assert.ok(inSpec.length >= 20, `only ${inSpec.length} routes documented`);
  });

  it('the document marks exactly the public rows as needing no credentials', () => {
    assert.deepEqual(spec.security, [{ bearer: [] }], 'bearer auth is the document-wide default');
    for (const key of Object.keys(ROUTES)) {
      const { method, path } = specPath(key);
      const op = spec.paths[path]?.[method.toLowerCase()];
      if (!op) continue; // reported by the coverage test
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      assert.equal(isPublic, ROUTES[key].public === true, `${key}: the document says ${isPublic ? 'public' : 'authenticated'}`);
    }
  });

  it('anonymous requests get 401 UNAUTHENTICATED on every non-public route, before any id is looked at', async () => {
    for (const [key, route] of Object.entries(ROUTES)) {
      const { method } = specPath(key);
      const a = await send(s.url, method, route.call(ids), null);
      if (route.public) {
        assertError(a, route.anonymous!, 'UNAUTHENTICATED', `anonymous ${key}`);
      } else {
        assertError(a, 401, 'UNAUTHENTICATED', `anonymous ${key}`);
        assert.match(a.headers.get('www-authenticate') ?? '', /^Bearer /, `${key}: WWW-Authenticate`);
      }
      assertNoLeak(a, `anonymous ${key}`);
      if (method === 'GET') {
        const head = await send(s.url, 'HEAD', route.call(ids), null);
        assert.equal(head.status, route.public ? head.status : 401, `anonymous HEAD ${key}`);
        assertNoLeak(head, `anonymous HEAD ${key}`);
      }
    }
  });

  it('malformed, unknown and non-bearer credentials get 401 on every non-public route', async () => {
    const bad = [
      'Bearer', 'Bearer ', 'Bearer cft_not-a-real-token', `Bearer ${alice.token}x`, `Bearer ${alice.token.slice(0, -1)}`,
      `Bearer ${'x'.repeat(600)}`, `Basic ${Buffer.from(`alice:${TEST_PASSWORD}`).toString('base64')}`, alice.token, `Token ${alice.token}`,
    ];
    for (const [key, route] of Object.entries(ROUTES)) {
      if (route.public) continue;
      const { method } = specPath(key);
      for (const authorization of bad) {
        const a = await send(s.url, method, route.call(ids), authorization);
        assertError(a, 401, 'UNAUTHENTICATED', `${key} with Authorization: ${authorization.slice(0, 30)}…`);
        assertNoLeak(a, `${key} with a bad token`);
      }
    }
  });

  it('sign-in answers the same for a wrong password and an unknown user', async () => {
    const wrongPassword = await send(s.url, 'POST', { path: '/api/v1/auth/token', json: { username: 'alice', password: 'nope' } }, null);
    const unknownUser = await send(s.url, 'POST', { path: '/api/v1/auth/token', json: { username: 'mallory', password: 'nope' } }, null);
    assertError(wrongPassword, 401, 'UNAUTHENTICATED', 'wrong password');
    assertError(unknownUser, 401, 'UNAUTHENTICATED', 'unknown user');
    assert.equal(JSON.parse(wrongPassword.text).error.message, JSON.parse(unknownUser.text).error.message);
    assertNoLeak(wrongPassword, 'wrong password');
  });

  it('a revoked token gets 401 on every non-public route; other tokens keep working', async () => {
    const token = await freshToken('alice');
    const me = await send(s.url, 'GET', { path: '/api/v1/me' }, `Bearer ${token}`);
    assert.equal(me.status, 200);
    const revoke = await send(s.url, 'DELETE', { path: '/api/v1/auth/token' }, `Bearer ${token}`);
    assert.equal(revoke.status, 204);
    for (const [key, route] of Object.entries(ROUTES)) {
      if (route.public) continue;
      const { method } = specPath(key);
      const a = await send(s.url, method, route.call(ids), `Bearer ${token}`);
      assertError(a, 401, 'UNAUTHENTICATED', `revoked token: ${key}`);
      assertNoLeak(a, `revoked token: ${key}`);
    }
    assert.equal((await alice.json('/api/v1/me')).status, 200, "alice's other token still works");
  });

  it("bob gets 404 NOT_FOUND for alice's ids on every id route, and no trace of her data anywhere", async () => {
    for (const [key, route] of Object.entries(ROUTES)) {
      const { method } = specPath(key);
      const call = route.call(ids);
      const token = call.revokesToken ? await freshToken('bob') : bob.token;
      const a = await send(s.url, method, call, `Bearer ${token}`);
      if (route.bob === 404) assertError(a, 404, 'NOT_FOUND', `bob: ${key}`);
      else if (route.bob === 401) assertError(a, 401, 'UNAUTHENTICATED', `bob: ${key}`);
      else assert.equal(a.status, route.bob, `bob: ${key}: ${a.text.slice(0, 300)}`);
      assertNoLeak(a, `bob: ${key}`);
      if (method === 'GET') {
        const head = await send(s.url, 'HEAD', call, `Bearer ${token}`);
        assert.equal(head.status, route.bob, `bob: HEAD ${key}`);
        assertNoLeak(head, `bob: HEAD ${key}`);
      }
    }
    for (const m of MIXED) {
      const a = await send(s.url, m.method, m.call(ids), `Bearer ${bob.token}`);
      assertError(a, 404, 'NOT_FOUND', `bob: ${m.label}`);
      assertNoLeak(a, `bob: ${m.label}`);
    }
  });

  it("alice's ids answer exactly like ids that never existed", async () => {
    const ghost = { ...ids, fileId: '00000000-0000-4000-8000-000000000000', folderId: '00000000-0000-4000-8000-000000000001', trashedId: '00000000-0000-4000-8000-000000000002', versionId: '00000000-0000-4000-8000-000000000003' };
    for (const [key, route] of Object.entries(ROUTES)) {
      if (route.bob !== 404) continue;
      const { method } = specPath(key);
      const real = await send(s.url, method, route.call(ids), `Bearer ${bob.token}`);
      const fake = await send(s.url, method, route.call(ghost), `Bearer ${bob.token}`);
      const strip = (t: string) => { const b = JSON.parse(t); delete b.error.requestId; return b; };
      assert.equal(real.status, fake.status, key);
      assert.deepEqual(strip(real.text), strip(fake.text), `${key}: alice's id and an unknown id must be indistinguishable`);
    }
  });

  it("alice's drive is exactly as it was after all of bob's attempts", async () => {
    const file = await alice.json(`/api/v1/items/${ids.fileId}`);
    assert.equal(file.status, 200);
    assert.equal(file.body.name, FILE_NAME);
    assert.equal(file.body.parentId, ids.folderId);
    assert.equal(file.body.rev, 2);
    const content = await alice.fetch(`/api/v1/items/${ids.fileId}/content`);
    assert.equal(await content.text(), CONTENT_V2);
    const versions = await alice.json(`/api/v1/items/${ids.fileId}/versions`);
    assert.equal(versions.body.versions.length, 2);
    const children = await alice.json(`/api/v1/items/${ids.folderId}/children`);
    assert.deepEqual(children.body.items.map((i: { name: string }) => i.name), [FILE_NAME]);
    const root = await alice.json(`/api/v1/items/${ids.rootId}/children`);
    assert.deepEqual(root.body.items.map((i: { name: string }) => i.name), [FOLDER_NAME]);
    const trash = await alice.json('/api/v1/trash');
    assert.deepEqual(trash.body.items.map((i: { id: string }) => i.id), [ids.trashedId]);

    const bobRoot = await bob.json(`/api/v1/items/${bob.rootId}/children`);
    assert.deepEqual(bobRoot.body.items.map((i: { name: string }) => i.name), ['bob.txt'], "nothing of alice's was copied or moved to bob");
    const bobFile = await bob.fetch(`/api/v1/items/${ids.bobFileId}/content`);
    assert.equal(await bobFile.text(), BOB_CONTENT);
  });

  it('/healthz, /metrics and /api/openapi.json are public and hold no user data', async () => {
    for (const authorization of [null, 'Bearer cft_not-a-real-token']) {
      const health = await send(s.url, 'GET', { path: '/healthz' }, authorization);
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.text), { status: 'ok' });
      assertNoLeak(health, '/healthz');

      const doc = await send(s.url, 'GET', { path: '/api/openapi.json' }, authorization);
      assert.equal(doc.status, 200);
      assert.match(JSON.parse(doc.text).openapi, /^3\./);
      assertNoLeak(doc, '/api/openapi.json');
      assert.ok(!doc.text.includes('alice') && !doc.text.includes('bob.txt'));

      const metrics = await send(s.url, 'GET', { path: '/metrics' }, authorization);
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
      assertNoLeak(metrics, '/metrics');
      assert.ok(!metrics.text.includes('alice') && !metrics.text.includes('bob.txt'), '/metrics names no user or file');
    }

    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.match(text, /^# TYPE coffer_http_requests_total counter$/m);
    assert.match(text, /^# TYPE coffer_http_request_duration_seconds histogram$/m);
    assert.match(text, /^# TYPE coffer_http_received_bytes_total counter$/m);
    assert.match(text, /^# TYPE coffer_http_sent_bytes_total counter$/m);
    assert.match(text, /^# TYPE coffer_uploads_in_progress gauge$/m);
    assert.match(text, /^coffer_uploads_in_progress 0$/m);
    // Requests are labelled by route pattern, never by the concrete URL (which holds ids and names).
    assert.match(text, /^coffer_http_requests_total\{method="GET",route="\/api\/v1\/items\/:id",status="200"\} \d+$/m);
    assert.match(text, /^coffer_http_requests_total\{method="GET",route="\/api\/v1\/items\/:id",status="404"\} \d+$/m);
    assert.match(text, /^coffer_http_requests_total\{method="PUT",route="\/api\/v1\/content\/\*",status="201"\} \d+$/m);
    assert.match(text, /^coffer_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/api\/v1\/me"\} \d+$/m);
    assert.ok(Number(/^coffer_http_received_bytes_total (\d+)/m.exec(text)?.[1]) > 0, 'upload bytes are counted');
    assert.ok(Number(/^coffer_http_sent_bytes_total (\d+)/m.exec(text)?.[1]) > 0, 'downloaded bytes are counted');

    // Unknown URLs share one label: no user-chosen text becomes a metric label.
    await fetch(`${s.url}/no-such-route/${encodeURIComponent(FILE_NAME)}`);
    const after = await (await fetch(`${s.url}/metrics`)).text();
    assert.ok(!after.includes('no-such-route'));
    assert.match(after, /route="unmatched"/);
  });
});
