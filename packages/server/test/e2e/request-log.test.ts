/**
 * The request log of a real server process: one JSON line per request, written
 * when it ends, with what an access log holds (method, url, client address,
 * status, time, request id); the arrival only at debug level; a request
 * cut off by its client still gets its line; never a credential, even from
 * a request that sent one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { spawnServer, storageArgs, waitFor } from '../support/processes.ts';

interface LogLine { msg?: string; reqId?: string; req?: Record<string, unknown>; res?: { statusCode?: number }; responseTime?: number }

function lines(output: string): LogLine[] {
  return output.split('\n').flatMap((l) => {
    try { return [JSON.parse(l) as LogLine]; } catch { return []; }
  });
}

describe('request log', () => {
  for (const level of ['info', 'debug'] as const) {
    it(`at ${level}: one 'request completed' line per request${level === 'debug' ? ', and its arrival' : ''}`, async (t) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'coffer-reqlog-'));
      t.after(() => rm(dataDir, { recursive: true, force: true }));
      const server = await spawnServer(storageArgs(dataDir), { args: ['--log-level', level] });
      t.after(() => server.kill());
      const secret = 'Bearer not-a-real-token-3f9a1c';
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200);
      const denied = await fetch(`${server.url}/api/v1/content/some/file.txt?x=1`, { headers: { authorization: secret } });
      assert.equal(denied.status, 401);
      await denied.text();
      const missing = await fetch(`${server.url}/no/such/route`);
      assert.equal(missing.status, 404);
      await missing.text();

      const done = () => lines(server.output()).filter((l) => l.msg === 'request completed');
      await waitFor('three request lines', () => done().length >= 3, 10_000);
      const completed = done();
      assert.deepEqual(completed.map((l) => [l.req?.method, l.req?.url, l.res?.statusCode]), [
        ['GET', '/healthz', 200],
        ['GET', '/api/v1/content/some/file.txt?x=1', 401],
        ['GET', '/no/such/route', 404],
      ]);
      for (const l of completed) {
        assert.equal(l.req?.remoteAddress, '127.0.0.1');
        assert.equal(typeof l.req?.remotePort, 'number');
        assert.equal(typeof l.responseTime, 'number');
        assert.match(l.reqId ?? '', /^[0-9a-f-]{36}$/);
      }
      assert.equal(new Set(completed.map((l) => l.reqId)).size, 3, 'each request has its own id');
      const arrivals = lines(server.output()).filter((l) => l.msg === 'incoming request');
      if (level === 'info') assert.equal(arrivals.length, 0);
      else assert.deepEqual(arrivals.map((l) => l.reqId), completed.map((l) => l.reqId));
      // Fastify's request serializer writes no headers today: this guards against one that would.
      assert.ok(!server.output().includes('not-a-real-token'), 'a credential reached the log');
    });
  }

  it('a device sign-in code or a token in the query string never reaches the log', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'coffer-reqlog-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const server = await spawnServer(storageArgs(dataDir), { args: ['--log-level', 'debug'] });
    t.after(() => server.kill());
    for (const path of ['/device?code=WXYZ-QRST', '/api/v1/auth/device/pending?userCode=WXYZ-QRST&x=1', '/healthz?a=1&token=tok-5e3d&b=2']) {
      await (await fetch(`${server.url}${path}`)).text();
    }
    await waitFor('three request lines', () => lines(server.output()).filter((l) => l.msg === 'request completed').length >= 3, 10_000);
    const urls = lines(server.output()).filter((l) => l.msg === 'request completed' || l.msg === 'incoming request').map((l) => l.req?.url);
    assert.deepEqual([...new Set(urls)], ['/device?code=[Redacted]', '/api/v1/auth/device/pending?userCode=[Redacted]&x=1', '/healthz?a=1&token=[Redacted]&b=2']);
    assert.ok(!/WXYZ|QRST|tok-5e3d/.test(server.output()), 'a secret reached the log');
  });

  it('a request whose client hangs up mid-body gets its line, with method and url', async (t) => {
    const dataDir = await mkdtemp(join(tmpdir(), 'coffer-reqlog-'));
    t.after(() => rm(dataDir, { recursive: true, force: true }));
    const server = await spawnServer(storageArgs(dataDir));
    t.after(() => server.kill());
    const { hostname, port } = new URL(server.url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.write('POST /api/v1/auth/login?half=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"login":');
    await new Promise((r) => setTimeout(r, 200)); // the server has the headers and waits for the rest
    socket.destroy();
    const aborted = () => lines(server.output()).filter((l) => l.msg === 'request aborted');
    await waitFor('the aborted request\'s line', () => aborted().length >= 1, 10_000);
    const [line] = aborted();
    assert.equal(line!.req?.method, 'POST');
    assert.equal(line!.req?.url, '/api/v1/auth/login?half=1');
    assert.equal(line!.req?.remoteAddress, '127.0.0.1');
    assert.equal(lines(server.output()).filter((l) => l.msg === 'request completed').length, 0, 'it did not complete');
  });
});
