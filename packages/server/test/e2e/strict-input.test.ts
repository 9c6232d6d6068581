/** JSON bodies are typed strictly, and errors raised by Node's HTTP parser keep the API's error shape. */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startTestServer, type TestServer, type TestUser } from '../support/test-server.ts';

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
