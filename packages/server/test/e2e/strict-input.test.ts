/** JSON bodies are typed strictly, and errors raised by Node's HTTP parser keep the API's error shape. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startTestServer, TEST_PASSWORD, type TestServer, type TestUser } from '../support/test-server.ts';

describe('strict input', () => {
  let srv: TestServer;
  let alice: TestUser;
  before(async () => {
    srv = await startTestServer({ config: { maxHeaderBytes: 4096 } });
    alice = await srv.user('alice');
  });
  after(() => srv?.close());

  it('refuses wrong JSON types instead of converting them', async () => {
    for (const name of [123, null, ['a'], true]) {
      const r = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name } });
      assert.equal(r.status, 400, JSON.stringify(name));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    }
    const list = await alice.json(`/api/v1/items/${alice.rootId}/children`);
    assert.equal(list.body.total, 0, 'nothing was created');
  });

  it('sign-in refuses wrong JSON types and unknown fields instead of converting or dropping them', async () => {
    const bodies: [string, Record<string, unknown>][] = [
      ['login is a number', { login: 123, password: 'x' }],
      ['password is a number', { login: 'alice', password: 1234567890 }],
      ['remember is a string', { login: 'alice', password: TEST_PASSWORD, remember: 'true' }],
      ['remember is a number', { login: 'alice', password: TEST_PASSWORD, remember: 1 }],
      ['deviceName is a number', { login: 'alice', password: TEST_PASSWORD, deviceName: 7 }],
      ['client is not one of browser, sync', { login: 'alice', password: TEST_PASSWORD, client: 'admin' }],
      ['an unknown field', { login: 'alice', password: TEST_PASSWORD, isAdmin: true }],
      ['the stand-in shape', { username: 'alice', password: TEST_PASSWORD }],
    ];
    for (const [label, body] of bodies) {
      const r = await fetch(`${srv.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await r.text();
      assert.equal(r.status, 400, `${label}: ${text}`);
      assert.equal(JSON.parse(text).error.code, 'VALIDATION_FAILED', label);
    }
    // Even with the right password: a well-typed body is the only way in.
    const ok = await fetch(`${srv.url}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ login: 'alice', password: TEST_PASSWORD, remember: false }) });
    assert.equal(ok.status, 200);
  });

  it('device routes type their bodies as strictly as the rest (no converting, no dropping unknown fields)', async () => {
    const before = (await alice.json('/api/v1/devices')).body.devices.length;
    for (const body of [{ name: 5 }, { name: true }, { name: ['x'] }, { name: 'tool', scope: 'admin' }]) {
      const r = await alice.json('/api/v1/app-passwords', { method: 'POST', body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'VALIDATION_FAILED');
    }
    assert.equal((await alice.json('/api/v1/devices')).body.devices.length, before, 'no app password was created');
    for (const pendingChanges of ['3', true, [3], null]) {
      const r = await alice.json('/api/v1/device/pending-changes', { method: 'PUT', body: { pendingChanges } });
      assert.equal(r.status, 400, JSON.stringify(pendingChanges));
      assert.match(r.body.error.message, /pendingChanges/);
    }
    const wipe = await alice.json('/api/v1/device/wipe/confirm', { method: 'POST', body: { removedCount: '0', kept: [] } });
    assert.equal(wipe.status, 400);
    assert.match(wipe.body.error.message, /removedCount/, 'refused by its schema, before the handler looks for a wipe');
    const devices = (await alice.json('/api/v1/devices')).body.devices as { current: boolean; pendingChanges: number | null }[];
    assert.equal(devices.find((d) => d.current)?.pendingChanges, null, 'nothing was reported');
  });

  it('no documented JSON body converts types: a wrong-typed value is refused by the schema, on every route', async () => {
    const doc = await (await fetch(`${srv.url}/api/openapi.json`)).json() as { paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: JsonSchema }> } }>> };
    interface JsonSchema { type?: string; properties?: Record<string, JsonSchema> }
    // What Fastify's default (coercing) validator would turn into the declared type.
    const wrong: Record<string, unknown> = { string: 12345, integer: '1', number: '1', boolean: 'true', array: 'x' };
    let checked = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const schema = op.requestBody?.content?.['application/json']?.schema;
        if (!schema?.properties) continue;
        const body: Record<string, unknown> = {};
        for (const [name, prop] of Object.entries(schema.properties)) if (prop.type && prop.type in wrong) body[name] = wrong[prop.type];
        if (Object.keys(body).length === 0) continue;
        const url = path.replace('{*}', 'x').replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
        const r = await alice.json(url, { method: method.toUpperCase(), body });
        assert.equal(r.status, 400, `${method.toUpperCase()} ${path} with ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error.code, 'VALIDATION_FAILED', `${method.toUpperCase()} ${path}`);
        assert.match(r.body.error.message, /^Invalid request: body/, `${method.toUpperCase()} ${path}: refused by the schema`);
        checked++;
      }
    }
    assert.ok(checked >= 15, `only ${checked} JSON bodies checked`);
  });

  it('still reads numbers from the query string', async () => {
    const r = await alice.json(`/api/v1/items/${alice.rootId}/children?limit=5`);
    assert.equal(r.status, 200);
    assert.equal((await alice.json(`/api/v1/items/${alice.rootId}/children?limit=five`)).body.error.code, 'VALIDATION_FAILED');
  });

  it('answers an over-long name with INVALID_NAME, whatever its length', async () => {
    const r = await alice.json('/api/v1/folders', { method: 'POST', body: { parentId: alice.rootId, name: 'x'.repeat(2000) } });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'INVALID_NAME');
    assert.equal(r.body.error.details.reason, 'too-long');
  });

  it('gives headers that are too large a 431 in the API error shape', async () => {
    const { port } = new URL(srv.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1', () => {
        sock.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8000)}\r\n\r\n`);
      });
      let data = '';
      sock.on('data', (d) => { data += d; });
      sock.on('end', () => resolve(data));
      sock.on('error', reject);
      sock.setTimeout(5000, () => { sock.destroy(); reject(new Error('timeout')); });
    });
    assert.match(raw, /^HTTP\/1.1 431 /);
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
    assert.equal(body.error.code, 'HEADERS_TOO_LARGE');
  });
});
