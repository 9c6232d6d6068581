/**
 * A state-changing request is answered only after the metadata is durable
 * (the SQLite WAL fsync of db/group-sync.ts); reads never wait for it.
 * The durability hook is replaced here by one the test controls.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { createCoffer, type Coffer } from '../../src/app.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { buildHttpServer } from '../../src/http/http-server.ts';
import { TEST_PASSWORD } from '../support/test-server.ts';

describe('acknowledged means durable', () => {
  let dir: string;
  let coffer: Coffer;
  let http: FastifyInstance;
  let url: string;
  let token: string;
  let release: (() => void) | null = null;
  let durableCalls = 0;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'coffer-durable-'));
    const config = loadConfig({ flags: { dataDir: dir, logLevel: 'silent' }, env: {} });
    coffer = await createCoffer(config);
    await coffer.services.users.create({ username: 'alice', password: TEST_PASSWORD });
    token = 'any-token-this-test-authenticates-every-request-as-alice';
    const durable = () => { durableCalls++; return new Promise<void>((resolve) => { release = resolve; }); };
    http = await buildHttpServer(coffer.services, {
      authenticate: async () => { const u = (await coffer.services.users.list())[0]; return { userId: u.id, username: u.username, rootId: u.root_id, isAdmin: false }; },
    }, config, { durable });
    await http.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(http.server.address() as { port: number }).port}`;
  });
  after(async () => {
    await http?.close();
    await coffer?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('holds the answer to an upload until the commit is on disk', async () => {
    let answered = false;
    const pending = fetch(`${url}/api/v1/content/a.txt`, { method: 'PUT', body: 'hello', headers: { authorization: `Bearer ${token}` } })
      .then((r) => { answered = true; return r; });
    for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(release, 'the durability hook was called');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false, 'no answer before the fsync finished');
    release!();
    release = null;
    assert.equal((await pending).status, 201);
  });

  it('does not make reads wait', async () => {
    const before = durableCalls;
    const r = await fetch(`${url}/api/v1/content/a.txt`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(await r.text(), 'hello');
    assert.equal(durableCalls, before);
  });
});
