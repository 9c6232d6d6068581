/**
 * The API description: the document the server serves is the one checked in
 * at docs/openapi.json (so API changes show up in review), it is OpenAPI 3.x,
 * and every route in it is documented.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { OPENAPI_FILE, formatOpenApi } from '../../scripts/write-openapi.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: { in: string; name: string; required?: boolean }[];
  responses?: Record<string, unknown>;
  security?: unknown[];
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: Record<string, Record<string, unknown>>;
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

describe('OpenAPI document', () => {
  let s: TestServer;
  let served: Document;
  let servedText: string;

  before(async () => {
    s = await startTestServer();
    const res = await fetch(`${s.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    servedText = await res.text();
    served = JSON.parse(servedText);
  });
  after(() => s?.close());

  const operations = () => Object.entries(served.paths).flatMap(([path, ops]) =>
    Object.entries(ops).filter(([m]) => METHODS.includes(m)).map(([method, op]) => ({ key: `${method.toUpperCase()} ${path}`, path, method, op })));

  it('the served document equals docs/openapi.json', async () => {
    const checkedIn = await readFile(OPENAPI_FILE, 'utf8').catch(() => null);
    assert.ok(checkedIn !== null, `${OPENAPI_FILE} is missing: run npm run openapi`);
    assert.deepEqual(served, JSON.parse(checkedIn), 'docs/openapi.json differs from the API the server serves: run npm run openapi');
    assert.equal(formatOpenApi(served), checkedIn, 'docs/openapi.json is not formatted as the script writes it: run npm run openapi');
  });

  it('is OpenAPI 3.x with a title and version', () => {
    assert.match(served.openapi, /^3\.\d+\.\d+$/);
    assert.equal(typeof served.info.title, 'string');
    assert.match(served.info.version, /^\d+\.\d+\.\d+/);
    assert.ok(Object.keys(served.paths).length > 0);
  });

  it('every route has a summary and a tag, and lists its responses', () => {
    const ops = operations();
    assert.ok(ops.length >= 20, `only ${ops.length} operations`);
    for (const { key, op } of ops) {
      assert.equal(typeof op.summary, 'string', `${key} has no summary`);
      assert.ok(op.summary!.trim().length >= 10, `${key}: summary ${JSON.stringify(op.summary)} is too short`);
      assert.ok(Array.isArray(op.tags) && op.tags.length > 0, `${key} has no tag`);
      assert.ok(op.responses && Object.keys(op.responses).length > 0, `${key} lists no responses`);
    }
  });

  it('summaries are unique', () => {
    const seen = new Map<string, string>();
    for (const { key, op } of operations()) {
      assert.ok(!seen.has(op.summary!), `${key} and ${seen.get(op.summary!)} share the summary ${JSON.stringify(op.summary)}`);
      seen.set(op.summary!, key);
    }
  });

  it('every path parameter is declared', () => {
    for (const { key, path, op } of operations()) {
      for (const [, name] of path.matchAll(/\{([^}]+)\}/g)) {
        const p = op.parameters?.find((x) => x.in === 'path' && x.name === name);
        assert.ok(p, `${key}: path parameter ${name} is not declared`);
        assert.equal(p.required, true, `${key}: path parameter ${name} must be required`);
      }
    }
  });

  it('every documented route is served', () => {
    for (const { key, path, method } of operations()) {
      const url = path.replace(/\{\*\}/g, '*').replace(/\{([^}]+)\}/g, ':$1');
      assert.ok(s.server.http.hasRoute({ method: method.toUpperCase() as 'GET', url }), `${key} is documented but not served`);
    }
  });

  it('every $ref resolves within the document', () => {
    const refs: string[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (k === '$ref' && typeof x === 'string') refs.push(x);
          else walk(x);
        }
      }
    };
    walk(served);
    assert.ok(refs.length > 0);
    for (const ref of new Set(refs)) {
      assert.match(ref, /^#\//, `${ref} points outside the document`);
      let node: unknown = served;
      for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown> | undefined)?.[part.replaceAll('~1', '/').replaceAll('~0', '~')];
      assert.ok(node !== undefined, `${ref} does not resolve`);
    }
  });

  it('a credential is the default (bearer token, session cookie or app password); the sign-in routes opt out explicitly', () => {
    assert.deepEqual((served as unknown as { security: unknown }).security, [{ bearer: [] }, { cookie: [] }, { appPassword: [] }]);
    const schemes = served.components?.securitySchemes as Record<string, Record<string, unknown>> | undefined;
    assert.deepEqual(Object.keys(schemes ?? {}).sort(), ['appPassword', 'bearer', 'cookie']);
    assert.equal(schemes?.bearer.type, 'http');
    assert.equal(schemes?.bearer.scheme, 'bearer');
    assert.equal(schemes?.appPassword.type, 'http');
    assert.equal(schemes?.appPassword.scheme, 'basic');
    assert.deepEqual({ type: schemes?.cookie.type, in: schemes?.cookie.in, name: schemes?.cookie.name }, { type: 'apiKey', in: 'cookie', name: 'coffer_session' });
    for (const s of Object.values(schemes ?? {})) assert.equal(typeof s.description, 'string', 'each scheme says where its credential comes from');
    const open = operations().filter(({ op }) => Array.isArray(op.security) && op.security.length === 0).map(({ key }) => key);
    assert.deepEqual(open, [
      'POST /api/v1/auth/signup', 'POST /api/v1/auth/login', 'POST /api/v1/auth/login/2fa', 'POST /api/v1/auth/refresh',
      'POST /api/v1/auth/password/forgot', 'POST /api/v1/auth/password/reset', 'POST /api/v1/auth/device', 'POST /api/v1/auth/device/token',
    ]);
    // No operation narrows or widens the default other than by opting out.
    for (const { key, op } of operations()) {
      assert.ok(op.security === undefined || (Array.isArray(op.security) && op.security.length === 0), `${key}: security ${JSON.stringify(op.security)}`);
    }
  });

  it('the public routes are the ones the server serves without credentials', async () => {
    for (const { key, path, method, op } of operations()) {
      const isPublic = Array.isArray(op.security) && op.security.length === 0;
      const url = path.replace(/\{\*\}/g, 'x').replace(/\{[^}]+\}/g, '00000000-0000-4000-8000-000000000000');
      const res = await fetch(s.url + url, { method: method.toUpperCase(), headers: { 'content-type': 'application/json' }, body: method === 'get' ? undefined : '{}' });
      const text = await res.text();
      if (isPublic) assert.notEqual(res.status, 401, `${key} is documented as public but asks for credentials: ${text}`);
      else {
        assert.equal(res.status, 401, `${key} is documented as needing credentials but answered ${res.status} without: ${text}`);
        assert.equal(JSON.parse(text).error.code, 'UNAUTHENTICATED');
      }
    }
  });

  it('the sign-in request is described exactly (no extra fields accepted)', () => {
    const op = served.paths['/api/v1/auth/login']?.post as unknown as { requestBody?: { content?: Record<string, { schema?: { properties?: Record<string, unknown>; required?: string[]; additionalProperties?: boolean } }> } };
    const schema = op?.requestBody?.content?.['application/json']?.schema;
    assert.ok(schema, 'POST /api/v1/auth/login documents its JSON body');
    assert.deepEqual(Object.keys(schema.properties ?? {}).sort(), ['client', 'deviceKey', 'deviceName', 'login', 'password', 'platform', 'remember']);
    assert.deepEqual([...(schema.required ?? [])].sort(), ['login', 'password']);
    assert.equal(schema.additionalProperties, false);
  });

  it('holds nothing specific to this server or its data', () => {
    assert.ok(!servedText.includes(s.dataDir), 'the data folder');
    assert.ok(!servedText.includes('127.0.0.1') && !servedText.includes('localhost'), 'the listen address');
    assert.ok(!/\/work\/|\/tmp\//.test(servedText), 'a file path');
  });
});
